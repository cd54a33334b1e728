"""One package per paper: what a notebook reproduces, in one place.

lmvae_core/papers/<paper>/ holds the paper's typed settings per profile (`settings.py`: SETTINGS, PAPER_SHAPE,
`datasets_needed`), its experiments and claims (`experiments.py` and the modules beside it), and its fidelity
evidence (`fidelity/`: scripts that measure one question on full data, each with its committed JSON). The
package's `__init__` exposes what the notebook registry (experiments/registry.py) reads: SETTINGS, PAPER_SHAPE,
PAPER_SHAPE_CHANGED and datasets_needed, without importing the experiments (so `lmvae` starts fast). Its `steps`
module counts what the paper profile trains and evaluates (experiments/paper_steps.py).
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parent


def evidence(paper: str, name: str) -> dict:
    """A paper's committed fidelity measurement, lmvae_core/papers/<paper>/fidelity/<name>.json."""
    path = ROOT / paper / "fidelity" / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json"))
        raise FileNotFoundError(f"no fidelity evidence {name!r} for {paper!r}; committed: {', '.join(known) or 'none'}")
    return json.loads(path.read_text())


__all__ = ["evidence"]
