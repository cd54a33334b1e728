"""Stacks of Linear weights stored in the layout their gradients arrive in.

Why: under vmap, a Linear layer whose weight is a stack W [K, out, in] runs x @ W^T as one batched product,
and its backward computes the weight gradient as x^T @ g: [K, in, out] in memory, handed to W as a
transposed view. Autograd copies such a gradient into W's own layout at every step (and the fused Adam
copies a non-contiguous stack again). On 2 CPU cores these copies took 13% of the step of 5 stacked
784-400-20 VAEs (torch.profiler: `aten::copy_` under AccumulateGrad, for the two 400x784 weights).

So a Linear weight's stack is stored transposed, [K, in, out] and contiguous, and the model reads it through
the view `as_stack(stored)`, [K, out, in]. The gradient then reaches the stored tensor contiguous and in its
layout, autograd keeps it without a copy, and Adam, being elementwise, updates the stored tensor whatever its
orientation. The values are those of the plain layout up to float rounding: a batched product that reads an operand in
another layout may sum in another order (about 1e-7 apart after two epochs of a small VAE, tested).
Other parameters (biases, conv kernels, a prior's means) keep the plain layout.
"""
from __future__ import annotations

import torch
from torch import nn


def linear_weights(module: nn.Module) -> set[str]:
    """Names (as in `named_parameters`) of the weights of the module's nn.Linear layers."""
    return {f"{name}.weight" if name else "weight" for name, m in module.named_modules() if isinstance(m, nn.Linear)}


def stored(stack: torch.Tensor) -> torch.Tensor:
    """A stack [K, out, in] of Linear weights as the tensor to keep and optimise: [K, in, out], contiguous."""
    return stack.transpose(1, 2).contiguous()


def as_stack(kept: torch.Tensor) -> torch.Tensor:
    """The stack [K, out, in] the model reads, a view of the stored [K, in, out] tensor."""
    return kept.transpose(1, 2)


def as_stacks(kept: dict[str, torch.Tensor | None], transposed: set[str]) -> dict[str, torch.Tensor | None]:
    """Every kept tensor (or gradient) in the model's layout: `as_stack` for the names in `transposed`, the others
    as they are (None stays None)."""
    return {k: as_stack(v) if k in transposed and v is not None else v for k, v in kept.items()}


__all__ = ["as_stack", "as_stacks", "linear_weights", "stored"]
