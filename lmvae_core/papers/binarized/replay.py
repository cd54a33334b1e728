"""Notebook 03, second half: the overhead of the regulariser per training step, and generative replay on split
MNIST with r = 0 against r > 0, over seeds (experiments.py holds the r sweep)."""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import replace

import numpy as np
import torch

from ...continual import SequentialVAE, from_train_config, pack, run_stream
from ...data.preprocess import binarize_dynamic, binarize_fixed
from ...data.streams import class_split_stream, load_split
from ...metrics import TaskMatrix, fid
from ...metrics.significance import median_ci
from ...models import fused_vae
from ...models.binarized import BinarizedVAE
from ...models.vae import VAE, VAEConfig
from ...results.runner import Call
from ...training.loop import TrainConfig, make_optimizer
from ...training.step import train_step
from .experiments import OBJECTIVES, n_train, train_key, dataset_classifier, model_config, seeds_of
from ...experiments.common import Run


# -- overhead: time per training step, side by side -------------------------------------------------------
def overhead(run: Run, dataset: str = "mnist") -> list[dict]:
    """Time per training step of the core VAE and of BinarizedVAE (r = main_r) for each objective, measured
    in interleaved blocks in one process on the same batches. Not cached: it is a measurement.

    Both models train through autograd ("plain" runs under fused_vae.disabled()), so the ratio is the regulariser's
    own cost, which is what the paper claims is small. The package's plain VAE on the CPU takes the fused loss
    (models/fused_vae.py), which BinarizedVAE's prior does not fit: "plain (fused)" is timed in the same rounds, and
    "ratio vs fused" is what a user of this package pays, our implementation's speed-up included. "ratio (first
    half)" is the same median over the first half of the timed blocks: the measure at half its budget."""
    s = run.settings
    x = load_split(dataset, "train", run.data(train_limit=s["sweep_train"])).x
    rows = []
    for objective in s["objectives"]:
        torch.manual_seed(run.seed)
        # The same objective on both sides: the capacity term per image (the plain VAE has no batch scope), so
        # the ratio measures the r-shifted KL alone.
        objective_kw = {k: v for k, v in OBJECTIVES[objective].items() if k != "capacity_scope"}
        plain = VAE(VAEConfig(latent_dim=s["latent"], hidden=(s["hidden"],), **objective_kw)).to(x.device)
        binar = BinarizedVAE(replace(model_config(s, objective, s["main_r"]), capacity_scope="image")).to(x.device)
        binar.load_state_dict(plain.state_dict())
        tcfg = TrainConfig(batch_size=s["batch"])
        fused = copy.deepcopy(plain)
        models = {"plain": plain, "binarized": binar, "plain (fused)": fused}
        opts = {k: make_optimizer(m.parameters(), tcfg) for k, m in models.items()}
        times: dict[str, list[float]] = {k: [] for k in models}
        g = torch.Generator().manual_seed(run.seed)
        for rnd in range(s["overhead_rounds"] + 1):
            idx = [torch.randint(0, x.shape[0], (s["batch"],), generator=g).to(x.device)
                   for _ in range(s["overhead_steps"])]
            batches = [binarize_dynamic(x[i]) for i in idx]
            order = ("plain", "binarized", "plain (fused)")
            for name in (order if rnd % 2 == 0 else order[::-1]):
                m, opt = models[name], opts[name]
                m.train()
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                with fused_vae.disabled() if name == "plain" else contextlib.nullcontext():
                    for b in batches:
                        train_step(m.loss, b, opt)
                if x.device.type == "cuda":
                    torch.cuda.synchronize()
                if rnd > 0:  # round 0 warms up
                    times[name].append((time.perf_counter() - t0) / len(batches))
        p, b, f = (np.median(times[k]) for k in ("plain", "binarized", "plain (fused)"))
        paired = np.array(times["binarized"]) / np.array(times["plain"])
        # the median's 95% interval over the blocks: a verdict must not flip with the machine's timing noise
        interval = median_ci(paired)
        vs_fused = np.array(times["binarized"]) / np.array(times["plain (fused)"])
        rows.append({"objective": objective, "r": s["main_r"], "ms/step plain": 1000 * p,
                     "ms/step binarized": 1000 * b, "ratio": float(np.median(paired)),
                     "ratio (first half)": float(np.median(paired[: max(1, len(paired) // 2)])),
                     "ratio IQR low": float(np.percentile(paired, 25)), "ratio IQR high": float(np.percentile(paired, 75)),
                     "ratio CI low": interval.lo, "ratio CI high": interval.hi,
                     "ms/step plain (fused)": 1000 * f, "ratio vs fused": float(np.median(vs_fused)),
                     "blocks": len(times["plain"]), "steps/block": s["overhead_steps"]})
    return rows


# -- generative replay on split MNIST, over seeds ---------------------------------------------------------
# Tasks 2-5 train on a replayed batch beside each real one: about twice a task's cost (measured: ~1,700 real
# images/s against ~3,500 on task 1), so a run costs ~(1 + 4 x 2) / 5 = 1.8 passes per real image (grid order).
REPLAY_COST = 1.8


def continual_call(run: Run, r: float, seed: int, objective: str = "VAE") -> Call:
    """A generative-replay VAE (Shin et al. 2017 style, generator only: lmvae_core.continual.SequentialVAE) on
    split MNIST (5 tasks), one seed, as a grid call. (A replay learner samples from its own frozen copy between
    tasks, so its seeds run as separate calls, not as one stacked ensemble.)"""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["cl_epochs"], batch_size=s["batch"], progress=run.progress)
    key = train_key("split-mnist-5", cfg, tcfg, run.data(train_limit=s["cl_train_limit"]), seed,
                     {"eval_n": s["cl_eval_n"], "k": s["cl_k"], "replay": "shin-1/(t+1)"})
    return Call("binarized_replay", key, fit_continual, (run, r, seed, objective),
                {"r": float(r), "seed": seed, "objective": objective},
                weight=REPLAY_COST * s["cl_epochs"] * n_train(run, "mnist", s["cl_train_limit"]) / 1e5)


def continual_calls(run: Run) -> list[Call]:
    """Every r of cl_rs and every seed (cl_seeds of them)."""
    s = run.settings
    return [continual_call(run, r, seed) for r in s["cl_rs"] for seed in seeds_of(run, s["cl_seeds"])]


def fit_continual(run: Run, r: float, seed: int, objective: str = "VAE") -> dict:
    """R[t, j] is the IWAE log-likelihood on task j's test images after task t. Uncached (module level)."""
    s = run.settings
    cfg = model_config(s, objective, r)
    tcfg = TrainConfig(epochs=s["cl_epochs"], batch_size=s["batch"], progress=run.progress)
    torch.manual_seed(seed)
    stream = class_split_stream("mnist", 5, run.data(train_limit=s["cl_train_limit"]))
    budget, optim = from_train_config(tcfg)
    learner = SequentialVAE(cfg, replay=True, device=run.device, **optim)
    matrix = TaskMatrix(stream.names, higher_is_better=True)
    tests = [binarize_fixed(task.test.x[: s["cl_eval_n"]]) for task in stream]

    def on_boundary(t, lr):
        for j in range(t + 1):
            matrix.record(t, j, float(lr.log_likelihood(tests[j], s["cl_k"]).mean()))

    result = run_stream(learner, stream, budget, on_boundary)
    samples = learner.sample(100, seed=seed).cpu()
    return pack(learner.model) | {"matrix": matrix.to_dict(), "samples": samples,
                                  "images_per_task": float(np.mean([len(task.train.x) for task in stream])),
                                  "epochs": s["cl_epochs"],
                                  "train_seconds": result.train_seconds, "replay_rows": result.replay_rows,
                                  # as counted by the driver over all tasks: optimiser steps and real images
                                  "steps": int(sum(t["steps"] for t in result.tasks)),
                                  "real_rows": int(sum(result.real_rows))}


def _with_matrix(result: dict, r: float, seed: int) -> dict:
    matrix = TaskMatrix.from_dict(result["matrix"])
    return result | {"r": float(r), "seed": seed, "task_matrix": matrix, "average": matrix.average(),
                     "forgetting": matrix.forgetting()}


def continual_all(run: Run) -> dict[float, list[dict]]:
    """Every r of the settings and every seed: r -> one result per seed (seed order). binarized.train_all trains
    them (run.force retrains them there); here they are read, and trained as a grid only if missing. A failed run
    is printed by the runner and left out."""
    grid = run.grid(continual_calls(run), "binarized replay", force=False)
    out: dict[float, list[dict]] = {}
    for c, res in zip(grid.calls, grid.results):
        if res is not None:
            out.setdefault(float(c.cell["r"]), []).append(_with_matrix(res, c.cell["r"], c.cell["seed"]))
    return out


def replay_sample_quality(run: Run, results: dict[float, list[dict]]) -> dict[float, dict]:
    """FID and class coverage of the final samples of each replay model (MNIST classifier), first seed."""
    clf = dataset_classifier(run, "mnist", force=False)
    test = load_split("mnist", "test", run.data())
    out = {}
    for r, per_seed in results.items():
        samples = per_seed[0]["samples"].to(run.device)
        pred = clf.predict(samples).cpu().numpy()
        share = np.bincount(pred, minlength=10) / len(pred)
        out[r] = {"fid": fid(clf, samples, test.x[: max(len(samples), 100)]), "class_share": share,
                  "classes_covered": int((share >= 0.03).sum())}
    return out
