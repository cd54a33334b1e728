"""Notebook 04: OCM, online cooperative memorization for task-free continual VAE learning (Ye & Bors 2022)."""
from __future__ import annotations

from dataclasses import asdict, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from ..continual import Budget, OCMLearner, pack, restore
from ..continual import run_stream as drive
from ..data.preprocess import binarize_fixed
from ..data.streams import Split, TaskFreeStream, load_split
from ..models.ocm import OCM, OCMConfig
from ..results.cache import cached
from ..results.claims import AtLeast, Claim, Within
from ..results.runner import Call, GridRun, run_grid
from ..results.tables import seed_summary
from ..runtime import cpu_threads
from .common import Run

# Splits of Table 1 and the cross-domain stream of Table 3.
STREAMS = {"mnist": ("mnist",), "fashion": ("fashion",), "mnist_fashion": ("mnist", "fashion"),
           "cross": ("mnist", "fashion", "omniglot")}
STREAM_TITLES = {"mnist": "Split MNIST", "fashion": "Split Fashion", "mnist_fashion": "Split MNIST-Fashion",
                 "cross": "MNIST -> Fashion -> Omniglot"}
METHODS = {
    "VAE-ELBO-Random": dict(memory="reservoir", objective="elbo"),
    "VAE-ELBO-OCM": dict(objective="elbo"),
    "VAE-IWVAE50-OCM": dict(objective="iwae"),
    "Dynamic-ELBO-OCM": dict(objective="elbo", dynamic=True),
}
# Poster Table 1 / Table 3: (test log-likelihood, memory size, components).
PAPER = {
    "mnist": {"VAE-ELBO-Random": (-150.79, 3000, 1), "VAE-ELBO-OCM": (-132.07, 1600, 1),
              "VAE-IWVAE50-OCM": (-127.11, 1600, 1), "Dynamic-ELBO-OCM": (-115.89, 1100, 5)},
    "fashion": {"VAE-ELBO-Random": (-280.54, 3000, 1), "VAE-ELBO-OCM": (-250.74, 1600, 1),
                "VAE-IWVAE50-OCM": (-247.90, 1600, 1), "Dynamic-ELBO-OCM": (-237.69, 1300, 10)},
    "mnist_fashion": {"VAE-ELBO-Random": (-247.46, 3000, 1), "VAE-ELBO-OCM": (-215.62, 2000, 1),
                      "VAE-IWVAE50-OCM": (-224.34, 2000, 1), "Dynamic-ELBO-OCM": (-187.49, 1400, 10)},
    "cross": {"VAE-ELBO-Random": (-239.71, None, 1), "VAE-ELBO-OCM": (-201.31, None, 1),
              "Dynamic-ELBO-OCM": (-177.29, 1500, 11)},
}
PAPER_OTHERS = {"mnist": {"LIMix": -146.23, "CNDPM": -120.71}, "fashion": {"LIMix": -262.52, "CNDPM": -257.56},
                "mnist_fashion": {"LIMix": -238.63, "CNDPM": -236.79}}

_COMMON = dict(kernel="code", alpha=10.0, per_round=14, ltm_capacity=2560, batch_size=64, direction="diverse",
               r_reset_on_expand=True)
