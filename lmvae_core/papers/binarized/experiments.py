"""Notebook 03: binarized regularisation (Hu & Rostami 2023): the r sweep over seeds (an ensemble per setting),
a posterior-collapse regime, traversals and the bound. The profiles are in `settings`, the overhead and generative
replay in `replay`, the one training grid in `grid`, the claims in `claims`."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from functools import partial

import numpy as np
import torch

from ...continual import pack, restore
from ...data.preprocess import binarize_fixed
from ...data.streams import DataConfig, load_split
from ...experiments.calibration import JointVAE, calibrate
from ...experiments.calibration import calibration_call as shared_calibration_call
from ...experiments.common import Run
from ...metrics import fid, iwae_log_likelihood, negative_elbo, reconstruction_error
from ...metrics.fid import classifier_check, real_fid
from ...metrics.latent import bimodality_coefficient, latent_means, linear_probe
from ...models.binarized import (BinarizedVAE, BinarizedVAEConfig, mixture_kl_monte_carlo, mixture_kl_per_dim,
                                shifted_kl, unit_activity)
from ...results.cache import cached
from ...results.runner import Call
from ...training.classifier import classifier_key, classifier_state, epochs_for, feature_classifier
from ...training.ensemble import train_ensemble
from ...training.loop import TrainConfig
from .settings import OBJECTIVES, REGIMES

# Relative costs, for a grid's order only (costliest first), in training passes of one image through the VAE
# (~3,500/s on the shared machine): a CNN image pass of the feature classifier ~8 (MNIST's 180k: ~420 s), one
# IWAE sample ~1/5 (IWAE-500 on 10,000 images: ~300 s).
CNN_PASS, IWAE_SAMPLE = 8.0, 0.2


def seeds_of(run: Run, n: int | None = None) -> list[int]:
    """The seeds of a run's ensembles: run.seed, run.seed + 1, ..."""
    return [run.seed + i for i in range(run.settings["seeds"] if n is None else n)]


def model_config(s: dict, objective: str, r: float, latent: int | None = None) -> BinarizedVAEConfig:
    return BinarizedVAEConfig(latent_dim=latent or s["latent"], hidden=(s["hidden"],), r=float(r),
                              **OBJECTIVES[objective])


def regime_latent(s: dict, regime: str) -> int:
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; known: {REGIMES}")
    return s["latent"] if regime == "main" else s["collapse_latent"]


def calibration_spec(s: dict) -> JointVAE:
    """The notebook's architecture as a plain VAE trained jointly on MNIST with the sweep's schedule."""
    return JointVAE("mnist", (s["hidden"],), s["latent"], epochs=s["epochs"], batch_size=s["batch"],
                    iwae_k=s["cal_k"], train_limit=s["sweep_train"], test_limit=s["cal_test"])


def calibration(run: Run):
    """The calibration row: calibration_spec against the profile's reference (cal_ref). train_all's grid trains
    it (retrained there under force); here it is read, and trained only if missing."""
    return calibrate(replace(run, force=False), calibration_spec(run.settings), run.settings["cal_ref"])


def calibration_call(run: Run) -> Call:
    """The calibration VAE as a grid call (calibration.calibration_call: calibrate()'s own cache name and key),
    weighted by its cost."""
    spec = calibration_spec(run.settings)
    n_test = len(load_split("mnist", "test", run.data(test_limit=spec.test_limit)).x)
    cost = spec.epochs * n_train(run, "mnist", spec.train_limit) + IWAE_SAMPLE * spec.iwae_k * n_test
    return replace(shared_calibration_call(run, spec), cell={"part": "calibration"}, weight=cost / 1e5)


def n_train(run: Run, dataset: str, limit: int | None) -> int:
    return len(load_split(dataset, "train", run.data(train_limit=limit)).x)


def train_key(dataset, cfg, tcfg, data: DataConfig, seed, extra=None) -> dict:
    return {"dataset": dataset, "model": asdict(cfg), "train": asdict(tcfg) | {"progress": None},
            "data": asdict(data) | {"device": None}, "seed": seed} | (extra or {})


def rebuild(result: dict, device, member: int = 0) -> BinarizedVAE:
    return restore(BinarizedVAE, result["members"][member], device)


# -- one setting of the sweep: an ensemble over seeds -------------------------------------------------------
def _tcfg(run: Run) -> TrainConfig:
    s = run.settings
    return TrainConfig(epochs=s["epochs"], batch_size=s["batch"], progress=run.progress)


