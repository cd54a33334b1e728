"""Notebook 01's calibration and claims, judged by the numbers the experiments measured.

Every claim states its schedule: real images per task against the official code's 100 epochs of 60,000 images
(batch 64), per task. The share a claim needs depends on what it is about (comments below); claims whose value
depends on how well the experts model their data also need the notebook's calibration (a jointly trained VAE
of the experts' network on MNIST, with one task's schedule of the profile) to have met its reference.
"""
from __future__ import annotations

import numpy as np

from ..results.claims import AtLeast, AtMost, Claim, Schedule, Within
from .calibration import Calibration, calibrate
from .common import Run
from .lmvae import FULL_TRAIN, PAPER_IMAGES_PER_TASK
from .lmvae_selection import cost_of


def calibration(run: Run) -> Calibration:
    s = run.settings
    return calibrate(run, s["calibration"], s["calibration_reference"])


def schedules(s: dict) -> dict[str, float]:
    """Real images per task of the main sequence and of the growth runs."""
    return {"main": s["epochs"] * (s["train_limit"] or FULL_TRAIN),
            "growth": s["growth_epochs"] * (s["growth_train"] or FULL_TRAIN)}


def claims(main: dict, sel: dict, sweep: list[dict], turns: list[dict], cost_rows: list[dict], timing: dict,
           cal: Calibration, s: dict, profile: str) -> list[Claim]:
    """main: main_sequence(); sel: selection() on it; sweep: threshold_sweep(); turns: directions();
    cost_rows: likelihood_cost() rows of the main and the hard pair (pair names 'main' and 'hard')."""
    lm_ll, ft_ll = main["matrices"]["iwae"]["L-MVAE"], main["matrices"]["iwae"]["fine-tuned VAE"]
    lm_f, ft_f = lm_ll.forgetting(), ft_ll.forgetting()
    default = next(r for r in sweep if r["margin"] == s["threshold"])
    joint_avg = float(np.mean(main["joint"]["iwae"]))
    mixture = next(r for r in cost_rows if r["pair"] == "main" and r["domain"] == "all domains")
    probe_rows = [r for r in turns if r["rule"] == "probe"]
    grew = sum(r["task 2 action"] == "grow" for r in probe_rows)
    n_domains = len(set(s["growth_sequence"]))
    main_images, growth_images = schedules(s)["main"], schedules(s)["growth"]
    unit = "real images per task"

    def sched(images: float, min_fraction: float) -> Schedule:
        return Schedule(images, PAPER_IMAGES_PER_TASK, unit, min_fraction)

    met = cal.met
    return [
        # a frozen expert cannot forget; only a later expert taking over its images can change the score, which
        # needs experts that model their domains at all: a small share of the schedule decides it
        Claim("No forgetting: one frozen expert per task (L-MVAE log-lik. forgetting, nats)",
              "qualitative (no forgetting)", lm_f, AtMost(1.0, partly=5.0), profile, "nats",
              note=f"fine-tuned VAE forgets {ft_f:.1f} nats (measured)", schedule=sched(main_images, 0.001),
              calibrated=met),
        # fine-tuning forgets more the longer the next task trains: a short schedule understates the gap
        Claim("L-MVAE forgets far less than a fine-tuned VAE (forgetting L-MVAE - fine-tuned, nats)",
              "qualitative", lm_f - ft_f, AtMost(-5.0, partly=0.0), profile, "nats",
              schedule=sched(main_images, 0.01), calibrated=met),
        # a claim about final log-likelihoods: the schedule must be one where a jointly trained VAE is calibrated
        Claim("L-MVAE approaches a jointly trained VAE (final avg log-lik. L-MVAE - joint, nats)",
              "qualitative", lm_ll.average() - joint_avg, AtLeast(-2.0, partly=-10.0), profile, "nats",
              note=f"L-MVAE with the selected expert per image; selected - uniform mixture of the experts (a "
                   f"normalised density): {mixture['selected - mixture (nats)']:.2f} nats on average",
              schedule=sched(main_images, 0.1), calibrated=met),
        # selection needs experts that have specialised on their domains: about half an epoch of a full domain
        Claim("The right expert is selected for each input (selection accuracy, test images)",
              "qualitative (correct selection)", sel["accuracy"], AtLeast(0.95, partly=0.8), profile,
              note="2 experts: chance is 0.5; see the likelihood cost", schedule=sched(main_images, 0.005),
              calibrated=met),
        Claim("Selecting one expert loses little log-likelihood, hard pair MNIST/KMNIST (best expert re-drawn - "
              "selected, nats)", "qualitative (correct selection)", cost_of(cost_rows, "hard"),
              AtMost(1.0, partly=5.0), profile, "nats",
              note=f"easy pair {' / '.join(main['names'])}: {cost_of(cost_rows, 'main'):.2f} nats",
              schedule=sched(main_images, 0.005), calibrated=met),
        # growth decisions compare errors of trained experts: they need experts past the first steep steps
        Claim("A repeated domain adds no expert (experts added by the repeated task)",
              "qualitative (growth only for new tasks)", default["experts added by the repeat"], AtMost(0), profile,
              note=f"probe rule, margin {s['threshold']}", schedule=sched(growth_images, 0.005), calibrated=met),
        Claim("Every new domain gets its own expert (experts at the end - distinct domains)",
              "qualitative", default["experts"] - n_domains, Within(0, 0), profile,
              schedule=sched(growth_images, 0.005), calibrated=met),
        Claim("A new domain gets an expert whichever domain came first (orders in which the second domain grew)",
              "qualitative (growth only for new tasks)", grew, AtLeast(len(probe_rows)), profile,
              note=f"orders: {'; '.join(r['order'] for r in probe_rows)}", schedule=sched(growth_images, 0.005),
              calibrated=met),
        # the time of one expert against all does not depend on how long the experts trained
        Claim("Inference costs one expert (time selected expert / time all experts, IWAE)",
              "qualitative (cost of one expert)", timing["ratio"],
              AtMost(min(1.0, 1.5 / timing["experts"]), partly=1.0), profile,
              note=f"{timing['experts']} experts, k={timing['k']}", schedule=sched(main_images, 0.0)),
    ]
