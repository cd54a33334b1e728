"""Write every figure and table a notebook shows into figures/<notebook>/ (PNG, CSV, Markdown, JSON).

Every file is written atomically (results/atomic.py): a run killed mid-write leaves no half-written file."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

from .atomic import atomic_write, write_text
from .claims import Claim, claims_frame


class Outputs:
    """One notebook's output folder; the notebook calls these instead of ad-hoc savefig calls.

    `stamp`: a line written above every figure (the smoke and paper-shape profiles say there that their figures
    come from toy sizes: grey-noise samples there are expected, not a result)."""

    def __init__(self, directory: str | Path, stamp: str | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stamp = stamp

    def figure(self, fig: "matplotlib.figure.Figure", name: str, dpi: int = 110):
        if self.stamp and not getattr(fig, "_lmvae_stamp", None):  # once, also when a figure is saved again
            fig.text(0.5, 1.0, self.stamp, ha="center", va="bottom", fontsize=9, color="firebrick")
            fig._lmvae_stamp = self.stamp
        path = self.dir / f"{name}.png"
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
        return fig

    def table(self, frame, name: str, index: bool = False, floatfmt: str = ".3g"):
        atomic_write(self.dir / f"{name}.csv", lambda tmp: frame.to_csv(tmp, index=index))
        write_text(self.dir / f"{name}.md", markdown_table(frame, index=index, floatfmt=floatfmt) + "\n")
        return frame

    def json(self, obj, name: str) -> Path:
        path = self.dir / f"{name}.json"
        return write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_jsonable))

    def text(self, text: str, name: str, suffix: str = "md") -> Path:
        return write_text(self.dir / f"{name}.{suffix}", text)

    def claims(self, claims: list[Claim], notebook: str = ""):
        """claims.csv and claims.md, verdicts computed from the measured values."""
        return self.table(claims_frame(claims, notebook), "claims")


def _jsonable(o):
    try:
        import numpy as np
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def markdown_table(frame, **kwargs) -> str:
    """`frame.to_markdown` with every `|` inside a cell or a header escaped: an unescaped one (a claim's |mu|)
    splits its row into more cells than the header has, and the verdict column then shows another column's value."""
    def escape(v):
        return v.replace("|", "\\|") if isinstance(v, str) else v

    escaped = frame.rename(columns=escape, index=escape if kwargs.get("index") else None)
    return escaped.map(escape).to_markdown(**kwargs)