SETTINGS = {
    "smoke": dict(_COMMON, hidden=32, latent=8, stream_limit=320, stm_size=64, epochs_per_batch=1, lr=1e-3,
                  beta1=0.9, train_samples=1, iwae_samples=2, r_samples=4, lambda1=0.9, lambda1_similar=0.35,
                  lambda2=10.0, lambda2_cross=10.0, max_components=3, max_components_other=3,
                  eval_n=100, eval_k=10, seeds=(0,), random_memory=None, cpu_threads=1,
                  ablation_limit=320, ablation_lambda1=(0.85,), ablation_lambda2=(30.0,),
                  ablation_stm=(128,), ablation_seed=0, direction_seeds=(0,), cross_seeds=(0,),
                  streams=("mnist", "fashion", "mnist_fashion")),
    # quick: a subsampled stream (stream_limit images per dataset, class-balanced), 2 passes over STM u LTM per
    # arriving batch instead of 100, lr 1e-3 instead of 1e-4, a 1-sample ELBO and IWAE-5 instead of 50 samples,
    # lambda2 = 50 because R still moves by tens of nats per round from training progress alone on this schedule.
    "quick": dict(_COMMON, hidden=200, latent=50, stream_limit=1500, stm_size=128, epochs_per_batch=2, lr=1e-3,
                  beta1=0.9, train_samples=1, iwae_samples=5, r_samples=10, lambda1=0.9, lambda1_similar=0.35,
                  lambda2=50.0, lambda2_cross=50.0, max_components=5, max_components_other=5,
                  eval_n=500, eval_k=50, seeds=(0, 1), random_memory=None, cpu_threads=1,
                  ablation_limit=1000, ablation_lambda1=(0.8, 0.85), ablation_lambda2=(25.0, 100.0),
                  ablation_stm=(64, 256), ablation_seed=0, direction_seeds=(0,), cross_seeds=(0,),
                  streams=("mnist", "fashion", "mnist_fashion")),
    "paper": dict(_COMMON, hidden=200, latent=50, stream_limit=None, stm_size=512, epochs_per_batch=100, lr=1e-4,
                  beta1=0.5, train_samples=50, iwae_samples=50, r_samples=1000, lambda1=0.9, lambda1_similar=0.35,
                  lambda2=10.0, lambda2_cross=0.5, max_components=30, max_components_other=10,
                  eval_n=None, eval_k=1000, seeds=(0, 1, 2), random_memory=3000, cpu_threads=None,
                  ablation_limit=None, ablation_lambda1=(0.8, 0.85, 0.95), ablation_lambda2=(5.0, 20.0, 30.0),
                  ablation_stm=(300, 700), ablation_seed=0, direction_seeds=(0, 1, 2),
                  cross_seeds=(0, 1, 2), streams=("mnist", "fashion", "mnist_fashion")),
}


def model_config(s: dict, stream: str, method: str, **overrides) -> OCMConfig:
    m = METHODS[method]
    objective = m["objective"]
    other = stream != "mnist"
    cfg = OCMConfig(hidden=s["hidden"], latent_dim=s["latent"], objective=objective,
                    train_samples=s["iwae_samples"] if objective == "iwae" else s["train_samples"],
                    memory=m.get("memory", "ocm"), stm_size=s["stm_size"], ltm_capacity=s["ltm_capacity"],
                    per_round=s["per_round"], direction=s["direction"], kernel=s["kernel"], alpha=s["alpha"],
                    lambda1=s["lambda1"], dynamic=m.get("dynamic", False),
                    lambda2=s["lambda2_cross"] if stream == "cross" else s["lambda2"],
                    max_components=s["max_components_other"] if other else s["max_components"],
                    r_samples=s["r_samples"], r_reset_on_expand=s["r_reset_on_expand"],
                    epochs_per_batch=s["epochs_per_batch"], batch_size=s["batch_size"], lr=s["lr"], beta1=s["beta1"])
    return replace(cfg, **overrides)


def load_stream(run: Run, stream: str, limit: int | None) -> tuple[Split, Split]:
    """Train and test images of a stream's datasets, labels offset per dataset (MNIST 0-9, Fashion 10-19,
    Omniglot 20: one label for all characters). Omniglot (105x105) is resized to 28x28 on load."""
    trains, tests = [], []
    for i, name in enumerate(STREAMS[stream]):
        cfg = run.data(train_limit=limit, size=28 if name == "omniglot" else None)
        tr, te = load_split(name, "train", cfg), load_split(name, "test", cfg)
        lab = (lambda y: torch.full_like(y, 20)) if name == "omniglot" else (lambda y, o=10 * i: y + o)
        trains.append(Split(tr.x, lab(tr.y)))
        tests.append(Split(te.x, lab(te.y)))
    return Split.concat(trains), Split.concat(tests)


