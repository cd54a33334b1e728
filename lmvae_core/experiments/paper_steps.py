"""What the paper profile of a notebook trains and evaluates, counted: the vocabulary of every paper's `steps.py`.

Each paper package's `steps.py` walks the calls its notebook source makes (notebooks/src/NN_*.py) in the `paper`
profile and returns `Job`s (`count(settings)`): a kind of step (network, batch, samples per step, stacked experts)
and how many of them. Training jobs count optimiser steps; evaluation jobs count image-samples (one image through
one network with one latent draw: an IWAE-k estimate of n images is n*k of them). The numbers come from SETTINGS
and the package's own helpers (training.loop.steps_per_epoch, papers.ocm.settings.official_steps,
training.classifier.epochs_for), so the counts follow the settings. Where a count depends on what a run decides
(L-MVAE's reuse test, Dynamic-OCM's expansions, early stopping), the counter takes the expected outcome and says
so in the job's `note`.

`counters()` derives one counter per registered notebook (experiments/registry.py), each with its half-budget
runs. Used by benchmarks/paper_cost.py and lmvae_core/docs/paper_cost.py; tests/test_paper_cost.py checks the
counting on hand-countable settings.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field

from ..training.loop import steps_per_epoch
from . import registry

# Full training / test split sizes: the paper profile trains on whole datasets (train_limit None). Omniglot: the
# OCM notebook trains on drawers 1-15 of the 32,460 images of both sets (24,345: papers.ocm.settings.TRAIN_IMAGES,
# which a test holds equal) and tests on drawers 16-20.
TRAIN = {"mnist": 60_000, "fashion": 60_000, "kmnist": 60_000, "cifar10": 50_000, "omniglot": 24_345}
TEST = {"mnist": 10_000, "fashion": 10_000, "kmnist": 10_000, "cifar10": 10_000, "omniglot": 32_460 - 24_345}
CLASSIFIER_BATCH = 128  # training.classifier.classifier_state trains with TrainConfig()'s default batch


@dataclass(frozen=True)
class Kind:
    """One kind of step: `build` names a builder of benchmarks/paper_cost.py, `args` its arguments (JSON), `train`
    whether it is an optimiser step (else a forward pass, counted per image-sample)."""
    build: str
    args: str
    label: str
    train: bool = True


def kind(build: str, label: str, train: bool = True, **args) -> Kind:
    return Kind(build, json.dumps(args, sort_keys=True), label, train)


@dataclass
class Job:
    notebook: str
    what: str
    kind: Kind
    units: int  # optimiser steps (train kinds) or image-samples (eval kinds)
    note: str = ""


@dataclass
class Counter:
    notebook: str
    jobs: list[Job] = field(default_factory=list)

    def add(self, what: str, k: Kind, units: float, note: str = "") -> None:
        if units > 0:
            self.jobs.append(Job(self.notebook, what, k, int(units), note))


def steps(n: int, batch: int, epochs: float) -> int:
    """Optimiser steps of `epochs` passes over n images in batches (the last batch short, as training.loop)."""
    return int(epochs * steps_per_epoch(n, batch))


# ---- kinds -----------------------------------------------------------------------------------------------------
def vae(hidden, latent, batch, shape=(1, 28, 28), binarized: bool = False, replay: bool = False) -> Kind:
    net = f"{'x'.join(map(str, shape))}-{'-'.join(map(str, hidden))}-{latent}"
    name = f"{'BinarizedVAE' if binarized else 'VAE'} {net}"
    return kind("vae", f"{name}, batch {batch}{' real + replay' if replay else ''}", hidden=list(hidden),
                latent=latent, batch=batch, shape=list(shape), binarized=binarized, replay=replay)


def iwae_vae(hidden, latent, shape=(1, 28, 28), binarized: bool = False) -> Kind:
    name = "BinarizedVAE" if binarized else "VAE"
    return kind("vae", f"IWAE forward, {name} {'-'.join(map(str, hidden))}-{latent}", train=False,
                hidden=list(hidden), latent=latent, batch=0, shape=list(shape), binarized=binarized, replay=False)


def classifier(batch: int = CLASSIFIER_BATCH, mlp: bool = False) -> Kind:
    name = "MLP classifier (fitting capacity)" if mlp else "feature classifier CNN"
    return kind("classifier", f"{name}, batch {batch}", batch=batch, mlp=mlp)


def calibration(c: Counter, spec) -> None:
    """experiments/calibration.py: a JointVAE trained on its dataset, IWAE-k on its test split."""
    n = min(TRAIN[spec.dataset], spec.train_limit or TRAIN[spec.dataset])
    c.add("calibration: joint VAE", vae(spec.hidden, spec.latent, spec.batch_size),
          steps(n, spec.batch_size, spec.epochs))
    t = min(TEST[spec.dataset], spec.test_limit or TEST[spec.dataset])
    c.add("calibration: IWAE", iwae_vae(spec.hidden, spec.latent), t * spec.iwae_k)


# ---- the counters, from the registry -----------------------------------------------------------------------------
# Every notebook runs its claims' experiments a second time at half the training budget (results/claims.py's
# half-budget rule): its steps module's `half_budget` (05: the methods whose half runs feed claims). The counter
# counts the whole notebook again at those settings, an upper estimate: the half runs repeat only what feeds the
# claims, and share calibration and classifiers with the full run.
HALF_NOTE = "the notebook counted again at its half-budget settings (an upper estimate)"


def steps_module(notebook: str):
    """A notebook's `steps` module: `<its paper package>.steps`, with `count(settings)`, `half_budget(settings)`
    and SETTINGS (the package's, for the `paper` profile)."""
    package = registry.get(notebook).module
    try:
        return importlib.import_module(f"{package}.steps")
    except ModuleNotFoundError as err:
        if err.name != f"{package}.steps":
            raise
        raise ModuleNotFoundError(f"notebook {notebook!r} has no step count: add {package}.steps with count(settings) "
                                  "and half_budget(settings) (see papers/ocm/steps.py)") from err


def with_half_runs(module):
    """A counter that adds the notebook's half-budget runs to `module.count`'s jobs at the paper settings."""

    def counted(s=None) -> list[Job]:
        s = s or module.SETTINGS["paper"]
        half = [Job(j.notebook, f"half-budget run: {j.what}", j.kind, j.units, HALF_NOTE)
                for j in module.count(module.half_budget(s))]
        return module.count(s) + half

    return counted


def counters() -> dict:
    """{notebook: counter} for every registered notebook, in the registry's order."""
    return {nb: with_half_runs(steps_module(nb)) for nb in registry.notebooks()}


def all_jobs() -> list[Job]:
    return [j for f in counters().values() for j in f()]
