"""Fitting capacity (Lesort et al. 2019): how well a classifier trained only on generated, labelled
samples classifies the real test set."""
from __future__ import annotations

import torch
from torch import nn

from .fid import fit_classifier


class MLPClassifier(nn.Module):
    def __init__(self, n_classes: int, in_dim: int = 784, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.net(x)


def fitting_capacity(gen_x: torch.Tensor, gen_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                     n_classes: int, epochs: int = 20, batch: int = 100, seed: int = 0) -> float:
    """Accuracy on the real test set of a classifier trained only on (generated, labelled) images."""
    torch.manual_seed(seed)
    clf = MLPClassifier(n_classes, gen_x[0].numel()).to(gen_x.device)
    fit_classifier(clf, gen_x, gen_y, epochs, batch, lr=1e-3, seed=seed)
    with torch.no_grad():
        pred = torch.cat([clf(test_x[i:i + 2000]).argmax(1) for i in range(0, len(test_x), 2000)])
    return float((pred == test_y).float().mean())
