"""Notebook 04's studies beside Tables 1 and 3: the ablations (lambda1, the STM size, lambda2), the selection
rules (Algorithm 2, the official code's setting, the diversity variant) and the memory study (the LTM's class
coverage and lambda1's effect on its size, at the tenth of the official steps those claims need). Each is a list
of grid calls, so that `experiments.sweep` can run them beside the tables' runs, and a function that runs them and
returns the table."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...experiments.common import Run
from ...results.runner import Call
from .runs import memory_study_settings, run_grid, stream_call, table_row
from .settings import SELECTION_VARIANTS, STREAMS, half_budget


def ablation_calls(run: Run, stream: str = "mnist") -> list[tuple[tuple, Call]]:
    """lambda1 (selection threshold) and the STM size on VAE-ELBO-OCM, lambda2 (expansion threshold) on
    Dynamic-ELBO-OCM, one at a time, on a shorter stream, with each method's default run as reference:
    ((parameter, value, method), call) pairs."""
    s = run.settings
    grid = [("default", 0, "VAE-ELBO-OCM", {}), ("default", 0, "Dynamic-ELBO-OCM", {})] + \
           [("lambda1", v, "VAE-ELBO-OCM", dict(lambda1=v)) for v in s["ablation_lambda1"]] + \
           [("stm_size", v, "VAE-ELBO-OCM", dict(stm_size=int(v))) for v in s["ablation_stm"]] + \
           [("lambda2", v, "Dynamic-ELBO-OCM", dict(lambda2=v)) for v in s["ablation_lambda2"]]
    return [((name, value, method), stream_call(run, stream, method, s["ablation_seed"], s["ablation_limit"], **over))
            for name, value, method, over in grid]


def ablations(run: Run, stream: str = "mnist") -> pd.DataFrame:
    """The ablation_calls as a grid, one row per finished run (a failed run is reported by the runner)."""
    cells, calls = zip(*ablation_calls(run, stream))
    runs = run_grid(run, list(calls), "OCM ablations")
    return pd.DataFrame([{"parameter": name, "value": value} | table_row(stream, method, run.settings["ablation_seed"], r)
                         for (name, value, method), r in zip(cells, runs.results) if r is not None])


def class_coverage(labels: torch.Tensor) -> tuple[int, float]:
    """Classes present in the memory and the normalised entropy of its class histogram."""
    if len(labels) == 0:
        return 0, 0.0
    counts = np.bincount(labels.numpy())
    counts = counts[counts > 0]
    p = counts / counts.sum()
    ent = float(-(p * np.log(p)).sum())
    return len(counts), ent


def selection_calls(run: Run, streams, rules=None) -> list[tuple[tuple, Call]]:
    """VAE-ELBO-OCM with each rule of SELECTION_VARIANTS (or those named in `rules`) on each stream, for the seeds
    `selection_seeds` gives the rule (default: direction_seeds): ((stream, seed, rule), call) pairs. Algorithm 2's
    runs are Table 1's."""
    s = run.settings
    return [((st, seed, name), stream_call(run, st, "VAE-ELBO-OCM", seed, **over))
            for st in streams for seed in s["direction_seeds"] for name, over in SELECTION_VARIANTS.items()
            if seed in s["selection_seeds"].get(name, s["direction_seeds"]) and (rules is None or name in rules)]


def selection_study(run: Run, streams, rules=None) -> pd.DataFrame:
    """VAE-ELBO-OCM with each selection rule of SELECTION_VARIANTS (or those named in `rules`): Algorithm 2 (the
    default), the official code's kernel and lambda1 = 0.35, and the diversity variant (keep samples far from the
    LTM)."""
    rows = []
    cells, calls = zip(*selection_calls(run, streams, rules))
    grid = run_grid(run, list(calls), "OCM selection rules")
    for (stream, seed, name), r in zip(cells, grid.results):
        if r is not None:  # a failed run is reported by the runner and left out
            n_cls, ent = class_coverage(r["memory_labels"])
            rows.append({"stream": stream, "seed": seed, "rule": name, **SELECTION_VARIANTS[name],
                         "ll_best": r["metrics"]["ll_best"], "ll_mixture": r["metrics"]["ll_mixture"],
                         "memory": r["memory_size"], "classes_in_memory": n_cls, "memory_entropy": ent,
                         "steps": r["steps"], "stream_length": r["stream_length"]})
    return pd.DataFrame(rows)


