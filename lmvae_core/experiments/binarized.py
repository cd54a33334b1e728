"""Notebook 03: binarized regularisation (Hu & Rostami 2023): the r sweep, traversals, overhead,
generative replay on split MNIST, and the claims judged by measured numbers."""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from functools import partial

import numpy as np
import torch

from ..continual import SequentialVAE, from_train_config, pack, restore, run_stream
from ..data.preprocess import binarize_fixed
from ..data.streams import DataConfig, class_split_stream, load_split
from ..metrics import (TaskMatrix, active_units, feature_classifier, fid, iwae_log_likelihood, negative_elbo,
                       reconstruction_error)
from ..metrics.latent import bimodality_coefficient, latent_means, linear_probe, traversal  # noqa: F401
from ..models.binarized import (BinarizedVAE, BinarizedVAEConfig, mixture_kl_monte_carlo, mixture_kl_per_dim,
                                shifted_kl)
from ..models.vae import VAE, VAEConfig
from ..results.cache import cached
from ..results.runner import Call, GridRun, run_grid
from ..training.loop import TrainConfig, make_optimizer, train
from ..training.step import train_step
from .binarized_claims import claims  # noqa: F401  (re-exported: the notebook's binarized.claims)
from .common import Run

# The three objectives the paper regularises: (beta, capacity C, gamma). capacity: recon + gamma |KL - C|.
OBJECTIVES = {
    "VAE": dict(beta=1.0, capacity=None, gamma=1.0),
    "beta-VAE": dict(beta=10.0, capacity=None, gamma=1.0),
    "capacity-VAE": dict(beta=1.0, capacity=10.0, gamma=10.0),
}

SETTINGS = {
    "smoke": dict(datasets=("mnist", "fashion"), objectives=tuple(OBJECTIVES), rs=(0.0, 0.5, 1.0), main_r=0.5,
                  hidden=64, latent=8, epochs=1, batch=128, sweep_train=1000, eval_n=200, iwae_k=10,
                  probe_n=500, fid_n=200, clf_n=1000, clf_epochs=1,
                  overhead_steps=10, overhead_rounds=2,
                  cl_rs=(0.0, 0.5), cl_train_limit=1000, cl_epochs=1, cl_eval_n=50, cl_k=10, mc_samples=200),
    "quick": dict(datasets=("mnist", "fashion"), objectives=tuple(OBJECTIVES), rs=(0.0, 0.5, 1.0, 2.0), main_r=0.5,
                  hidden=256, latent=20, epochs=5, batch=128, sweep_train=8000, eval_n=500, iwae_k=100,
                  probe_n=5000, fid_n=1000, clf_n=6000, clf_epochs=2,
                  overhead_steps=10, overhead_rounds=10,
                  cl_rs=(0.0, 0.5, 1.0), cl_train_limit=15000, cl_epochs=5, cl_eval_n=300, cl_k=50,
                  mc_samples=2000),
    # The paper: latent 32, Adam 1e-3, 40 epochs, batch 64, r sweep {0, 0.1, 1, 2} plus the main r = 0.5.
    # Its CelebA conv network is not used (CelebA is not available offline); MNIST/Fashion use an MLP.
    "paper": dict(datasets=("mnist", "fashion"), objectives=tuple(OBJECTIVES), rs=(0.0, 0.1, 0.5, 1.0, 2.0),
                  main_r=0.5, hidden=400, latent=32, epochs=40, batch=64, sweep_train=None, eval_n=10000,
                  iwae_k=5000, probe_n=60000, fid_n=10000, clf_n=60000, clf_epochs=5,
                  overhead_steps=50, overhead_rounds=10,
                  cl_rs=(0.0, 0.5, 1.0), cl_train_limit=None, cl_epochs=20, cl_eval_n=2000, cl_k=1000,
                  mc_samples=10000),
}


def model_config(s: dict, objective: str, r: float) -> BinarizedVAEConfig:
    return BinarizedVAEConfig(latent_dim=s["latent"], hidden=(s["hidden"],), r=float(r), **OBJECTIVES[objective])


def _train_key(dataset, cfg, tcfg, data: DataConfig, seed, extra=None) -> dict:
    return {"dataset": dataset, "model": asdict(cfg), "train": asdict(tcfg) | {"progress": None},
            "data": asdict(data) | {"device": None}, "seed": seed} | (extra or {})


def rebuild(result: dict, device) -> BinarizedVAE:
    return restore(BinarizedVAE, result, device)


