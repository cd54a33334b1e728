"""Every training run of notebook 03 as one grid: the sweep (experiments.py) and generative replay (replay.py)
together, so that one grid keeps every worker busy to the end."""
from __future__ import annotations

from ...experiments.common import Run
from ...results.runner import GridRun
from .experiments import calibration_call, classifier_call, sweep_cells, train_call
from .replay import continual_calls
from .settings import half_budget


def train_all(run: Run, half: bool = True) -> GridRun:
    """Every training run of the notebook as one grid on run.executor, costliest first: the feature classifiers,
    the calibration VAE, the sweep's ensembles (main and collapse regime) and the replay runs, and (half=True) the
    same sweep and replay runs at half the budget (`half_budget`), for the claims' half-budget rule. One grid keeps
    every worker busy until the end, where a grid per part would wait for each part's last run (on 2 workers,
    minutes). The later sections read these runs from the cache: run.force retrains them here, not there."""
    s = run.settings
    runs = [run] + ([run.with_settings(half_budget(s))] if half else [])
    calls = ([classifier_call(run, d) for d in s["datasets"]] + [calibration_call(run)]
             + [train_call(ru, d, o, r, g) for ru in runs for d, o, r, g in sweep_cells(ru)]
             + [c for ru in runs for c in continual_calls(ru)])
    return run.grid(calls, "binarized: train")