def test_images(test: Split, n: int | None, seed: int = 123) -> Split:
    """A fixed, uniformly drawn test subset, binarised once with a fixed seed (the same for every method)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test), generator=g)[:n].sort().values.to(test.x.device)
    return Split(binarize_fixed(test.x[idx], seed), test.y[idx])


def evaluate(model: OCM, test: Split, k: int) -> dict:
    """Per test image: every component's IWAE-k bound (one stacked computation). Reports the best component
    per image (the paper's optimistic choice), the component chosen by reconstruction error (a choice that
    does not use the reported quantity), and the gap between them."""
    ll = model.iwae_per_component(test.x, k)  # [K, N]
    rec = model.reconstruction_error(test.x)  # [K, N]
    by_rec = rec.argmin(0)
    ll_rec = ll.gather(0, by_rec.unsqueeze(0)).squeeze(0)
    best = ll.max(0)
    return {"ll_best": float(best.values.mean()), "ll_by_recon": float(ll_rec.mean()),
            "ll_per_component": ll.mean(1).tolist(), "choice_best": best.indices.cpu(), "choice_recon": by_rec.cpu(),
            "recon_error": float(rec.gather(0, by_rec.unsqueeze(0)).mean()), "labels": test.y.cpu()}


def stream_call(run: Run, stream: str, method: str, seed: int, limit: int | None = None, **overrides) -> Call:
    """One pass of a method over a task-free stream as a grid call. A reservoir run of the same memory size as
    the kernel-selected one needs that run's result (loaded from the cache, computed here if absent)."""
    s = run.settings
    limit = s["stream_limit"] if limit is None else limit
    cfg = model_config(s, stream, method, **overrides)
    if cfg.memory == "reservoir" and "ltm_capacity" not in overrides:
        size = s["random_memory"]
        if size is None:  # equal size: the memory the kernel-selected OCM run ends with
            size = max(1, run_stream(run, stream, "VAE-ELBO-OCM", seed, limit, force=False)["memory_size"])
        cfg = replace(cfg, ltm_capacity=size)
    data = run.data()
    key = {"stream": stream, "method": method, "model": asdict(cfg), "seed": seed, "limit": limit,
           "eval": (s["eval_n"], s["eval_k"]), "data": asdict(data) | {"device": None}}
    return Call("ocm", key, fit_stream, (run, stream, cfg, seed, limit),
                {"stream": stream, "method": method, "seed": seed} | overrides)


def fit_stream(run: Run, stream: str, cfg: OCMConfig, seed: int, limit: int | None) -> dict:
    """One pass over the stream through the driver, then evaluation on its test images (uncached; module
    level for Dask workers)."""
    s = run.settings
    with cpu_threads(s["cpu_threads"]):
        train, test = load_stream(run, stream, limit)
        torch.manual_seed(seed)
        learner = OCMLearner(config=cfg, seed=seed, device=run.device)
        result = drive(learner, TaskFreeStream(train, cfg.batch_size, seed=seed), Budget(seed=seed))
        model = learner.model
        metrics = evaluate(model, test_images(test, s["eval_n"]), s["eval_k"])
    return pack(model) | {
        "history": learner.history, "selections": learner.selections, "expansions": learner.expansions,
        "memory_size": learner.memory_size, "memory_labels": learner.ltm_y.cpu(), "components": len(model),
        "stream_length": len(train), "train_seconds": result.train_seconds, "steps": learner.steps,
        "metrics": metrics}


def run_stream(run: Run, stream: str, method: str, seed: int, limit: int | None = None, force: bool | None = None,
               **overrides) -> dict:
    """One pass of a method over a task-free stream, then evaluation on the stream's test images. Cached."""
    c = stream_call(run, stream, method, seed, limit, **overrides)
    return cached(c.name, c.config, partial(c.fn, *c.args), force=run.force if force is None else force)


def _grid(run: Run, calls: list[Call], desc: str) -> GridRun:
    return run_grid(calls, run.executor, force=run.force, progress=run.progress, desc=desc)


def rebuild(result: dict, device) -> OCM:
    return restore(OCM, result, device)


def _row(stream: str, method: str, seed: int, r: dict) -> dict:
    m = r["metrics"]
    return {"stream": stream, "method": method, "seed": seed, "ll_best": m["ll_best"], "ll_by_recon": m["ll_by_recon"],
            "memory": r["memory_size"], "components": r["components"], "stream_length": r["stream_length"],
            "train_s": r["train_seconds"]}


