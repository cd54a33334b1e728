"""Run a grid of independent, cached experiment calls serially or on a Dask cluster.

A grid is a list of `Call`s: cache name and key (the same as `cached` uses serially), a picklable top-level
function with its arguments, and the grid cell it fills (e.g. stream, method, seed). `run_grid`:
- loads the calls already in the cache and submits only the others;
- runs them in this process (executor None/'serial') or on Dask workers (see `cluster.resolve_executor`);
  every worker computes through `cached`, so with a shared filesystem (same machine, or $LMVAE_CACHE on a
  shared disk) it writes the entry itself; a result that comes back not yet in this machine's cache is
  written here, so workers without the shared disk work too;
- on Dask, and serially with errors='report', retries a failing call once, then records its cell,
  configuration and traceback while the rest of the grid completes; serially the default is errors='raise',
  today's behaviour: the first error stops the notebook (CI and smoke runs must not hide a broken method);
- shows one progress bar over the grid (done / total, failures in the postfix).

Every run computes on runtime.RESULT_THREADS torch threads, serially as on a local worker, so a cached result does
not depend on the executor that made it: torch's CPU kernels sum in another order with another thread count
(benchmarks/results/thread_invariance.json). Serially this gives up what a second thread gives one run (measured in
benchmarks/results/cpu_bounds.json, reported in docs/dask.md); `executor="local"` runs one single-threaded run per core.
"""
from __future__ import annotations

import contextlib
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

from .. import paths
from ..runtime import RESULT_THREADS, cpu_threads
from .cache import cache_file, cached, config_key, is_cached, store
from .cluster import FORWARDED_ENV, dask_client, is_local, resolve_executor


@dataclass(frozen=True)
class Call:
    """One run of a grid: `cached(name, config, lambda: fn(*args))`. fn must be a module-level function and
    args picklable, so a worker in another process (or on another machine) can run it."""
    name: str
    config: dict
    fn: Callable[..., Any]
    args: tuple = ()
    cell: dict = field(default_factory=dict)
    # Relative cost, a rough guess: on a cluster the costliest runs are submitted first, so that a long run
    # does not start last while the other workers sit idle. Only the order of execution depends on it.
    weight: float = 1.0

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.cell.items()) or self.name


@dataclass
class Failure:
    index: int  # position in the grid
    cell: dict
    name: str
    config: dict
    error: str  # the exception's last line
    traceback: str
    attempts: int

    def report(self) -> str:
        return (f"{self.name} [{', '.join(f'{k}={v}' for k, v in self.cell.items())}] failed after "
                f"{self.attempts} attempts: {self.error}\nconfiguration: {self.config}\n{self.traceback}")


@dataclass
class GridRun:
    """Results in the order of the calls; None where a call failed (see `failures`)."""
    calls: list[Call]
    results: list[Any]
    failures: list[Failure]
    executor: str = "serial"

    @classmethod
    def combine(cls, *grids: "GridRun") -> "GridRun":
        """Grids run one after another (a second stage that needs the first's results) as one."""
        calls, results, failures, offset = [], [], [], 0
        for g in grids:
            calls += g.calls
            results += g.results
            failures += [replace(f, index=f.index + offset) for f in g.failures]
            offset += len(g.calls)
        return cls(calls, results, failures, grids[0].executor)

    def done(self) -> list[Any]:
        return [r for r in self.results if r is not None]

    def missing(self):
        """The grid cells without a result and why, one row per failed call (empty when complete)."""
        import pandas as pd

        columns = list(dict.fromkeys(k for c in self.calls for k in c.cell)) + ["error", "attempts"]
        return pd.DataFrame([f.cell | {"error": f.error, "attempts": f.attempts} for f in self.failures],
                            columns=columns)

    def summary(self) -> str:
        n, bad = len(self.calls), len(self.failures)
        if not bad:
            return f"grid complete: {n} of {n} runs ({self.executor})"
        return (f"grid INCOMPLETE: {n - bad} of {n} runs, {bad} missing ({self.executor}); the tables below leave "
                f"them out:\n" + "\n".join(f"  - {f.report().splitlines()[0]}" for f in self.failures))


def execute(name: str, config: dict, fn: Callable, args: tuple, force: bool, root: str | None,
            env: dict | None = None, threads: int | None = None) -> tuple[Any, str, float]:
    """A worker's side of one call: compute (or load) through the cache. Returns the result, the cache file
    the worker used (so the client can tell whether it shares that file) and the seconds it took."""
    if threads:  # single-threaded workers: several runs share the cores
        import torch

        torch.set_num_threads(threads)
    t0 = time.time()
    with _environ(env or {}):
        result = cached(name, config, partial(fn, *args), force=force, root=root)
        return result, str(cache_file(name, config, root).resolve()), time.time() - t0


