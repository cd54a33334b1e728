"""Notebook 01's calibration and claims, judged by the numbers the experiments measured.

Every claim states its schedule: real images per task (of the task with the fewest: offline Fashion-MNIST and
KMNIST are partial) against the official code's 100 epochs of 60,000 images (batch 64), per task. The share a
claim needs depends on what it is about (comments below); claims whose value depends on how well the experts
model their data also need the notebook's calibration (a jointly trained VAE of the experts' network on MNIST,
with one task's schedule of the profile) to have met its reference. Claims on the main sequence are measured
once per seed and carry a 95% interval: paired by seed for a difference between methods (the methods of one
seed share the task order and initialisation seed), a Student-t interval of the mean otherwise.
"""
from __future__ import annotations

from ..metrics.significance import Interval, mean_ci, paired_difference
from ..results.claims import AtLeast, AtMost, Claim, Schedule, Within
from .calibration import Calibration, calibrate
from .common import Run
from .lmvae import METRICS, PAPER_IMAGES_PER_TASK, data_for, per_seed, train_images
from .lmvae_selection import cost_of


def calibration(run: Run) -> Calibration:
    s = run.settings
    return calibrate(run, s["calibration"], s["calibration_reference"])


def schedules(run: Run) -> dict[str, float]:
    """Real images per task of the main sequence, the growth runs and the hard pair: epochs x the training
    images of the smallest task (counted from the data this run loads)."""
    s = run.settings
    data = data_for(run)

    def per_task(names, limit: int | None, epochs: int) -> float:
        return float(epochs * min(train_images(n, data, limit).shape[0] for n in dict.fromkeys(names)))

    growth_names = [*s["growth_sequence"], *(n for order in s["directions"] for n in order)]
    return {"main": per_task(s["sequence"], s["train_limit"], s["epochs"]),
            "growth": per_task(growth_names, s["growth_train"], s["growth_epochs"]),
            "hard": per_task(s["hard_pair"], s["hard_train"], s["hard_epochs"])}


def _ci(iv: Interval) -> tuple[float, float]:
    return iv.lo, iv.hi


