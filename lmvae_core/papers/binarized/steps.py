"""Notebook 03's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates."""
from __future__ import annotations

from ...experiments.paper_steps import (CLASSIFIER_BATCH, TEST, TRAIN, Counter, Job, Kind, calibration, classifier,
                                        iwae_vae, kind, steps, vae)
from ...training.classifier import epochs_for
from . import experiments as bin_exp
from .settings import SETTINGS, half_budget


def ensemble_kind(s: dict, latent: int, members: int) -> Kind:
    return kind("ensemble",
                f"BinarizedVAE ensemble of {members} stacked 784-{s['hidden']}-{latent}, batch {s['batch']}",
                hidden=s["hidden"], latent=latent, members=members, batch=s["batch"])


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("03_binarized_regularization")
    main = [(d, s["latent"]) for d in s["datasets"] for _ in s["objectives"] for _ in s["rs"]]
    collapse = [(s["datasets"][0], s["collapse_latent"]) for _ in s["collapse_objectives"] for _ in s["collapse_rs"]]
    for d, z in main + collapse:
        n = min(TRAIN[d], s["sweep_train"] or TRAIN[d])
        c.add(f"r sweep ({'main' if z == s['latent'] else 'collapse'})", ensemble_kind(s, z, s["seeds"]),
              steps(n, s["batch"], s["epochs"]))
        c.add("r sweep: IWAE per member", iwae_vae((s["hidden"],), z, binarized=True),
              s["seeds"] * min(s["eval_n"], TEST[d]) * s["iwae_k"])
    for d in s["datasets"]:
        n = min(TRAIN[d], s["clf_n"] or TRAIN[d])
        c.add(f"feature classifier {d}", classifier(), steps(n, CLASSIFIER_BATCH,
                                                             epochs_for(n, s["clf_epochs"], s["clf_min_passes"])))
    calibration(c, bin_exp.calibration_spec(s))
    # overhead: plain and binarized, overhead_steps per block, overhead_rounds + 1 blocks (one warm-up)
    c.add("overhead timing", vae((s["hidden"],), s["latent"], s["batch"], binarized=True),
          2 * s["overhead_steps"] * (s["overhead_rounds"] + 1))
    n_task = min(TRAIN["mnist"], s["cl_train_limit"] or TRAIN["mnist"]) // 5
    for _ in s["cl_rs"]:
        for _ in range(s["cl_seeds"]):
            for t in range(5):  # split MNIST, 5 tasks; generative replay from the second task on
                c.add("continual (generative replay)",
                      vae((s["hidden"],), s["latent"], s["batch"], binarized=True, replay=t > 0),
                      steps(n_task, s["batch"], s["cl_epochs"]))
                c.add("continual: IWAE after each task", iwae_vae((s["hidden"],), s["latent"], binarized=True),
                      (t + 1) * s["cl_eval_n"] * s["cl_k"])
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget", "ensemble_kind"]
