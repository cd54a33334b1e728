"""Preprocessing on device tensors: [0,1] floats, binarisation, resizing to 32x32 RGB."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0,255] -> float32 [0,1]."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()


def binarize_dynamic(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli draw with the pixel intensities as probabilities (resampled every epoch).

    On a CPU as uniform < p, the same distribution as torch.bernoulli (which draws that way too), because
    torch.bernoulli draws there pixel by pixel on one thread: 14 ns a pixel, 0.67 s for an epoch of MNIST, a
    quarter of the 784-400-20 VAE's epoch on 2 threads; uniform_ then lt_ take 4.7 ns. On CUDA, torch.bernoulli
    (one kernel). The training-time draws of every method go through here; the fixed evaluation draws
    (`binarize_static`, `binarize_fixed`) keep torch.bernoulli, so the test sets stay the same images."""
    if x.device.type != "cpu":
        return torch.bernoulli(x, generator=generator)
    return torch.empty_like(x).uniform_(generator=generator).lt_(x)


def binarize_static(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One fixed Bernoulli draw, the same for every call with the same seed."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    return torch.bernoulli(x, generator=g)


TEST_SEED = 123  # every notebook's evaluation images are binarised with this seed


def binarize_fixed(x: torch.Tensor, seed: int = TEST_SEED) -> torch.Tensor:
    """The evaluation test set: one static draw with the shared test seed, so every method and every notebook
    scores the same binary images."""
    return binarize_static(x, seed)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def to_rgb32(x: torch.Tensor) -> torch.Tensor:
    """Resize to 32x32 and replicate grey images to three channels, for the 3x32x32 models."""
    x = resize(x, 32)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def prepare(images_uint8: torch.Tensor, device: torch.device, size: int | None = None,
            rgb: bool = False) -> torch.Tensor:
    """uint8 on the CPU -> float [0,1] on the device, optionally resized and made RGB. Done once per dataset."""
    x = to_unit(images_uint8.to(device))
    if rgb:
        x = to_rgb32(x) if size in (None, 32) else resize(x, size).expand(-1, 3, -1, -1).contiguous()
    elif size is not None:
        x = resize(x, size)
    return x