def table_runs(run: Run, streams, methods=tuple(METHODS), seeds=None) -> tuple[pd.DataFrame, dict]:
    """Every (stream, method, seed) run as a grid on run.executor (reservoir runs of equal memory second: their
    memory size comes from the OCM runs); one row per finished run and the results for plotting."""
    cells = [(st, m, seed) for st in streams for m in methods
             for seed in (run.settings["seeds"] if seeds is None else seeds)]
    later = run.settings["random_memory"] is None
    first = [c for c in cells if not (later and METHODS[c[1]].get("memory") == "reservoir")]
    grid = _grid(run, [stream_call(run, *c) for c in first], "OCM runs")
    failed = {(f.cell["stream"], f.cell["seed"]) for f in grid.failures if f.cell["method"] == "VAE-ELBO-OCM"}
    second = [c for c in cells if c not in first and (c[0], c[2]) not in failed]
    if second:
        grid = GridRun.combine(grid, _grid(run, [stream_call(run, *c) for c in second], "OCM reservoir runs"))
    done = {(c.cell["stream"], c.cell["method"], c.cell["seed"]): r for c, r in zip(grid.calls, grid.results)
            if r is not None}
    # Grid order; failed cells, and reservoir runs whose OCM run failed, are missing.
    results = {c: done[c] for c in cells if c in done}
    rows = [_row(*c, r) for c, r in results.items()]
    missing = [c for c in cells if c not in done]
    if missing:
        print(f"missing runs (stream, method, seed), left out: {missing}")
    return pd.DataFrame(rows), results


