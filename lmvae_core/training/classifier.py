"""Training the feature classifier of metrics.fid (nets.classifier) on a dataset, cached on disk per dataset and
configuration: FID and class labels of generated images need it, but training a network is not a metric's job."""
from __future__ import annotations

import hashlib
import math

import torch
from torch import nn
import torch.nn.functional as F

from ..nets.classifier import FeatureClassifier
from ..results.cache import cached
from ..runtime import one_thread
from .loop import TrainConfig


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


def epochs_for(n: int, epochs: int, min_passes: int = 0) -> int:
    """At least `epochs` epochs and `min_passes` image passes: the CNN needs about 150k passes to reach its floor,
    so Fashion-MNIST's 16,825 offline images need 9 epochs where MNIST's 60,000 need 3
    (lmvae_core/papers/benchmark/fidelity/feature_classifier.json)."""
    return max(int(epochs), math.ceil(min_passes / max(int(n), 1)))
