"""Convolutional encoders and decoders for square images (28x28, 32x32, 64x64).

No batch normalisation: frozen experts evaluated in one batched (vmapped) computation must not
update running statistics, and a mixture must give the same output for an input whatever else
is in the batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mlp import activation


def _spatial_after(size: int, n_layers: int) -> int:
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions halve the image per layer, then a dense layer and the (mu, logvar) heads."""

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], hidden: int, latent_dim: int,
                 act: str = "leaky_relu"):
        super().__init__()
        c, h, w = input_shape
        if h != w:
            raise ValueError(f"ConvEncoder expects square images, got {h}x{w}")
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(c, out, 4, 2, 1), activation(act)]
            c = out
        s = _spatial_after(h, len(channels))
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, hidden), activation(act))
        self.head = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=-1)
        return mu, logvar


class ConvDecoder(nn.Module):
    """Dense layers to a small feature map, then stride-2 transposed convolutions back to the image size."""

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int], hidden: int, latent_dim: int,
                 act: str = "leaky_relu"):
        super().__init__()
        c_out, h, _ = input_shape
        chans = list(reversed(channels))
        self.s = _spatial_after(h, len(channels))
        self.c0 = chans[0]
        self.dense = nn.Sequential(nn.Linear(latent_dim, hidden), activation(act),
                                   nn.Linear(hidden, self.c0 * self.s * self.s), activation(act))
        layers: list[nn.Module] = []
        size = self.s
        for i, c in enumerate(chans):
            nxt = chans[i + 1] if i + 1 < len(chans) else c_out
            target = h // 2 ** (len(chans) - i - 1)
            # output_padding recovers odd sizes such as 7 -> 14 -> 28 versus 4 -> 7.
            out_pad = target - (2 * size)
            layers.append(nn.ConvTranspose2d(c, nxt, 4, 2, 1, output_padding=max(out_pad, 0)))
            if i + 1 < len(chans):
                layers.append(activation(act))
            size = target
        self.net = nn.Sequential(*layers)
        self.out_hw = h

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.dense(z.reshape(-1, z.shape[-1])).view(-1, self.c0, self.s, self.s)
        out = self.net(h)
        return out.view(*lead, *out.shape[1:])
