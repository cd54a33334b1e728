"""Fully connected encoders and decoders for images of any shape (flattened)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x -> hidden layers -> (mu, logvar) of a diagonal Gaussian."""

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], latent_dim: int, act: str = "relu"):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), mlp([math.prod(input_shape), *hidden], act), activation(act))
        self.head = nn.Linear(hidden[-1], 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=-1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """z -> hidden layers -> one output per pixel, reshaped to the image."""

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int], latent_dim: int, act: str = "relu"):
        super().__init__()
        self.shape = tuple(input_shape)
        self.net = mlp([latent_dim, *reversed(hidden), math.prod(input_shape)], act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(*z.shape[:-1], *self.shape)
