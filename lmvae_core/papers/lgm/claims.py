"""Notebook 02's claims, judged by the runs of `experiments.py`.

Every claim says what it is (`kind`): `paper` where the paper states it (`where`: the design spec's account of
the paper, /work/shared/spec/02_lifelong_generative_modeling.md, as the paper's tables could not be read),
`derived` for what the model implies, `sanity` for the regulariser's own target. Every claim records its
schedule against the paper's, in real images seen per task expressed as epochs (driver-reported real rows per
task / task size); the paper's budget is the official code's default, `--epochs 10` per task (the spec's range
is 10-200). No share of it is required up front (`min_fraction` 0): a `paper` verdict stands only where the same
claim, built from runs at half the real data per task (`settings.half_budget`), gives the same verdict and moved by
less than the distance to the criterion (`results.claims.with_half_budget`). Every comparison records both
sides' optimiser steps and real images (`Compute`); every method gets the same real batches from the driver,
and teacher replay (LGM, replay) is counted apart, on top of them. Claims about likelihoods also need the
notebook's calibration, and every claim carries a 95% interval over seeds.
"""
from __future__ import annotations

import numpy as np

from ...metrics.significance import mean_ci
from ...results.claims import DERIVED, PAPER, SANITY, AtLeast, AtMost, Claim, Compute, Schedule
from .experiments import METHOD_LABELS, classes_covered, curve, forgetting, last_task_share

PAPER_EPOCHS_PER_TASK = 10  # official main.py default --epochs (per task)
UNIT = "epochs per task (driver-reported real images / task size)"
# Where the design spec records each statement of the paper.
WHERE_FORGETTING = "abstract; split MNIST/Fashion -ELBO curves (spec: Numbers)"
WHERE_REGULARISER = "abstract: the regulariser reduces catastrophic interference (spec: Numbers)"
WHERE_BASELINES = "split MNIST/Fashion -ELBO curves against the baselines (spec: Baselines, must-show 1)"
WHERE_SAMPLES = "sample grids after the last task (spec: must-show 2)"
WHERE_ABLATION = "gamma_c ablation (spec: must-show 4)"
WHERE_PERMUTED = "permuted MNIST (spec: Settings, must-show 5)"
WHERE_CONSISTENCY = "consistency metric (spec: Metrics)"
WHERE_CODE = "z_d indexes the distributions (spec: Model)"


def epochs_seen(results: list[dict]) -> float:
    """Real images a run saw per task, in passes over the task (the driver's count, mean over tasks and seeds)."""
    return float(np.mean([np.mean(np.asarray(r["real_rows"]) / np.asarray(r["task_sizes"])) for r in results]))


def schedule(results: list[dict]) -> Schedule:
    """The runs' schedule against the paper's. No share is required (min_fraction 0): the half-budget rule
    decides whether a value has stopped moving at this budget."""
    return Schedule(epochs_seen(results), PAPER_EPOCHS_PER_TASK, UNIT, min_fraction=0.0)


def compute(a: str, ra: list[dict], b: str, rb: list[dict]) -> Compute:
    """Both sides' optimiser steps and real images over the whole stream (mean over seeds), as the driver
    counted them. Replayed rows (teacher samples) are extra rows in the same steps, not extra steps or real images."""
    def totals(rs):
        return (float(np.mean([sum(r["steps"]) for r in rs])), float(np.mean([sum(r["real_rows"]) for r in rs])))

    (sa, ia), (sb, ib) = totals(ra), totals(rb)
    return Compute((METHOD_LABELS.get(a, a), METHOD_LABELS.get(b, b)), (sa, sb), (ia, ib))


def _replay_note(rs: list[dict]) -> str:
    return f"replayed rows on top of the real ones: {np.mean([sum(r['replay_rows']) for r in rs]):.0f}"


def _final(r: dict, key: str) -> float:
    return float(r["log"][-1][key])


def _ci(values) -> tuple[float, float]:
    iv = mean_ci(values)
    return iv.lo, iv.hi


def _paired(a: list[dict], b: list[dict], value) -> tuple[float, tuple[float, float]]:
    """Mean and 95% interval of value(a_seed) - value(b_seed) over the seeds both ran (grid order = seed order)."""
    d = [value(x) - value(y) for x, y in zip(a, b)]
    return float(np.mean(d)), _ci(d)


def _nelbo_gain(worse: list[dict], better: list[dict]):
    return _paired(worse, better, lambda r: _final(r, "cum_nelbo"))