def train_call(run: Run, dataset: str, objective: str, r: float, regime: str = "main") -> Call:
    """One setting of the sweep (all its seeds) as a grid call (cached by all inputs)."""
    s = run.settings
    cfg = model_config(s, objective, r, regime_latent(s, regime))
    key = train_key(dataset, cfg, _tcfg(run), run.data(train_limit=s["sweep_train"]), run.seed,
                     {"seeds": seeds_of(run), "trainer": "ensemble"})
    return Call("binarized_vae", key, fit_model, (run, dataset, objective, r, regime),
                {"regime": regime, "dataset": dataset, "objective": objective, "r": float(r)},
                weight=len(seeds_of(run)) * s["epochs"] * n_train(run, dataset, s["sweep_train"]) / 1e5)


def fit_model(run: Run, dataset: str, objective: str, r: float, regime: str = "main") -> dict:
    """Train one setting for every seed as one stacked ensemble (uncached; module level for Dask workers)."""
    s = run.settings
    cfg = model_config(s, objective, r, regime_latent(s, regime))
    x = load_split(dataset, "train", run.data(train_limit=s["sweep_train"])).x
    t0, history = time.time(), []
    members = train_ensemble(lambda: BinarizedVAE(cfg), x, _tcfg(run), seeds_of(run), history=history)
    n, epochs_run = int(x.shape[0]), len(history[0]) if history else 0  # history: one entry per epoch and member
    return {"members": [pack(m) for m in members], "seeds": seeds_of(run), "history": history,
            "n_train": n, "train_seconds": time.time() - t0,
            # per member, as trained: optimiser steps (the loop's batches of `batch` rows) and real images seen
            "steps": epochs_run * math.ceil(n / s["batch"]), "images": epochs_run * n}


def train_model(run: Run, dataset: str, objective: str, r: float, regime: str = "main",
                force: bool | None = None) -> dict:
    """Train (or reload) one setting of the sweep. force (default run.force) retrains."""
    c = train_call(run, dataset, objective, r, regime)
    return cached(c.name, c.config, partial(c.fn, *c.args), force=run.force if force is None else force) \
        | {"key": c.config}


def _eval_key(run: Run, trained: dict) -> dict:
    s = run.settings
    return trained["key"] | {"eval": {k: s[k] for k in ("eval_n", "iwae_k", "probe_n", "fid_n", "clf_n",
                                                         "clf_epochs", "clf_min_passes")}}


@torch.no_grad()
def evaluate_member(run: Run, dataset: str, model: BinarizedVAE, seed: int, classifier=None) -> dict:
    """Reconstruction, ELBO (under the model's own prior), IWAE, unit activity (raw, folded, KL), KL per
    dimension, mode geometry of the latent means, a linear probe and FID of samples, for one trained model."""
    s, r = run.settings, model.r
    torch.manual_seed(seed)
    test = load_split(dataset, "test", run.data())
    x, y = test.x[: s["eval_n"]], test.y[: s["eval_n"]]
    xb = binarize_fixed(x)
    mu, logvar = model.encode(xb)
    act = unit_activity(mu, logvar, r)
    t = model.terms(xb, exact_elbo=True)
    m = mu.cpu().numpy()
    train_probe = load_split(dataset, "train", run.data(train_limit=s["probe_n"]))
    probe = linear_probe(latent_means(model, binarize_fixed(train_probe.x)), train_probe.y, mu, y)
    out = {
        "recon_error": reconstruction_error(model, xb),
        "neg_elbo": negative_elbo(model, xb),
        "regularised": float((t["recon"] + t["kl"]).mean()),
        "recon_nll": float(t["recon"].mean()),
        "kl_shifted": float(t["kl"].mean()),
        "kl_mixture": float(t["kl_mixture"].mean()),
        "iwae": float(iwae_log_likelihood(model, xb, k=s["iwae_k"]).mean()),
        "active_units": act["active_raw"], "active_folded": act["active_folded"], "active_kl": act["active_kl"],
        "au_variance": act["variance"].cpu().numpy(), "au_folded_variance": act["folded_variance"].cpu().numpy(),
        "kl_per_dim": act["kl"].cpu().numpy(),
        "kl_mixture_per_dim": mixture_kl_per_dim(mu, logvar, r).mean(0).cpu().numpy(),
        "probe_accuracy": probe,
    } | geometry(m, r)
    if classifier is not None:
        g = torch.Generator(device=run.device).manual_seed(seed)
        samples = model.sample(s["fid_n"], generator=g)
        out["fid"] = fid(classifier, samples, test.x[: s["fid_n"]])
        pred = classifier.predict(samples).cpu().numpy()
        share = np.bincount(pred, minlength=10) / len(pred)
        out["sample_class_entropy"] = float(-(share[share > 0] * np.log(share[share > 0])).sum() / math.log(10))
    return out


