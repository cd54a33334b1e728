"""Run the notebooks in order through papermill and summarise time, status and claim verdicts."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .experiments.common import NOTEBOOKS
from .results.cluster import resolve_executor
from .runtime import resolve_profile


# Notebooks whose experiments are grids of independent runs (they take an `executor` parameter).
GRID_NOTEBOOKS = ("02_lifelong_generative_modeling", "03_binarized_regularization", "04_ocm", "05_benchmark")


@dataclass
class NotebookResult:
    name: str
    status: str  # 'ok' | 'failed'
    seconds: float
    executed: Path
    error: str = ""
    verdicts: dict[str, int] = field(default_factory=dict)


def select_notebooks(only: str | None, notebook_dir: Path) -> list[str]:
    available = [n for n in NOTEBOOKS if (notebook_dir / f"{n}.ipynb").exists()]
    if not only:
        return available
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [n for n in available if any(n.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(n.startswith(w) for n in available)]
    if unknown:
        raise ValueError(f"--only {only!r}: no notebook matches {unknown}; available: {', '.join(available)}")
    return chosen


def strip_injected_parameters(path: Path) -> None:
    """Drop papermill's injected-parameters cell from a notebook kept in notebooks/: left there, it would
    pin `profile` for every later run, nbval's smoke run included, whatever LMVAE_PROFILE says."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nbformat.write(nb, path)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=paths.repo_root(), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def verdict_counts(claims_csv: Path) -> dict[str, int]:
    if not claims_csv.exists():
        return {}
    import pandas as pd

    return pd.read_csv(claims_csv)["verdict"].value_counts().to_dict()


def reproduce(profile: str | None = "auto", only: str | None = None, out: str | None = None,
              executed_dir: str | None = None, in_place: bool = False, echo=print,
              notebook_dir: str | Path | None = None, executor: str | None = None) -> list[NotebookResult]:
    """executor: passed to the notebooks with grids (02-05) as their `executor` parameter: 'local', or a
    Dask scheduler address (None: serial, or $LMVAE_DASK_SCHEDULER)."""
    import papermill as pm

    resolved = resolve_profile(profile)
    if executor is not None:
        resolve_executor(executor)  # a bad name fails before any notebook starts
    notebook_dir = Path(notebook_dir) if notebook_dir else paths.repo_root() / "notebooks"
    names = select_notebooks(only, notebook_dir)
    executed_root = Path(executed_dir) if executed_dir else paths.work_root() / "executed" / resolved
    executed_root.mkdir(parents=True, exist_ok=True)
    figures = Path(out) if out else paths.figures_root(resolved)
    commit = git_commit()
    results = []
    for i, name in enumerate(names, 1):
        source = notebook_dir / f"{name}.ipynb"
        target = source if in_place else executed_root / f"{name}.ipynb"
        echo(f"[{i}/{len(names)}] {name} (profile {resolved}) ...", end=" ", flush=True)
        t0 = time.time()
        params = {"profile": resolved, "progress": False}
        if out:
            params["out_dir"] = str(Path(out).resolve())
        if executor is not None and name in GRID_NOTEBOOKS:
            params["executor"] = executor
        try:
            pm.execute_notebook(str(source), str(target), parameters=params, cwd=str(notebook_dir),
                                progress_bar=False, kernel_name="python3")
            status, error = "ok", ""
        except Exception as err:  # papermill raises PapermillExecutionError; keep going with the others
            status = "failed"
            error = f"{getattr(err, 'ename', type(err).__name__)}: {getattr(err, 'evalue', err)}"
        if in_place and target.exists():
            strip_injected_parameters(target)
        seconds = time.time() - t0
        nb_out = figures / name
        result = NotebookResult(name, status, seconds, target, error, verdict_counts(nb_out / "claims.csv"))
        results.append(result)
        if status == "ok" and nb_out.exists():
            (nb_out / "run_info.json").write_text(json.dumps(
                {"profile": resolved, "commit": commit, "seconds": round(seconds, 1),
                 "finished": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
        echo(f"{status} in {seconds:.0f}s" + (f"\n    {error}\n    executed notebook: {target}" if error else ""))
    echo(summary_table(results))
    (executed_root / "summary.json").write_text(json.dumps(
        [{"notebook": r.name, "status": r.status, "seconds": round(r.seconds, 1), "error": r.error,
          "verdicts": r.verdicts, "executed": str(r.executed)} for r in results], indent=1))
    return results


def summary_table(results: list[NotebookResult]) -> str:
    lines = ["", f"{'notebook':34s} {'status':7s} {'time':>7s}  verdicts"]
    for r in results:
        verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(r.verdicts.items())) or "-"
        lines.append(f"{r.name:34s} {r.status:7s} {r.seconds:6.0f}s  {verdicts}")
    total = sum(r.seconds for r in results)
    lines.append(f"{'total':34s} {'':7s} {total:6.0f}s")
    return "\n".join(lines)