def split_claims(dataset: str, exp: dict, profile: str, calibrated: bool | None) -> list[Claim]:
    names, runs = exp["stream"].names, exp["runs"]
    if not all(runs.get(m) for m in ("lgm", "naive", "replay")):
        return []  # a method's every run failed on the cluster (the notebook lists the missing cells)
    lgm, naive, replay = runs["lgm"], runs["naive"], runs["replay"]
    sched = schedule(lgm)
    out = []
    f_lgm, f_naive = forgetting(lgm, names), forgetting(naive, names)
    # The ratio only means something when the naive VAE does forget (by more than a nat).
    ratio = f_lgm / f_naive if f_naive > 1.0 else float("nan")
    ratios = [forgetting([a], names) / forgetting([b], names) for a, b in zip(lgm, naive)
              if forgetting([b], names) > 1.0]
    out.append(Claim(f"{dataset}: LGM's -ELBO on old tasks grows far less than the naive VAE's "
                     "(forgetting ratio LGM / naive)", "qualitative ('far less')", ratio,
                     AtMost(0.5, partly=0.8), profile, note=f"forgetting (nats) LGM {f_lgm:.1f}, naive {f_naive:.1f}; "
                     + _replay_note(lgm), schedule=sched, calibrated=calibrated, ci=_ci(ratios), kind=PAPER,
                     where=WHERE_FORGETTING, compute=compute("lgm", lgm, "naive", naive)))
    gain, ci = _nelbo_gain(naive, lgm)
    out.append(Claim(f"{dataset}: LGM beats naive on the cumulative test set after the last task "
                     "(-ELBO naive - LGM)", "qualitative", gain, AtLeast(5.0, partly=0.0), profile, unit="nats",
                     schedule=sched, calibrated=calibrated, ci=ci, kind=PAPER, where=WHERE_FORGETTING,
                     compute=compute("lgm", lgm, "naive", naive), note=_replay_note(lgm)))
    # The regulariser's own target: agreement of the student's code with the teacher's.
    k_lgm, k_rep = np.nanmean(curve(lgm, "consistency")), np.nanmean(curve(replay, "consistency"))
    gain, ci = _paired(lgm, replay, lambda r: float(np.nanmean([e["consistency"] for e in r["log"]])))
    out.append(Claim(f"{dataset}: the regulariser keeps the teacher's codes (mean consistency, LGM - replay)",
                     "qualitative", gain, AtLeast(0.05, partly=0.0), profile, note=f"LGM {k_lgm:.3f}, replay {k_rep:.3f}",
                     schedule=sched, ci=ci, kind=SANITY, where=WHERE_CONSISTENCY,
                     compute=compute("lgm", lgm, "replay", replay)))
    # Not a likelihood: calibration is not required. The paper's consistency metric presumes z_d indexes the
    # distributions; normalised MI 1 means the category determines the task, 0 that it says nothing.
    nmi = [_final(r, "task_nmi") for r in lgm]
    out.append(Claim(f"{dataset}: LGM's discrete code identifies the task (normalised mutual information "
                     "between the assigned category and the task, cumulative test set after the last task)",
                     "implied (z_d indexes the distributions)", float(np.mean(nmi)), AtLeast(0.5, partly=0.2),
                     profile, note=f"{np.mean([_final(r, 'task_mi') for r in lgm]):.2f} nats; z_d changes the decoder "
                                   f"output by {np.mean([_final(r, 'code_effect') for r in lgm]):.3f} per pixel",
                     schedule=sched, ci=_ci(nmi), kind=DERIVED, where=WHERE_CODE))
    cov = [classes_covered(r) for r in lgm]
    out.append(Claim(f"{dataset}: LGM's samples after the last task cover all seen classes (classes with >= 2% of "
                     "the samples at the classifier confidence 95% of real test images reach)", "all 10",
                     float(np.mean(cov)), AtLeast(10, partly=8), profile,
                     note=f"argmax count: {np.mean([classes_covered(r, calibrated=False) for r in lgm]):.1f}",
                     schedule=sched, ci=_ci(cov), kind=PAPER, where=WHERE_SAMPLES))
    # A statement of the paper (its sample grids), not true by construction: how much of the earlier classes a
    # naive VAE keeps depends on its schedule, so the half-budget rule applies to it as to the others.
    # The measure was the number of classes with >= 2% of the argmax labels until 6b97386; blurred samples spread
    # argmax labels over look-alike classes (why classes_covered has a calibrated count), so a generator of the last
    # class alone could not pass it. The share of samples in the last task's classes reads the statement directly:
    # its ceiling is the share the classifier gives the last task's own test images (in the note, measured); the
    # bars are a reading of '(almost) only', 4 samples in 5 (partly: a majority), not measured.
    last = [last_task_share(r) for r in naive]
    ceiling = [r["real_last_share"] for r in naive if "real_last_share" in r]
    out.append(Claim(f"{dataset}: the naive VAE draws (almost) only the last class (share of its samples in the "
                     "last task's classes)", "1 (the last class only)", float(np.mean(last)), AtLeast(0.8, partly=0.5),
                     profile, note=f"LGM: {np.mean([last_task_share(r) for r in lgm]):.2f}"
                                   + (f"; the last task's real test images: {np.mean(ceiling):.3f}" if ceiling else ""),
                     schedule=schedule(naive), ci=_ci(last), kind=PAPER, where=WHERE_SAMPLES))
    return out


