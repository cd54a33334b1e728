"""Notebook 02's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates.

lgm_kind is notebook 05's LGM too."""
from __future__ import annotations

from ...experiments.paper_steps import CLASSIFIER_BATCH, TRAIN, Counter, Job, Kind, calibration, classifier, kind, steps
from ...training.classifier import epochs_for
from .settings import SETTINGS, half_budget


def lgm_kind(s: dict, replay: bool, gamma: float, shape=(1, 28, 28)) -> Kind:
    rows = f"real + teacher replay, gamma_c {gamma:g}" if replay else "real"
    return kind("lgm", f"LGM 784-{'-'.join(map(str, s['hidden']))}-{s['latent']}, batch {s['batch']} {rows}",
                hidden=list(s["hidden"]), latent=s["latent"], batch=s["batch"], replay=replay,
                gamma=gamma if replay else 0.0, shape=list(shape))


def lgm_run(c: Counter, s: dict, what: str, method: str, task_sizes: list[int], gamma: float = 1.0) -> None:
    """One LGMLearner over a stream: tasks after the first replay teacher samples (lgm, replay) or stored
    images ('full', same rows) beside the full real batch; naive and EWC train on the real batch alone.
    Evaluation per boundary (lgm.evaluate): IWAE-k on iwae_n // tasks images of each task seen."""
    per = max(1, s["iwae_n"] // len(task_sizes))
    for t, n in enumerate(task_sizes):
        replay = t > 0 and method in ("lgm", "replay", "full")
        g = 0.0 if method in ("replay", "full") else gamma
        c.add(f"{what}: training", lgm_kind(s, replay, g), steps(n, s["batch"], s["epochs"]))
        c.add(f"{what}: IWAE after each task",
              kind("lgm", f"IWAE forward, LGM 784-{'-'.join(map(str, s['hidden']))}-{s['latent']}", train=False,
                   hidden=list(s["hidden"]), latent=s["latent"], batch=0, replay=False, gamma=0.0, shape=[1, 28, 28]),
              (t + 1) * per * s["iwae_k"])


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("02_lifelong_generative_modeling")
    split = {d: [TRAIN[d] // 10] * 10 for d in s["datasets"]}  # one class per task (about a tenth each)
    for d in s["datasets"]:
        for m in s["methods"]:
            for _ in s["seeds"]:
                lgm_run(c, s, f"split {d}, {m}", m, split[d])
        clf_epochs = epochs_for(TRAIN[d], s["fid_epochs"], s["clf_min_passes"])
        c.add(f"feature classifier {d}", classifier(), steps(TRAIN[d], CLASSIFIER_BATCH, clf_epochs))
    # lgm.gamma_ablation: gamma 0 is the 'replay' method and gamma 1 the 'lgm' method of the split experiment (the
    # same cache keys); only the other values train
    shared = {0.0: "replay", 1.0: "lgm"}
    for g in s["gammas"]:
        if shared.get(g) not in s["methods"]:
            for _ in s["seeds"]:
                lgm_run(c, s, f"gamma ablation {g}", "replay" if g == 0 else "lgm", split[s["ablation_dataset"]], g)
    perm = [min(TRAIN["mnist"], s["perm_train"] or TRAIN["mnist"])] * s["perm_tasks"]
    for m in s["perm_methods"]:
        for _ in s["seeds"]:
            lgm_run(c, s, f"permuted MNIST, {m}", m, perm)
    calibration(c, s["joint"])
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget", "lgm_kind", "lgm_run"]
