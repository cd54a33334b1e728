"""Counting the operations a training step dispatches: on a GPU an eager step costs about one kernel launch per
operation, so the count (with the FLOPs) is what the paper-cost projection rests on (benchmarks/paper_cost.py), and
what the GPU benchmark records beside its timing (benchmarks/train_speed.py)."""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..models import VAE, fused_vae
from .loop import TrainConfig, make_optimizer
from .step import train_step


class OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched, views left out (they launch no kernel)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not getattr(func, "is_view", False):
            self.ops += 1
        return func(*args, **(kwargs or {}))


def eager_step_ops(batch: int = 128) -> int:
    """Operations one eager training step of the speed benchmark's 784-400-20 VAE dispatches, through the package's
    own step and optimiser."""
    model = VAE(hidden=(400,), latent_dim=20)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, x = make_optimizer(params, TrainConfig()), torch.bernoulli(torch.rand(batch, 1, 28, 28))
    with fused_vae.disabled():  # the path a GPU takes (the fused loss is the CPU's; 78 operations there, 80 here)
        train_step(model.loss, x, opt, params)  # Adam's state is created on the first step
        with OpCounter() as counter:
            train_step(model.loss, x, opt, params)
    return counter.ops


__all__ = ["OpCounter", "eager_step_ops"]
