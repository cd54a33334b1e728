"""Notebook 01's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates.

lmvae_kind, lmvae_iwae and lmvae_stream are notebook 05's L-MVAE too."""
from __future__ import annotations

import math

from ...experiments.paper_steps import TEST, TRAIN, Counter, Job, Kind, calibration, kind, steps
from . import experiments as lmvae_exp
from .settings import SETTINGS, half_budget


def _lmvae_kinds(s: dict) -> tuple[dict, int]:
    cfg = lmvae_exp.expert_config(s)
    expert = dict(shape=list(cfg.input_shape), latent=cfg.latent_dim, arch=cfg.arch, hidden=list(cfg.hidden),
                  channels=list(cfg.channels), activation=cfg.activation, likelihood=cfg.likelihood,
                  gaussian_std=cfg.gaussian_std)
    return expert, s["batch"]


def lmvae_kind(s: dict, experts: int) -> Kind:
    expert, b = _lmvae_kinds(s)
    return kind("lmvae", f"L-MVAE {experts} stacked {expert['arch']} experts {'x'.join(map(str, expert['shape']))}, "
                         f"batch {b}", experts=experts, batch=b, **expert)


def lmvae_iwae(s: dict) -> Kind:
    expert, _ = _lmvae_kinds(s)
    return kind("lmvae", f"IWAE forward, {expert['arch']} expert {'x'.join(map(str, expert['shape']))}", train=False,
                experts=1, batch=0, **expert)


def lmvae_stream(c: Counter, s: dict, what: str, names, n_experts: int, epochs: int, probe_epochs: float | None,
                 rule: str = "probe", threshold: float | None = 0.1, limit: int | None = None,
                 eval_k: int = 0, eval_n: int | None = None) -> None:
    """One run_lmvae: a new domain trains every trainable expert stacked (grows one when none is left); a repeated
    domain is expected to reuse its expert (no training). Tasks after the first train a probe expert (rule
    'probe'). eval_k > 0: after task t the selected expert's IWAE on the test images of tasks 0..t."""
    trainable, seen = n_experts, set()
    for t, d in enumerate(names):
        n = min(TRAIN[d], limit or TRAIN[d])
        if t and rule == "probe" and threshold is not None:
            rest = n - s["probe"]
            c.add(f"{what}: probe experts", lmvae_kind(s, 1), math.ceil(probe_epochs * rest / s["batch"]))
        if d not in seen:
            trainable = trainable or 1
            c.add(f"{what}: tasks", lmvae_kind(s, trainable), steps(n, s["batch"], epochs),
                  "new domains train, repeats reuse (the expected decisions)")
            trainable -= 1
        seen.add(d)
        if eval_k:
            c.add(f"{what}: IWAE after each task", lmvae_iwae(s),
                  sum(min(eval_n or TEST[e], TEST[e]) for e in names[:t + 1]) * eval_k)


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("01_lmvae")
    seq, e, k, n_ev = list(s["sequence"]), s["epochs"], s["iwae_k"], s["eval_n"]
    probe = lambda epochs: s["probe_epochs"] or epochs  # noqa: E731  (model_config's rule)
    lmvae_stream(c, s, "main sequence L-MVAE", seq, s["n_experts"], e, probe(e), threshold=s["threshold"],
                 limit=s["train_limit"], eval_k=k, eval_n=n_ev)
    ex = lmvae_kind(s, 1)
    for t, d in enumerate(seq):
        n = min(TRAIN[d], s["train_limit"] or TRAIN[d])
        c.add("fine-tuned VAE", ex, steps(n, s["batch"], e))
        c.add("fine-tuned VAE: IWAE after each task", lmvae_iwae(s),
              sum(min(n_ev or TEST[x], TEST[x]) for x in seq[:t + 1]) * k)
    c.add("joint VAE", ex, steps(sum(TRAIN[d] for d in dict.fromkeys(seq)), s["batch"], e))
    c.add("joint VAE: IWAE", lmvae_iwae(s), sum(min(n_ev or TEST[d], TEST[d]) for d in seq) * k)
    lmvae_stream(c, s, "capacity variant", seq, 1, s["capacity_epochs"], probe(e), threshold=s["threshold"],
                 limit=s["capacity_train"])
    g = s["growth_epochs"]
    for th in s["thresholds"]:
        lmvae_stream(c, s, "threshold sweep", list(s["growth_sequence"]), 1, g, probe(g), threshold=th,
                     limit=s["growth_train"])
    for names in s["directions"]:
        for rule, th in [("probe", s["threshold"])] + [("ratio", th) for th in s["ratio_thresholds"]]:
            lmvae_stream(c, s, "directions", list(names), 1, g, probe(g), rule, th, s["growth_train"])
    lmvae_stream(c, s, "hard pair", list(s["hard_pair"]), s["n_experts"], e, probe(e), threshold=s["threshold"],
                 limit=s["train_limit"])
    # likelihood_report: every assigned expert's IWAE, and a second draw for the best (main: 4 experts, hard: 2)
    for pair, names in (("main", seq), ("hard", list(s["hard_pair"]))):
        n_img = sum(min(n_ev or TEST[d], TEST[d]) for d in dict.fromkeys(names))
        c.add(f"likelihood cost ({pair})", lmvae_iwae(s), (len(dict.fromkeys(names)) + 1) * n_img * k)
    # inference_time: the selected expert once to warm up and 3 times, every assigned expert 3 times
    c.add("inference time (selected and all experts)", lmvae_iwae(s),
          (4 + 3 * len(seq)) * s["timing_n"] * s["timing_k"])
    calibration(c, s["calibration"])
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget", "lmvae_iwae", "lmvae_kind", "lmvae_stream"]
