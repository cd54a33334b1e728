"""Plot helpers: image grids, labelled heatmaps (task matrices, confusion matrices), curves."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int = 10, pad: int = 1) -> np.ndarray:
    """[N, C, H, W] in [0,1] -> one H x W (x 3) array with `nrow` images per row."""
    x = images.detach().float().cpu().clamp(0, 1)
    n, c, h, w = x.shape
    ncol = nrow
    nrows = -(-n // ncol)
    grid = torch.ones(c, nrows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    arr = grid.permute(1, 2, 0).numpy()
    return arr[..., 0] if c == 1 else arr


def show_images(images: torch.Tensor, nrow: int = 10, ax=None, title: str = "", row_labels: Sequence[str] = ()):
    ax = ax or plt.subplots(figsize=(nrow * 0.6, max(1, -(-images.shape[0] // nrow)) * 0.6))[1]
    ax.imshow(image_grid(images, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    if row_labels:
        h = images.shape[-2] + 1
        ax.set_yticks([1 + h * (i + 0.5) for i in range(len(row_labels))], list(row_labels), fontsize=8)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax.figure


def heatmap(matrix, row_labels: Sequence[str], col_labels: Sequence[str], ax=None, title: str = "",
            fmt: str = "{:.1f}", cmap: str = "viridis", xlabel: str = "", ylabel: str = ""):
    m = np.asarray(matrix, dtype=float)
    ax = ax or plt.subplots(figsize=(1 + 0.6 * m.shape[1], 0.8 + 0.5 * m.shape[0]))[1]
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    ax.set_xticks(range(m.shape[1]), list(col_labels), rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(m.shape[0]), list(row_labels), fontsize=8)
    finite = m[np.isfinite(m)]
    mid = (finite.max() + finite.min()) / 2 if finite.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if m[i, j] < mid else "black")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax.figure


def curves(series: dict[str, Sequence[float]], ax=None, title: str = "", xlabel: str = "", ylabel: str = "",
           x: Sequence | None = None):
    ax = ax or plt.subplots(figsize=(5, 3.2))[1]
    for name, ys in series.items():
        ax.plot(x if x is not None else range(1, len(ys) + 1), ys, marker="o", ms=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure
