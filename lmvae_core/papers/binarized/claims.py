"""Notebook 03's claims, judged by the numbers the sweep (over seeds), the collapse regime, the overhead timing,
generative replay (over seeds) and the bound check measured (experiments.py, replay.py).

Every claim of the paper is in its abstract (the paper gives no numbers there): those are `paper` claims with
`where` = "Abstract" and the abstract's words in `paper`. The bound check, the likelihood cost and the average
log-likelihood of the continual learner are the project's own consequences (`derived`).

Each claim states its run's schedule against the paper's (40 epochs; on the MNIST stand-in for CelebA, 40 passes
over 60,000 images: 2.4M images seen) and, where there are seeds, the 95% t-interval over seeds of the value it
is judged by. A comparison of r > 0 with r = 0 is paired by seed: the value of seed s is the mean over the
(dataset, objective) pairs of that seed's ratio or difference, so the interval is over the seeds' values. Every
comparison records both sides' optimiser steps and real images (`Compute`), counted by the runs. No schedule has a
floor share of the paper's (min_fraction 0): whether a budget decides a claim is the half-budget rule's question
(the notebook measures each claim again at half the budget, settings.half_budget).
"""
from __future__ import annotations

import numpy as np

from ...metrics.significance import mean_ci, paired_difference
from ...results.claims import DERIVED, PAPER, AtLeast, AtMost, Claim, Compute, HalfBudget, Schedule
from .settings import PAPER_EPOCHS, PAPER_TRAIN_IMAGES

PAPER_IMAGES = PAPER_EPOCHS * PAPER_TRAIN_IMAGES  # the paper's images seen per model
PAPER_IMAGES_PER_TASK = 40 * 12_000  # no continual schedule in the paper: its 40 epochs over one split-MNIST task
ABSTRACT = "Abstract"
# No floor share of the paper's schedule: the half-budget rule decides whether the run's budget decides a claim.
MIN_FRACTION = 0.0


def _per_seed(rows: list[dict], key: str, r: float, fn, regime: str = "main", objectives=None) -> list[float]:
    """For each seed: the mean over (dataset, objective) pairs of fn(value at r, value at r = 0)."""
    rows = [x for x in rows if x["regime"] == regime and (objectives is None or x["objective"] in objectives)]
    base = {(x["dataset"], x["objective"]): x["seeds"][key] for x in rows if x["r"] == 0.0}
    pairs = [(x["seeds"][key], base[(x["dataset"], x["objective"])]) for x in rows
             if x["r"] == r and (x["dataset"], x["objective"]) in base]
    if not pairs:
        return []
    n = min(min(len(a), len(b)) for a, b in pairs)
    return [float(np.mean([fn(a[s], b[s]) for a, b in pairs])) for s in range(n)]


def sweep_compute(rows: list[dict], r: float, regime: str = "main", objectives=None) -> Compute | None:
    """Both sides of an r > 0 against r = 0 comparison in the sweep: optimiser steps and real images per model
    (as the runs counted them), summed over the (dataset, objective) pairs that have both r. None: not recorded."""
    rows = [x for x in rows if x["regime"] == regime and (objectives is None or x["objective"] in objectives)]
    by = {(x["dataset"], x["objective"], x["r"]): x for x in rows}
    pairs = [(by[k], by[(k[0], k[1], 0.0)]) for k in by if k[2] == r and (k[0], k[1], 0.0) in by]
    if not pairs or any("steps" not in x or "images" not in x for pair in pairs for x in pair):
        return None
    total = lambda side, key: float(sum(pair[side][key] for pair in pairs))  # noqa: E731
    return Compute((f"r = {r:g}", "r = 0"), (total(0, "steps"), total(1, "steps")),
                   (total(0, "images"), total(1, "images")))


def replay_compute(main: list[dict], base: list[dict], r: float) -> Compute | None:
    """Both sides of the replay comparison: optimiser steps and real images over all tasks, summed over the paired
    seeds (both sides replay the same number of rows beside each real batch: replay is on both sides)."""
    n = min(len(main), len(base))
    if any("steps" not in x or "real_rows" not in x for x in main[:n] + base[:n]):
        return None
    total = lambda res, key: float(sum(x[key] for x in res[:n]))  # noqa: E731
    return Compute((f"r = {r:g}", "r = 0"), (total(main, "steps"), total(base, "steps")),
                   (total(main, "real_rows"), total(base, "real_rows")))


