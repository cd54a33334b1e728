"""Calibration: a jointly trained VAE of a notebook's main architecture, next to a reference.

If a notebook's own VAE lands far below what the same network reaches when trained jointly, suspect the code
(or the schedule) before the paper. Each notebook writes `figures/<nb>/calibration.csv` with the columns of
`CALIBRATION_COLUMNS`; a claim whose notebook missed its calibration is `not comparable` (results/claims.py).

References are either published numbers (with their source) or measured by this module at a stated,
reproducible schedule: `python -m lmvae_core.experiments.calibration KEY` trains the reference network and
writes `references/KEY.json`, which is committed. Nothing here is typed in by hand except published values.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from ..data.preprocess import binarize_fixed
from ..data.streams import DataConfig, load_split
from ..metrics.loglik import mean_iwae
from ..models.vae import VAE, VAEConfig
from ..results.cache import cached
from ..results.runner import Call
from ..runtime import pick_device, seed_everything
from ..training.loop import TrainConfig, train

CALIBRATION_COLUMNS = ["model", "dataset", "profile", "iwae_k", "log_likelihood", "reference", "reference_source"]
REFERENCE_DIR = Path(__file__).with_name("references")

# Published values: the network, the schedule and the estimator differ from ours, so they are context; the
# measured references below are what a calibration is judged against.
PUBLISHED = {
    "iwae_table1_vae_mnist": (-86.76, "Burda et al. 2016 (IWAE), Table 1: VAE, 1 stochastic layer 784-200-200-50, "
                                      "3,280 passes, k=5000, dynamically binarised MNIST"),
}


@dataclass(frozen=True)
class JointVAE:
    """A VAE trained jointly (all classes at once) on one dataset; everything that defines its number."""
    dataset: str = "mnist"
    hidden: tuple[int, ...] = (200,)
    latent: int = 20
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    likelihood: str = "bernoulli"
    gaussian_std: float = 0.1
    iwae_k: int = 500
    train_limit: int | None = None  # None: the full training split
    test_limit: int | None = None  # None: the full test split
    seed: int = 0

    @property
    def model(self) -> str:
        return "-".join(str(v) for v in (784, *self.hidden, self.latent)) + f" {self.likelihood} VAE, {self.epochs} ep"


# Measured references: key -> the schedule that produced references/<key>.json
REFERENCES = {
    "mnist_784-200-20_10ep": JointVAE("mnist", (200,), 20, epochs=10, iwae_k=500),
    "mnist_784-200-50_20ep": JointVAE("mnist", (200,), 50, epochs=20, iwae_k=500),
    "mnist_784-200-200-50_10ep": JointVAE("mnist", (200, 200), 50, epochs=10, iwae_k=500),  # notebook 04 (OCM)
    "mnist_784-256-20_10ep": JointVAE("mnist", (256,), 20, epochs=10, iwae_k=500),  # notebook 01's expert
    "mnist_784-256-10_10ep": JointVAE("mnist", (256,), 10, epochs=10, iwae_k=500),  # notebook 00's expert
}


def fit_joint_vae(spec: JointVAE, device: torch.device | str = "cpu", data_root: str | None = None,
                  source: str = "auto", progress: bool = True) -> dict:
    """Train `spec` and return its test log-likelihood (IWAE-k, nats per image) and wall time."""
    seed_everything(spec.seed)
    cfg = DataConfig(source=source, root=data_root, device=str(device), train_limit=spec.train_limit,
                     test_limit=spec.test_limit)
    tr, te = load_split(spec.dataset, "train", cfg), load_split(spec.dataset, "test", cfg)
    model = VAE(VAEConfig(latent_dim=spec.latent, hidden=spec.hidden, likelihood=spec.likelihood,
                          gaussian_std=spec.gaussian_std)).to(device)
    start = time.time()
    history = train(model, tr.x, TrainConfig(epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                                             progress=progress), desc=f"joint VAE {spec.dataset}")
    x_test = binarize_fixed(te.x) if spec.likelihood == "bernoulli" else te.x
    with torch.no_grad():
        ll = mean_iwae(model, x_test, k=spec.iwae_k, generator_seed=0)
    return {"log_likelihood": ll, "train_seconds": time.time() - start, "n_train": int(tr.x.shape[0]),
            "n_test": int(x_test.shape[0]), "final_loss": history[-1] if history else {}}


def reference(key: str) -> tuple[float, str]:
    """(value, source) of a measured (references/KEY.json) or published reference."""
    if key in PUBLISHED:
        return PUBLISHED[key]
    file = REFERENCE_DIR / f"{key}.json"
    if not file.exists():
        raise FileNotFoundError(f"calibration reference {key!r} was never measured: run "
                                f"`python -m lmvae_core.experiments.calibration {key}` (writes {file})")
    r = json.loads(file.read_text())
    return r["log_likelihood"], (f"measured: {r['model']} on full {r['dataset']} ({r['n_train']} images), "
                                 f"IWAE-{r['iwae_k']} on {r['n_test']} test images, lmvae {r['commit']}")


@dataclass(frozen=True)
class Calibration:
    model: str
    dataset: str
    profile: str
    iwae_k: int
    log_likelihood: float
    reference: float
    reference_source: str
    tolerance: float = 3.0  # nats below the reference that still count as calibrated

    @property
    def met(self) -> bool:
        return self.log_likelihood >= self.reference - self.tolerance

    def row(self) -> dict:
        return {k: getattr(self, k) for k in CALIBRATION_COLUMNS} | {"tolerance": self.tolerance, "met": self.met}


def fit_for_run(run, spec: JointVAE) -> dict:
    """What calibrate() caches for this run (module level for Dask workers)."""
    return fit_joint_vae(spec, run.device, run.data_root, run.data().source, run.progress)


def calibration_call(run, spec: JointVAE) -> Call:
    """The joint VAE's training as a grid call (a notebook can run it beside its other runs on a cluster);
    calibrate() reads the same cache entry."""
    return Call("calibration", asdict(spec) | {"device": run.device.type}, fit_for_run, (run, spec),
                {"method": "calibration VAE", "model": spec.model})


def calibrate(run, spec: JointVAE, reference_key: str | None, tolerance: float = 3.0) -> Calibration:
    """Train (or load from the cache) the notebook's joint VAE in this run's profile and compare it with the
    reference. The run's profile decides spec (smoke: a few hundred images). reference_key None: no reference
    exists for this network (the smoke profile's tiny ones): the row is trained and shown, never `met`."""
    c = calibration_call(run, spec)
    result = cached(c.name, c.config, partial(c.fn, *c.args), force=run.force)
    value, src = reference(reference_key) if reference_key else (float("nan"), "no reference for this network")
    return Calibration(spec.model, spec.dataset, run.profile, spec.iwae_k, round(result["log_likelihood"], 2),
                       value, src, tolerance)


def calibration_frame(rows: list[Calibration]) -> pd.DataFrame:
    return pd.DataFrame([r.row() for r in rows])


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Measure a calibration reference and write references/KEY.json")
    ap.add_argument("key", choices=sorted(REFERENCES))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    spec = REFERENCES[args.key]
    result = fit_joint_vae(spec, pick_device(args.device), args.data_root, source="torchvision")
    out = asdict(spec) | {"model": spec.model, "commit": _commit(), "device": str(pick_device(args.device)),
                          "torch": torch.__version__} | {k: v for k, v in result.items() if k != "final_loss"}
    REFERENCE_DIR.mkdir(exist_ok=True)
    (REFERENCE_DIR / f"{args.key}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
