"""Frechet distance in the features of a small classifier trained on the dataset itself.

Inception weights cannot be downloaded offline, and for 28x28 digits a classifier trained on the
data is the better feature extractor anyway (as in Lesort et al. 2019). The classifier (nets.classifier) is
trained once per dataset and configuration and cached on disk by training.classifier; this module only measures
with it. The distance is the usual closed form between two
fitted Gaussians (Heusel et al. 2017), computed here rather than by pytorch-fid, whose call of
`scipy.linalg.sqrtm(..., disp=False)` fails on SciPy releases that removed `disp` (seen on a GPU image).
"""
from __future__ import annotations

import numpy as np
import torch

from ..nets.classifier import FeatureClassifier

# Test accuracy a feature classifier must reach before its FID or class labels are trusted (issue 11, item 16):
# the CNN of nets.classifier reaches about 99% on MNIST and 90-91% on Fashion-MNIST from the full training set.
ACCURACY_FLOORS = {"mnist": 0.98, "fashion": 0.88}


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
