"""Which datasets each notebook needs per profile: computed from the same SETTINGS dicts the experiments read,
plus the datasets a notebook names itself.

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

# notebook 05's streams and the datasets each is cut from (experiments/benchmark.py: build_stream)
BENCHMARK_STREAMS = {"split_mnist": ("mnist",), "taskfree_mnist": ("mnist",), "split_fashion": ("fashion",),
                     "mnist_fashion": ("mnist", "fashion")}


def _ocm(s: dict) -> list[str]:
    from .ocm import STREAMS  # imported here: ocm imports common, which imports this module

    # Table 1 streams, the cross-domain stream of Table 3 and the ablations on MNIST (notebook cells)
    return [d for stream in (*s["streams"], "cross", "mnist") for d in STREAMS[stream]]


# notebook -> (experiments module, datasets as a function of that module's SETTINGS[profile])
NEEDS = {
    # the balancing ablation runs on MNIST (notebook cell)
    "00_mixture_of_vaes": ("mixture_of_vaes", lambda s: [*s["datasets"], "mnist"]),
    "01_lmvae": ("lmvae", lambda s: [*s["sequence"], *s["growth_sequence"]]),
    # permuted MNIST and its classifier use MNIST in every profile
    "02_lifelong_generative_modeling": ("lgm", lambda s: [*s["datasets"], s["ablation_dataset"], "mnist"]),
    # the overhead measurement and generative replay run on MNIST
    "03_binarized_regularization": ("binarized", lambda s: [*s["datasets"], "mnist"]),
    "04_ocm": ("ocm", _ocm),
    "05_benchmark": ("benchmark", lambda s: [d for st in s["streams"] for d in BENCHMARK_STREAMS[st]]),
}


def experiment_module(notebook: str):
    """A notebook's experiments module, loaded by name: most of them import experiments.common, which imports
    this module, so importing them here at the top would make a circle."""
    if notebook not in NEEDS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {', '.join(NEEDS)}")
    return importlib.import_module(f"lmvae_core.experiments.{NEEDS[notebook][0]}")


def settings_of(notebook: str, profile: str) -> dict:
    return experiment_module(notebook).SETTINGS[profile]


def datasets_for(notebook: str, profile: str) -> list[str]:
    """The datasets (canonical names, in first-use order) a notebook loads in a profile."""
    return list(dict.fromkeys(canonical_name(d) for d in NEEDS[notebook][1](settings_of(notebook, profile))))


def needs_of(notebooks: list[str], profile: str) -> dict[str, list[str]]:
    return {nb: datasets_for(nb, profile) for nb in notebooks}


def pairs_for(notebook: str, profile: str) -> set[tuple[str, str]]:
    return requirements.pairs(datasets_for(notebook, profile))


def check(notebooks: list[str], profile: str, root: str | Path | None = None) -> list[Need]:
    return requirements.check(needs_of(notebooks, profile), profile, root)


def ensure(notebooks: list[str], profile: str, root: str | Path | None = None, download: bool | None = None,
           echo=print) -> None:
    requirements.ensure(needs_of(notebooks, profile), profile, root, download, echo)
