"""Notebook 01: growth of L-MVAE, the reuse test and its margin, in both orders of two domains.

The reuse test (lmvae_core.models.lmvae) compares an assigned expert's error on a new task with a reference:
rule 'probe' (the default) with the error a probe expert, trained on the new data, reaches on it; rule 'ratio'
(the first version) with the expert's error on its own task. `directions` runs both rules on a simpler and a
more complex domain in both orders, each sequence ending with a repeat of its first domain: a symmetric rule
grows for the second domain in both orders and reuses for the repeat.
"""
from __future__ import annotations

import numpy as np

from ...experiments.common import Run
from .experiments import data_for, model_config, rebuild, run_lmvae, selection, test_images, train_config


def growth(run: Run, threshold: float | None, names=None, rule: str = "probe", evaluate: bool = False) -> dict:
    """A sequence (default: the growth sequence, where a domain repeats) from one initial expert. Cached."""
    s = run.settings
    names = list(names or s["growth_sequence"])
    cfg = model_config(s, threshold, n_experts=1, rule=rule, epochs=s["growth_epochs"])
    return run_lmvae(names, cfg, train_config(s, run, s["growth_epochs"]), data_for(run), run.seed,
                     s["growth_train"], s["eval_n"], s["iwae_k"], s["likelihood"], evaluate, run.force)


def _test_sets(run: Run, names) -> dict:
    s = run.settings
    data = data_for(run)
    return {n: test_images(n, data, s["eval_n"], s["likelihood"]).x for n in dict.fromkeys(names)}


def threshold_sweep(run: Run, margins=None) -> list[dict]:
    """The growth sequence under the probe rule at each margin of `margins` (default: the profile's
    `thresholds`; the half-budget run of the claims needs only the default margin)."""
    s = run.settings
    names = list(s["growth_sequence"])
    tests = _test_sets(run, names)
    rows = []
    for th in s["thresholds"] if margins is None else margins:
        res = growth(run, th)
        model = rebuild(res, run.device)
        err = float(np.mean([float(model.reconstruction_error(x).mean()) for x in tests.values()]))
        sel = selection(run, model, names)
        counts = [d["n_experts"] for d in res["decisions"]]
        rows.append({"margin": th, "experts": counts[-1], "experts after each task": counts,
                     "actions": [d["action"] for d in res["decisions"]],
                     "experts added by the repeat": added_by_repeat(names, counts),
                     "training steps": int(sum(d["steps"] for d in res["decisions"])),
                     "probe steps": int(sum(d.get("probe_steps", 0) for d in res["decisions"])),
                     "avg recon error (all domains)": err, "selection accuracy": sel["accuracy"],
                     "ratios": [d["ratios"] for d in res["decisions"]]})
    return rows


def added_by_repeat(names, counts) -> int:
    """Experts added by tasks whose domain appeared earlier in the sequence."""
    added, seen = 0, set()
    for t, n in enumerate(names):
        if n in seen:
            added += counts[t] - (counts[t - 1] if t else 0)
        seen.add(n)
    return added


def directions(run: Run, rules=("probe", "ratio")) -> list[dict]:
    """Each sequence of `directions` (A, B, A) under the probe rule at the profile's margin and under the ratio
    rule at each of `ratio_thresholds`. Per row: what tasks 2 (a new domain) and 3 (the repeat) decided, their
    scores (error / reference; reuse when <= 1 + threshold), and the test reconstruction error of domain B with
    the expert that serves it (an expert of its own, or the reused expert of A: compare the rows). `rules`: which
    of the two rules to run (the claims use the probe rule's rows only)."""
    s = run.settings
    variants = [("probe", s["threshold"])] * ("probe" in rules) + [("ratio", th) for th in s["ratio_thresholds"]
                                                                   if "ratio" in rules]
    rows = []
    for names in s["directions"]:
        tests = _test_sets(run, names)
        b = names[1]
        for rule, th in variants:
            res = growth(run, th, names, rule)
            model = rebuild(res, run.device)
            dec = res["decisions"]
            serving = model.experts.experts[model.task_expert[1]]
            rows.append({"order": " -> ".join(names), "rule": rule, "threshold": th, "new domain": b,
                         "task 2 action": dec[1]["action"], "task 2 score": min(dec[1]["ratios"].values()),
                         "repeat action": dec[2]["action"], "repeat score": min(dec[2]["ratios"].values()),
                         "experts": dec[-1]["n_experts"], "new domain served by": _label(model, model.task_expert[1]),
                         "recon error of the new domain": float(serving.reconstruction_error(tests[b]).mean()),
                         "probe steps": int(sum(d.get("probe_steps", 0) for d in dec))})
    return rows


def _label(model, k: int) -> str:
    return f"expert {k} ({model.task_names[int(model.expert_task[k])]})"
