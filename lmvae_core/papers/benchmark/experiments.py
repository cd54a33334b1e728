"""Notebook 05: every method of the package on the same task streams, one driver, one evaluation code, seeds.

Design
- Streams (lmvae_core.data.benchmark_streams): the tasks' training images, a fixed test subset per task
  binarised once with a fixed seed, global labels; the task-free stream is the class-sorted stream cut into
  5 equal chunks (online: one pass, so task-based methods get one epoch there).
- Methods are `Learner`s (lmvae_core.continual), built by name by `METHODS` below, and all run through
  `run_stream` with one `Budget`: the same real batches per task for every task-based method (replayed
  rows come on top and are reported per task); OCM sees the same images once as a class-sorted stream of
  batches and is evaluated when the stream crosses a task boundary (after the batch in which it falls); the
  offline methods (joint VAE, offline mixture) see all tasks at once with the same number of epochs.
- `evaluate_run` is the one evaluation code: the per-task matrix (IWAE on each task's test images after each
  task), the final average log-likelihood on the union of the test sets, forgetting, FID in the features of a
  classifier trained on the stream, fitting capacity (Lesort et al. 2019), parameters, memory, train and
  inference time. Each (stream, method, seed, settings) result is cached.

Mixture models (L-MVAE, OCM, offline mixture) are evaluated as proper densities: log sum_i pi_i p_i(x) with
each p_i(x) the expert's IWAE-k estimate (a lower bound, so the mixture value is a lower bound too); pi_i:
L-MVAE the share of tasks each expert serves, OCM uniform over components, the offline mixture the
manager's average routing on the training data. This differs from the per-input selection of notebooks
01/04 (which can overstate log p(x) by up to log K).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from typing import Callable

import torch

from ...continual import (Budget, JointVAE, LGMLearner, LifelongConfig, LMVAELearner, MixtureOfVAEs, OCMLearner,
                         SequentialVAE, binarized_config, run_stream)
from ...data.benchmark_streams import (STREAM_DATASETS, STREAM_TITLES, BenchStream,  # noqa: F401  (re-exported)
                                      build_stream)
from ...metrics import TaskMatrix, fid, mixture_log_likelihood  # noqa: F401
from ...training.classifier import feature_classifier  # noqa: F401
from ...metrics.fitting_capacity import fitting_capacity, fitting_set_size
from ...models.lgm import LGMConfig
from ...models.lmvae import LMVAEConfig
from ...models.moe_vae import MoEVAEConfig
from ...models.ocm import OCMConfig
from ...models.vae import VAEConfig
from ..ocm.precision import FP32, Precision
from ..ocm.precision import resolve as resolve_precision
from ...results.cache import cached
from ...results.runner import Call, run_grid
from ...experiments.common import Run
from .features import (classifier_calls, classifier_name, classifier_split, clf_epochs,  # noqa: F401
                       feature_calls, features_all, stream_classifier, stream_features, train_classifiers_first)
from .report import (METRICS, display_table, per_run_frame, ranking, ranking_sentence,  # noqa: F401
                     stream_figure, summarise)
from .settings import METHOD_NAMES, SETTINGS, half_budget, half_settings  # noqa: F401  (re-exported)

OFFLINE = ("Joint VAE", "Offline MoE-VAE")
# Methods whose training schedule changed since results were cached: the tag joins their cache key, so old
# results are not reused. LGM: the full real batch every step, teacher replay on top (was 1/(t+1) real rows).
SCHEDULES = {"LGM": "full-real-batch"}
# An offline reference is handed the union of a stream's tasks at once, so streams with the same union give it
# the same data: the task-free chunks hold split MNIST's training images (class-sorted instead of task by task,
# and shuffled by the driver either way) and the same test images, binarised the same way (a test in
# tests/test_benchmark.py checks both). Their offline rows are split MNIST's runs, relabelled, not trained again
# (quick: 6 of 81 runs, about 8% of the grid's compute).
SAME_UNION = {"taskfree_mnist": "split_mnist"}


def trained_on(stream_name: str, method: str) -> str:
    """The stream whose run stands for (stream_name, method): itself, or for an offline method the stream with
    the same union of tasks."""
    return SAME_UNION.get(stream_name, stream_name) if method in OFFLINE else stream_name

# ---- the methods: name -> learner builder --------------------------------------------------------------------
def vae_config(s: dict) -> VAEConfig:
    return VAEConfig(latent_dim=s["latent"], hidden=(s["hidden"],))


OCM_LEARNERS = ("VAE-ELBO-OCM", "Dynamic-OCM", "Reservoir OCM")


def ocm_precision(s: dict, device, method: str) -> Precision:
    """The precision of a method's training: for the OCM learners their memory passes' (`ocm_train_precision`), fp32
    for the rest."""
    return ocm_train_precision(s, device) if method in OCM_LEARNERS else FP32


def ocm_train_precision(s: dict, device) -> Precision:
    """`s['ocm']['precision']` on this device: fp32 when absent; the paper profile's 'measured' is chosen per device
    from benchmarks/ocm_precision.py (papers/ocm/precision.py)."""
    return resolve_precision(dict(s["ocm"]).get("precision", "fp32"), device)


def _ocm(s: dict, seed: int, device, **over) -> OCMLearner:
    settings = {k: v for k, v in (dict(s["ocm"]) | over).items() if k != "precision"}
    cfg = OCMConfig(hidden=s["hidden"], latent_dim=s["latent"], objective="elbo", **settings)
    return OCMLearner(config=cfg, seed=seed, device=device, **ocm_train_precision(s, device).learner_args)


# name -> build(settings, seed, device); every learner is built right after torch.manual_seed(seed)
METHODS: dict[str, Callable] = {
    "Fine-tune VAE": lambda s, seed, d: SequentialVAE(vae_config(s), device=d, lr=s["lr"]),
    "Joint VAE": lambda s, seed, d: JointVAE(vae_config(s), device=d, lr=s["lr"]),
    "Replay VAE": lambda s, seed, d: SequentialVAE(vae_config(s), replay=True, device=d, lr=s["lr"]),
    "Replay BinarizedVAE": lambda s, seed, d: SequentialVAE(binarized_config(vae_config(s), s["binarized_r"]),
                                                            replay=True, device=d, lr=s["lr"]),
    "LGM": lambda s, seed, d: LGMLearner(LGMConfig(latent_dim=s["latent"], hidden=(s["hidden"],),
                                                   gamma_c=s["lgm_gamma"]), LifelongConfig("lgm"), seed=seed,
                                         device=d, lr=s["lr"]),
    "L-MVAE": lambda s, seed, d: LMVAELearner(LMVAEConfig(expert=vae_config(s), n_experts=s["lmvae_experts"],
                                                          reuse_threshold=s["reuse_threshold"]), device=d, lr=s["lr"]),
    "VAE-ELBO-OCM": lambda s, seed, d: _ocm(s, seed, d, memory="ocm"),
    "Dynamic-OCM": lambda s, seed, d: _ocm(s, seed, d, memory="ocm", dynamic=True),
    "Reservoir OCM": lambda s, seed, d: _ocm(s, seed, d, memory="reservoir"),  # not in the default method list
    "Offline MoE-VAE": lambda s, seed, d: MixtureOfVAEs(MoEVAEConfig(n_experts=s["moe_experts"], expert=vae_config(s),
                                                                     manager_hidden=(s["hidden"],)), device=d,
                                                        lr=s["lr"]),
}


def budget(s: dict, stream: BenchStream, method: str, seed: int) -> Budget:
    """The same real data for every method: `epochs_on(s, stream)` passes per task (one on the online stream, except for
    the offline methods, which see all data at once), batches of s['batch']. A budget fraction below 1
    (`budget_fraction` for the epochs, `online_fraction` for the online stream's one pass; set by `half_budget`)
    caps the steps per task at that share of the passes, counted on the largest task a learner is handed."""
    online = stream.online and method not in OFFLINE
    epochs = 1 if online else epochs_on(s, stream.name)
    fraction = s["online_fraction" if online else "budget_fraction"]
    max_steps = None
    if fraction < 1.0:
        sizes = [len(t.train_x) for t in stream.tasks]
        n = sum(sizes) if method in OFFLINE else max(sizes)
        max_steps = max(1, math.ceil(fraction * epochs * math.ceil(n / s["batch"])))
    return Budget(epochs=epochs, batch_size=s["batch"], seed=seed, max_steps=max_steps)


# ---- the shared evaluation ----------------------------------------------------------------------------------
def evaluate_run(stream: BenchStream, method: str, s: dict, seed: int, device, classifier) -> dict:
    """Fit one method on one stream with one seed through the driver and evaluate it with the shared code."""
    k, start = s["iwae_k"], time.time()
    matrix = TaskMatrix(stream.names, higher_is_better=True)

    def on_boundary(t: int, learner):
        if t == len(stream.tasks) - 1:  # the final row comes from the union evaluation below
            return
        torch.manual_seed(10_000 + t)
        for j in range(t + 1):
            matrix.record(t, j, float(learner.log_likelihood(stream.tasks[j].test_x, k).mean()))

    torch.manual_seed(seed)
    learner = METHODS[method](s, seed, device)
    result = run_stream(learner, stream, budget(s, stream, method, seed), on_boundary)
    test_x, test_grey, test_y = stream.union_test()
    torch.manual_seed(20_000)
    t1 = time.time()
    ll = learner.log_likelihood(test_x, k)
    infer_seconds = time.time() - t1
    sizes = [len(t.test_x) for t in stream.tasks]
    matrix.values[-1] = [float(part.mean()) for part in torch.split(ll, sizes)]
    # fitting capacity's generated set (fc_images); FID and class coverage read its first n_generated images
    n_fc = fitting_set_size(sum(len(t.train_x) for t in stream.tasks), s["fc_images"])
    gen = learner.sample(max(n_fc, s["n_generated"]), seed=seed).clamp(0, 1)
    gen_y = classifier.predict(gen)
    return {
        "stream": stream.name, "method": method, "seed": seed,
        "final_ll": float(ll.mean()), "matrix": matrix.to_dict(),
        "forgetting": float("nan") if method in OFFLINE else matrix.forgetting(),
        "fid": fid(classifier, gen[: s["n_generated"]], test_grey),
        "fitting_capacity": fitting_capacity(gen[:n_fc], gen_y[:n_fc], test_grey, test_y, stream.n_classes,
                                             s["fc_max_epochs"], seed=seed),
        "class_coverage": int(torch.unique(gen_y[: s["n_generated"]]).numel()),
        "run_seconds": time.time() - start,  # training and evaluation (the entries above are computed first)
        "params": int(learner.n_params), "memory_images": int(learner.memory_images),
        "real_rows": result.real_rows, "replay_rows": result.replay_rows,
        # optimiser steps: one per real batch for task-based and offline learners; OCM's passes over STM u LTM
        "steps": int(learner.steps if learner.kind == "task_free" else sum(t["steps"] for t in result.tasks)),
        "precision": ocm_precision(s, device, method).name,  # of OCM's memory passes; fp32 for the others
        "real_images": int(sum(result.real_rows)),
        "train_seconds": result.train_seconds, "infer_ms_per_image": 1000 * infer_seconds / len(test_x),
        "samples": gen[:20].cpu(),
    }


def run_key(run: Run, stream_name: str, method: str, seed: int) -> dict:
    key = {"stream": trained_on(stream_name, method), "method": method, "seed": seed, "settings": run.settings,
           "data": asdict(run.data()) | {"device": None, "train_limit": None, "test_limit": None}}
    if method in SCHEDULES:
        key["schedule"] = SCHEDULES[method]
    precision = ocm_precision(run.settings, run.device, method)
    if precision.name != "fp32":  # absent in fp32: the keys of runs cached before precision was a setting stay
        key["precision"] = precision.name
    key["records"] = "steps"  # results record optimiser steps and real images (the claims' Compute)
    return key


def compute_run(run: Run, stream_name: str, method: str, seed: int) -> dict:
    """One grid cell, uncached (module level, so a Dask worker can run it)."""
    s, stream_name = run.settings, trained_on(stream_name, method)
    stream = build_stream(stream_name, s, run.data(), seed=seed)
    clf = stream_classifier(stream_name, s, run.data())
    return evaluate_run(stream, method, s, seed, run.device, clf)


def run_one(run: Run, stream_name: str, method: str, seed: int) -> dict:
    row = cached("benchmark", run_key(run, stream_name, method, seed),
                 lambda: compute_run(run, stream_name, method, seed), force=run.force)
    return row | {"stream": stream_name}


def run_weight(s: dict, method: str) -> float:
    """A rough relative cost, only for the order of submission on a cluster: mixtures train and evaluate one
    VAE per component, and methods with replay or memory train on extra rows."""
    parts = {"Offline MoE-VAE": s["moe_experts"], "Dynamic-OCM": s["ocm"]["max_components"],
             "L-MVAE": s["lmvae_experts"]}.get(method, 1)
    return parts + (method in ("Replay VAE", "Replay BinarizedVAE", "LGM", "VAE-ELBO-OCM"))


def grid_cells(s: dict, first_seed: int = 0) -> list[tuple[str, str, int]]:
    """(stream, method, seed) of every run. The notebook's `seed` parameter shifts the settings' seeds: seed 0 runs
    seeds (0, 1, 2) in the quick profile, seed 10 runs (10, 11, 12): a second, independent set."""
    return [(stream, method, first_seed + seed) for stream in s["streams"] for method in s["methods"]
            for seed in s["seeds"]]


def grid_calls(run: Run) -> list[Call]:
    """One call per run to compute: cells whose run stands for another's (SAME_UNION) add none."""
    s, calls = run.settings, {}
    for stream, method, seed in grid_cells(s, run.seed):
        src = trained_on(stream, method)
        calls.setdefault((src, method, seed), Call("benchmark", run_key(run, src, method, seed), compute_run,
                                                   (run, src, method, seed),
                                                   {"stream": src, "method": method, "seed": seed},
                                                   run_weight(s, method)))
    return list(calls.values())


def run_all(run: Run, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Every (stream, method, seed) of the settings, one grid on run.executor; progress gets a line per
    computed run. Runs that failed (on Dask: twice) are printed with their cell and traceback and left out."""
    # the calibration VAE (read by calibration() below) is one more independent call of the grid
    cal = replace(calibration_call(run, calibration_spec(run.settings)), weight=10.0)  # it starts first: ~4 min
    calls = grid_calls(run)
    train_classifiers_first(run, calls, alongside=[cal])
    calls = calls + [cal]
    grid = run_grid(calls, run.executor, force=run.force, progress=run.progress, desc="benchmark", echo=progress)
    done = {tuple(c.cell.values()): r for c, r in zip(grid.calls, grid.results) if r is not None and c.name == "benchmark"}
    return [done[key] | {"stream": stream} for stream, method, seed in grid_cells(run.settings, run.seed)
            if (key := (trained_on(stream, method), method, seed)) in done]


# ---- claims, calibration and schedules: claims.py ---------------------------------------------------------------
from .claims import (calibration, calibration_spec, claims, epochs_on, features_frame,  # noqa: E402,F401
                     ocm_schedule, schedule)
from ...experiments.calibration import calibration_call, calibration_frame  # noqa: E402,F401
