"""How much bfloat16 autocast changes a trained model's test log-likelihood.

Paper runs on a GPU may train with `TrainConfig(autocast='bf16')`. Before trusting numbers from
such runs, `precision_gap` evaluates the IWAE bound of one trained model twice on the same images
with the same importance samples, once in float32 and once under bf16 autocast, and reports the
difference in nats per image.
"""
from __future__ import annotations

import torch
from torch import nn


def precision_gap(model: nn.Module, x: torch.Tensor, k: int = 100, batch_size: int = 500, seed: int = 0,
                  dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Mean IWAE log p(x) in fp32 and under autocast(dtype), same seed; diff = low precision - fp32."""
    from ..metrics.loglik import iwae_log_likelihood  # metrics imports training: import here, not at the top

    was_training = model.training
    model.eval()
    fp32 = iwae_log_likelihood(model, x, k=k, batch_size=batch_size, generator_seed=seed)
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
        low = iwae_log_likelihood(model, x, k=k, batch_size=batch_size, generator_seed=seed).float()
    model.train(was_training)
    return {"fp32": float(fp32.mean()), str(dtype).removeprefix("torch."): float(low.mean()),
            "diff": float((low - fp32).mean()), "max_abs_diff_per_image": float((low - fp32).abs().max()),
            "k": k, "images": int(x.shape[0]), "device": x.device.type}
