"""Frechet distance in the features of a small classifier trained on the dataset itself.

Inception weights cannot be downloaded offline, and for 28x28 digits a classifier trained on the
data is the better feature extractor anyway (as in Lesort et al. 2019). The classifier is trained
once per dataset and configuration and cached on disk. The distance is the usual closed form between two
fitted Gaussians (Heusel et al. 2017), computed here rather than by pytorch-fid, whose call of
`scipy.linalg.sqrtm(..., disp=False)` fails on SciPy releases that removed `disp` (seen on a GPU image).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..results.cache import cached
from ..runtime import one_thread
from ..training.loop import TrainConfig


class FeatureClassifier(nn.Module):
    """A LeNet-style CNN; its 128-d penultimate layer gives the FID features."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, size: int = 28):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU())
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    # Batches of 128: on one CPU thread, labelling 4,000 images took 2.5 s against 3.5 s in batches of 2,000
    # (whose conv activations, 200 MB, do not fit in the cache).
    @one_thread
    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        return torch.cat([self(x[s:s + batch_size]).argmax(1) for s in range(0, x.shape[0], batch_size)])

    @one_thread
    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        return torch.cat([self.features(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)])


def train_classifier(x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig = TrainConfig(epochs=3, lr=1e-3),
                     seed: int = 0) -> FeatureClassifier:
    torch.manual_seed(seed)
    n_classes = int(y.max()) + 1
    clf = FeatureClassifier(x.shape[1], n_classes, x.shape[-1]).to(x.device)
    return fit_classifier(clf, x, y, cfg.epochs, cfg.batch_size, cfg.lr, seed)


@one_thread
def fit_classifier(clf: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, lr: float,
                   seed: int = 0) -> nn.Module:
    """Cross-entropy training with Adam over shuffled index batches; returns the model in eval mode."""
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    clf.train()
    for _ in range(epochs):
        for idx in torch.randperm(x.shape[0], generator=g).to(x.device).split(batch_size):
            loss = F.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval()


def classifier_key(name: str, train_x: torch.Tensor, epochs: int = 3, seed: int = 0) -> dict:
    """The cache key of feature_classifier (a grid that trains classifiers up front uses the same one)."""
    return {"dataset": name, "n": int(train_x.shape[0]), "shape": list(train_x.shape[1:]), "epochs": epochs,
            "seed": seed, "checksum": data_checksum(train_x[:: max(1, train_x.shape[0] // 97)])}


def data_checksum(x: torch.Tensor) -> str:
    """A digest of the bytes of x. Not a float sum: a float32 sum depends on torch's thread count (the reduction
    order), so a 2-thread notebook and its 1-thread Dask workers keyed one classifier two ways and trained it twice
    (9766.2109375 against 9766.212890625 on MNIST)."""
    return hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def classifier_state(train_x: torch.Tensor, train_y: torch.Tensor, epochs: int = 3, seed: int = 0) -> dict:
    """What feature_classifier caches: the trained classifier's state on the CPU."""
    return train_classifier(train_x, train_y, TrainConfig(epochs=epochs), seed).cpu().state_dict()


def feature_classifier(name: str, train_x: torch.Tensor, train_y: torch.Tensor, epochs: int = 3, seed: int = 0,
                       force: bool = False) -> FeatureClassifier:
    """The cached classifier for a dataset: trained on first use, reloaded afterwards."""
    state = cached("feature_classifier", classifier_key(name, train_x, epochs, seed),
                   lambda: classifier_state(train_x, train_y, epochs, seed), force=force)
    clf = FeatureClassifier(train_x.shape[1], int(train_y.max()) + 1, train_x.shape[-1]).to(train_x.device)
    clf.load_state_dict(state)
    return clf.eval()


# Test accuracy a feature classifier must reach before its FID or class labels are trusted (issue 11, item 16):
# the CNN above reaches about 99% on MNIST and 90-91% on Fashion-MNIST from the full training set.
ACCURACY_FLOORS = {"mnist": 0.98, "fashion": 0.88}


def epochs_for(n: int, epochs: int, min_passes: int = 0) -> int:
    """At least `epochs` epochs and `min_passes` image passes: the CNN needs about 150k passes to reach its floor,
    so Fashion-MNIST's 16,825 offline images need 9 epochs where MNIST's 60,000 need 3
    (benchmarks/fidelity/05_feature_classifier.json)."""
    return max(int(epochs), math.ceil(min_passes / max(int(n), 1)))


def accuracy_floor(dataset: str) -> float | None:
    """The floor for a dataset (None: no calibrated floor is known, e.g. KMNIST or Omniglot)."""
    from ..data.datasets import canonical_name

    return ACCURACY_FLOORS.get(canonical_name(dataset))


def classifier_check(classifier: FeatureClassifier, dataset: str, test_x: torch.Tensor, test_y: torch.Tensor) -> dict:
    """Test accuracy of a feature classifier against its dataset's floor: {dataset, accuracy, floor, met}."""
    acc = float((classifier.predict(test_x) == test_y).float().mean())
    floor = accuracy_floor(dataset)
    return {"dataset": dataset, "n_test": int(len(test_x)), "accuracy": acc, "floor": floor,
            "met": None if floor is None else acc >= floor}


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))."""
    a = np.asarray(features_a.detach().cpu() if torch.is_tensor(features_a) else features_a, dtype=np.float64)
    b = np.asarray(features_b.detach().cpu() if torch.is_tensor(features_b) else features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * _trace_sqrt_product(s_a, s_b))


def _trace_sqrt_product(s_a: np.ndarray, s_b: np.ndarray, eps: float = 1e-6) -> float:
    """tr((S_a S_b)^(1/2)). A singular product (fewer samples than features) can make sqrtm fail: then both
    covariances get eps on the diagonal. Round-off leaves a tiny imaginary part, which is dropped; a large
    one means the covariances are not valid and is an error."""
    from scipy import linalg  # imported here: scipy.linalg costs start-up time for every `lmvae` command

    root = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():
        offset = np.eye(len(s_a)) * eps
        root = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError(f"sqrt of the covariance product has imaginary part {np.abs(root.imag).max():.3g}")
        root = root.real
    return float(np.trace(root))


def fid(classifier: FeatureClassifier, generated: torch.Tensor, real: torch.Tensor) -> float:
    return frechet_distance(classifier.embed(generated), classifier.embed(real))


def real_fid(classifier: FeatureClassifier, real_a: torch.Tensor, real_b: torch.Tensor, n: int, seed: int = 0) -> float:
    """FID between n real images drawn from real_a and the reference set real_b: the floor a perfect generator
    would reach at this sample size (FID is biased upwards at small n), printed beside every FID table."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(real_a), generator=g)[:n].to(real_a.device)
    return fid(classifier, real_a[idx], real_b)