def memory_study_calls(run: Run, half: bool = False) -> list[tuple[tuple, Call]]:
    """VAE-ELBO-OCM at the memory study's settings (`memory_study_settings`, at half its budget with `half`) on
    each of its streams at the default lambda1, and on split MNIST at each of its `lambda1s`:
    ((stream, seed, lambda1), call) pairs. Each call's weight, a rough guess that only orders the runner's work,
    is its passes per arriving batch times its stream limit (20,000 where it takes every image) against a quick
    Table 1 run's 20,000 images at 1 pass, so that these long runs start first."""
    s = run.settings
    study, out = s["memory_study"], []
    for stream in study["streams"]:
        settings = memory_study_settings(run, stream)
        settings = half_budget(settings) if half else settings
        r = run.with_settings(settings)
        values = [s["lambda1"]] + (list(study["lambda1s"]) if stream == "mnist" else [])
        for seed in study["seeds"]:
            for v in values:
                call = stream_call(r, stream, "VAE-ELBO-OCM", seed, **({} if v == s["lambda1"] else {"lambda1": v}))
                limit = settings["stream_limit"] or 20_000
                weight = max(1.0, settings["epochs_per_batch"] * limit / 20_000)
                out.append(((stream, seed, v), replace(call, weight=weight)))
    return out


def memory_study(run: Run, half: bool = False) -> pd.DataFrame:
    """The memory study's runs (`memory_study_calls`) as a table: per stream, seed and lambda1 the final memory,
    the classes in it, its class entropy and histogram, the steps, images, passes and the test log-likelihood."""
    cells, calls = zip(*memory_study_calls(run, half))
    grid = run_grid(run, list(calls), "OCM memory study" + (" (half budget)" if half else ""))
    rows = []
    for (stream, seed, lambda1), call, r in zip(cells, calls, grid.results):
        if r is not None:  # a failed run is reported by the runner and left out
            n_cls, ent = class_coverage(r["memory_labels"])
            counts = torch.bincount(r["memory_labels"].long(), minlength=10 * len(STREAMS[stream]))  # empty: zeros
            rows.append({"stream": stream, "seed": seed, "lambda1": lambda1,
                         "passes": call.config["model"]["epochs_per_batch"], "memory": r["memory_size"],
                         "classes_in_memory": n_cls, "memory_entropy": ent, "steps": r["steps"],
                         "stream_length": r["stream_length"], "ll_best": r["metrics"]["ll_best"],
                         "class_counts": counts.tolist()})
    return pd.DataFrame(rows)


FIDELITY = Path(__file__).resolve().parent / "fidelity"


def fidelity_text(part: str, folder: Path | None = None) -> str:
    """A sentence per variant of a committed short-run fidelity benchmark (`fidelity/<part>.json`
    beside this module:
    'code_order' or 'selection'), read from the file: its setting, each variant's mean test log-likelihood and
    its difference from the first variant seed by seed."""
    path = (folder or FIDELITY) / f"{part}.json"
    if not path.exists():
        return f"(`{path.name}` is not in this checkout.)"
    d = json.loads(path.read_text())
    runs = pd.DataFrame(d["runs"])
    runs["variant"] = runs.variant.str.replace("; the earlier default", "")  # a label, not a setting
    d["configs"] = {k.replace("; the earlier default", ""): v for k, v in d["configs"].items()}
    variants = list(dict.fromkeys(runs.variant))
    first = runs[runs.variant == variants[0]].set_index("seed")
    base = d["configs"][variants[0]]
    head = (f"`lmvae_core/papers/ocm/fidelity/{path.name}`: a {d['stream_images']:,}-image split-MNIST stream, "
            f"{'Dynamic-ELBO-OCM' if base['dynamic'] else 'VAE-ELBO-OCM'}, {base['epochs_per_batch']} pass per "
            f"arriving batch, IWAE-{d['iwae_k']} on {d['test_images']:,} test images, seeds "
            f"{sorted(first.index.tolist())}. ")
    parts = []
    for v in variants:
        g = runs[runs.variant == v].set_index("seed")
        text = (f"**{v}**: {g.ll_best.mean():.1f} nats (seeds: "
                f"{', '.join(f'{x:.1f}' for x in g.ll_best.sort_index())}), memory {g.memory.mean():.0f}, "
                f"{g.classes_in_memory.mean():.0f} classes in it, {g.steps.mean():.0f} steps")
        if v != variants[0]:
            diff = (g.ll_best - first.ll_best).dropna().sort_index()
            text += f"; minus the first, seed by seed: {', '.join(f'{x:+.1f}' for x in diff)} nats"
        parts.append(text)
    return head + "; ".join(parts) + "."
