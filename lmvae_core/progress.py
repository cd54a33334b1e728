"""What `lmvae reproduce` shows while a notebook runs: the current section and cell, the kernel's own output
(its progress bars included), the elapsed time and, from the previous run's per-cell times, the rest.

papermill streams the kernel's stdout/stderr to the files it is given; a thin engine on top of its default
one reports the start of every cell.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from papermill.engines import NBClientEngine, papermill_engines

ENGINE = "lmvae"


class CellReportingEngine(NBClientEngine):
    """papermill's default engine, calling on_cell(cell, index, n_cells) before each cell runs."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, on_cell=None, **kwargs):
        if on_cell is not None:
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                on_cell(cell, cell_index, len(nb_man.nb.cells))
                return start(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE, CellReportingEngine)


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def previous_cell_times(executed: Path) -> list[float] | None:
    """Per-cell durations papermill recorded in the previous executed copy of the notebook, if it ran to the end."""
    try:
        nb = json.loads(executed.read_text())
        times = [c.get("metadata", {}).get("papermill", {}).get("duration") for c in nb["cells"]]
    except (OSError, ValueError, KeyError):
        return None
    if not times or any(t is None for t in times):
        return None
    return [float(t) for t in times]


def previous_total(run_info: Path, profile: str) -> float | None:
    try:
        info = json.loads(run_info.read_text())
    except (OSError, ValueError):
        return None
    return float(info["seconds"]) if info.get("profile") == profile and "seconds" in info else None


class CellReporter:
    """on_cell for CellReportingEngine: one status line per code cell, written to `stream`.

    The estimate of the rest uses the previous run's per-cell times (skipping the parameters cell papermill
    injects), else its total time; runs that reload cached experiments are faster than the one before them."""

    def __init__(self, name: str, stream, cell_times: list[float] | None = None, total: float | None = None):
        self.name, self.stream = name, stream
        self.cell_times, self.total = cell_times, total
        self.t0 = time.time()
        self.section = ""

    def estimate(self, index: int, n_cells: int, elapsed: float) -> str:
        if self.cell_times and len(self.cell_times) in (n_cells, n_cells - 1):
            offset = n_cells - len(self.cell_times)  # papermill's injected cell is not in the old copy
            rest = sum(self.cell_times[max(0, index - offset):])
            return f", about {clock(rest)} left (previous run's cell times)"
        if self.total:
            rest = max(0.0, self.total - elapsed)
            return f", about {clock(rest)} left (previous run took {clock(self.total)})"
        return ""

    def __call__(self, cell, index: int, n_cells: int) -> None:
        if cell.cell_type == "markdown":
            heading = next((ln.lstrip("#").strip() for ln in cell.source.splitlines() if ln.startswith("#")), "")
            self.section = heading or self.section
            return
        if cell.cell_type != "code":
            return
        elapsed = time.time() - self.t0
        first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
        first = first if len(first) <= 70 else first[:67] + "..."
        section = f" | {self.section[:50]}" if self.section else ""
        self.stream.write(f"\n[{self.name} cell {index + 1}/{n_cells}, {clock(elapsed)} elapsed"
                          f"{self.estimate(index, n_cells, elapsed)}{section}] {first}\n")
        self.stream.flush()
