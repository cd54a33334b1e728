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
    """Annotated heatmap (task matrices, confusion matrices) through seaborn; NaN cells are left blank."""
    import seaborn as sns

    m = np.asarray(matrix, dtype=float)
    ax = ax or plt.subplots(figsize=(1 + 0.6 * m.shape[1], 0.8 + 0.5 * m.shape[0]))[1]
    labels = np.array([[fmt.format(v) if np.isfinite(v) else "" for v in row] for row in m])
    sns.heatmap(m, ax=ax, cmap=cmap, annot=labels, fmt="", annot_kws={"fontsize": 7}, mask=~np.isfinite(m),
                xticklabels=list(col_labels), yticklabels=list(row_labels), cbar_kws={"fraction": 0.046})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax.figure


def bars_over_seeds(frame, x: str, y: str, panel: str | None = None, reference: dict | None = None,
                    reference_label: str = "paper", ylabel: str = "", hline: float | None = None,
                    ci: float = 95, width: float = 5.0):
    """Mean over seeds as bars with a bootstrap confidence interval (seaborn), one panel per value of `panel`.

    frame: one row per seed (and x, panel); reference: {(panel value, x value): number} drawn as markers
    (e.g. the paper's numbers); hline: a horizontal reference line (e.g. uniform usage)."""
    import seaborn as sns

    panels = list(dict.fromkeys(frame[panel])) if panel else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.2), squeeze=False)
    for ax, value in zip(axes[0], panels):
        part = frame[frame[panel] == value] if panel else frame
        order = list(dict.fromkeys(part[x]))
        # one seed gives no interval: seaborn then draws the bar alone
        sns.barplot(part, x=x, y=y, order=order, ax=ax, errorbar=("ci", ci), seed=0, capsize=0.15,
                    color=sns.color_palette()[0], label="ours (mean, {:g}% CI over seeds)".format(ci))
        if reference:
            ref = [reference.get((value, k), np.nan) if panel else reference.get(k, np.nan) for k in order]
            if np.isfinite(np.asarray(ref, dtype=float)).any():
                ax.scatter(range(len(order)), ref, marker="D", color="C3", zorder=3, label=reference_label)
        if hline is not None:
            ax.axhline(hline, color="k", ls="--", lw=0.8)
        ax.set_xticks(range(len(order)), [str(k).replace("-", "-\n", 1) for k in order], fontsize=7)
        ax.set_title(str(value) if panel else "")
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel or y)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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


def value_against_budget(claims, ncols: int = 4, max_title: int = 60):
    """One small panel per claim that has a half-budget value: the claim's measure at about half and at the full
    budget, the verdict boundaries of its rule as dashed lines, and the verdict as the title's colour (grey:
    not comparable). A line that still crosses or nears a boundary is why a verdict reads 'still moving'."""
    shown = [c for c in claims if c.half is not None and np.isfinite(float(c.half.ours))
             and np.isfinite(float(c.ours))]
    if not shown:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, "no claim has a half-budget value", ha="center", va="center")
        ax.axis("off")
        return fig
    cols = min(ncols, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    colours = {"reproduced": "C2", "partly": "C1", "not reproduced": "C3", "not comparable": "0.5"}
    for ax, c in zip(axes.flat, shown):
        full = c.schedule.ours if c.schedule is not None else 1.0
        half = c.half.schedule.ours if c.half.schedule is not None else full / 2
        ax.plot([half / full, 1.0], [c.half.ours, c.ours], marker="o", color="k")
        for b in c.rule.boundaries():
            ax.axhline(b, color="C0", ls="--", lw=0.8)
        text = c.claim if len(c.claim) <= max_title else c.claim[:max_title - 1] + "…"
        ax.set_title(text, fontsize=7, color=colours.get(c.verdict, "k"), wrap=True)
        ax.set_xlabel("budget / full budget", fontsize=7)
        ax.set_ylabel(c.unit or "value", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, 1.1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def memory_class_histograms(frame, title=lambda row: "", counts: str = "class_counts", width: float = 3.4):
    """One bar panel per row of `frame`: the number of memorised samples of each class (the row's `counts` list),
    titled by `title(row)` with the memory's size and the classes present."""
    rows = list(frame.itertuples())
    fig, axes = plt.subplots(1, max(1, len(rows)), figsize=(width * max(1, len(rows)), 2.6), squeeze=False)
    for ax, row in zip(axes[0], rows):
        n = np.asarray(getattr(row, counts))
        ax.bar(range(len(n)), n, color="C0")
        ax.set_title(f"{title(row)}\nmemory {int(n.sum())}, {int((n > 0).sum())} of {len(n)} classes", fontsize=8)
        ax.set_xlabel("class", fontsize=7)
        ax.set_ylabel("memorised samples", fontsize=7)
        ax.set_xticks(range(len(n)))
        ax.tick_params(labelsize=7)
    if not rows:
        axes[0, 0].axis("off")
    fig.tight_layout()
    return fig
