"""Shared pieces of notebook 03's fidelity measurements: full MNIST, an ensemble of seeds per setting
(lmvae_core.training.ensemble), and the evaluation of every member. The data root is $LMVAE_DATA."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.metrics import iwae_log_likelihood, reconstruction_error
from lmvae_core.metrics.significance import mean_ci, paired_difference
from lmvae_core.models.binarized import BinarizedVAE, BinarizedVAEConfig, unit_activity
from lmvae_core.training.ensemble import train_ensemble
from lmvae_core.training.loop import TrainConfig

DATA_ROOT = os.environ.get("LMVAE_DATA")
HERE = Path(__file__).parent


def mnist(test_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not DATA_ROOT:
        raise SystemExit("set LMVAE_DATA to a torchvision root with full MNIST")
    cfg = DataConfig(source="torchvision", root=DATA_ROOT, device="cpu")
    return load_split("mnist", "train", cfg).x, binarize_fixed(load_split("mnist", "test", cfg).x[:test_n])


@torch.no_grad()
def evaluate(model: BinarizedVAE, x_test: torch.Tensor, k: int) -> dict:
    mu, logvar = model.encode(x_test)
    act = unit_activity(mu, logvar, model.r)
    t = model.terms(x_test, exact_elbo=True)
    torch.manual_seed(0)
    return {"iwae": float(iwae_log_likelihood(model, x_test, k=k).mean()),
            "neg_elbo": float(-t["elbo"].mean()), "kl_shifted": float(t["kl"].mean()),
            "recon_error": reconstruction_error(model, x_test),
            "active_raw": act["active_raw"], "active_folded": act["active_folded"], "active_kl": act["active_kl"]}


def train_setting(cfg: BinarizedVAEConfig, x: torch.Tensor, x_test: torch.Tensor, tcfg: TrainConfig,
                  seeds: list[int], k: int) -> dict:
    """Train the seeds as one stacked ensemble and evaluate every member: per-seed values and 95% intervals."""
    t0 = time.time()
    members = train_ensemble(lambda: BinarizedVAE(cfg), x, tcfg, seeds)
    per_seed = [evaluate(m, x_test, k) for m in members]
    out = {key: [p[key] for p in per_seed] for key in per_seed[0]}
    return {"per_seed": out, "ci": {key: str(mean_ci(v)) for key, v in out.items()},
            "seconds": round(time.time() - t0, 1), "members": members}


def difference(a: dict, b: dict, key: str) -> str:
    """Paired (by seed) 95% interval of a - b."""
    return str(paired_difference(a["per_seed"][key], b["per_seed"][key]))


def setup(network: str, tcfg: TrainConfig, seeds: list[int], k: int, test_n: int) -> dict:
    """What a measurement ran on, recorded at the top of its JSON."""
    return {"network": network, "data": f"full MNIST (60,000), dynamic binarisation; test: first {test_n:,}, fixed "
            "binarisation", "epochs": tcfg.epochs, "batch": tcfg.batch_size, "seeds": seeds, "iwae_k": k,
            "torch": torch.__version__}


def write(name: str, result: dict) -> None:
    path = HERE / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result, indent=1, default=str))
    print(f"wrote {path}")
