"""Which datasets each notebook needs per profile: each notebook's experiments module computes them
(`datasets_needed`) from the same SETTINGS dicts the experiments read, plus the datasets the notebook names itself.

setup() declares them to the loader, which refuses (smoke profile, so CI catches it) or warns about any split a
notebook loads without declaring it. `lmvae data`, `--dry-run` and the fail-fast check of `lmvae reproduce` read
them from here; data/requirements.py looks for the files.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..data import requirements
from ..data.datasets import canonical_name
from ..data.requirements import Need

# notebook -> its experiments module, which says what it loads: `datasets_needed(settings)`
NEEDS = {"00_mixture_of_vaes": "mixture_of_vaes", "01_lmvae": "lmvae", "02_lifelong_generative_modeling": "lgm",
         "03_binarized_regularization": "binarized", "04_ocm": "ocm", "05_benchmark": "benchmark"}


def experiment_module(notebook: str):
    """A notebook's experiments module, loaded by name: most of them import experiments.common, which imports
    this module, so importing them here at the top would make a circle."""
    if notebook not in NEEDS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {', '.join(NEEDS)}")
    return importlib.import_module(f"lmvae_core.experiments.{NEEDS[notebook]}")


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
