"""Latent codes: posterior means in batches, Sarle's bimodality coefficient, a closed-form linear probe of
how much label information the means carry, and traversals of single dimensions."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


@torch.no_grad()
def latent_means(model, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    return torch.cat([model.encode(x[i:i + batch_size])[0] for i in range(0, x.shape[0], batch_size)])


def bimodality_coefficient(v: np.ndarray) -> float:
    """Sarle's bimodality coefficient; above 5/9 (a uniform distribution) suggests two modes."""
    from scipy import stats  # here: scipy.stats costs a second at every `lmvae` start-up

    n = len(v)
    g, k = stats.skew(v, bias=False), stats.kurtosis(v, bias=False)
    return float((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


@torch.no_grad()
def linear_probe(f_train: torch.Tensor, y_train: torch.Tensor, f_test: torch.Tensor, y_test: torch.Tensor,
                 ridge: float = 1e-2) -> float:
    """Test accuracy of a linear classifier on standardised latent means: ridge regression onto one-hot
    labels (closed form, so it is cheap and deterministic), argmax prediction."""
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    a = torch.cat([(f_train - mean) / std, torch.ones(len(f_train), 1, device=f_train.device)], 1).double()
    b = torch.cat([(f_test - mean) / std, torch.ones(len(f_test), 1, device=f_test.device)], 1).double()
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    target = F.one_hot(y_train, n_classes).double()
    w = torch.linalg.solve(a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=a.dtype, device=a.device),
                           a.T @ target)
    return float(((b @ w).argmax(1) == y_test).float().mean())


@torch.no_grad()
def traversal(model, x: torch.Tensor, dims: list[int], values: torch.Tensor) -> torch.Tensor:
    """Decode the posterior mean of one image with one dimension at a time set to each value:
    [len(dims) * len(values), C, H, W], one row per dimension."""
    mu = model.encode(x[:1])[0][0]
    z = mu.repeat(len(dims) * len(values), 1)
    for i, d in enumerate(dims):
        z[i * len(values):(i + 1) * len(values), d] = values.to(z)
    return torch.sigmoid(model.decode(z))  # the decoder's mean image (both likelihoods of the package)