def overhead_compute(overhead_rows: list[dict], batch: int | None = None) -> Compute | None:
    """The timing's two sides take the same steps on the same batches, by construction: blocks x steps per block
    for each objective (images: times the batch, when given)."""
    if not overhead_rows or any("blocks" not in o for o in overhead_rows):
        return None
    steps = float(sum(o["blocks"] * o["steps/block"] for o in overhead_rows))
    images = steps * batch if batch else steps
    return Compute(("binarized", "plain"), (steps, steps), (images, images))


def _ci(values: list[float]) -> tuple[float, float]:
    iv = mean_ci(values)
    return iv.lo, iv.hi


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def sweep_schedule(rows: list[dict], min_fraction: float = MIN_FRACTION) -> Schedule:
    """Images seen by one model of the sweep (epochs x training images) against the paper's 2.4M: the least any
    dataset of the rows saw (Fashion-MNIST has 16,825 images offline: at MNIST's epochs it sees fewer)."""
    x = min(rows, key=lambda row: row["epochs"] * row["n_train"])
    return Schedule(x["epochs"] * x["n_train"], PAPER_IMAGES, f"images seen (epochs x training images, {x['dataset']})",
                    min_fraction)


def claims(rows: list[dict], overhead_rows: list[dict], replay: dict[float, list[dict]], bounds: list[dict],
           profile: str, main_r: float, calibrated: bool | None = None, batch: int | None = None) -> list[Claim]:
    """The notebook's claims. Empty overhead_rows or bounds leave those claims out (a half-budget run retrains
    neither: the timing gives its own half-budget value, from the first half of its blocks)."""
    main_rows = [x for x in rows if x["regime"] == "main"]
    ratio = lambda a, b: a / b  # noqa: E731
    gain = lambda a, b: a - b  # noqa: E731
    recon = _per_seed(rows, "recon_error", main_r, ratio)
    probe = _per_seed(rows, "probe_accuracy", main_r, gain)
    fids = _per_seed(rows, "fid", main_r, ratio) if all("fid" in x["seeds"] for x in main_rows) else []
    iw = _per_seed(rows, "iwae", main_r, gain)
    sign = _per_seed(rows, "minority_sign", main_r, gain)
    collapse_objs = sorted({x["objective"] for x in rows if x["regime"] == "collapse"})
    # Only where units collapse at r = 0 (at least one unit inactive on average) is there a collapse to prevent;
    # with none, the claim has no measurement (short schedules: units die late in training).
    collapsed = [x["objective"] for x in rows if x["regime"] == "collapse" and x["r"] == 0.0
                 and x["active_folded"] <= x["latent"] - 1]
    folded = _per_seed(rows, "active_folded", main_r, gain, "collapse", collapsed) if collapsed else []
    raw = _per_seed(rows, "active_units", main_r, gain, "collapse", collapsed) if collapsed else []
    n_pairs = len({(x["dataset"], x["objective"]) for x in main_rows})
    ds0 = main_rows[0]["dataset"]
    vae = {x["r"]: x for x in main_rows if x["dataset"] == ds0 and x["objective"] == "VAE"}
    beta = {x["r"]: x for x in main_rows if x["dataset"] == ds0 and x["objective"] == "beta-VAE"}  # quick: none
    r_max = max(vae)
    collapse = {(x["objective"], x["r"]): x for x in rows if x["regime"] == "collapse"}
    latent_c = next((x["latent"] for x in rows if x["regime"] == "collapse"), None)
    schedule = sweep_schedule(main_rows)
    main_compute = sweep_compute(rows, main_r)
    seeds = main_rows[0]["n_seeds"]
    where = f"r = {main_r:g} vs r = 0, mean over {n_pairs} (dataset, objective) pairs, paired by seed ({seeds})"

    def at_r_max(key: str) -> str:
        return f"r = {r_max:g}: {vae[r_max][key]:.2f}" + (
            f"; beta-VAE r = {r_max:g}: {beta[r_max][key]:.2f}" if r_max in beta else "")

    def vs_r0(text: str, paper: str, per_seed: list[float], rule, note: str = "", kind: str = PAPER) -> Claim:
        """A claim measured as r = main_r against r = 0 over the (dataset, objective) pairs, with its interval.

        The paper's 'improves X' statements are qualitative, so their rules share one convention: reproduced from a
        gain of about 2% (a ratio of 0.98 or 0.95 for a cost, +0.01 on a 0-1 accuracy), partly from any gain (1.0 or
        0). Whether the gain is real is the 95% interval over the seeds' pairs: one that spans a bound decides
        nothing. The margins are of practical size, not measured; a reader may apply others to the table."""
        return Claim(text, paper, _mean(per_seed), rule, profile, note=f"{where}; {note}" if note else where,
                     schedule=schedule, calibrated=calibrated, ci=_ci(per_seed), kind=kind,
                     where=ABSTRACT if kind == PAPER else "", compute=main_compute)

    def units(objective: str, r: float, key: str) -> str:
        x = collapse.get((objective, r))
        return f"{x[key]:.1f}" if x else "n/a"

    collapse_note = (f"latent {latent_c}, {', '.join(collapse_objs)} on {ds0}; active units (folded | raw Burda) "
                     + "; ".join(f"{o}: r=0 {units(o, 0.0, 'active_folded')} | {units(o, 0.0, 'active_units')}, "
                                 f"r={main_r:g} {units(o, main_r, 'active_folded')} | {units(o, main_r, 'active_units')}"
                                 for o in collapse_objs)
                     + (f"; judged on {', '.join(collapsed)} (units collapse at r = 0); raw Burda gain {_mean(raw):.2f} "
                        "(favours r > 0: means at +-r have variance ~r^2)" if collapsed
                        else "; no unit collapses at r = 0 in this run: nothing to prevent"))
    modes = ("Two symmetric modes: the latent means gather at +-r (bimodality coefficient of the pooled means of "
             "varying dims; > 5/9 suggests two modes)")
    sign_levels = "; ".join(
        f"{o} r = 0: {x[0.0]['minority_sign']:.3f}, r = {main_r:g}: {x[main_r]['minority_sign']:.3f}"
        for o, x in (("VAE", vae), ("beta-VAE", beta)) if 0.0 in x and main_r in x)
    out = [
        vs_r0("Better reconstruction (squared error at the posterior mean, ratio r>0 / r=0)",
              "'improve reconstruction quality' (qualitative)", recon, AtMost(0.98, partly=1.0)),
        Claim(f"No posterior collapse: in a collapse regime (latent {latent_c}, beta up to 10), units active with "
              "the shift taken out (Var_x of sign(mu) max(|mu| - r, 0) > 0.01), gain over r = 0",
              "'prevent posterior collapse' (qualitative)", _mean(folded), AtLeast(1.0, partly=0.0), profile,
              note=collapse_note, schedule=schedule, calibrated=calibrated, ci=_ci(folded), where=ABSTRACT,
              compute=sweep_compute(rows, main_r, "collapse", collapsed) if collapsed else None),
        Claim(modes, "'disentangle the latent space symmetrically' (qualitative)", vae[main_r]["pooled_bc"],
              # partly: above r = 0's coefficient, a gain the regulariser made; where r = 0 is already past 5/9
              # there is no weaker bound (two modes without the regulariser are not its doing, but still two modes)
              AtLeast.with_measured_partly(5 / 9, vae[0.0]["pooled_bc"]), profile,
              note=f"VAE {ds0}, r = {main_r:g} (partly: above r = 0, {vae[0.0]['pooled_bc']:.2f}); "
                   + at_r_max("pooled_bc"), schedule=schedule, calibrated=calibrated,
              ci=_ci(vae[main_r]["seeds"]["pooled_bc"]), where=ABSTRACT, compute=sweep_compute(rows, main_r)),
        # Judged against r = 0: a plain VAE's Gaussian prior is already symmetric per dimension (its minority-sign
        # share is near 0.5), so only a gain over it shows the regulariser doing what the paper says: reproduced from
        # a gain of 0.01 on the 0-0.5 scale (2% of it); partly: no loss of symmetry against r = 0.
        vs_r0("Symmetric per dimension: both signs used more equally than at r = 0 (minority-sign share over "
              "varying dims, 0.5 = symmetric; r>0 minus r=0)",
              "'encourage symmetric disentanglement' (qualitative)", sign, AtLeast(0.01, partly=0.0), sign_levels),
        # The timing does not depend on how long the models train: no schedule; its half-budget value is the
        # same median over the first half of the timed blocks. Reproduced within 5% of the plain step, partly within
        # 15%: margins of practical cost, not of noise; the noise is the interval of the median over the timed blocks
        # (committed runs read 0.96 to 1.12 on one machine, so a single median could flip the verdict).
        *([Claim("No computation overhead (time per training step, binarized / plain, mean over objectives)",
                 "'without computation overhead' (qualitative)", float(np.mean([o["ratio"] for o in overhead_rows])),
                 AtMost(1.05, partly=1.15), profile,
                 ci=(float(np.mean([o["ratio CI low"] for o in overhead_rows])),
                     float(np.mean([o["ratio CI high"] for o in overhead_rows])))
                 if all("ratio CI low" in o for o in overhead_rows) else None,
                 note=_overhead_note(overhead_rows), where=ABSTRACT,
                 half=HalfBudget(float(np.mean([o["ratio (first half)"] for o in overhead_rows])), None,
                                 "the median over the first half of the timed blocks, same run")
                 if all("ratio (first half)" in o for o in overhead_rows) else None,
                 compute=overhead_compute(overhead_rows, batch))] if overhead_rows else []),
        vs_r0("More transferable representations, by a stand-in: linear-probe accuracy on latent means of the same "
              "dataset (gain over r = 0)",
              "'learn more transferable representations' (qualitative)", probe, AtLeast(0.01, partly=0.0),
              "a probe on the same dataset, not the paper's transfer task"),
        vs_r0("More representative samples (FID in a classifier's features, ratio r>0 / r=0)",
              "'generate more representative samples' (qualitative)", fids, AtMost(0.95, partly=1.0)),
        vs_r0("(not claimed) the regulariser's cost in test log-likelihood (IWAE, gain over r = 0, nats)",
              "not given", iw, AtLeast(0.0, partly=-5.0), "evaluated under the two-mode mixture prior", kind=DERIVED),
    ]
    base, main = replay.get(0.0), replay.get(main_r)
    if base and main:
        n = min(len(base), len(main))
        forget = paired_difference([m["forgetting"] for m in main[:n]], [b["forgetting"] for b in base[:n]])
        average = paired_difference([m["average"] for m in main[:n]], [b["average"] for b in base[:n]])
        per_task = Schedule(base[0]["images_per_task"] * base[0]["epochs"], PAPER_IMAGES_PER_TASK,
                            "images seen per task", MIN_FRACTION)
        compute = replay_compute(main, base, main_r)
        mean = lambda res, k: float(np.mean([x[k] for x in res]))  # noqa: E731
        out += [
            Claim("Less forgetting with generative replay (forgetting on split MNIST, nats; r>0 minus r=0)",
                  "'alleviate catastrophic forgetting using generative replay' (qualitative)", forget.mean,
                  AtMost(-0.5, partly=0.0), profile,
                  note=f"r = {main_r:g}: {mean(main, 'forgetting'):.2f}, r = 0: {mean(base, 'forgetting'):.2f}, "
                       f"paired over {n} seeds", schedule=per_task, calibrated=calibrated, ci=(forget.lo, forget.hi),
                  where=ABSTRACT, compute=compute),
            # The abstract's statement is the forgetting claim above; the final average is its consequence for the
            # continual generative model, counted apart so that one statement is not counted twice.
            Claim("(derived) Better continual generative model (average IWAE log-lik. after the last task, gain, nats)",
                  "follows from less forgetting", average.mean, AtLeast(0.5, partly=0.0), profile,
                  note=f"r = {main_r:g}: {mean(main, 'average'):.1f}, r = 0: {mean(base, 'average'):.1f}, "
                       f"paired over {n} seeds", schedule=per_task, calibrated=calibrated,
                  ci=(average.lo, average.hi), kind=DERIVED, compute=compute),
        ]
    if bounds:
        worst_b = max(b["quadrature_violations"] + b["mc_violations_3se"] for b in bounds)
        out.append(Claim("(derived here) regularised KL + d log 2 bounds the KL to the two-mode prior "
                         "(violations beyond 3 MC standard errors or in quadrature)",
                         "follows from p_mix >= 0.5 N(sign(mu) r, 1)", worst_b, AtMost(0), profile,
                         note=f"{sum(b['n'] for b in bounds)} posteriors over r in "
                              f"{sorted(b['r'] for b in bounds)}",
                         schedule=schedule, kind=DERIVED))  # an inequality: any posterior will do
    return out


def _overhead_note(overhead_rows: list[dict]) -> str:
    worst = max(overhead_rows, key=lambda o: o["ratio"])
    return (f"median of paired interleaved blocks, both models through autograd; worst: {worst['objective']} "
            f"{worst['ratio']:.2f} (IQR {worst['ratio IQR low']:.2f}-{worst['ratio IQR high']:.2f})"
            + (f"; against this package's plain VAE with its fused loss (CPU): "
               f"{np.mean([o['ratio vs fused'] for o in overhead_rows]):.2f}"
               if all("ratio vs fused" in o for o in overhead_rows) else ""))