def claims(rows: list[dict], sweep: list[dict], turns: list[dict], cost_rows: list[dict], timing: dict,
           cal: Calibration, s: dict, profile: str, images: dict[str, float]) -> list[Claim]:
    """rows: seed_rows() of the main sequence (one per seed and method); sweep: threshold_sweep(); turns:
    directions(); cost_rows: likelihood_cost() rows of the main and the hard pair (pair names 'main' and 'hard'),
    first seed; images: schedules()."""
    ll, ll_f, acc = METRICS[2], METRICS[3], METRICS[4]
    lm_f = mean_ci(per_seed(rows, "L-MVAE", ll_f))
    ft_f = mean_ci(per_seed(rows, "fine-tuned VAE", ll_f))
    gap_f = paired_difference(per_seed(rows, "L-MVAE", ll_f), per_seed(rows, "fine-tuned VAE", ll_f))
    gap_joint = paired_difference(per_seed(rows, "L-MVAE", ll), per_seed(rows, "joint VAE", ll))
    sel = mean_ci(per_seed(rows, "L-MVAE", acc))
    default = next(r for r in sweep if r["margin"] == s["threshold"])
    mixture = next(r for r in cost_rows if r["pair"] == "main" and r["domain"] == "all domains")
    probe_rows = [r for r in turns if r["rule"] == "probe"]
    grew = sum(r["task 2 action"] == "grow" for r in probe_rows)
    n_domains = len(set(s["growth_sequence"]))
    unit = "real images per task"
    seeds = f"{lm_f.n} seed{'s' if lm_f.n != 1 else ''}"

    def sched(kind: str, min_fraction: float) -> Schedule:
        return Schedule(images[kind], PAPER_IMAGES_PER_TASK, unit, min_fraction)

    met = cal.met
    return [
        # a frozen expert cannot forget; only a later expert taking over its images can change the score, which
        # needs experts that model their domains at all: a small share of the schedule decides it
        Claim("No forgetting: one frozen expert per task (L-MVAE log-lik. forgetting, nats)",
              "qualitative (no forgetting)", lm_f.mean, AtMost(1.0, partly=5.0), profile, "nats",
              note=f"fine-tuned VAE forgets {ft_f} nats (mean [95% CI], {seeds})", schedule=sched("main", 0.001),
              calibrated=met, ci=_ci(lm_f)),
        # fine-tuning forgets more the longer the next task trains: a short schedule understates the gap
        Claim("L-MVAE forgets far less than a fine-tuned VAE (forgetting L-MVAE - fine-tuned, nats)",
              "qualitative", gap_f.mean, AtMost(-5.0, partly=0.0), profile, "nats", note=f"paired by seed, {seeds}",
              schedule=sched("main", 0.01), calibrated=met, ci=_ci(gap_f)),
        # a claim about final log-likelihoods: the schedule must be one where a jointly trained VAE is calibrated
        Claim("L-MVAE approaches a jointly trained VAE (final avg log-lik. L-MVAE - joint, nats)",
              "qualitative", gap_joint.mean, AtLeast(-2.0, partly=-10.0), profile, "nats",
              note=f"paired by seed, {seeds}; L-MVAE with the selected expert per image; selected - uniform mixture "
                   f"of the experts (a normalised density): {mixture['selected - mixture (nats)']:.2f} nats on "
                   f"average (first seed)",
              schedule=sched("main", 0.1), calibrated=met, ci=_ci(gap_joint)),
        # selection needs experts that have specialised on their domains: about half an epoch of a full domain
        Claim("The right expert is selected for each input (selection accuracy, test images)",
              "qualitative (correct selection)", sel.mean, AtLeast(0.95, partly=0.8), profile,
              note=f"2 experts: chance is 0.5; see the likelihood cost; {seeds}", schedule=sched("main", 0.005),
              calibrated=met, ci=_ci(sel)),
        Claim("Selecting one expert loses little log-likelihood, hard pair MNIST/KMNIST (best expert re-drawn - "
              "selected, nats)", "qualitative (correct selection)", cost_of(cost_rows, "hard"),
              AtMost(1.0, partly=5.0), profile, "nats",
              note=f"first seed; easy pair {' / '.join(s['sequence'])}: {cost_of(cost_rows, 'main'):.2f} nats",
              schedule=sched("hard", 0.005), calibrated=met),
        # growth decisions compare errors of trained experts: they need experts past the first steep steps
        Claim("A repeated domain adds no expert (experts added by the repeated task)",
              "qualitative (growth only for new tasks)", default["experts added by the repeat"], AtMost(0), profile,
              note=f"probe rule, margin {s['threshold']}; first seed", schedule=sched("growth", 0.005), calibrated=met),
        Claim("Every new domain gets its own expert (experts at the end - distinct domains)",
              "qualitative", default["experts"] - n_domains, Within(0, 0), profile, note="first seed",
              schedule=sched("growth", 0.005), calibrated=met),
        Claim("A new domain gets an expert whichever domain came first (orders in which the second domain grew)",
              "qualitative (growth only for new tasks)", grew, AtLeast(len(probe_rows)), profile,
              note=f"orders: {'; '.join(r['order'] for r in probe_rows)}; first seed", schedule=sched("growth", 0.005),
              calibrated=met),
        # the time of one expert against all does not depend on how long the experts trained
        Claim("Inference costs one expert (time selected expert / time all experts, IWAE)",
              "qualitative (cost of one expert)", timing["ratio"],
              AtMost(min(1.0, 1.5 / timing["experts"]), partly=1.0), profile,
              note=f"{timing['experts']} experts, k={timing['k']}; median of {timing['rounds']} alternating rounds "
                   f"(range {timing['ratio range']})", schedule=sched("main", 0.0)),
    ]
