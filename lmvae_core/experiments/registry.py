"""The notebooks of the project, in one place: every list the package keeps of them is derived from here.

A notebook is registered with its paper's package (lmvae_core/papers/<name>/), which defines SETTINGS (per
profile), PAPER_SHAPE and `datasets_needed(settings)`, and whose `steps` module counts its paper profile; with its
key figure (the gallery of docs/results.md) and whether it runs its grids on a Dask executor (`lmvae reproduce
--executor` passes the executor to those notebooks only). `setup()`, the data check (`lmvae data`, `--dry-run`),
`lmvae reproduce`, `lmvae readme` and the paper-cost count (experiments/paper_steps.py) all read this registry, so
a new notebook is one paper package, one notebook source and one `register(...)` line. Packages are imported by
name, when first needed: most of them import experiments.common, which imports this module.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Notebook:
    name: str  # the notebook's file stem, e.g. "04_ocm"; notebooks/src/<name>.py builds notebooks/<name>.ipynb
    module: str  # its paper's package, importable by this name (e.g. "lmvae_core.papers.ocm")
    key_figure: str  # the figure the gallery shows, a file of figures/<name>/
    grid: bool = False  # runs its grids on run.executor (Dask)


_REGISTRY: dict[str, Notebook] = {}


def register(notebook: Notebook) -> Notebook:
    """Add (or replace) a notebook; the order of registration is the order of the notebooks."""
    _REGISTRY[notebook.name] = notebook
    return notebook


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def notebooks() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> Notebook:
    if name not in _REGISTRY:
        raise ValueError(f"unknown notebook {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def experiment_module(name: str) -> ModuleType:
    return importlib.import_module(get(name).module)


def grid_notebooks() -> tuple[str, ...]:
    return tuple(n for n, nb in _REGISTRY.items() if nb.grid)


def gallery() -> dict[str, str]:
    return {n: nb.key_figure for n, nb in _REGISTRY.items()}


register(Notebook("00_mixture_of_vaes", "lmvae_core.papers.mixture_of_vaes", "samples_per_expert_mnist.png"))
register(Notebook("01_lmvae", "lmvae_core.papers.lmvae", "task_matrices_iwae.png"))
register(Notebook("02_lifelong_generative_modeling", "lmvae_core.papers.lgm", "cumulative_nelbo_iwae.png", grid=True))
register(Notebook("03_binarized_regularization", "lmvae_core.papers.binarized", "r_sweep_metrics.png", grid=True))
register(Notebook("04_ocm", "lmvae_core.papers.ocm", "memory_along_stream.png", grid=True))
register(Notebook("05_benchmark", "lmvae_core.papers.benchmark", "stream_split_mnist.png", grid=True))

__all__ = ["Notebook", "experiment_module", "gallery", "get", "grid_notebooks", "notebooks", "register", "unregister"]