def summarise(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds beside the paper's numbers."""
    out = seed_summary(per_run, ["ll_best", "ll_by_recon", "memory", "components"], single_seed_std=None)
    out = out.rename(columns={"ll_best_mean": "ll_mean", "ll_best_std": "ll_std", "ll_by_recon_mean": "ll_by_recon",
                              "memory_mean": "memory", "components_mean": "components"})
    out = out[["stream", "method", "ll_mean", "ll_std", "ll_by_recon", "memory", "components", "seeds"]]
    out["paper_ll"] = [PAPER.get(s, {}).get(m, (np.nan,))[0] for s, m in zip(out.stream, out.method)]
    out["paper_memory"] = [PAPER.get(s, {}).get(m, (None, None))[1] for s, m in zip(out.stream, out.method)]
    out["paper_components"] = [PAPER.get(s, {}).get(m, (None, None, None))[2] for s, m in zip(out.stream, out.method)]
    out["gap_to_paper"] = out["ll_mean"] - out["paper_ll"]
    out["stream"] = out["stream"].map(STREAM_TITLES)
    return out


def memory_trace(result: dict) -> dict:
    """LTM size per arriving batch, the LTM class histogram after each selection, and the expansions."""
    hist = result["history"]
    n_classes = int(max([int(s["ltm_labels"].max()) for s in result["selections"] if len(s["ltm_labels"])] + [0])) + 1
    rounds = [s["batch"] for s in result["selections"]]
    counts = np.stack([np.bincount(s["ltm_labels"].numpy(), minlength=n_classes) for s in result["selections"]]) \
        if rounds else np.zeros((0, n_classes))
    return {"batch": [h["batch"] for h in hist], "ltm": [h["ltm"] for h in hist],
            "components": [h["components_after"] for h in hist], "rounds": rounds, "class_counts": counts,
            "expansions": result["expansions"], "R": [s.get("R", np.nan) for s in result["selections"]]}


def ablations(run: Run, stream: str = "mnist") -> pd.DataFrame:
    """lambda1 (selection threshold) and the STM size on VAE-ELBO-OCM, lambda2 (expansion threshold) on
    Dynamic-ELBO-OCM, one at a time, on a shorter stream, with each method's default run as reference."""
    s = run.settings
    rows = []
    grid = [("default", 0, "VAE-ELBO-OCM", {}), ("default", 0, "Dynamic-ELBO-OCM", {})] + \
           [("lambda1", v, "VAE-ELBO-OCM", dict(lambda1=v)) for v in s["ablation_lambda1"]] + \
           [("stm_size", v, "VAE-ELBO-OCM", dict(stm_size=int(v))) for v in s["ablation_stm"]] + \
           [("lambda2", v, "Dynamic-ELBO-OCM", dict(lambda2=v)) for v in s["ablation_lambda2"]]
    runs = _grid(run, [stream_call(run, stream, method, s["ablation_seed"], s["ablation_limit"], **over)
                       for _, _, method, over in grid], "OCM ablations")
    for (name, value, method, over), r in zip(grid, runs.results):
        if r is not None:  # a failed run is reported by the runner and left out
            rows.append({"parameter": name, "value": value} | _row(stream, method, s["ablation_seed"], r))
    return pd.DataFrame(rows)


def class_coverage(labels: torch.Tensor) -> tuple[int, float]:
    """Classes present in the memory and the normalised entropy of its class histogram."""
    if len(labels) == 0:
        return 0, 0.0
    counts = np.bincount(labels.numpy())
    counts = counts[counts > 0]
    p = counts / counts.sum()
    ent = float(-(p * np.log(p)).sum())
    return len(counts), ent


def direction_study(run: Run, streams) -> pd.DataFrame:
    """The paper's diversity criterion against the official code's similarity rule, VAE-ELBO-OCM."""
    s = run.settings
    rows = []
    cells = [(stream, seed, direction, lam) for stream in streams for seed in s["direction_seeds"]
             for direction, lam in (("diverse", s["lambda1"]), ("similar", s["lambda1_similar"]))]
    grid = _grid(run, [stream_call(run, st, "VAE-ELBO-OCM", seed, direction=d, lambda1=lam)
                       for st, seed, d, lam in cells], "OCM direction study")
    for (stream, seed, direction, lam), r in zip(cells, grid.results):
        if r is not None:  # a failed run is reported by the runner and left out
            n_cls, ent = class_coverage(r["memory_labels"])
            rows.append({"stream": STREAM_TITLES[stream], "seed": seed, "direction": direction, "lambda1": lam,
                         "ll_best": r["metrics"]["ll_best"], "memory": r["memory_size"],
                         "classes_in_memory": n_cls, "memory_entropy": ent})
    return pd.DataFrame(rows)


def _int(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{int(v)}"


def claims(summary: pd.DataFrame, direction: pd.DataFrame, profile: str, tol: float = 5.0,
           partly_tol: float = 15.0) -> list[Claim]:
    """Each Table 1/3 number within `tol` nats (partly within `partly_tol`), and the orderings the paper claims."""
    out = []
    for _, r in summary.iterrows():
        if not np.isfinite(r.paper_ll):
            continue
        out.append(Claim(f"{r.stream}: {r.method} test log-likelihood (best component per image)",
                         f"{r.paper_ll:.2f}", r.ll_mean, Within(r.paper_ll, tol, partly_tol), profile, "nats",
                         note=f"memory {r.memory:.0f} (paper {_int(r.paper_memory)}), components {r.components:.1f} "
                              f"(paper {_int(r.paper_components)}), {int(r.seeds)} seed(s)"))
    by = {(r.stream, r.method): r.ll_mean for _, r in summary.iterrows()}
    for stream in summary.stream.unique():
        pairs = [("VAE-ELBO-OCM", "VAE-ELBO-Random", "kernel selection beats a reservoir memory"),
                 ("Dynamic-ELBO-OCM", "VAE-ELBO-OCM", "dynamic expansion beats one component")]
        for a, b, text in pairs:
            if (stream, a) in by and (stream, b) in by:
                key = next(k for k, v in STREAM_TITLES.items() if v == stream)
                paper_gap = PAPER[key][a][0] - PAPER[key][b][0]
                out.append(Claim(f"{stream}: {text} ({a} minus {b}, nats)", f"+{paper_gap:.2f}",
                                 by[(stream, a)] - by[(stream, b)], AtLeast(0.0, partly=-2.0), profile, "nats"))
    if len(direction):
        d = direction.groupby("direction").ll_best.mean()
        out.append(Claim("The paper's diversity criterion (not the code's similarity rule) gives the better model "
                         "(diverse minus similar, VAE-ELBO-OCM, mean over streams and seeds)",
                         "stated intent; code does the opposite", float(d["diverse"] - d["similar"]),
                         AtLeast(0.0, partly=-2.0), profile, "nats"))
        c = direction.groupby("direction").classes_in_memory.mean()
        out.append(Claim("Diversity selection covers more classes in the long-term memory (diverse minus similar)",
                         "stated intent", float(c["diverse"] - c["similar"]), AtLeast(0.0), profile, "classes"))
    return out
