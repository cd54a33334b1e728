"""Notebook 01's settings per profile (typed: experiments/settings.py), what the paper-shape profile scales, the
datasets each profile loads, and the training budgets the half-budget check halves."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...experiments.calibration import JointVAE as CalibrationVAE
from ...experiments.common import paper_shape
from ...experiments.settings import Settings

# quick: MLP 784-256-20 on 28x28 with a Bernoulli decoder on dynamically binarised images, every training image
# of each domain (offline: 60,000 MNIST, 16,825 Fashion-MNIST, 6,284 KMNIST), 10 epochs per task: the schedule of
# the calibration's measured reference (the same network trained 10 epochs on full MNIST), so the calibration (that
# network trained jointly on MNIST for one task's 10 epochs) is the reference's own schedule. The main sequence and
# its two baselines run for n_seeds seeds (run.seed, run.seed + 1, ...); the growth runs and the hard pair train
# 6,000 images x 6 epochs per task on the first seed only, with fewer margins than the paper profile. Every claim is
# also measured at half its budget (`half_budget`: the epochs per task halved, 5 and 3), and a verdict stands only
# where that value agrees (results/claims.py); even epochs make the halves exact.
_MLP = dict(sequence=("mnist", "fashion"), growth_sequence=("mnist", "fashion", "mnist", "kmnist"), arch="mlp",
            likelihood="bernoulli", gaussian_std=0.1, size=None, n_experts=2, test_limit=None, probe=256,
            threshold=0.1, thresholds=(0.0, 0.1, 0.25, 0.5), probe_epochs=None, ratio_thresholds=(0.0, 0.5, 1.0),
            directions=(("mnist", "kmnist", "mnist"), ("kmnist", "mnist", "kmnist")), hard_pair=("mnist", "kmnist"),
            capacity_gamma=4.0, capacity_increase=25.0, calibration_reference="mnist_784-256-20_10ep")


@dataclass(frozen=True, eq=False)
class LMVAESettings(Settings):
    """Notebook 01's settings for one profile."""
    sequence: tuple[str, ...]  # the main sequence's domains, one task each
    growth_sequence: tuple[str, ...]  # the growth runs' (threshold sweep) domains, a domain repeated
    arch: str  # the experts' network: "mlp" or "conv"
    hidden: int  # hidden units of an expert's hidden layer
    latent: int  # each expert's latent dimension
    likelihood: str  # the decoder's: "bernoulli" (dynamically binarised images) or "gaussian"
    gaussian_std: float  # the Gaussian decoder's std
    size: int | None  # image side (32: 3x32x32 colour images, as the official code); None: 28x28
    n_experts: int  # experts allocated at the start (LMVAEConfig.n_experts; growth adds more when needed)
    epochs: int  # epochs per task of the main sequence and its baselines
    batch: int
    train_limit: int | None  # training images per domain (None: all)
    test_limit: int | None
    iwae_k: int  # importance samples of the IWAE log-likelihoods
    eval_n: int  # test images per domain they are scored on
    probe: int  # held-out probe images per task (LMVAEConfig.probe_size)
    threshold: float  # the reuse margin (reuse when the score is <= 1 + margin)
    probe_epochs: int | None  # the probe's epochs (None: as many as its task)
    thresholds: tuple[float, ...]  # the margins of the threshold sweep (growth runs)
    ratio_thresholds: tuple[float, ...]  # the margins of the ratio rule in the direction runs
    directions: tuple[tuple[str, ...], ...]  # the direction runs' domain orders
    hard_pair: tuple[str, ...]  # the two domains of the hard pair
    n_seeds: int  # seeds of the main sequence and its baselines (run.seed, run.seed + 1, ...)
    growth_train: int | None  # training images per domain of the growth runs (None: all)
    growth_epochs: int  # their epochs per task
    hard_train: int | None  # training images per domain of the hard pair (None: all)
    hard_epochs: int  # its epochs per task
    capacity_train: int | None  # training images per domain of the capacity variant (None: all)
    capacity_epochs: int  # its epochs per task
    capacity_gamma: float  # the capacity variant's gamma (recon + gamma |KL - C|)
    capacity_increase: float  # C grows by capacity_increase / epochs per epoch of each task
    timing_n: int  # test images (over the domains) of the inference-time measurement
    timing_k: int  # its importance samples
    calibration: CalibrationVAE  # the jointly trained VAE of calibration.py
    calibration_reference: str | None  # the measured reference the calibration is judged against (None: none)
    channels: tuple[int, ...] = (32, 64)  # the conv experts' channels


