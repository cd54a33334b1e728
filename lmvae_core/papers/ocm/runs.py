"""Notebook 04's runs: one pass of a method over a task-free stream through the driver (cached, as a grid call),
the reservoir baseline at OCM's steps, the i.i.d. baseline, the evaluation every run shares, and Tables 1 and 3
as grids of those runs.

With `stack_seeds` (the paper profile) every run draws its own noise (`OCMLearner(own_noise=True)`, its cache key
says so), so a run is the same whether it trains alone or as a member of a `StackedOCM` (up to float rounding); on a
CUDA device `run_grid` trains the uncached runs that share a stream and a step (seeds, methods, selection values) as
stacks first (graphed, resumable mid-stream) and files each member's result under its own run's cache entry. The
memory passes train in the profile's `precision` (precision.py)."""
from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from functools import partial

import numpy as np
import pandas as pd
import torch

from ...continual import Budget, OCMLearner, StackedOCM, pack, restore, run_stacked_streams
from ...continual.ocm_stacked import STEP_SHAPE
from ...continual import run_stream as drive
from ...continual.driver import Checkpointing
from ...data.preprocess import binarize_dynamic, binarize_fixed
from ...data.streams import Split, TaskFreeStream, load_split, take_rows
from ...experiments.common import Run
from ...models.ocm import OCM, OCMConfig
from ...results.cache import cached, config_key, is_cached, resume_dir, store
from ...results.runner import Call, GridRun
from ...results.tables import seed_summary
from ...runtime import cpu_threads
from ...training.loop import AUTOCAST, TrainConfig, fit_batches, make_optimizer
from .precision import FP32, Precision
from .precision import resolve as resolve_precision
from .settings import CROSS_METHODS, METHODS, PAPER, STREAM_TITLES, STREAMS, TRAIN_IMAGES, official_steps

def model_config(s: dict, stream: str, method: str, **overrides) -> OCMConfig:
    m = METHODS[method]
    objective = m["objective"]
    other = stream != "mnist"
    cfg = OCMConfig(hidden=s["hidden"], latent_dim=s["latent"], objective=objective,
                    train_samples=s["iwae_samples"] if objective == "iwae" else s["train_samples"],
                    memory=m.get("memory", "ocm"), stm_size=s["stm_size"], ltm_capacity=s["ltm_capacity"],
                    per_round=s["per_round"], direction=s["direction"], kernel=s["kernel"], alpha=s["alpha"],
                    lambda1=s["lambda1"], order=s["order"], embed_binarized=s["embed_binarized"],
                    dynamic=m.get("dynamic", False),
                    lambda2=s["lambda2_cross"] if stream == "cross" else s["lambda2"],
                    max_components=s["max_components_other"] if other else s["max_components"],
                    r_samples=s["r_samples"], r_reset_on_expand=s["r_reset_on_expand"],
                    epochs_per_batch=s["epochs_per_batch"], batch_size=s["batch_size"], lr=s["lr"], beta1=s["beta1"])
    return replace(cfg, **overrides)


def memory_study_settings(run: Run, stream: str) -> Mapping:
    """The settings of the memory study on a stream (the LTM's class coverage and lambda1's effect on the memory's
    size): the profile's own where its `memory_study` sets no `share`, else every training image of the stream
    with as many passes over STM u LTM per arriving batch as reach `share` of the official code's steps for a
    60,000-image stream. On a stream of n images one pass per batch takes official_steps(n, epochs=1) steps, so
    the passes are share * 1,556,300 / that, rounded up: the same steps whatever the data root holds (quick,
    split Fashion: 11 passes over the full 60,000 images, as on MNIST; 75 over the 16,825 shipped here)."""
    s = run.settings
    study = s["memory_study"]
    if study.get("share") is None:
        return s | {}  # the profile's own (a copy where they are a dict)
    n_images = len(load_stream(run, stream, None)[0])
    per_pass = official_steps(n_images, s["batch_size"], s["stm_size"], s["per_round"], s["ltm_capacity"], 1)
    passes = math.ceil(study["share"] * official_steps(TRAIN_IMAGES["mnist"]) / max(1, per_pass))
    return s | {"stream_limit": None, "epochs_per_batch": passes}


