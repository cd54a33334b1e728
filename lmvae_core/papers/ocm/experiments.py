"""Notebook 04: OCM, online cooperative memorization for task-free continual VAE learning (Ye & Bors 2022).

What the notebook reads, in one namespace: the settings (`settings`), the runs and Tables 1 and 3 (`runs`), the
studies beside them (`studies`: ablations, selection rules, memory) and `sweep`, which runs them all as two grids.
The claims are in `claims`, the fidelity evidence in `fidelity/`.
"""
from __future__ import annotations

from dataclasses import replace

from ...experiments.calibration import calibration_call
from ...experiments.common import Run
from ...results.cache import config_key
from ...results.runner import Call
from .runs import (IID, StepMatchedReservoir, evaluate, first_stage, fit_iid, fit_stream, iid_call,
                   load_stream, ltm_rows_of, memory_study_settings, memory_trace, model_config, rebuild,
                   run_grid, run_stream, second_stage, shares, stream_call, stream_checkpointing, summarise,
                   table_cells, table_row, table_runs, tables_for_claims, test_images)
from .settings import (CALIBRATION_REFERENCE, CLAIM_RULES, CROSS_METHODS, JOINT, METHODS, PAPER,
                       PAPER_OTHERS, PAPER_SHAPE, PAPER_SHAPE_CHANGED, SELECTION_VARIANTS, SETTINGS, STREAM_TITLES,
                       STREAMS, TRAIN_IMAGES, OCMSettings, datasets_needed, half_budget, half_budget_how,
                       official_steps)
from .studies import (ablation_calls, ablations, class_coverage, fidelity_text, memory_study,
                      memory_study_calls, selection_calls, selection_study)


def sweep(run: Run, half: bool = False) -> None:
    """Every run of the notebook as two grids on run.executor rather than one or two per table, so that no
    worker waits at the end of each table while the other finishes: first every run that needs no other (Table
    1's, Table 3's, the selection rules', the ablations', the memory study's and the calibration VAE), then the
    second stage of Tables 1 and 3. The tables below then load their runs from the cache. With `half`, the same
    grids also hold the runs at half the budget (`half_budget`) that the claims read: Tables 1 and 3 without the
    i.i.d. baselines, the selection rules the claims compare, the ablations and the memory study. With `stack_seeds`
    on a GPU, the runs that share a stream and a step train as stacks first (`runs.run_grid`)."""
    s = run.settings
    runs = [(run, True)] + ([(run.with_settings(half_budget(s)), False)] if half else [])
    first, second = [], []
    for r, full in runs:
        tables = [table_cells(r, s["streams"]), table_cells(r, ["cross"], CROSS_METHODS, s["cross_seeds"])]
        first += [stream_call(r, *c) for t in tables for c in first_stage(r, t)]
        first += [c for _, c in selection_calls(r, s["streams"], None if full else CLAIM_RULES)]
        first += [c for _, c in ablation_calls(r, "mnist")]
        first += [c for _, c in memory_study_calls(run, half=not full)]
    run_grid(run, _unique([replace(calibration_call(run, s["joint"]), weight=2.0)] + first),
             "OCM: runs that need no other")
    for r, full in runs:
        tables = [table_cells(r, s["streams"]), table_cells(r, ["cross"], CROSS_METHODS, s["cross_seeds"])]
        second += [c for t in tables for c in second_stage(r, t, iid=full)[1]]
    if second:
        run_grid(run, _unique(second), "OCM: reservoir runs of equal memory and steps, i.i.d. baselines")


def _unique(calls: list[Call]) -> list[Call]:
    """Each configuration once (Algorithm 2's selection runs are Table 1's VAE-ELBO-OCM runs): two workers
    would otherwise compute the same run twice."""
    seen, out = set(), []
    for c in calls:
        k = (c.name, config_key(c.config))
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


__all__ = ["ablation_calls", "ablations", "CALIBRATION_REFERENCE", "CLAIM_RULES", "class_coverage", "CROSS_METHODS",
           "datasets_needed", "evaluate", "fidelity_text", "first_stage", "fit_iid", "fit_stream", "half_budget",
           "half_budget_how", "IID", "iid_call", "JOINT", "load_stream", "ltm_rows_of", "memory_study",
           "memory_study_calls", "memory_study_settings", "memory_trace", "METHODS", "model_config", "OCMSettings",
           "official_steps", "PAPER", "PAPER_OTHERS", "PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "rebuild", "run_stream",
           "second_stage", "selection_calls", "selection_study", "SELECTION_VARIANTS", "SETTINGS", "shares",
           "StepMatchedReservoir", "stream_call", "stream_checkpointing", "STREAM_TITLES", "STREAMS", "summarise",
           "sweep", "table_cells", "table_row", "table_runs", "tables_for_claims", "test_images", "TRAIN_IMAGES"]
