"""Decoder likelihoods p(x|z), summed over pixels: one number per image, in nats."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")


def log_likelihood(kind: str, x: torch.Tensor, out: torch.Tensor, gaussian_std: float = 0.1) -> torch.Tensor:
    """log p(x|z) per image. `out` holds Bernoulli logits, or Gaussian means before a sigmoid.

    x has shape [B, C, H, W]; out may carry leading sample dimensions [..., B, C, H, W].
    """
    n_pix = x[0].numel()
    if kind == "bernoulli":
        ll = -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none")
    elif kind == "gaussian":
        mean = torch.sigmoid(out)
        ll = -0.5 * ((x - mean) / gaussian_std) ** 2 - math.log(gaussian_std) - 0.5 * math.log(2 * math.pi)
    else:
        raise ValueError(f"unknown likelihood {kind!r}; known: {LIKELIHOODS}")
    return ll.reshape(*ll.shape[: ll.dim() - x.dim() + 1], n_pix).sum(-1)


def mean_image(kind: str, out: torch.Tensor) -> torch.Tensor:
    """The decoder's mean in image space: Bernoulli probabilities or Gaussian means, both in [0,1]."""
    return torch.sigmoid(out)
