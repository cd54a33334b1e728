"""Notebook 02's settings per profile (typed: experiments/settings.py), what the paper-shape profile scales, the
datasets each profile loads, the regulariser study's settings and the half-budget settings."""
from __future__ import annotations

from dataclasses import dataclass

from ...experiments.calibration import JointVAE
from ...experiments.common import paper_shape
from ...experiments.settings import Settings


@dataclass(frozen=True, eq=False)
class LGMSettings(Settings):
    """Notebook 02's settings for one profile."""
    datasets: tuple[str, ...]  # the split (class-incremental) streams' datasets
    methods: tuple[str, ...]  # the methods run on them (METHOD_LABELS)
    hidden: tuple[int, ...]  # the LGM's hidden layers
    latent: int  # its continuous latent dimension
    epochs: int  # passes over each task's real data (`budget`)
    batch: int  # real rows per step
    ewc_gamma: float  # EWC's penalty weight
    fisher_samples: int  # images of EWC's Fisher estimate
    iwae_k: int  # importance samples of the IWAE bound
    iwae_n: int  # cumulative test images it is scored on (a class-balanced subset)
    fid_n: int  # samples and real test images of each FID
    fid_train: int | None  # the feature classifier's training images (None: all)
    fid_epochs: int  # its epochs (at least clf_min_passes image passes)
    clf_min_passes: int
    gammas: tuple[float, ...]  # gamma_c values of the ablation
    ablation_dataset: str  # its split stream
    perm_tasks: int  # tasks of permuted MNIST
    perm_train: int  # its training images per task
    perm_test: int  # its test images per task
    perm_methods: tuple[str, ...]  # the methods run on it
    seeds: tuple[int, ...]
    sample_n: int  # prior samples whose classes are counted after the last task
    pass_rate: float  # a sample counts for a class when the classifier is as sure as on this share of real images
    joint: JointVAE  # the jointly trained VAE of calibration.py
    study: dict | None  # the regulariser study's overrides of these settings (`study_settings`; None: none)
    lr: float = 1e-3  # Adam's learning rate
    max_steps: int | None = None  # at most this many steps per task (None: no cap)
    task_share: float = 1.0  # the share of each task's steps a run gets (below 1 only in `half_budget`'s runs)
    eval_every_task: bool = True  # False: evaluate after the last task only (the study)


SETTINGS = {
    "smoke": LGMSettings(
        datasets=("mnist",), methods=("lgm", "replay", "naive", "ewc", "full"), hidden=(32,),
        latent=4, epochs=1, max_steps=3, batch=50, ewc_gamma=10.0, fisher_samples=16, iwae_k=4, iwae_n=50,
        fid_n=150, fid_train=1000, fid_epochs=1, clf_min_passes=0, gammas=(0.0, 1.0),
        ablation_dataset="mnist",
        perm_tasks=2, perm_train=300, perm_test=100, perm_methods=("lgm", "naive"), seeds=(0,),
        sample_n=200, pass_rate=0.95, study=dict(seeds=(0, 1), methods=("lgm", "replay", "ewc")),
        joint=JointVAE("mnist", (32,), 4, epochs=1, batch_size=50, iwae_k=4, test_limit=100)),
    "quick": LGMSettings(
        datasets=("mnist", "fashion"), methods=("lgm", "replay", "naive", "ewc", "full"), hidden=(200,),
        latent=20, epochs=1, max_steps=None, batch=64, lr=2e-3, ewc_gamma=10.0, fisher_samples=128,
        iwae_k=50, iwae_n=500, fid_n=500, fid_train=None, fid_epochs=3,
        clf_min_passes=150_000, gammas=(0.0, 1.0, 10.0), ablation_dataset="mnist",
        perm_tasks=5, perm_train=12000, perm_test=1000, perm_methods=("lgm", "replay", "naive"),
        seeds=(0, 1, 2), sample_n=1000, pass_rate=0.95, joint=JointVAE("mnist", (200,), 20, epochs=10, iwae_k=500),
        study=dict(epochs=5, seeds=tuple(range(8)), methods=("lgm", "replay", "ewc"), gammas=(0.0, 1.0, 10.0),
                   eval_every_task=False)),
    "paper": LGMSettings(
        datasets=("mnist", "fashion"), methods=("lgm", "replay", "naive", "ewc", "full"),
        hidden=(512, 512), latent=40, epochs=50, batch=300, ewc_gamma=10.0, fisher_samples=1024,
        iwae_k=5000, iwae_n=2000, fid_n=5000, fid_train=None, fid_epochs=5, clf_min_passes=300_000,
        gammas=(0.0, 0.1, 1.0, 10.0), ablation_dataset="mnist", perm_tasks=5, perm_train=60000,
        perm_test=10000, perm_methods=("lgm", "replay", "naive", "ewc", "full"), seeds=(0, 1, 2),
        sample_n=5000, pass_rate=0.95, joint=JointVAE("mnist", (512, 512), 40, epochs=10, iwae_k=5000),
        study=dict(methods=("lgm", "replay", "ewc"))),
}
# paper-shape (CI): the paper's settings at toy sizes on the committed sample (`common.paper_shape`). The split
# streams take the whole sample (the paper has no image limit): one batch of 300 per task and epoch. Two epochs, so
# that half_budget halves the epochs as in the paper (at one epoch its task_share cap would still be one step).
def datasets_needed(s: dict) -> list[str]:
    """The datasets notebook 02 loads under settings s (experiments/needs.py): permuted MNIST and its classifier
    use MNIST in every profile."""
    return [*s["datasets"], s["ablation_dataset"], "mnist"]


