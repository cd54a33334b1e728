"""Negative ELBO and reconstruction error, averaged over a test set in nats (or squared error) per image."""
from __future__ import annotations

import torch


@torch.no_grad()
def negative_elbo(model, x: torch.Tensor, batch_size: int = 1000) -> float:
    """-ELBO per image (one posterior sample per image), averaged."""
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        total += float(-model.terms(x[start:start + batch_size])["elbo"].sum())
    return total / x.shape[0]


@torch.no_grad()
def reconstruction_error(model, x: torch.Tensor, batch_size: int = 1000) -> float:
    """Summed squared pixel error per image between x and its reconstruction at the posterior mean."""
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        total += float(model.reconstruction_error(x[start:start + batch_size]).sum())
    return total / x.shape[0]