def shares(limit: int | None, available: list[int]) -> list[int | None]:
    """`limit` training images for a whole stream, shared among its datasets as evenly as their sizes allow: a
    dataset with fewer images than its share gives the rest to the others (None: every image of each)."""
    if limit is None:
        return [None] * len(available)
    out, left = [0] * len(available), limit
    for rank, i in enumerate(sorted(range(len(available)), key=lambda i: available[i])):
        out[i] = min(available[i], left // (len(available) - rank))
        left -= out[i]
    return out


def load_stream(run: Run, stream: str, limit: int | None) -> tuple[Split, Split]:
    """Train and test images of a stream's datasets, labels offset per dataset (MNIST 0-9, Fashion 10-19,
    Omniglot 20: one label for all characters); `limit` training images in all (`shares`), class-balanced
    within each dataset. Omniglot (105x105) is resized to 28x28 on load."""
    names = STREAMS[stream]
    cfgs = [run.data(size=28 if name == "omniglot" else None) for name in names]
    # a dataset's size is only needed (a full load) where a limit is shared among several datasets
    limits = shares(limit, [len(load_split(n, "train", c)) for n, c in zip(names, cfgs)]) \
        if len(names) > 1 and limit is not None else [limit] * len(names)
    trains, tests = [], []
    for i, (name, cfg, lim) in enumerate(zip(names, cfgs, limits)):
        tr, te = load_split(name, "train", replace(cfg, train_limit=lim)), load_split(name, "test", cfg)
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
    """Every component's IWAE-k bound per test image, in two independent draws ([K, N] each; one stacked
    computation per draw).

    - ll_best: the component with the highest bound in the first draw, its value taken from the second draw,
      as the official code does (Select_Component, then a fresh run of the chosen bound). The choice still looks
      at each test image, so this is not the likelihood of one density over images;
    - ll_best_same_draw: choice and value from the same draw (this notebook's earlier report): the maximum of K
      noisy estimates, which overstates a valid density by up to log K;
    - ll_mixture: log (1/K) sum_k p_k(x) (second draw), the uniform mixture of the components, a valid density;
    - ll_by_recon: the component with the lowest reconstruction error, value from the second draw."""
    first = model.iwae_per_component(test.x, k)  # [K, N]
    second = model.iwae_per_component(test.x, k)
    rec = model.reconstruction_error(test.x)  # [K, N]
    by_rec = rec.argmin(0)
    best = first.max(0)
    n_comp = first.shape[0]
    return {"ll_best": float(second.gather(0, best.indices.unsqueeze(0)).mean()),
            "ll_best_same_draw": float(best.values.mean()),
            "ll_mixture": float((torch.logsumexp(second, 0) - math.log(n_comp)).mean()),
            "ll_by_recon": float(second.gather(0, by_rec.unsqueeze(0)).mean()),
            "ll_per_component": second.mean(1).tolist(), "choice_best": best.indices.cpu(),
            "choice_recon": by_rec.cpu(), "recon_error": float(rec.gather(0, by_rec.unsqueeze(0)).mean()),
            "labels": test.y.cpu()}


class StepMatchedReservoir(OCMLearner):
    """The reservoir baseline at the optimiser steps of a kernel-selected run: its reservoir fills to its final
    size within the first rounds, while OCM's LTM grows by at most 14 per round, so trained on STM u LTM it
    would take many more steps (split MNIST, quick: 4,142 against 2,862). Here each arriving batch trains on the
    STM and a uniform draw (without replacement) of `ltm_rows[b]` samples of the reservoir: as many as OCM's LTM
    held when batch b arrived. The STMs are the same (same stream, same STM size), so both make the same
    number of optimiser steps per arriving batch; the reservoir still ends with OCM's final memory."""

    def __init__(self, model: OCM | None = None, seed: int = 0, device=None, config: OCMConfig | None = None,
                 progress: bool = False, ltm_rows: list[int] | tuple[int, ...] = (), **precision):
        super().__init__(model, seed, device, config, progress, **precision)  # autocast, tf32
        self.ltm_rows = [int(n) for n in ltm_rows]
        self.init_args = self.init_args | {"ltm_rows": self.ltm_rows}

    def memory_data(self) -> torch.Tensor:
        b = self.batches - 1  # observe() counts the arriving batch before it trains
        n_ltm = self.ltm_x.shape[0]
        k = min(n_ltm, self.ltm_rows[b] if b < len(self.ltm_rows) else n_ltm)
        pick = torch.randperm(n_ltm, generator=self.generator)[:k].to(self.device)
        return torch.cat([self.stm_x, self.ltm_x[pick]])


def ltm_rows_of(result: dict) -> list[int]:
    """The LTM size each arriving batch of a run trained on (before that batch's selection round)."""
    sizes = [h["ltm"] for h in result["history"]]
    return [0] + sizes[:-1]


def stream_call(run: Run, stream: str, method: str, seed: int, limit: int | None = None, **overrides) -> Call:
    """One pass of a method over a task-free stream as a grid call. A reservoir run needs the VAE-ELBO-OCM run of
    its stream and seed (loaded from the cache, computed here if absent): it takes that run's final memory size
    (unless `random_memory` fixes one) and its LTM size per arriving batch, to train for the same steps
    (`StepMatchedReservoir`)."""
    s = run.settings
    limit = s["stream_limit"] if limit is None else limit
    cfg = model_config(s, stream, method, **overrides)
    match = None
    if cfg.memory == "reservoir" and "ltm_capacity" not in overrides:
        ocm = run_stream(run, stream, "VAE-ELBO-OCM", seed, limit, force=False)
        size = s["random_memory"]
        if size is None:  # equal size: the memory the kernel-selected OCM run ends with
            size = max(1, ocm["memory_size"])
        cfg = replace(cfg, ltm_capacity=size)
        match = ltm_rows_of(ocm)
    data = run.data()
    key = {"stream": stream, "method": method, "model": asdict(cfg), "seed": seed, "limit": limit,
           "eval": (s["eval_n"], s["eval_k"]), "data": asdict(data) | {"device": None}}
    if match is not None:
        key["match_ltm_rows"] = match
    prec = keyed_precision(run, key)
    if s["stack_seeds"]:  # the run draws its own noise: the same result alone or in a stack (StackedOCM)
        key["own_noise"] = True
    return Call("ocm", key, fit_stream, (run, stream, cfg, seed, limit, match, prec),
                {"stream": stream, "method": method, "seed": seed} | overrides)


def keyed_precision(run: Run, key: dict) -> Precision:
    """The component's training precision in this run (precision.py: the paper profile's is measured per device),
    entered in the run's cache key unless fp32 (so the keys of runs cached before precision was a setting stay)."""
    prec = resolve_precision(run.settings["precision"], run.device)
    if prec.name != "fp32":
        key["precision"] = prec.name
    return prec


def stream_checkpointing() -> Checkpointing | None:
    """A long run resumes mid-stream: under `cached` (a grid call), the driver checkpoints into the entry's
    <key>.partial/ folder at least every $LMVAE_CHECKPOINT_S seconds (default 300; 0: after every batch; 'off':
    never). A run shorter than that writes nothing, and the folder goes once the result is cached."""
    folder, every = resume_dir(), os.environ.get("LMVAE_CHECKPOINT_S", "300").strip().lower()
    if folder is None or every in ("off", "none", ""):
        return None
    return Checkpointing(folder, every_s=float(every))


def make_learner(run: Run, cfg: OCMConfig, seed: int, ltm_rows: list[int] | None, precision: Precision,
                 own_noise: bool) -> OCMLearner:
    """A run's learner, its weights drawn from torch.manual_seed(seed). `ltm_rows`: a reservoir run trained at
    another run's steps (StepMatchedReservoir). `own_noise`: it draws from its own generators (a StackedOCM member)."""
    torch.manual_seed(seed)
    kwargs = precision.learner_args | ({"own_noise": True} if own_noise else {})
    if ltm_rows is None:
        return OCMLearner(config=cfg, seed=seed, device=run.device, **kwargs)
    return StepMatchedReservoir(config=cfg, seed=seed, device=run.device, ltm_rows=ltm_rows, **kwargs)


def run_result(run: Run, learner: OCMLearner, train: Split, test: Split, seconds: float,
               precision: Precision) -> dict:
    """A trained run evaluated on its test images, as the cache keeps it. An own-noise run evaluates from
    torch.manual_seed(seed), so that it gives the same numbers trained alone or in a stack."""
    s, model = run.settings, learner.model
    if learner.noise is not None:
        torch.manual_seed(learner.seed)
    metrics = evaluate(model, test_images(test, s["eval_n"]), s["eval_k"])
    return pack(model) | {
        "history": learner.history, "selections": learner.selections, "expansions": learner.expansions,
        "memory_size": learner.memory_size, "memory_labels": learner.ltm_y.cpu(), "components": len(model),
        "stream_length": len(train), "train_seconds": seconds, "steps": learner.steps,
        "replayed_rows": learner.replayed_rows, "metrics": metrics, "precision": precision.name,
        "precision_reason": precision.reason}


def fit_stream(run: Run, stream: str, cfg: OCMConfig, seed: int, limit: int | None,
               ltm_rows: list[int] | None = None, precision: Precision = FP32) -> dict:
    """One pass over the stream through the driver, then evaluation on its test images (uncached; module
    level for Dask workers). `ltm_rows`: a reservoir run trained at another run's steps (StepMatchedReservoir).
    `precision`: the memory passes' (evaluation, selection and R stay in fp32)."""
    s = run.settings
    with cpu_threads(s["cpu_threads"]):
        train, test = load_stream(run, stream, limit)
        learner = make_learner(run, cfg, seed, ltm_rows, precision, s["stack_seeds"])
        result = drive(learner, TaskFreeStream(train, cfg.batch_size, seed=seed), Budget(seed=seed),
                       checkpoint=stream_checkpointing())
        return run_result(run, learner, train, test, result.train_seconds, precision)


def fit_stacked(run: Run, members: list[tuple]) -> list[dict]:
    """Runs over one stream with one step (each `members` item is a `fit_stream` call's arguments; `stacked_calls`
    groups them) trained as one StackedOCM in lockstep, each member on its own seed's order of the stream, then each
    evaluated as `fit_stream` does:
    their results, in order. The stack's training time is shared: each result records its share. Resumes mid-stream
    from the stacked call's checkpoints."""
    s = run.settings
    stream, limit = members[0][1], members[0][4]
    with cpu_threads(s["cpu_threads"]):
        train, test = load_stream(run, stream, limit)
        learners = [make_learner(run, cfg, seed, ltm_rows, precision, own_noise=True)
                    for _, _, cfg, seed, _, ltm_rows, precision in members]
        streams = [TaskFreeStream(train, m.config.batch_size, seed=m.seed) for m in learners]
        seconds = run_stacked_streams(StackedOCM(learners), streams, stream_checkpointing())
        return [run_result(run, learner, train, test, seconds / len(learners), args[-1])
                for learner, args in zip(learners, members)]


MAX_STACK = 16  # members per stack at most: a larger group splits (GPU memory, and what one failure costs)


def stacked_calls(run: Run, calls: list[Call], stack: bool | None = None) -> tuple[list[Call], set[int]]:
    """With `stack_seeds` on a CUDA device (or `stack`): the uncached notebook-04 runs that can train as one
    StackedOCM, grouped into `fit_stacked` calls of 2 to MAX_STACK runs. Returns those calls and the indices in
    `calls` they cover. A group's runs pass over the same stream (stream, images, evaluation, precision) with the
    same step (`STEP_SHAPE`: the objective, samples, passes per batch, network and optimiser); they may differ in
    everything else: the seed, the method's memory rule and expansion, the selection thresholds, the STM's and
    the reservoir's sizes. So Table 1's ELBO methods over all seeds, or an ablation's values, stack together."""
    if stack is None:
        stack = run.settings["stack_seeds"] and torch.device(run.device).type == "cuda"
    if not stack:
        return [], set()
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(calls):
        if c.fn is not fit_stream or (not run.force and is_cached(c.name, c.config)):
            continue
        shared = {k: v for k, v in c.config.items() if k not in ("method", "seed", "match_ltm_rows", "model")}
        shared["step"] = {f: c.config["model"][f] for f in STEP_SHAPE}
        groups.setdefault(config_key(shared), []).append(i)
    out, covered = [], set()
    for members in groups.values():
        for start in range(0, len(members), MAX_STACK):
            idx = members[start:start + MAX_STACK]
            if len(idx) < 2:
                continue
            group = [calls[i] for i in idx]
            cell = {"stream": group[0].cell["stream"], "members": [c.cell for c in group]}
            out.append(Call("ocm_stack", {"members": [c.config for c in group]}, fit_stacked,
                            (run, [c.args for c in group]), cell, weight=float(len(group))))
            covered.update(idx)
    return out, covered


def run_grid(run: Run, calls: list[Call], desc: str, stack: bool | None = None) -> GridRun:
    """`run.grid(calls)`, with the runs that `stacked_calls` groups trained first as stacks, whose members' results
    are then stored under the separate runs' cache entries, where the grid of the separate runs loads them (a stack
    that failed leaves its runs to be trained one by one). The stack's own entry keeps them too (a few MB a run).
    Results and failures in the order of `calls`, as run.grid gives them."""
    stacks, covered = stacked_calls(run, calls, stack)
    if not stacks:
        return run.grid(calls, desc)
    stacked = run.grid(stacks, f"{desc}: runs stacked")
    by_config = {config_key(c.config): c for c in calls}
    for call, results in zip(stacked.calls, stacked.results):
        for config, result in zip(call.config["members"], results or []):
            member = by_config[config_key(config)]
            store(member.name, member.config, result)
    results, failures = [None] * len(calls), []
    rest = [i for i in range(len(calls)) if i not in covered]
    for idx, force in ((sorted(covered), False), (rest, None)):  # the stacked runs load, whatever run.force says
        if not idx:
            continue
        grid = run.grid([calls[i] for i in idx], desc if force is None else f"{desc}: the stacked runs", force=force)
        for j, i in enumerate(idx):
            results[i] = grid.results[j]
        failures += [replace(f, index=idx[f.index]) for f in grid.failures]
    return GridRun(list(calls), results, failures, stacked.executor)


def run_stream(run: Run, stream: str, method: str, seed: int, limit: int | None = None, force: bool | None = None,
               **overrides) -> dict:
    """One pass of a method over a task-free stream, then evaluation on the stream's test images. Cached."""
    c = stream_call(run, stream, method, seed, limit, **overrides)
    return cached(c.name, c.config, partial(c.fn, *c.args), force=run.force if force is None else force)


IID = "VAE-ELBO-iid (same steps)"


def iid_call(run: Run, stream: str, seed: int, steps: int, limit: int | None = None) -> Call:
    """The i.i.d. baseline of a stream as a grid call: VAE-ELBO-OCM's network and optimiser for `steps` steps."""
    s = run.settings
    limit = s["stream_limit"] if limit is None else limit
    cfg = model_config(s, stream, "VAE-ELBO-OCM")
    key = {"stream": stream, "method": IID, "model": asdict(cfg), "steps": int(steps), "seed": seed, "limit": limit,
           "eval": (s["eval_n"], s["eval_k"]), "data": asdict(run.data()) | {"device": None}}
    prec = keyed_precision(run, key)
    return Call("ocm_iid", key, fit_iid, (run, stream, cfg, seed, limit, int(steps), prec),
                {"stream": stream, "method": IID, "seed": seed})


def fit_iid(run: Run, stream: str, cfg: OCMConfig, seed: int, limit: int | None, steps: int,
            precision: Precision = FP32) -> dict:
    """The same network trained on the stream's training images in random order (i.i.d., re-binarised per batch)
    for as many optimiser steps as an OCM run: what the schedule alone gives, without stream order or memory. In
    the OCM runs' precision."""
    s = run.settings
    with cpu_threads(s["cpu_threads"]):
        train, test = load_stream(run, stream, limit)
        torch.manual_seed(seed)
        model = OCM(cfg).to(run.device)
        opt = make_optimizer(model.trainable_parameters(), TrainConfig(lr=cfg.lr, betas=(cfg.beta1, 0.999)))
        g = torch.Generator().manual_seed(seed)
        n, bs = len(train), cfg.batch_size
        if n < bs:
            raise ValueError(f"the i.i.d. baseline needs at least one batch of {bs} images, the stream has {n}")
        taken = [0]

        def batches():
            while taken[0] < steps:
                order = torch.randperm(n, generator=g).to(train.x.device)
                for i in range(0, n - bs + 1, bs):
                    if taken[0] == steps:
                        return
                    taken[0] += 1
                    yield 0, binarize_dynamic(take_rows(train.x, order[i:i + bs]))

        start = time.time()
        dtype = AUTOCAST[precision.autocast]
        with precision.matmuls():
            fit_batches(batches(), model.loss, opt, model, check_every=1 << 30,
                        step_options={"autocast": dtype} if dtype else None)
        seconds = time.time() - start
        metrics = evaluate(model, test_images(test, s["eval_n"]), s["eval_k"])
    return pack(model) | {"history": [], "selections": [], "expansions": [], "memory_size": 0,
                          "memory_labels": torch.empty(0, dtype=torch.long), "components": 1,
                          "stream_length": n, "train_seconds": seconds, "steps": taken[0], "metrics": metrics,
                          "precision": precision.name, "precision_reason": precision.reason}


def rebuild(result: dict, device) -> OCM:
    return restore(OCM, result, device)


def table_row(stream: str, method: str, seed: int, r: dict) -> dict:
    m = r["metrics"]
    return {"stream": stream, "method": method, "seed": seed, "ll_best": m["ll_best"],
            "ll_best_same_draw": m["ll_best_same_draw"], "ll_mixture": m["ll_mixture"], "ll_by_recon": m["ll_by_recon"],
            "memory": r["memory_size"], "components": r["components"], "stream_length": r["stream_length"],
            "steps": r["steps"], "train_s": r["train_seconds"]} | (
        # only where not fp32: the tables of fp32 runs keep their columns
        {} if r.get("precision", "fp32") == "fp32" else {"precision": r["precision"],
                                                          "precision_reason": r["precision_reason"]})


def table_cells(run: Run, streams, methods=tuple(METHODS), seeds=None) -> list[tuple]:
    seeds = run.settings["seeds"] if seeds is None else seeds
    return [(st, m, seed) for st in streams for m in methods for seed in seeds]


def first_stage(run: Run, cells: list[tuple]) -> list[tuple]:
    """The cells that need no other run: all but the reservoir runs, which take their memory size and their
    steps per arriving batch from the VAE-ELBO-OCM run of their stream and seed."""
    return [c for c in cells if METHODS[c[1]].get("memory") != "reservoir"]


def second_stage(run: Run, cells: list[tuple], iid: bool = True) -> tuple[list[tuple], list[Call]]:
    """After the first stage: the reservoir runs of equal memory and steps and (with `iid`) the i.i.d. baselines
    (for the seeds in `iid_seeds`), from the cached VAE-ELBO-OCM runs (a stream and seed whose run failed gets
    neither). Returns the i.i.d. cells and every second-stage call."""
    first = first_stage(run, cells)
    ocm = {(st, seed): stream_call(run, st, m, seed) for st, m, seed in cells if m == "VAE-ELBO-OCM"}
    done = {k for k, c in ocm.items() if is_cached(c.name, c.config)}
    calls = [stream_call(run, *c) for c in cells if c not in first and (c[0], c[2]) in done]
    iid = [(st, IID, seed) for st, seed in ocm if (st, seed) in done and seed in run.settings["iid_seeds"]] \
        if iid else []
    return iid, calls + [iid_call(run, st, seed, run_stream(run, st, "VAE-ELBO-OCM", seed, force=False)["steps"])
                         for st, _, seed in iid]


def table_runs(run: Run, streams, methods=tuple(METHODS), seeds=None, iid: bool = True
               ) -> tuple[pd.DataFrame, dict]:
    """Every (stream, method, seed) run as two grids on run.executor (first_stage, then second_stage); one row
    per finished run and the results for plotting. `iid=False` leaves out the i.i.d. baselines (no claim reads
    them)."""
    cells = table_cells(run, streams, methods, seeds)
    grid = run_grid(run, [stream_call(run, *c) for c in first_stage(run, cells)], "OCM runs")
    iid_cells, second = second_stage(run, cells, iid)
    cells += iid_cells
    if second:
        grid = GridRun.combine(grid, run_grid(run, second, "OCM reservoir and i.i.d. runs"))
    done = {(c.cell["stream"], c.cell["method"], c.cell["seed"]): r for c, r in zip(grid.calls, grid.results)
            if r is not None}
    # Grid order; failed cells, and reservoir runs whose OCM run failed, are missing.
    results = {c: done[c] for c in cells if c in done}
    rows = [table_row(*c, r) for c, r in results.items()]
    missing = [c for c in cells if c not in done]
    if missing:
        print(f"missing runs (stream, method, seed), left out: {missing}")
    return pd.DataFrame(rows), results




def tables_for_claims(run: Run, iid: bool = True) -> tuple[pd.DataFrame, dict, pd.DataFrame, dict]:
    """Tables 1 and 3 of a run (the half-budget run: `iid=False`)."""
    s = run.settings
    per_run, results = table_runs(run, s["streams"], iid=iid)
    cross, results_cross = table_runs(run, ["cross"], CROSS_METHODS, seeds=s["cross_seeds"], iid=iid)
    return per_run, results, cross, results_cross


def summarise(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds beside the paper's numbers."""
    cols = ["ll_best", "ll_mixture", "ll_best_same_draw", "ll_by_recon", "memory", "components", "steps"]
    out = seed_summary(per_run, cols, single_seed_std=None)
    out = out.rename(columns={"ll_best_mean": "ll_mean", "ll_best_std": "ll_std"} |
                     {f"{c}_mean": c for c in cols[1:]})
    out = out[["stream", "method", "ll_mean", "ll_std", *cols[1:], "seeds"]]
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


