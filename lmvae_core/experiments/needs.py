"""Which datasets each notebook needs per profile: each notebook's paper package computes them
(`datasets_needed`) from the same SETTINGS the experiments read, plus the datasets the notebook names itself.

setup() declares them to the loader, which refuses (smoke profile, so CI catches it) or warns about any split a
notebook loads without declaring it. `lmvae data`, `--dry-run` and the fail-fast check of `lmvae reproduce` read
them from here; data/requirements.py looks for the files. Which module belongs to a notebook: registry.py.
"""
from __future__ import annotations

from pathlib import Path

from ..data import requirements
from ..data.datasets import canonical_name
from ..data.requirements import Need
from .registry import experiment_module


def datasets_for(notebook: str, profile: str) -> list[str]:
    """The datasets (canonical names, in first-use order) a notebook loads in a profile."""
    module = experiment_module(notebook)
    return list(dict.fromkeys(canonical_name(d) for d in module.datasets_needed(module.SETTINGS[profile])))


def needs_of(notebooks: list[str], profile: str) -> dict[str, list[str]]:
    return {nb: datasets_for(nb, profile) for nb in notebooks}


def pairs_for(notebook: str, profile: str) -> set[tuple[str, str]]:
    return requirements.pairs(datasets_for(notebook, profile))


def check(notebooks: list[str], profile: str, root: str | Path | None = None) -> list[Need]:
    return requirements.check(needs_of(notebooks, profile), profile, root)


def ensure(notebooks: list[str], profile: str, root: str | Path | None = None, download: bool | None = None,
           echo=print) -> None:
    requirements.ensure(needs_of(notebooks, profile), profile, root, download, echo)