# -- one model of the sweep -------------------------------------------------------------------------
def train_call(run: Run, dataset: str, objective: str, r: float) -> Call:
    """One model of the sweep as a grid call (cached by all inputs)."""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], progress=run.progress)
    key = _train_key(dataset, cfg, tcfg, run.data(train_limit=s["sweep_train"]), run.seed)
    return Call("binarized_vae", key, fit_model, (run, dataset, objective, r),
                {"dataset": dataset, "objective": objective, "r": float(r)})


def fit_model(run: Run, dataset: str, objective: str, r: float) -> dict:
    """Train one model of the sweep on the training subset (uncached; module level for Dask workers)."""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], progress=run.progress)
    torch.manual_seed(run.seed)
    x = load_split(dataset, "train", run.data(train_limit=s["sweep_train"])).x
    model = BinarizedVAE(cfg).to(x.device)
    t0 = time.time()
    history = train(model, x, tcfg, desc=f"{objective} r={r} {dataset}")
    return pack(model) | {"history": history, "train_seconds": time.time() - t0}


def train_model(run: Run, dataset: str, objective: str, r: float, force: bool | None = None) -> dict:
    """Train (or reload) one model of the sweep. force (default run.force) retrains."""
    c = train_call(run, dataset, objective, r)
    return cached(c.name, c.config, partial(c.fn, *c.args), force=run.force if force is None else force) \
        | {"key": c.config}


def _eval_key(run: Run, trained: dict) -> dict:
    s = run.settings
    return trained["key"] | {"eval": {k: s[k] for k in ("eval_n", "iwae_k", "probe_n", "fid_n", "clf_n",
                                                         "clf_epochs")}}


@torch.no_grad()
def compute_eval(run: Run, dataset: str, objective: str, r: float, trained: dict, classifier=None) -> dict:
    """Reconstruction, ELBO (under the model's own prior), IWAE, active units, KL per dimension,
    mode symmetry of the latent means, a linear probe, FID of samples (uncached)."""
    s = run.settings
    torch.manual_seed(run.seed)
    model = rebuild(trained, run.device)
    test = load_split(dataset, "test", run.data())
    x, y = test.x[: s["eval_n"]], test.y[: s["eval_n"]]
    xb = binarize_fixed(x)
    mu, logvar = model.encode(xb)
    n_active, var = active_units(model, xb)
    kl_dim = shifted_kl(mu, logvar, r).mean(0)
    kl_mix_dim = mixture_kl_per_dim(mu, logvar, r).mean(0)
    t = model.terms(xb)
    active = (var > 0.01).cpu().numpy()
    m = mu.cpu().numpy()
    balance = np.minimum((m > 0).mean(0), (m < 0).mean(0))
    bc = np.array([bimodality_coefficient(m[:, j]) for j in range(m.shape[1])])
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
        "active_units": n_active,
        "au_variance": var.cpu().numpy(),
        "kl_per_dim": kl_dim.cpu().numpy(),
        "kl_mixture_per_dim": kl_mix_dim.cpu().numpy(),
        "sign_balance": float(balance[active].mean()) if active.any() else float("nan"),
        "bimodal_share": float((bc[active] > 5 / 9).mean()) if active.any() else float("nan"),
        "mean_abs_mu": float(np.abs(m[:, active]).mean()) if active.any() else float("nan"),
        "probe_accuracy": probe,
    }
    if classifier is not None:
        g = torch.Generator(device=run.device).manual_seed(run.seed)
        samples = model.sample(s["fid_n"], generator=g)
        out["fid"] = fid(classifier, samples, test.x[: s["fid_n"]])
        pred = classifier.predict(samples).cpu().numpy()
        share = np.bincount(pred, minlength=10) / len(pred)
        out["sample_class_entropy"] = float(-(share[share > 0] * np.log(share[share > 0])).sum() / math.log(10))
    return out


def eval_with_classifier(run: Run, dataset: str, objective: str, r: float, trained: dict) -> dict:
    """compute_eval with the dataset's cached feature classifier (module level for Dask workers)."""
    return compute_eval(run, dataset, objective, r, trained, dataset_classifier(run, dataset, force=False))


def eval_call(run: Run, dataset: str, objective: str, r: float, trained: dict) -> Call:
    return Call("binarized_eval", _eval_key(run, trained), eval_with_classifier, (run, dataset, objective, r, trained),
                {"dataset": dataset, "objective": objective, "r": float(r)})


