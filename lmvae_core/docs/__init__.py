"""Formatters of the docs sections read from the repository's benchmarks/results/*.json: speed, paper cost, grid speed.

Each module turns committed measurements into Markdown and writes nothing; `lmvae readme` (lmvae_core/readme.py)
places their text between the markers of the page that holds each section.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_results(folder: Path, name: str) -> dict | None:
    """A committed results file of benchmarks/results/, or None where it is not committed (yet)."""
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.exists() else None