def regulariser_claims(dataset: str, exp: dict, profile: str, calibrated: bool | None) -> list[Claim]:
    """The regulariser's point, from the regulariser study (`lgm.regulariser_study`): LGM against the same replay
    without the consistency term, and against EWC, at equal real data."""
    runs = exp["runs"]
    if not all(runs.get(m) for m in ("lgm", "replay")):
        return []
    lgm, replay = runs["lgm"], runs["replay"]
    sched = schedule(lgm)
    out = []
    gain, ci = _nelbo_gain(replay, lgm)
    out.append(Claim(f"{dataset}: LGM's consistency regulariser helps: LGM beats plain replay (gamma_c = 0) at "
                     "equal real data (final cumulative -ELBO, replay - LGM)", "qualitative", gain,
                     AtLeast(1.0, partly=0.0), profile, unit="nats", schedule=sched, calibrated=calibrated, ci=ci,
                     kind=PAPER, where=WHERE_REGULARISER, compute=compute("lgm", lgm, "replay", replay),
                     note=f"-ELBO LGM {np.mean([_final(r, 'cum_nelbo') for r in lgm]):.1f}, replay "
                          f"{np.mean([_final(r, 'cum_nelbo') for r in replay]):.1f}"))
    if runs.get("ewc"):
        ewc = runs["ewc"]
        gain, ci = _nelbo_gain(ewc, lgm)
        out.append(Claim(f"{dataset}: LGM's consistency regulariser helps: LGM beats EWC at equal real data "
                         "(final cumulative -ELBO, EWC - LGM)", "qualitative", gain, AtLeast(1.0, partly=0.0),
                         profile, unit="nats", schedule=sched, calibrated=calibrated, ci=ci, kind=PAPER,
                         where=WHERE_BASELINES, compute=compute("lgm", lgm, "ewc", ewc),
                         note=f"-ELBO LGM {np.mean([_final(r, 'cum_nelbo') for r in lgm]):.1f}, EWC "
                              f"{np.mean([_final(r, 'cum_nelbo') for r in ewc]):.1f}; LGM replays teacher samples, "
                              "EWC stores a diagonal Fisher"))
    return out


def claims(splits: dict[str, dict], perm: dict | None, study: dict[str, dict], ablation: dict, profile: str,
           calibrated: bool | None = None) -> list[Claim]:
    """All claims: the overview runs (`splits`, `perm`) and the regulariser study (`study`, `ablation`), as
    `lgm.claim_experiments` returns them."""
    out = [c for dataset, exp in splits.items() for c in split_claims(dataset, exp, profile, calibrated)]
    out += [c for dataset, exp in study.items() for c in regulariser_claims(dataset, exp, profile, calibrated)]
    if any(g > 0 for g in ablation or {}) and 0.0 in ablation:
        positive = [g for g in ablation if g > 0]
        g_best = min(positive, key=lambda g: curve(ablation[g], "cum_nelbo")[-1])
        gain, ci = _nelbo_gain(ablation[0.0], ablation[g_best])
        out.append(Claim("gamma_c ablation: some gamma_c > 0 beats gamma_c = 0 (final cumulative -ELBO gain)",
                         "qualitative", gain, AtLeast(1.0, partly=0.0), profile, unit="nats",
                         note=f"best gamma_c = {g_best:g} (chosen on the same runs)",
                         schedule=schedule(ablation[g_best]), calibrated=calibrated, ci=ci, kind=PAPER,
                         where=WHERE_ABLATION,
                         compute=compute(f"gamma_c = {g_best:g}", ablation[g_best], "gamma_c = 0", ablation[0.0])))
    if perm and all(perm["runs"].get(m) for m in ("lgm", "naive")):
        runs = perm["runs"]
        gain, ci = _nelbo_gain(runs["naive"], runs["lgm"])
        out.append(Claim("permuted MNIST: LGM beats naive on the cumulative test set (-ELBO naive - LGM)",
                         "qualitative", gain, AtLeast(5.0, partly=0.0), profile, unit="nats",
                         schedule=schedule(runs["lgm"]), calibrated=calibrated, ci=ci, kind=PAPER,
                         where=WHERE_PERMUTED, compute=compute("lgm", runs["lgm"], "naive", runs["naive"]),
                         note=_replay_note(runs["lgm"])))
    return out