def compute_eval(run: Run, dataset: str, trained: dict, with_fid: bool = True) -> list[dict]:
    """evaluate_member for every member of a trained setting (uncached; module level for Dask workers)."""
    clf = dataset_classifier(run, dataset, force=False) if with_fid else None
    return [evaluate_member(run, dataset, rebuild(trained, run.device, i), seed, clf)
            for i, seed in enumerate(trained["seeds"])]


def eval_call(run: Run, dataset: str, objective: str, r: float, regime: str, trained: dict) -> Call:
    with_fid = regime == "main"  # the collapse regime is about units, not samples
    return Call("binarized_eval", _eval_key(run, trained) | {"fid": with_fid}, compute_eval,
                (run, dataset, trained, with_fid),
                {"regime": regime, "dataset": dataset, "objective": objective, "r": float(r)})


def _classifier_data(run: Run, dataset: str):
    """The feature classifier's training split, clf_n images (None: all, so that it reaches its accuracy floor,
    metrics/fid.py), and its epochs: at least clf_min_passes image passes."""
    s = run.settings
    train_split = load_split(dataset, "train", run.data(train_limit=s["clf_n"]))
    return train_split, epochs_for(len(train_split.x), s["clf_epochs"], s["clf_min_passes"])


def dataset_classifier(run: Run, dataset: str, force: bool | None = None):
    """The feature classifier of a dataset (trained on first use, or by train_all's grid)."""
    train_split, epochs = _classifier_data(run, dataset)
    return feature_classifier(dataset, train_split.x, train_split.y, epochs=epochs, seed=run.seed,
                              force=run.force if force is None else force)


def classifier_call(run: Run, dataset: str) -> Call:
    """dataset_classifier as a grid call, under feature_classifier's own cache name and key."""
    train_split, epochs = _classifier_data(run, dataset)
    return Call("feature_classifier", classifier_key(dataset, train_split.x, epochs, run.seed), fit_classifier,
                (run, dataset), {"part": "feature classifier", "dataset": dataset},
                weight=CNN_PASS * epochs * len(train_split.x) / 1e5)


def fit_classifier(run: Run, dataset: str) -> dict:
    """What feature_classifier caches for this dataset (module level for Dask workers)."""
    train_split, epochs = _classifier_data(run, dataset)
    return classifier_state(train_split.x, train_split.y, epochs, run.seed)


def feature_check(run: Run, dataset: str) -> dict:
    """The classifier's test accuracy against its floor and the FID of fid_n real training images against
    fid_n real test images (what a perfect generator would score at this sample size), beside the FIDs."""
    s = run.settings
    clf = dataset_classifier(run, dataset, force=False)
    train = load_split(dataset, "train", run.data(train_limit=s["clf_n"]))
    test = load_split(dataset, "test", run.data())
    return classifier_check(clf, dataset, test.x, test.y) | {
        "real-vs-real FID": real_fid(clf, train.x, test.x[: s["fid_n"]], s["fid_n"]), "FID images": s["fid_n"]}


def geometry(m: np.ndarray, r: float) -> dict:
    """Where the posterior means (rows: images) sit, over the dimensions whose means vary (Var > 0.01, raw: a
    dimension that only switches between +r and -r counts here, since this is about the modes): Sarle's
    bimodality coefficient of all of them pooled (two modes at +-r show up here), the share of means in the
    valley |mu| < r/2, the minority-sign share per dimension (0.5: both modes used equally; 0: one mode only),
    the share of single dimensions bimodal on their own, and the mean |mu|."""
    keep = m.var(0, ddof=1) > 0.01 if m.shape[0] > 1 else np.zeros(m.shape[1], bool)
    nan = float("nan")
    if not keep.any():
        return {"pooled_bc": nan, "valley_share": nan, "minority_sign": nan, "bimodal_share": nan, "mean_abs_mu": nan}
    a = m[:, keep]
    bc = np.array([bimodality_coefficient(a[:, j]) for j in range(a.shape[1])])
    return {"pooled_bc": bimodality_coefficient(a.ravel()),
            "valley_share": float((np.abs(a) < r / 2).mean()) if r > 0 else nan,
            "minority_sign": float(np.minimum((a > 0).mean(0), (a < 0).mean(0)).mean()),
            "bimodal_share": float((bc > 5 / 9).mean()), "mean_abs_mu": float(np.abs(a).mean())}


def sweep_cells(run: Run) -> list[tuple[str, str, str, float]]:
    """(dataset, objective, r, regime): the main sweep on every dataset, the collapse regime on the first."""
    s = run.settings
    main = [(d, o, r, "main") for d in s["datasets"] for o in s["objectives"] for r in s["rs"]]
    return main + [(s["datasets"][0], o, r, "collapse") for o in s["collapse_objectives"] for r in s["collapse_rs"]]