PAPER_SHAPE = dict(epochs=2, seeds=(0,), fisher_samples=16, iwae_k=2, iwae_n=10, fid_n=30, fid_train=200,
                   fid_epochs=1, clf_min_passes=0, perm_tasks=2, perm_train=300, perm_test=100, sample_n=50,
                   joint=JointVAE("mnist", (512, 512), 40, epochs=1, iwae_k=2, train_limit=300, test_limit=100))
# 22 ten-task streams (main, gamma_c ablation, half budgets) of 3.5-4.5 s each on a CPU even at toy sizes, mostly
# per-task evaluation that no size scales: split MNIST alone and two gamma_c keep the notebook within CI's budget.
PAPER_SHAPE_CHANGED = {
    "datasets": (("mnist",), "split Fashion runs the same code on another dataset (its partial last batch aside), "
                             "and each ten-task stream costs about 4 s of evaluation on a CPU however small"),
    "gammas": ((0.0, 1.0), "the gamma_c ablation runs one ten-task stream per value: 0 (plain replay) and 1 (the "
                           "paper's) exercise both sides of the consistency term"),
}
SETTINGS["paper-shape"] = paper_shape(SETTINGS["paper"], PAPER_SHAPE, PAPER_SHAPE_CHANGED)


def study_settings(s: dict) -> dict:
    """The settings of the regulariser study (LGM against plain replay, EWC and other gamma_c): the profile's own,
    overridden by its `study` entry. Quick runs the study longer and with more seeds than the overview (5 epochs
    per task, 8 seeds: at 1 epoch and 3 seeds the replay-minus-LGM interval spanned 0 on both datasets) and
    evaluates only after the last task, which is all its claims read; paper's study is its main runs (the same
    cache keys)."""
    return s | dict(s.get("study") or {}) | {"study": None}


def half_budget(s: dict) -> dict:
    """The settings with the real data per task halved and nothing else changed (networks, evaluation, seeds,
    data, classifier): half the epochs when there are two or more (and half of a `max_steps` cap with them),
    else half of a `max_steps` cap, else (one full epoch) half of each task's steps through `task_share`."""
    max_steps = s["max_steps"]
    if s["epochs"] >= 2:
        changes = {"epochs": s["epochs"] // 2} | ({} if max_steps is None else {"max_steps": max(1, max_steps // 2)})
    elif max_steps is not None:
        changes = {"max_steps": max(1, max_steps // 2)}
    else:
        changes = {"task_share": 0.5 * s["task_share"]}
    return s | changes
