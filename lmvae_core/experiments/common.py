"""What every notebook does first: check its parameters, resolve profile/device/paths, seed."""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import paths
from ..data.datasets import declare, set_offline
from ..data.streams import DataConfig, data_config
from ..results.cluster import resolve_executor
from ..results.runner import Call, GridRun, run_grid
from ..results.writers import Outputs
from ..runtime import pick_device, resolve_profile, seed_everything, uses_sample
from . import registry
from .needs import ensure, pairs_for
from .settings import Settings

# written above every figure of a profile that runs on the committed sample (smoke, paper-shape)
SAMPLE_STAMP = ("{profile} profile: toy sizes on the committed sample, a check that the code runs; "
                "not a result (the quick and paper profiles give those)")


@dataclass
class Run:
    notebook: str
    profile: str
    seed: int
    device: torch.device
    data_root: str | None
    out: Outputs
    force: bool = False
    progress: bool = True
    settings: Mapping = field(default_factory=dict)  # the notebook's Settings for the profile (experiments/settings.py)
    executor: str | None = None  # grids: None/'serial', 'local', 'tcp://host:port' (lmvae_core.results.cluster)
    device_request: str = "auto"  # the device parameter as given
    started: float = field(default_factory=time.time)

    def __setstate__(self, state: dict):
        """Unpickled on a Dask worker, device 'auto' means that worker's device (its GPU), not the client's."""
        self.__dict__.update(state)
        if self.device_request == "auto":
            self.device = pick_device("auto")

    def data(self, **overrides) -> DataConfig:
        """Data configuration for this run: the committed sample in smoke, full data otherwise."""
        limits = {k: self.settings[k] for k in ("train_limit", "test_limit") if k in self.settings}
        return data_config(self.profile, self.device, self.data_root, **(limits | overrides))

    def with_settings(self, settings: Mapping) -> "Run":
        """The same run with other settings: a second run of an experiment at another budget (its results are
        cached under their own key; nothing else changes, the output folder included)."""
        return replace(self, settings=settings if isinstance(settings, Settings) else dict(settings))

    def grid(self, calls: list[Call], desc: str, force: bool | None = None) -> GridRun:
        """Run calls as one grid on this run's executor (force: this run's unless given)."""
        return run_grid(calls, self.executor, force=self.force if force is None else force, progress=self.progress,
                        desc=desc)

    def __repr__(self) -> str:
        return (f"Run({self.notebook}: profile={self.profile}, seed={self.seed}, device={self.device}, "
                f"out={self.out.dir})")


def paper_shape(paper: Mapping, sizes: dict, changed: dict | None = None) -> Mapping:
    """The paper-shape profile's settings: the paper profile's, with `sizes` scaled down (images per task or
    stream, epochs, steps or passes, evaluation images, IWAE samples, seeds), so that a notebook runs the paper's
    architectures, datasets, likelihoods, samples per step, memory and component caps and code paths on the
    committed sample in seconds. `changed` holds what is not a size but cannot stay the paper's there, as
    {key: (value, why)}; a key 'outer.inner' changes one entry of a dict setting. tests/test_paper_shape.py
    checks that nothing else differs; docs/profiles.md lists the changes (`lmvae readme`)."""
    changed = changed or {}
    unknown = set(sizes) - set(paper)
    if unknown:
        raise KeyError(f"paper_shape: {sorted(unknown)} are not paper settings")
    out = dict(paper) | dict(sizes)
    for key, (value, _why) in changed.items():
        outer, _, inner = key.partition(".")
        if outer not in paper or (inner and inner not in paper[outer]):
            raise KeyError(f"paper_shape: {key!r} is not a paper setting")
        out[outer] = dict(out[outer]) | {inner: value} if inner else value
    return paper.replace(**out) if isinstance(paper, Settings) else out


def _check(name: str, value, types, allow_none: bool = False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"parameter {name} must be {types}, got bool {value!r}")
    if not isinstance(value, types):
        expected = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise TypeError(f"parameter {name} must be {expected}, got {value!r} ({type(value).__name__})")


def setup(notebook: str, profile: str | None = "auto", seed: int = 0, device: str = "auto",
          data_root: str | None = None, out_dir: str | None = None, force: bool = False, progress: bool = True,
          settings: dict[str, dict] | None = None, offline: bool = False,
          executor: str | None = None) -> Run:
    """Validate a notebook's parameters and build its Run. Bad values and missing data fail here, before any
    work: every dataset split the notebook needs in this profile is checked (and downloaded unless offline)."""
    registry.get(notebook)  # an unknown name fails here
    _check("profile", profile, str, allow_none=True)
    _check("seed", seed, int)
    _check("device", device, str)
    _check("data_root", data_root, (str, Path), allow_none=True)
    _check("out_dir", out_dir, (str, Path), allow_none=True)
    _check("force", force, bool)
    _check("progress", progress, bool)
    _check("executor", executor, str, allow_none=True)
    if executor is not None:
        resolve_executor(executor)  # a bad name fails here, before any work
    _check("offline", offline, bool)
    resolved = resolve_profile(profile)
    set_offline(offline or None)  # offline=False leaves $LMVAE_OFFLINE in charge
    declare(notebook, pairs_for(notebook, resolved), strict=uses_sample(resolved))
    ensure([notebook], resolved, data_root)
    dev = pick_device(device)
    seed_everything(seed)
    out = Outputs(Path(out_dir) / notebook if out_dir else paths.figures_root(resolved) / notebook,
                  stamp=SAMPLE_STAMP.format(profile=resolved) if uses_sample(resolved) else None)
    chosen = (settings or {}).get(resolved, {})
    return Run(notebook, resolved, seed, dev, str(data_root) if data_root else None, out, force, progress,
               chosen if isinstance(chosen, Settings) else dict(chosen), executor, device)
