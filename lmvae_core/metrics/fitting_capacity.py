"""Fitting capacity (Lesort et al. 2019): how well a classifier trained only on generated, labelled samples
classifies the real test set.

As in Lesort et al., the generated training set has the size of the real training set ("full-size") and the
classifier is early-stopped on a validation split. The validation split is held out from the generated set,
so no real image informs the classifier trained on generated data; the real test set is touched once, by the
selected state. `real_fitting_capacity` runs the same procedure on real training images: the ceiling that
generated data is read against.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import one_thread


class MLPClassifier(nn.Module):
    def __init__(self, n_classes: int, in_dim: int = 784, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.net(x)


@torch.no_grad()
def accuracy(clf: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    if len(x) == 0:
        return float("nan")
    pred = torch.cat([clf(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    return float((pred == y).float().mean())


def fit_early_stopped(clf: nn.Module, x: torch.Tensor, y: torch.Tensor, val_fraction: float = 0.1,
                      max_epochs: int = 50, patience: int = 3, batch_size: int = 100, lr: float = 1e-3,
                      seed: int = 0) -> tuple[nn.Module, dict]:
    """Adam on a shuffled (1 - val_fraction) split, one validation accuracy per epoch, the best state kept;
    stops after `patience` epochs without improvement. Returns the classifier at its best state and a log."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g).to(x.device)
    n_val = max(1, int(round(val_fraction * len(x))))
    val, tr = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    best, best_state, since, epochs = -1.0, copy.deepcopy(clf.state_dict()), 0, 0
    for epoch in range(max_epochs):
        clf.train()
        for idx in tr[torch.randperm(len(tr), generator=g).to(x.device)].split(batch_size):
            loss = F.cross_entropy(clf(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        clf.eval()
        acc = accuracy(clf, x[val], y[val])  # one host sync per epoch, not per step
        epochs = epoch + 1
        if acc > best:
            best, best_state, since = acc, copy.deepcopy(clf.state_dict()), 0
        else:
            since += 1
            if since >= patience:
                break
    clf.load_state_dict(best_state)
    return clf.eval(), {"epochs": epochs, "val_accuracy": best}


@one_thread  # the classifier's training depends on the thread count (runtime.RESULT_THREADS)
def fitting_capacity(gen_x: torch.Tensor, gen_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                     n_classes: int, max_epochs: int = 50, batch: int = 100, seed: int = 0,
                     val_fraction: float = 0.1, patience: int = 3) -> float:
    """Accuracy on the real test set of a classifier trained only on (generated, labelled) images, early-stopped
    on a held-out split of the generated images."""
    torch.manual_seed(seed)
    clf = MLPClassifier(n_classes, gen_x[0].numel()).to(gen_x.device)
    clf, _ = fit_early_stopped(clf, gen_x, gen_y, val_fraction, max_epochs, patience, batch, seed=seed)
    return accuracy(clf, test_x, test_y)


def fitting_set_size(n_train: int, cap: int | None = None) -> int:
    """How many generated (and, for the ceiling, real) images fitting capacity trains on: as many as the real
    training set (Lesort et al.'s "full-size", cap None), or at most `cap`, which makes the metric cheaper."""
    return n_train if cap is None else min(cap, n_train)


def real_fitting_capacity(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                          n_classes: int, **kwargs) -> float:
    """The same procedure on real training images: what a perfect generator would score."""
    return fitting_capacity(train_x, train_y, test_x, test_y, n_classes, **kwargs)