@contextlib.contextmanager
def _environ(env: dict):
    """Set the client's LMVAE_* variables for one task (a local worker runs one task at a time), so nested
    cached steps (a stream's feature classifier) use the same cache and data as the client."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_grid(calls: list[Call], executor=None, force: bool = False, progress: bool = True,
             errors: str | None = None, desc: str = "grid", echo: Callable[[str], None] | None = None) -> GridRun:
    """Every call of the grid, already-cached ones loaded and the rest computed on `executor`. echo, if given,
    gets one line per computed run (its cell and seconds, or its error). When runs failed, the summary and
    each failure's configuration and traceback are printed (the notebook's output shows the missing cells)."""
    if errors not in (None, "raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', got {errors!r}")
    resolved = resolve_executor(executor)
    serial = resolved == "serial"
    errors = errors or ("raise" if serial else "report")
    root = Path(paths.cache_root())
    results: list[Any] = [None] * len(calls)
    todo = []
    for i, c in enumerate(calls):
        if not force and is_cached(c.name, c.config, root):
            results[i] = cached(c.name, c.config, partial(c.fn, *c.args), root=root)
        else:
            todo.append(i)
    failures: list[Failure] = []
    bar = _Progress(len(calls), len(calls) - len(todo), desc, progress, echo, failures)
    try:
        if serial:
            with cpu_threads(RESULT_THREADS):  # as a local worker computes it (module docstring)
                _run_serial(calls, todo, force, root, errors, results, failures, bar)
        elif todo:
            with dask_client(resolved) as client:
                _run_dask(client, calls, todo, force, root, is_local(resolved), results, failures, bar)
    finally:
        bar.close()
    name = resolved if isinstance(resolved, str) else "dask client"
    run = GridRun(calls, results, sorted(failures, key=lambda f: f.index), name)
    if run.failures:
        print(run.summary())
        for f in run.failures:
            print(f.report())
    return run


class _Progress:
    """One bar over the grid (runs done / total, failures in the postfix) and the optional per-run echo."""

    def __init__(self, total, initial, desc, enabled, echo, failures):
        from ..bars import bar

        self.bar = bar(total=total, initial=initial, desc=desc, disable=not enabled, unit="run")
        self.bar.set_postfix(failed=0, refresh=False)  # one line per update where output is not a terminal
        self.echo, self.failures = echo, failures

    def done(self, call: Call, seconds: float | None, failed: bool):
        self.bar.set_postfix(failed=len(self.failures), refresh=False)
        self.bar.update(1)
        if self.echo:
            self.echo(f"{call.label}: FAILED ({self.failures[-1].error})" if failed else
                      f"{call.label}: {seconds:.1f} s")

    def close(self):
        self.bar.close()


def _fail(i: int, c: Call, err: BaseException, tb: str, attempts: int) -> Failure:
    last = (f"{type(err).__name__}: {err}".splitlines() or [type(err).__name__])[0]
    return Failure(i, c.cell, c.name, c.config, last, tb, attempts)


def _run_serial(calls, todo, force, root, errors, results, failures, bar):
    for i in todo:
        c = calls[i]
        t0, n_failed = time.time(), len(failures)
        if errors == "raise":  # exactly the serial code path of before: the first error propagates
            results[i] = cached(c.name, c.config, partial(c.fn, *c.args), force=force, root=root)
        else:
            for attempt in (1, 2):
                try:
                    results[i] = cached(c.name, c.config, partial(c.fn, *c.args), force=force, root=root)
                    break
                except Exception as err:  # noqa: BLE001 - any failure of one run is reported, not fatal
                    if attempt == 2:
                        failures.append(_fail(i, c, err, traceback.format_exc(), attempt))
        bar.done(c, time.time() - t0, len(failures) > n_failed)


def _run_dask(client, calls, todo, force, root, local, results, failures, bar):
    from distributed import as_completed

    # Local workers share this machine: they get the client's cache root and LMVAE_* environment and one
    # torch thread each. Remote workers use their own $LMVAE_CACHE (shared or not) and settings.
    worker_root = str(root) if local else None
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ} if local else None
    threads = RESULT_THREADS if local else None
    futures = {}
    for rank, i in enumerate(sorted(todo, key=lambda i: -calls[i].weight)):  # stable: grid order among equals
        c = calls[i]
        fut = client.submit(execute, c.name, c.config, c.fn, c.args, force, worker_root, env, threads,
                            key=f"{c.name}-{i}-{config_key(c.config)}", pure=False, retries=1,
                            priority=len(todo) - rank)
        futures[fut] = i
    for fut in as_completed(list(futures)):
        i = futures.pop(fut)
        c = calls[i]
        seconds, n_failed = None, len(failures)
        if fut.status == "finished":
            result, worker_file, seconds = fut.result()
            mine = cache_file(c.name, c.config, root)
            if worker_file != str(mine.resolve()) or not mine.exists():
                store(c.name, c.config, result, root)  # the worker's cache is not ours: keep the result here
            results[i] = result
        else:  # 'error' (raised twice, or the worker died: KilledWorker) or 'cancelled'
            err = fut.exception() if fut.status == "error" else RuntimeError(f"run {fut.status}")
            trace = fut.traceback() if fut.status == "error" else None
            tb = "".join(traceback.format_tb(trace)) if trace else ""
            failures.append(_fail(i, c, err, f"Traceback (on the worker):\n{tb}{type(err).__name__}: {err}", 2))
        fut.release()
        bar.done(c, seconds, len(failures) > n_failed)
