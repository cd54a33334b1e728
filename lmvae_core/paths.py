"""Where things live: repository root, data root, figures, caches.

Notebooks run with their own folder as working directory (papermill, nbval, JupyterLab), so every
default path is resolved against the repository root, found by walking up to pyproject.toml.
"""
from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").exists() and (candidate / "lmvae_core").is_dir():
            return candidate
    package_parent = Path(__file__).resolve().parents[1]
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return here


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Argument, else $LMVAE_DATA, else <repo>/data."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.environ.get("LMVAE_DATA"):
        return Path(os.environ["LMVAE_DATA"]).expanduser().resolve()
    return repo_root() / "data"


def sample_root() -> Path:
    """The small real sample committed with the repository (smoke profile and tests)."""
    return Path(__file__).resolve().parents[1] / "data" / "sample"


def work_root() -> Path:
    """Git-ignored scratch space: caches, smoke-run figures, executed notebooks."""
    return Path(os.environ.get("LMVAE_WORK", repo_root() / ".lmvae")).expanduser().resolve()


def cache_root() -> Path:
    return Path(os.environ.get("LMVAE_CACHE", work_root() / "cache")).expanduser().resolve()


def figures_root(profile: str) -> Path:
    """Committed figures for real runs; smoke runs never overwrite them."""
    if os.environ.get("LMVAE_OUT"):
        return Path(os.environ["LMVAE_OUT"]).expanduser().resolve()
    from .runtime import uses_sample

    if uses_sample(profile):
        return work_root() / profile / "figures"
    return repo_root() / "figures"


# benchmarks/ holds only the scripts; what they measure and the logs of their runs sit in folders named here once, so
# that the scripts that write them and the readers (`lmvae readme`, `lmvae reproduce`, its dry run, notebook 00) agree.
def benchmark_results(root: Path | None = None) -> Path:
    """benchmarks/results/: the committed measurements, each file named for the script that wrote it."""
    return (root or repo_root()) / "benchmarks" / "results"


def benchmark_logs(kind: str, root: Path | None = None) -> Path:
    """benchmarks/logs/<kind>/: raw logs of benchmark runs (gpu: gpu_run.sh's; grid: earlier grid_speed.py results)."""
    return (root or repo_root()) / "benchmarks" / "logs" / kind