def evaluate(run: Run, dataset: str, objective: str, r: float, trained: dict, classifier=None) -> dict:
    """compute_eval, cached with the model's key."""
    return cached("binarized_eval", _eval_key(run, trained),
                  lambda: compute_eval(run, dataset, objective, r, trained, classifier), force=run.force)


def dataset_classifier(run: Run, dataset: str, force: bool | None = None):
    s = run.settings
    train_split = load_split(dataset, "train", run.data(train_limit=s["clf_n"]))
    return feature_classifier(dataset, train_split.x, train_split.y, epochs=s["clf_epochs"], seed=run.seed,
                              force=run.force if force is None else force)


@torch.no_grad()
def geometry(run: Run, dataset: str, objective: str, r: float) -> dict:
    """Where the posterior means of the test images sit: the bimodality coefficient of the means of all
    active dimensions pooled (two modes at +-r show up here), the share of means in the valley |mu| < r/2,
    and the minority-sign share per active dimension (0.5: both modes used equally; 0: one mode only)."""
    p = projection(run, load_model(run, dataset, objective, r), dataset)
    m = p["mu"][:, p["var"] > 0.01]
    if m.shape[1] == 0:
        return {"pooled_bc": float("nan"), "valley_share": float("nan"), "minority_sign": float("nan")}
    return {"pooled_bc": bimodality_coefficient(m.ravel()),
            "valley_share": float((np.abs(m) < r / 2).mean()) if r > 0 else float("nan"),
            "minority_sign": float(np.minimum((m > 0).mean(0), (m < 0).mean(0)).mean())}


def _grid(run: Run, calls: list[Call], desc: str) -> GridRun:
    return run_grid(calls, run.executor, force=run.force, progress=run.progress, desc=desc)


def sweep(run: Run) -> list[dict]:
    """Every (dataset, objective, r) of the settings: trained on the subset, evaluated on the test images; two
    grids on run.executor (training, then evaluation). A cell that failed is printed by the runner and its row
    left out."""
    s = run.settings
    for dataset in s["datasets"]:
        dataset_classifier(run, dataset)  # trained once here (force included), loaded by every evaluation
    cells = [(d, o, r) for d in s["datasets"] for o in s["objectives"] for r in s["rs"]]
    trains = _grid(run, [train_call(run, *c) for c in cells], "binarized sweep: train")
    done = [(c, tr | {"key": call.config}) for c, call, tr in zip(cells, trains.calls, trains.results)
            if tr is not None]
    evals = _grid(run, [eval_call(run, *c, trained) for c, trained in done], "binarized sweep: evaluate")
    rows = []
    for ((dataset, objective, r), trained), metrics in zip(done, evals.results):
        if metrics is None:
            continue
        rows.append({"dataset": dataset, "objective": objective, "r": float(r), **metrics,
                     **geometry(run, dataset, objective, r),
                     "train_seconds": trained["train_seconds"], "history": trained["history"]})
    return rows


def load_model(run: Run, dataset: str, objective: str, r: float) -> BinarizedVAE:
    """A model of the sweep, as trained by `sweep` (never retrained here, even with run.force)."""
    return rebuild(train_model(run, dataset, objective, r, force=False), run.device)


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


# -- overhead: time per training step, side by side -------------------------------------------------------
def overhead(run: Run, dataset: str = "mnist") -> list[dict]:
    """Time per training step of the core VAE and of BinarizedVAE (r = main_r) for each objective, measured
    in interleaved blocks in one process on the same batches. Not cached: it is a measurement."""
    s = run.settings
    x = load_split(dataset, "train", run.data(train_limit=s["sweep_train"])).x
    rows = []
    for objective in s["objectives"]:
        torch.manual_seed(run.seed)
        plain = VAE(VAEConfig(latent_dim=s["latent"], hidden=(s["hidden"],), **OBJECTIVES[objective])).to(x.device)
        binar = BinarizedVAE(model_config(s, objective, s["main_r"])).to(x.device)
        binar.load_state_dict(plain.state_dict())
        tcfg = TrainConfig(batch_size=s["batch"])
        models = {"plain": plain, "binarized": binar}
        opts = {k: make_optimizer(m.parameters(), tcfg) for k, m in models.items()}
        times: dict[str, list[float]] = {k: [] for k in models}
        g = torch.Generator().manual_seed(run.seed)
        for rnd in range(s["overhead_rounds"] + 1):
            idx = [torch.randint(0, x.shape[0], (s["batch"],), generator=g).to(x.device)
                   for _ in range(s["overhead_steps"])]
            batches = [torch.bernoulli(x[i]) for i in idx]
            for name in (("plain", "binarized") if rnd % 2 == 0 else ("binarized", "plain")):
                m, opt = models[name], opts[name]
                m.train()
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for b in batches:
                    train_step(m.loss, b, opt)
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                if rnd > 0:  # round 0 warms up
                    times[name].append((time.perf_counter() - t0) / len(batches))
        p, b = np.median(times["plain"]), np.median(times["binarized"])
        paired = np.array(times["binarized"]) / np.array(times["plain"])
        rows.append({"objective": objective, "r": s["main_r"], "ms/step plain": 1000 * p,
                     "ms/step binarized": 1000 * b, "ratio": float(np.median(paired)),
                     "ratio IQR low": float(np.percentile(paired, 25)), "ratio IQR high": float(np.percentile(paired, 75)),
                     "blocks": len(times["plain"]), "steps/block": s["overhead_steps"]})
    return rows


