"""Notebook 01: what selecting one expert per image costs in log-likelihood, on an easy and a hard pair.

Selection accuracy alone is weak evidence: with two experts chance is 0.5, and an easy pair (MNIST and
Fashion) is told apart by almost any score. The likelihood cost says what selection loses: the selected
expert's log-likelihood against the best expert's per image and against the uniform mixture of the experts.

Picking the best expert per image with the IWAE draw that scores it overstates a valid density twice: a
per-image choice is not normalised (up to log K above the mixture), and the maximum of K noisy estimates is
biased up. So the best expert is re-drawn (a fresh IWAE draw for the expert the first draw picked, as the
official OCM code does), and the uniform mixture, a normalised density, is reported beside it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...models.lmvae import LMVAE
from ...experiments.common import Run
from .experiments import data_for, model_config, rebuild, run_lmvae, test_images, train_config

ESTIMATES = ("selected", "best (same draw)", "best (re-drawn)", "uniform mixture")


@torch.no_grad()
def likelihood_cost(run: Run, model: LMVAE, names, pair: str = "") -> list[dict]:
    """One row per domain and one over all domains (images pooled): mean IWAE log-likelihoods (nats) of
    `ESTIMATES`, the selection cost (best re-drawn - selected), the same-draw optimism (best same draw - best
    re-drawn), the share of images where selection picks the re-drawn best's expert, and log K (the most a
    per-image choice can exceed the mixture by)."""
    s = run.settings
    data = data_for(run)
    model.eval()
    own = {n: model.task_expert[list(names).index(n)] for n in dict.fromkeys(names)}
    per = {}
    for n in own:
        x = test_images(n, data, s["eval_n"], s["likelihood"]).x
        per[n] = model.likelihood_report(x, s["iwae_k"]) | {"own": torch.full((x.shape[0],), own[n])}
    per["all domains"] = {k: torch.cat([p[k] for p in per.values()]) for k in per[next(iter(own))]}
    rows = []
    for n, r in per.items():
        m = {e: float(r[e].mean()) for e in ESTIMATES}
        rows.append({"pair": pair, "domain": n, "images": int(r["selected"].numel()), **m,
                     "selection cost (nats)": m["best (re-drawn)"] - m["selected"],
                     "same-draw optimism (nats)": m["best (same draw)"] - m["best (re-drawn)"],
                     "selected - mixture (nats)": m["selected"] - m["uniform mixture"],
                     "selection = best": float((r["choice"] == r["best"]).float().mean()),
                     "selection accuracy": float((r["choice"].cpu() == r["own"]).float().mean()),
                     "log K": math.log(len(model.assigned or range(len(model))))})
    return rows


def hard_pair(run: Run) -> dict:
    """L-MVAE on the profile's `hard_pair` (MNIST then KMNIST), hard_train images x hard_epochs per task, the
    first seed only. Cached."""
    s = run.settings
    names = list(s["hard_pair"])
    res = run_lmvae(names, model_config(s, epochs=s["hard_epochs"]), train_config(s, run, s["hard_epochs"]),
                    data_for(run), run.seed, s["hard_train"], s["eval_n"], s["iwae_k"], s["likelihood"], False,
                    run.force)
    return {"names": names, "result": res, "model": rebuild(res, run.device)}


def cost_of(rows: list[dict], pair: str) -> float:
    """The pooled selection cost of one pair (nats; larger: selection loses more)."""
    return float(np.mean([r["selection cost (nats)"] for r in rows if r["pair"] == pair
                          and r["domain"] == "all domains"]))


def accuracy_of(rows: list[dict], pair: str) -> tuple[float, dict[str, float]]:
    """The share of one pair's test images routed to their own domain's expert: pooled over the domains (equal
    images per domain) and per domain."""
    mine = [r for r in rows if r["pair"] == pair]
    pooled = float(np.mean([r["selection accuracy"] for r in mine if r["domain"] == "all domains"]))
    return pooled, {r["domain"]: float(r["selection accuracy"]) for r in mine if r["domain"] != "all domains"}