SETTINGS = {
    "smoke": LMVAESettings(**dict(
        _MLP, hidden=64, latent=8, epochs=1, batch=128, train_limit=1000, iwae_k=10, eval_n=200,
        n_seeds=2, growth_train=600, growth_epochs=1, hard_train=1000, hard_epochs=1, capacity_train=600,
        capacity_epochs=1, timing_n=200, timing_k=20,
        # a probe of one smoke epoch (6 steps) tells no domain from another: smoke would never grow
        probe_epochs=3, calibration_reference=None,
        calibration=CalibrationVAE("mnist", (64,), 8, epochs=1, iwae_k=10, train_limit=1000, test_limit=200))),
    "quick": LMVAESettings(**dict(
        _MLP, hidden=256, latent=20, epochs=10, batch=128, train_limit=None, iwae_k=100, eval_n=500,
        n_seeds=3, growth_train=6000, growth_epochs=6, hard_train=6000, hard_epochs=6,
        thresholds=(0.0, 0.1, 0.5), ratio_thresholds=(0.0, 1.0),
        capacity_train=6000, capacity_epochs=3, timing_n=500, timing_k=100,
        calibration=CalibrationVAE("mnist", (256,), 20, epochs=10, iwae_k=100, train_limit=None))),
    "paper": LMVAESettings(
        sequence=("mnist", "fashion", "kmnist", "cifar10"),
        growth_sequence=("mnist", "fashion", "mnist", "kmnist", "cifar10"),
        arch="conv", hidden=1024, channels=(64, 128, 256, 512), latent=100, likelihood="gaussian",
        gaussian_std=1 / math.sqrt(2), size=32, n_experts=4, epochs=100, batch=64, train_limit=None,
        test_limit=None, iwae_k=5000, eval_n=2000, probe=64, threshold=0.1, probe_epochs=None,
        thresholds=(0.0, 0.1, 0.25, 0.5), ratio_thresholds=(0.0, 0.5, 1.0),
        directions=_MLP["directions"], hard_pair=_MLP["hard_pair"], n_seeds=3,
        growth_train=None, growth_epochs=20, hard_train=None, hard_epochs=100, capacity_train=None,
        capacity_epochs=100, capacity_gamma=4.0, capacity_increase=25.0, timing_n=2000, timing_k=1000,
        calibration=CalibrationVAE("mnist", (256,), 20, epochs=100, iwae_k=5000),
        calibration_reference="mnist_784-256-20_10ep"),
}
# paper-shape (CI): the paper's settings at toy sizes on the committed sample (`common.paper_shape`): the conv experts
# on 3x32x32 with the Gaussian decoder, 10 images per task (one per class), IWAE-3 on 10 test images per domain.
# Three epochs for the main sequence: at one, every expert is still at its initialisation, the probe scores each new
# domain like the first (ratios 0.91-0.94) and every task reuses expert 0, which leaves the pool's training, the
# assignment and the batched (vmap) evaluation of several conv experts unrun; at three, tasks 1-2 train, 3-4 reuse.
# One margin per rule: at one epoch the growth runs decide alike at every margin, and each further margin is another
# 3- or 5-task conv run (the ratio rule at 0.0 is the one that grows: kmnist -> mnist, score 1.09).
def datasets_needed(s: dict) -> list[str]:
    """The datasets notebook 01 loads under settings s (experiments/needs.py)."""
    return [*s["sequence"], *s["growth_sequence"]]


PAPER_SHAPE = dict(epochs=3, train_limit=10, test_limit=10, iwae_k=3, eval_n=10, n_seeds=1, growth_train=10,
                   growth_epochs=1, hard_train=10, hard_epochs=1, capacity_train=10, capacity_epochs=1, timing_n=8,
                   timing_k=3, thresholds=(0.1,), ratio_thresholds=(0.0,),
                   calibration=CalibrationVAE("mnist", (256,), 20, epochs=1, iwae_k=5, train_limit=1000,
                                              test_limit=100))
PAPER_SHAPE_CHANGED = {}
SETTINGS["paper-shape"] = paper_shape(SETTINGS["paper"], PAPER_SHAPE, PAPER_SHAPE_CHANGED)
# The official code's schedule: 100 epochs of batch 64 per task on the full training sets (60,000 MNIST images).
PAPER_IMAGES_PER_TASK = 100 * 60_000
# the settings that set the training budget the claims' schedules count (real images per task = epochs x images)
BUDGET_KEYS = ("epochs", "growth_epochs", "hard_epochs")


def half_budget(settings: dict) -> dict:
    """The same settings with about half the training budget the claims' schedules count: the epochs per task of
    the main sequence (and its baselines), of the growth runs and of the hard pair halved (whole epochs, rounded
    down, at least 1: a profile of 1 epoch, smoke, keeps it). The probe of the reuse test trains as long as its
    task, so it halves with it. Data, networks, seeds, evaluation, the calibration and the capacity variant (which
    feed no measured value of a claim) stay the same."""
    return settings | {k: max(1, int(settings[k]) // 2) for k in BUDGET_KEYS}


# -- configuration ---------------------------------------------------------------------------------
