"""Notebook 05's claims, each with the schedule it was measured at, the calibration and its seeds' intervals.

- Schedule: real image passes per task against the notebook's paper profile (full task data, 20 epochs per
  task; one pass on the task-free stream, as CN-DPM). Below 10% of it a run cannot decide a claim: at 1,000
  images and 3 epochs per task the jointly trained VAE sits ~45 nats below its calibrated value (issue 13),
  and the replay-vs-fine-tune ordering flips between schedules.
- Calibration (`calibration`): the notebook's network trained jointly on full MNIST against its measured
  reference (experiments/calibration.py). A missed calibration makes every claim of the notebook `not
  comparable`; FID and fitting-capacity claims also need the feature classifier's accuracy floor.
- Intervals: differences between methods are paired by seed (same stream order and initialisation seed) and
  decided by their 95% t-interval (metrics/significance.py); a claim whose interval spans its criterion is
  `not comparable`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..metrics.significance import mean_ci, paired_difference
from ..results.claims import AtLeast, AtMost, Claim, Schedule, Within
from .calibration import Calibration, calibrate
from .calibration import JointVAE as CalibrationVAE

# Training images per task of each stream at full size (the datasets' training splits: 60,000 images in 10
# classes, 5 tasks of 2 classes; MNIST -> Fashion: one whole dataset per task).
FULL_TASK_IMAGES = {"split_mnist": 12000, "split_fashion": 12000, "taskfree_mnist": 12000, "mnist_fashion": 60000}
PAPER_EPOCHS = 20  # the paper profile's epochs per task (settings 'paper')
MIN_FRACTION = 0.1
CALIBRATION_STREAM = "split_mnist"


TASKS = {"split_mnist": 5, "split_fashion": 5, "taskfree_mnist": 5, "mnist_fashion": 2}


def schedule(s: dict, stream: str, n_train: int | None = None) -> Schedule:
    """n_train: the stream's training images as built (features' `n_train`); it counts what the run
    really had where a dataset is partial offline (Fashion-MNIST: 16,825 images, not 60,000)."""
    per_task = n_train / TASKS[stream] if n_train else (s["train_per_task"] or FULL_TASK_IMAGES[stream])
    online = stream == "taskfree_mnist"
    return Schedule(per_task * (1 if online else s["epochs"]),
                    FULL_TASK_IMAGES[stream] * (1 if online else PAPER_EPOCHS),
                    "real image passes per task", MIN_FRACTION)


def calibration_spec(s: dict) -> CalibrationVAE:
    """The notebook's network (784-hidden-latent) jointly on MNIST at the profile's `calibration` schedule."""
    return CalibrationVAE("mnist", (s["hidden"],), s["latent"], **s["calibration"])


def calibration(run, summary: pd.DataFrame) -> list[Calibration]:
    """Two rows. First, the notebook's network (784-hidden-latent) trained jointly on MNIST at the profile's
    `calibration` schedule against the same network measured at its reference schedule: this checks the code,
    and the claims are `not comparable` when it is missed. Second, the benchmark's own Joint VAE on split MNIST
    (mean over seeds, IWAE-k) against the same reference: how far the benchmark's schedule holds the models
    back (the claims' Schedule states that budget; this row shows its effect)."""
    s = run.settings
    key = {(200, 20): "mnist_784-200-20_10ep", (200, 50): "mnist_784-200-50_20ep"}.get((s["hidden"], s["latent"]))
    rows = [calibrate(run, calibration_spec(s), key)]
    sub = summary[(summary["stream"] == CALIBRATION_STREAM) & (summary["method"] == "Joint VAE")]
    if len(sub):
        per_task = s["train_per_task"] or FULL_TASK_IMAGES[CALIBRATION_STREAM]
        rows.append(replace(rows[0], model=f"784-{s['hidden']}-{s['latent']} Joint VAE of the benchmark "
                                             f"({s['epochs']} epochs on {5 * per_task} split-MNIST images)",
                            iwae_k=s["iwae_k"], log_likelihood=round(float(sub["final_ll_mean"].iloc[0]), 2)))
    return rows


def features_frame(features: list[dict]) -> pd.DataFrame:
    rows = []
    for f in features:
        for c in f["classifier"]:
            rows.append({"stream": f["stream"], "dataset": c["dataset"], "classifier accuracy": round(c["accuracy"], 4),
                         "floor": c["floor"], "met": c["met"], "real-vs-real FID": round(f["real_fid"], 2),
                         "FID images": f["n_fid"], "real fitting capacity": round(f["real_fitting_capacity"], 4),
                         "fitting-capacity images": f["n_fitting_capacity"], "training images": f["n_train"]})
    return pd.DataFrame(rows)


def _seeds(per_run: pd.DataFrame, stream: str, method: str, col: str) -> np.ndarray:
    sub = per_run[(per_run["stream"] == stream) & (per_run["method"] == method)].sort_values("seed")
    return sub[col].to_numpy(float)


def _diff(per_run, stream, a, b, col):
    """Paired (by seed) interval of a - b."""
    x, y = _seeds(per_run, stream, a, col), _seeds(per_run, stream, b, col)
    n = min(len(x), len(y))
    return paired_difference(x[:n], y[:n]) if n else mean_ci([])


def claims(per_run: pd.DataFrame, s: dict, profile: str, cal: Calibration | list[Calibration] | None,
           features: list[dict] | None = None) -> list[Claim]:
    """cal: the code's calibration (the first row of `calibration`; a list is read by its first row)."""
    cal = cal[0] if isinstance(cal, list) and cal else cal
    calibrated = None if not cal else cal.met
    features_ok = {f["stream"]: all(c["met"] is not False for c in f["classifier"]) for f in (features or [])}
    n_train = {f["stream"]: f["n_train"] for f in (features or [])}
    out = []
    streams = list(dict.fromkeys(per_run["stream"]))
    memory_methods = ("Replay VAE", "Replay BinarizedVAE", "LGM", "L-MVAE", "VAE-OCM", "Dynamic-OCM")
    for stream in streams:
        sch = schedule(s, stream, n_train.get(stream))
        ft = mean_ci(_seeds(per_run, stream, "Fine-tune VAE", "forgetting"))
        # a method forgets less only when its paired interval (fine-tune minus method) lies above 0
        diffs = [_diff(per_run, stream, "Fine-tune VAE", m, "forgetting") for m in memory_methods]
        less = sum(d.n > 1 and d.lo > 0 for d in diffs)
        out.append(Claim(f"Methods with replay/memory/experts forget less than fine-tuning ({stream}; share of the "
                         f"{len(memory_methods)} methods whose 95% paired interval of the difference is above 0)",
                         "qualitative (all CL papers)", less / len(memory_methods), AtLeast(1.0, partly=0.5), profile,
                         note=f"fine-tune forgetting {ft}", schedule=sch, calibrated=calibrated,
                         ci=None if ft.n > 1 else (float("-inf"), float("inf"))))
    for stream in streams:
        for m in ("L-MVAE", "Dynamic-OCM"):
            d = _diff(per_run, stream, m, "Joint VAE", "final_ll")
            out.append(Claim(f"{m} approaches the joint upper bound ({stream}; log-lik. minus joint VAE's, nats)",
                             "qualitative (Ye & Bors 2021, 2022)", d.mean, AtLeast(-5.0, partly=-20.0), profile,
                             unit="nats", schedule=schedule(s, stream, n_train.get(stream)), calibrated=calibrated,
                             ci=(d.lo, d.hi)))
    s0 = "split_mnist" if "split_mnist" in streams else streams[0]
    d = _diff(per_run, s0, "Replay VAE", "Fine-tune VAE", "fitting_capacity")
    out.append(Claim(f"Generative replay keeps the generator useful: fitting capacity replay minus fine-tune ({s0})",
                     "Lesort et al.: ~0.95 vs ~0.20 (GAN, 10 one-class tasks)", d.mean, AtLeast(0.3, partly=0.05),
                     profile, note="different generator and task split from Lesort et al.",
                     schedule=schedule(s, s0, n_train.get(s0)),
                     calibrated=None if calibrated is None else calibrated and features_ok.get(s0, True),
                     ci=(d.lo, d.hi)))
    d = _diff(per_run, s0, "Replay VAE", "Replay BinarizedVAE", "forgetting")
    out.append(Claim(f"Binarized regularisation reduces forgetting under replay ({s0}; forgetting r=0 minus r>0, nats)",
                     "Hu & Rostami 2023: less forgetting", d.mean, AtLeast(1.0, partly=0.0), profile, unit="nats",
                     schedule=schedule(s, s0, n_train.get(s0)), calibrated=calibrated, ci=(d.lo, d.hi)))
    tf = "taskfree_mnist"
    if tf in streams:
        out += _cndpm(per_run, s, profile, calibrated, n_train.get(tf))
    return out


def _cndpm(per_run: pd.DataFrame, s: dict, profile: str, calibrated: bool | None,
           n_train: int | None = None) -> list[Claim]:
    tf = "taskfree_mnist"
    note = ("CN-DPM: 16-sample ELBO-type bound in bits/dim converted to nats, an upper bound on the NLL looser "
            "than our IWAE; full data and long training vs our profile")
    sch = schedule(s, tf, n_train)
    nll = {m: -_seeds(per_run, tf, m, "final_ll") for m in ("Joint VAE", "Fine-tune VAE", "VAE-OCM", "L-MVAE",
                                                               "Dynamic-OCM")}
    best_exp = "L-MVAE" if nll["L-MVAE"].mean() <= nll["Dynamic-OCM"].mean() else "Dynamic-OCM"
    gap = paired_difference(nll["Fine-tune VAE"], nll["Joint VAE"]) if len(nll["Joint VAE"]) == len(
        nll["Fine-tune VAE"]) else mean_ci([])

    def c(text, paper, iv, rule):
        return Claim(text, paper, iv.mean, rule, profile, unit="nats", note=note, schedule=sch, calibrated=calibrated,
                     ci=(iv.lo, iv.hi))

    return [
        c("Task-free split MNIST: offline iid NLL (joint VAE)", "CN-DPM: 98.1 nats (0.1806 bits/dim)",
          mean_ci(nll["Joint VAE"]), AtMost(98.1 + 5, partly=98.1 + 20)),
        c("Task-free split MNIST: fine-tune NLL", "CN-DPM: 153.1 nats (0.2817 bits/dim)",
          mean_ci(nll["Fine-tune VAE"]), Within(153.1, 15.0, 40.0)),
        c("Task-free split MNIST: fine-tune minus offline NLL gap", "CN-DPM: 55.0 nats", gap,
          AtLeast(27.5, partly=10.0)),
        c("Task-free split MNIST: memory-based NLL (VAE-OCM; CN-DPM's reservoir baseline)",
          "CN-DPM reservoir: 121.4 nats (0.2234 bits/dim)", mean_ci(nll["VAE-OCM"]),
          AtMost(121.4 + 5, partly=121.4 + 20)),
        c(f"Task-free split MNIST: expansion-based NLL (best of L-MVAE, Dynamic-OCM by mean: {best_exp})",
          "CN-DPM: 114.7 nats (0.2110 bits/dim)", mean_ci(nll[best_exp]), AtMost(114.7 + 5, partly=114.7 + 20)),
    ]
