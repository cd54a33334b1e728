"""Notebook 00's settings per profile (typed: experiments/settings.py), what the paper-shape profile scales, the
datasets each profile loads, and the training budgets the half-budget check halves."""
from __future__ import annotations

from dataclasses import dataclass

from ...experiments.common import paper_shape
from ...experiments.settings import Settings

# `fashion_images`: the Fashion mixture's and its plain VAE's budget in images seen, as many epochs as reach it
# (`epochs_for`): the offline Fashion-MNIST training split has 16,825 images, not 60,000, so the quick profile's 570k
# images (about the 600k of its 10 MNIST epochs) are 34 epochs there, 10 on the full split. Without it, `epochs`.
# `ablation_epochs` is even so that its half-budget run (`half_budget`) is exactly half.
@dataclass(frozen=True, eq=False)
class MixtureSettings(Settings):
    """Notebook 00's settings for one profile."""
    datasets: tuple[str, ...]  # the datasets each mixture is trained and scored on
    n_experts: int  # experts of the mixture (the post's 10)
    hidden: int  # hidden units of each expert's and the manager's one hidden layer
    latent: int  # each expert's latent dimension
    epochs: int  # the mixtures' and plain VAEs' epochs (where `<dataset>_images` is not set)
    batch: int
    iwae_k: int  # importance samples of the IWAE log-likelihoods
    iwae_n: int  # test images they are scored on
    ablation_seeds: tuple[int, ...]  # seeds of the balancing ablation
    ablation_epochs: int  # its epochs (even, so that the half budget is exactly half)
    ablation_train: int  # its training images
    beyond_components: tuple[int, ...]  # components of the mixture prior (the step beyond the post)
    beyond_epochs: int
    joint: dict  # the jointly trained VAE of calibration.py (JointVAE's fields, the dataset aside)
    fashion_images: int | None = None  # Fashion's budget in images seen (`epochs_for`); None: `epochs`


SETTINGS = {
    "smoke": MixtureSettings(datasets=("mnist", "fashion"), n_experts=10, hidden=64, latent=8, epochs=1, batch=128,
                             iwae_k=10, iwae_n=200, ablation_seeds=(0, 1), ablation_epochs=1, ablation_train=1000,
                             beyond_components=(10, 20), beyond_epochs=1,
                             joint=dict(hidden=(64,), latent=8, epochs=1, iwae_k=10)),
    "quick": MixtureSettings(datasets=("mnist", "fashion"), n_experts=10, hidden=256, latent=10, epochs=10,
                             fashion_images=570_000, batch=128, iwae_k=500, iwae_n=1000, ablation_seeds=(0, 1, 2),
                             ablation_epochs=4, ablation_train=10000, beyond_components=(10, 50), beyond_epochs=3,
                             joint=dict(hidden=(256,), latent=10, epochs=10, iwae_k=500)),
    # the post's widths and schedule (its likelihood, activation and balancing term differ: see the notebook)
    "paper": MixtureSettings(datasets=("mnist", "fashion"), n_experts=10, hidden=128, latent=10, epochs=100,
                             batch=100, iwae_k=5000, iwae_n=10000, ablation_seeds=(0, 1, 2, 3, 4), ablation_epochs=10,
                             ablation_train=60000, beyond_components=(10, 50), beyond_epochs=20,
                             joint=dict(hidden=(128,), latent=10, epochs=100, batch_size=100, iwae_k=5000)),
}
# paper-shape (CI): the paper's settings at toy sizes on the committed sample (`common.paper_shape`). The paper sets
# no image limit, so the mixtures and plain VAEs train one epoch on the whole sample (3,000 MNIST, 2,000 Fashion).
def datasets_needed(s: dict) -> list[str]:
    """The datasets notebook 00 loads under settings s (experiments/needs.py): the balancing ablation runs on MNIST."""
    return [*s["datasets"], "mnist"]


PAPER_SHAPE = dict(epochs=1, iwae_k=5, iwae_n=100, ablation_seeds=(0,), ablation_epochs=1, ablation_train=500,
                   beyond_epochs=1, joint=dict(SETTINGS["paper"]["joint"], epochs=1, iwae_k=5))
PAPER_SHAPE_CHANGED = {}
SETTINGS["paper-shape"] = paper_shape(SETTINGS["paper"], PAPER_SHAPE, PAPER_SHAPE_CHANGED)
# The training budgets the claims' schedules count; `half_budget` halves them and nothing else.
BUDGET_KEYS = ("epochs", "fashion_images", "ablation_epochs", "beyond_epochs")


def epochs_for(s: dict, dataset: str, n: int) -> int:
    """The epochs of the mixture (and of its plain VAE) on a dataset of n training images: as many as reach
    `<dataset>_images` images seen (at least one) where the profile sets it, else `epochs`."""
    images = s.get(f"{dataset}_images")
    return s["epochs"] if images is None else max(1, round(images / n))


def half_budget(settings: dict) -> dict:
    """The same settings with every training budget the claims count halved (at least one epoch): the mixtures'
    epochs on each dataset, the ablation's and the mixture prior's. Networks, data, seeds and evaluation are kept,
    so the half-budget run is the same experiment stopped at about half its schedule."""
    return settings | {k: max(1, settings[k] // 2) for k in BUDGET_KEYS if settings.get(k) is not None}
