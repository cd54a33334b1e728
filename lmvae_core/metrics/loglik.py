"""Test log-likelihood by importance sampling (the IWAE bound), batched and chunked on the device.

log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k|x),  z_k ~ q(z|x).
The bound tightens as K grows and equals log p(x) when q is the exact posterior. Samples are
drawn in chunks and merged with a running logsumexp, so K=5000 fits in memory for any batch.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..bars import bar as progress_bar

LogWeightFn = Callable[[torch.Tensor, int], torch.Tensor]  # (x [B,...], k) -> log weights [k, B]


@torch.no_grad()
def iwae_log_likelihood(model_or_fn, x: torch.Tensor, k: int = 5000, batch_size: int = 500,
                        chunk: int | None = None, progress: bool = False,
                        generator_seed: int | None = None, sample_dim: int = 0) -> torch.Tensor:
    """Per-image IWAE estimate of log p(x) in nats, shape [N] (or [K, N] for K models at once).

    model_or_fn: a model with `log_weights(x, k)` (every VAE in the package) or such a function.
    chunk: samples drawn at once; by default sized so one chunk holds about 2.5M image-sample pairs' outputs.
    sample_dim: the axis of the samples in what model_or_fn returns; 1 for stacked models whose log
    weights are [K, k, B] (e.g. ExpertMixture.all_experts(op="log_weights")), the batch axis always last.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    fn: LogWeightFn = model_or_fn.log_weights if hasattr(model_or_fn, "log_weights") else model_or_fn
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    n_pix = max(1, x[0].numel())
    out = []
    batches = range(0, x.shape[0], batch_size)
    for start in progress_bar(batches, desc=f"IWAE k={k}", disable=not progress, leave=False):
        xb = x[start:start + batch_size]
        step = chunk or max(1, min(k, 2_500_000 // (n_pix * xb.shape[0]) or 1))
        running = None
        for s in range(0, k, step):
            lw = fn(xb, min(step, k - s))
            part = torch.logsumexp(lw, dim=sample_dim)
            running = part if running is None else torch.logaddexp(running, part)
        out.append(running - math.log(k))
    return torch.cat(out, dim=-1)


@torch.no_grad()
def mean_iwae(model_or_fn, x: torch.Tensor, k: int = 5000, **kwargs) -> float:
    return float(iwae_log_likelihood(model_or_fn, x, k, **kwargs).mean())


def mixture_log_likelihood(per_component: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """log sum_i w_i p_i(x) from per-component log-likelihoods [K, N] and weights [K] (normalised here; zero
    weights drop out). With each p_i an IWAE lower bound, the result is a lower bound on the mixture's log p(x)."""
    w = weights.to(per_component) / weights.sum()
    keep = w > 0
    return torch.logsumexp(per_component[keep] + w[keep].log()[:, None], dim=0)