def summarise(per_seed: list[dict]) -> dict:
    """Scalars: mean over seeds, with the per-seed values under 'seeds'; arrays: the first seed's."""
    out = {k: (float(np.mean([p[k] for p in per_seed])) if np.isscalar(v) else v) for k, v in per_seed[0].items()}
    return out | {"seeds": {k: [float(p[k]) for p in per_seed] for k, v in per_seed[0].items() if np.isscalar(v)},
                  "n_seeds": len(per_seed)}


def sweep(run: Run) -> list[dict]:
    """Every cell of `sweep_cells`: an ensemble over the seeds, trained on sweep_train images (None: all) and
    evaluated on the test images; two grids on run.executor (training, then evaluation). The ensembles and the
    classifiers come from train_all (trained here only if missing: run.force retrains them there, and
    re-evaluates them here). A failed cell is printed and left out."""
    for dataset in run.settings["datasets"]:
        dataset_classifier(run, dataset, force=False)  # before the evaluations, which all load it
    cells = sweep_cells(run)
    trains = run.grid([train_call(run, d, o, r, g) for d, o, r, g in cells], "binarized sweep: train", force=False)
    done = [(c, tr | {"key": call.config}) for c, call, tr in zip(cells, trains.calls, trains.results)
            if tr is not None]
    evals = run.grid([eval_call(run, d, o, r, g, trained) for (d, o, r, g), trained in done],
                  "binarized sweep: evaluate")
    rows = []
    for ((dataset, objective, r, regime), trained), per_seed in zip(done, evals.results):
        if per_seed is None:
            continue
        rows.append({"regime": regime, "dataset": dataset, "objective": objective, "r": float(r),
                     "latent": regime_latent(run.settings, regime), **summarise(per_seed),
                     "n_train": trained["n_train"], "epochs": run.settings["epochs"],
                     "steps": trained["steps"], "images": trained["images"],
                     "train_seconds": trained["train_seconds"], "history": trained["history"]})
    return rows


def load_model(run: Run, dataset: str, objective: str, r: float, regime: str = "main") -> BinarizedVAE:
    """The first seed's model of a sweep setting, as trained by `sweep` (never retrained here)."""
    return rebuild(train_model(run, dataset, objective, r, regime, force=False), run.device)


# -- latent geometry --------------------------------------------------------------------------------
@torch.no_grad()
def projection(run: Run, model: BinarizedVAE, dataset: str, n: int | None = None) -> dict:
    """Posterior means of test images in the two most active dimensions, with labels."""
    test = load_split(dataset, "test", run.data())
    n = n or run.settings["eval_n"]
    xb = binarize_fixed(test.x[:n])
    mu = latent_means(model, xb)
    order = torch.argsort(mu.var(0), descending=True)
    return {"mu": mu.cpu().numpy(), "y": test.y[:n].cpu().numpy(), "dims": order[:2].tolist(),
            "order": order.tolist(), "var": mu.var(0).cpu().numpy()}


# -- the bound: shifted KL + d log 2 >= KL to the two-mode mixture ----------------------------------------
@torch.no_grad()
def bound_check(run: Run, model: BinarizedVAE, dataset: str, n: int = 200) -> dict:
    """On real posteriors: the regularised KL + d log 2, the exact KL to the mixture (quadrature) and its
    Monte Carlo estimate with standard errors. Counts violations beyond 3 standard errors."""
    s = run.settings
    test = load_split(dataset, "test", run.data())
    xb = binarize_fixed(test.x[:n])
    mu, logvar = model.encode(xb)
    r, d = model.r, mu.shape[1]
    bound = shifted_kl(mu, logvar, r).sum(-1) + d * math.log(2)
    exact = mixture_kl_per_dim(mu, logvar, r).sum(-1)
    g = torch.Generator(device=mu.device).manual_seed(run.seed)
    m = s["mc_samples"]
    draws = torch.stack([mixture_kl_monte_carlo(mu, logvar, r, n_samples=m // 10, generator=g) for _ in range(10)])
    mc, se = draws.mean(0), draws.std(0) / math.sqrt(10)
    return {"r": r, "d": d, "bound": float(bound.mean()), "regularised_kl": float((bound - d * math.log(2)).mean()),
            "kl_mixture_exact": float(exact.mean()), "kl_mixture_mc": float(mc.mean()),
            "mc_stderr": float(se.mean()), "gap_min": float((bound - exact).min()),
            "mc_violations_3se": int((mc > bound + 3 * se).sum()), "quadrature_violations": int((exact > bound + 1e-4).sum()),
            "n": n}