# -- generative replay on split MNIST ---------------------------------------------------------------------
def continual_call(run: Run, r: float, objective: str = "VAE") -> Call:
    """A generative-replay VAE (Shin et al. 2017 style, generator only: lmvae_core.continual.SequentialVAE) on
    split MNIST (5 tasks), as a grid call."""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["cl_epochs"], batch_size=s["batch"], progress=run.progress)
    key = _train_key("split-mnist-5", cfg, tcfg, run.data(train_limit=s["cl_train_limit"]), run.seed,
                     {"eval_n": s["cl_eval_n"], "k": s["cl_k"], "replay": "shin-1/(t+1)"})
    return Call("binarized_replay", key, fit_continual, (run, r, objective), {"r": float(r), "objective": objective})


def fit_continual(run: Run, r: float, objective: str = "VAE") -> dict:
    """R[t, j] is the IWAE log-likelihood on task j's test images after task t. Uncached (module level)."""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["cl_epochs"], batch_size=s["batch"], progress=run.progress)
    torch.manual_seed(run.seed)
    stream = class_split_stream("mnist", 5, run.data(train_limit=s["cl_train_limit"]))
    budget, optim = from_train_config(tcfg)
    learner = SequentialVAE(cfg, replay=True, device=run.device, **optim)
    matrix = TaskMatrix(stream.names, higher_is_better=True)
    tests = [binarize_fixed(task.test.x[: s["cl_eval_n"]]) for task in stream]

    def on_boundary(t, lr):
        for j in range(t + 1):
            matrix.record(t, j, float(lr.log_likelihood(tests[j], s["cl_k"]).mean()))

    result = run_stream(learner, stream, budget, on_boundary)
    samples = learner.sample(100, seed=run.seed).cpu()
    return pack(learner.model) | {"matrix": matrix.to_dict(), "samples": samples,
                                  "train_seconds": result.train_seconds, "replay_rows": result.replay_rows}


def _with_matrix(result: dict, r: float) -> dict:
    matrix = TaskMatrix.from_dict(result["matrix"])
    return result | {"r": float(r), "task_matrix": matrix, "average": matrix.average(),
                     "forgetting": matrix.forgetting()}


def continual(run: Run, r: float, objective: str = "VAE") -> dict:
    c = continual_call(run, r, objective)
    return _with_matrix(cached(c.name, c.config, partial(c.fn, *c.args), force=run.force), r)


def continual_all(run: Run) -> dict[float, dict]:
    """Every r of the settings as one grid on run.executor; a failed one is printed by the runner and left out."""
    grid = _grid(run, [continual_call(run, r) for r in run.settings["cl_rs"]], "binarized replay")
    return {float(c.cell["r"]): _with_matrix(res, c.cell["r"]) for c, res in zip(grid.calls, grid.results)
            if res is not None}


def replay_sample_quality(run: Run, results: dict[float, dict]) -> dict[float, dict]:
    """FID and class coverage of the final samples of each replay model (MNIST classifier)."""
    clf = dataset_classifier(run, "mnist", force=False)
    test = load_split("mnist", "test", run.data())
    out = {}
    for r, res in results.items():
        samples = res["samples"].to(run.device)
        pred = clf.predict(samples).cpu().numpy()
        share = np.bincount(pred, minlength=10) / len(pred)
        out[r] = {"fid": fid(clf, samples, test.x[: max(len(samples), 100)]), "class_share": share,
                  "classes_covered": int((share >= 0.03).sum())}
    return out
