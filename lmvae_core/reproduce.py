"""Run the notebooks in order through papermill and summarise time, status and claim verdicts."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .bars import PLAIN_ENV, TEXT_ENV
from .experiments import registry
from .results.cluster import resolve_executor
from .results.notebook_outputs import clean_for_commit
from .runtime import resolve_profile, uses_sample


@dataclass
class NotebookResult:
    name: str
    status: str  # 'ok' | 'failed'
    seconds: float
    executed: Path
    error: str = ""
    verdicts: dict[str, int] = field(default_factory=dict)


def select_notebooks(only: str | None, notebook_dir: Path) -> list[str]:
    available = [n for n in registry.notebooks() if (notebook_dir / f"{n}.ipynb").exists()]
    if not only:
        return available
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [n for n in available if any(n.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(n.startswith(w) for n in available)]
    if unknown:
        raise ValueError(f"--only {only!r}: no notebook matches {unknown}; available: {', '.join(available)}")
    return chosen


# A run projected to take longer than this is told so plainly before it starts, with the faster choices.
LONG_RUN_HOURS = 12.0


def run_device() -> str:
    """'cuda' where the notebooks' device='auto' finds a GPU, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _duration(hours: float) -> str:
    if hours >= 48:
        return f"{hours:,.0f} h ({hours / 24:,.0f} days)"
    if hours >= 1:
        return f"{hours:,.1f} h"
    return f"{hours * 60:.0f} min"


def paper_hours(cost: dict, name: str, device: str) -> float | None:
    """Projected hours of one notebook's paper profile from benchmarks/results/paper_cost.json: `gpu_hours` on a GPU,
    `cpu_hours` (measured step times, one thread) otherwise."""
    entry = cost.get("notebooks", {}).get(name)
    if not entry:
        return None
    value = entry.get("gpu_hours" if device == "cuda" else "cpu_hours")
    return float(value) if value is not None else None


def measured_ranges(cost: dict) -> tuple[str, dict]:
    """The GPU measured and {notebook: (graphed, eager) GPU hours} at its times per operation (paper_cost.json's
    `measured_basis`); ('', {}) where the file has none."""
    basis = cost.get("measured_basis") or {}
    if not basis.get("hours"):
        return "", {}
    return basis["per_op"]["device"], {n: (h["graphed"], h["eager"]) for n, h in basis["hours"].items()}


def quick_hours(figures: Path, name: str) -> float | None:
    """The last cold quick run's wall time of one notebook (figures/<nb>/run_info.json `cold_seconds`), in hours."""
    try:
        info = json.loads((figures / name / "run_info.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("profile") != "quick" or "cold_seconds" not in info:
        return None
    return float(info["cold_seconds"]) / 3600


def cost_message(names: list[str], profile: str, device: str, cost: dict | None = None,
                 figures: Path | None = None) -> str:
    """What a run of these notebooks is projected to cost on `device` ('cpu' or 'cuda'), one line per notebook,
    and, when the total exceeds LONG_RUN_HOURS, a plain warning that names the faster choices. paper: from
    benchmarks/results/paper_cost.json (cost, default: the committed file); quick: the committed cold times
    (figures/<nb>/run_info.json, figures default: the repository's figures/). '' for the sample profiles (minutes)."""
    if uses_sample(profile):
        return ""
    root = paths.repo_root()
    figures = figures if figures is not None else root / "figures"
    if cost is None:
        try:
            cost = json.loads((paths.benchmark_results(root) / "paper_cost.json").read_text())
        except (OSError, ValueError):
            cost = {}
    where = "a GPU" if device == "cuda" else "this CPU"
    if profile == "paper":
        hours = {n: paper_hours(cost, n, device) for n in names}
        source = "benchmarks/results/paper_cost.json, " + (
            "GPU hours projected from FLOPs and launch counts" if device == "cuda"
            else "CPU hours from measured step times on one thread")
    else:
        hours = {n: quick_hours(figures, n) for n in names}
        source = ("the committed cold times, figures/<notebook>/run_info.json, measured on a "
                  f"{_cold_cpus(figures, names)}-core CPU")
    lines = [f"Projected time, profile {profile} on {where} ({source}):"]
    gpu, ranges = measured_ranges(cost) if profile == "paper" and device == "cuda" else ("", {})
    for n in names:
        lines.append(f"  {n:34s} {_duration(hours[n]) if hours[n] is not None else 'no estimate'}"
                     + (f" ({_duration(ranges[n][0])} to {_duration(ranges[n][1])} at the times per operation "
                        f"measured on {gpu}, graphed to eager)" if n in ranges else ""))
    known = [h for h in hours.values() if h is not None]
    total = sum(known)
    if len(names) > 1:
        lines.append(f"  {'total':34s} {_duration(total)}"
                     + (" (notebooks without an estimate not counted)" if len(known) < len(names) else ""))
    if total > LONG_RUN_HOURS:
        faster = []
        if device != "cuda" and profile == "paper":
            gpu = sum(h for h in (paper_hours(cost, n, "cuda") for n in names) if h is not None)
            faster.append(f"a GPU (projected {_duration(gpu)} for the same notebooks)")
        if profile != "quick":
            quick = [quick_hours(figures, n) for n in names]
            known_quick = [h for h in quick if h is not None]
            faster.append("`--profile quick`" + (f" (about {_duration(sum(known_quick))} cold on a CPU)"
                                                 if known_quick else ""))
        slowest = max((n for n in names if hours[n] is not None), key=lambda n: hours[n])
        others = [n for n in names if n != slowest]
        if others:
            faster.append(f"fewer notebooks with `--only` (e.g. `--only {','.join(n[:2] for n in others)}` leaves out "
                          f"{slowest}, {_duration(hours[slowest])})")
        lines.append(f"This run is projected to take {_duration(total)} on {where}: more than "
                     f"{LONG_RUN_HOURS:.0f} hours. Faster choices: " + "; ".join(faster) + ".")
    return "\n".join(lines)


def _cold_cpus(figures: Path, names: list[str]) -> str:
    cpus = set()
    for n in names:
        try:
            cpus.add(json.loads((figures / n / "run_info.json").read_text()).get("cold_cpus"))
        except (OSError, ValueError):
            pass
    cpus.discard(None)
    return "/".join(str(c) for c in sorted(cpus)) or "?"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=paths.repo_root(), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(inode, mtime in ns): changes whenever the file is (atomically) rewritten."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def verdict_counts(claims_csv: Path, before: tuple[int, int] | None) -> dict[str, int]:
    """Verdict counts of a claims table this run wrote (its stamp differs from `before`, taken before the
    run), else {}: a table left over from an earlier run says nothing about this one."""
    stamp = file_stamp(claims_csv)
    if stamp is None or stamp == before:
        return {}
    import pandas as pd

    return pd.read_csv(claims_csv)["verdict"].value_counts().to_dict()


def error_line(err: Exception) -> str:
    """'Name: message' of the exception raised in the notebook (papermill carries its name and value)."""
    ename = getattr(err, "ename", type(err).__name__)
    lines = [ln for ln in str(getattr(err, "evalue", err)).splitlines() if ln.strip()]
    return f"{ename}: {lines[0].strip() if lines else ''}".rstrip(": ")


def reproduce(profile: str | None = "auto", only: str | None = None, out: str | None = None,
              executed_dir: str | None = None, in_place: bool = False, echo=print,
              notebook_dir: str | Path | None = None, offline: bool = False, data_root: str | None = None,
              stream=None, executor: str | None = None, cold: bool = False,
              keep_cold_cache: bool = False) -> list[NotebookResult]:
    """Check every selected notebook's data (fetching what is missing unless offline), then run them in order.
    executor: passed to the notebooks with grids (02-05) as their `executor` parameter: 'local', or a Dask
    scheduler address (None: serial, or $LMVAE_DASK_SCHEDULER). cold: point $LMVAE_CACHE (inherited by the kernels
    and the Dask workers) at a new empty folder, so that nothing is reloaded, and record each notebook's time as
    `cold_seconds`; without it run_info.json keeps the last cold time (with its commit) beside `seconds`. The cold
    cache is deleted when the run ends, however it ends (keep_cold_cache=True keeps it); the cold caches of
    earlier runs that were killed before they could delete theirs are deleted when the next cold run starts.

    Raises DataMissingError before any kernel starts when data is missing and cannot be fetched. `stream`
    receives the kernels' output and the per-cell status lines (default: standard output)."""
    from .data.datasets import downloads_allowed
    from .experiments.needs import ensure
    from .results.atomic import write_text

    if keep_cold_cache and not cold:
        raise ValueError("keep_cold_cache applies to a cold run: pass cold=True (the CLI's --cold) too")
    stream = stream or sys.stdout
    resolved = resolve_profile(profile)
    if executor is not None:
        resolve_executor(executor)  # a bad name fails before any notebook starts
    notebook_dir = Path(notebook_dir) if notebook_dir else paths.repo_root() / "notebooks"
    names = select_notebooks(only, notebook_dir)
    message = cost_message(names, resolved, run_device())
    if message:
        echo(message, flush=True)
    ensure(names, resolved, data_root, download=not offline and downloads_allowed(), echo=echo)
    import papermill as pm  # after the data check: importing papermill alone takes seconds

    from .progress import ENGINE, CellReporter, previous_cell_times, previous_total
    executed_root = Path(executed_dir) if executed_dir else paths.work_root() / "executed" / resolved
    executed_root.mkdir(parents=True, exist_ok=True)
    figures = Path(out) if out else paths.figures_root(resolved)
    commit = git_commit()
    caller_env: dict[str, str | None] = {}  # what the kernels inherit from us, and the caller's values to restore
    probe = cache = None
    if cold:
        probe = machine_probe()  # before any kernel starts, so that nothing of ours contends
        cache = new_cold_cache(echo)
        _set_env(caller_env, "LMVAE_CACHE", str(cache))  # a library caller keeps its own cache after the call
        echo(f"cold run: empty cache {cache}")
    results = []
    # Bars from the kernels: nested ones move the cursor (ESC[A), which only a terminal renders (lmvae_core/bars.py).
    if os.environ.get(PLAIN_ENV) is None:
        _set_env(caller_env, PLAIN_ENV, "0" if _isatty(stream) else "1")
    _set_env(caller_env, TEXT_ENV, "1")  # text bars, not widgets, in the executed notebooks (lmvae_core/bars.py)
    kernel_dir = tempfile.mkdtemp(prefix="lmvae-kernel-")
    try:
        for i, name in enumerate(names, 1):
            source = notebook_dir / f"{name}.ipynb"
            target = source if in_place else executed_root / f"{name}.ipynb"
            nb_out = figures / name
            reporter = CellReporter(name, stream, previous_cell_times(executed_root / f"{name}.ipynb"),
                                    previous_total(nb_out / "run_info.json", resolved))
            echo(f"[{i}/{len(names)}] {name} (profile {resolved}) ...", flush=True)
            before = file_stamp(nb_out / "claims.csv")
            t0 = time.time()
            params = {"profile": resolved, "progress": True}
            if offline:
                params["offline"] = True
            if out:
                params["out_dir"] = str(Path(out).resolve())
            if executor is not None and name in registry.grid_notebooks():
                params["executor"] = executor
            if data_root:
                params["data_root"] = str(Path(data_root).resolve())
            try:
                pm.execute_notebook(str(source), str(target), parameters=params, cwd=str(notebook_dir),
                                    progress_bar=False, kernel_name="python3", engine_name=ENGINE,
                                    on_cell=reporter, stdout_file=stream, stderr_file=stream,
                                    config=kernel_config(kernel_dir))
                status, error = "ok", ""
            except Exception as err:  # papermill raises PapermillExecutionError; keep going with the others
                status, error = "failed", error_line(err)
            if in_place and target.exists():
                clean_for_commit(target)
            seconds = time.time() - t0
            verdicts = verdict_counts(nb_out / "claims.csv", before) if status == "ok" else {}
            result = NotebookResult(name, status, seconds, target, error, verdicts)
            results.append(result)
            if status == "ok" and nb_out.exists():
                info = {"profile": resolved, "commit": commit, "seconds": round(seconds, 1),
                        "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "executor": executor or "serial"}
                info.update(cold_time(commit, seconds, executor, probe) if cold
                            else previous_cold(nb_out / "run_info.json", resolved))
                write_text(nb_out / "run_info.json", json.dumps(info, indent=1))
            echo(f"\n{name}: {status} in {seconds:.0f}s"
                 + (f"\n    {error}\n    executed notebook: {target}" if error else ""))
    finally:
        shutil.rmtree(kernel_dir, ignore_errors=True)
        _restore_env(caller_env)
        if cold:
            if keep_cold_cache:
                echo(f"cold run: kept its cache {cache} ({_size_text(cache)})")
            else:
                echo(f"cold run: removed its cache {cache} ({_size_text(cache)})")
                _remove_cold_cache(cache)
    echo(summary_table(results))
    write_text(executed_root / "summary.json", json.dumps(
        [{"notebook": r.name, "status": r.status, "seconds": round(r.seconds, 1), "error": r.error,
          "verdicts": r.verdicts, "executed": str(r.executed)} for r in results], indent=1))
    return results


def _set_env(saved: dict[str, str | None], name: str, value: str) -> None:
    """Set an environment variable for the kernels, remembering the caller's value (None: unset) the first time."""
    saved.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def kernel_config(folder: str):
    """traitlets config for the kernels papermill starts: talk to them over IPC (Unix sockets under `folder`, a
    private temporary folder of this run) instead of TCP on localhost. Over TCP without CurveZMQ keys, ipykernel
    warns at every start that the connection is unencrypted; a local kernel needs no network port at all."""
    from traitlets.config import Config

    if os.name == "nt":  # no Unix sockets: ZeroMQ's ipc transport is not available there
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})


# A cold run writes "pid@host" into <its cache folder>.owner, beside the folder (which stays empty at the start);
# the folder is an orphan once that process is gone.
COLD_OWNER = ".owner"


def _owner_file(folder: Path) -> Path:
    return folder.with_name(folder.name + COLD_OWNER)


def _remove_cold_cache(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _owner_file(folder).unlink(missing_ok=True)


def new_cold_cache(echo=print) -> Path:
    """A new, empty cache folder for a cold run under <work root>/cold-cache, owned by this process. The orphans
    of earlier cold runs (killed before they could delete their cache) are deleted first: a cold cache holds
    nothing that a later run reads, and 42 of them once filled 17 GB."""
    root = paths.work_root() / "cold-cache"
    for folder in orphan_cold_caches(root):
        echo(f"cold run: removing the cache an earlier cold run left behind, {folder} ({_size_text(folder)})")
        _remove_cold_cache(folder)
    root.mkdir(parents=True, exist_ok=True)
    # a unique name even for two cold runs of one process within a second (the first one's cache kept)
    cache = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-", dir=root))
    _owner_file(cache).write_text(f"{os.getpid()}@{socket.gethostname()}")
    return cache


def orphan_cold_caches(root: Path) -> list[Path]:
    """Folders under root whose owner process no longer runs on this host, or that have no owner (left by
    versions that did not delete their cold cache). A folder owned by another host (a shared disk) is kept."""
    orphans = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        owner = _owner_file(folder)
        if owner.is_file():
            pid, _, host = owner.read_text().strip().partition("@")
            if host != socket.gethostname() or (pid.isdigit() and _running(int(pid))):
                continue
        orphans.append(folder)
    return orphans


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _size_text(folder: Path) -> str:
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0
    return f"{size / 2**20:.1f} MB"


def cold_time(commit: str, seconds: float, executor: str | None, probe: float | None = None) -> dict:
    """The fields a cold run records: its wall time from an empty cache, with the commit and executor it ran on,
    and the machine probe (VAE steps per second on one thread) measured before the call's first notebook."""
    info = {"cold_seconds": round(seconds, 1), "cold_commit": commit, "cold_executor": executor or "serial",
            "cold_cpus": os.cpu_count()}
    if probe is not None:
        info["cold_probe_steps_per_s"] = round(probe, 1)
    return info


def machine_probe(steps: int = 300, warmup: int = 30) -> float:
    """Training steps per second of a 784-200-20 VAE at batch 64 on one thread (Adam, dynamic binarisation).
    Machines of the same core count differ (the same run has trained 3x faster on one than on another), so
    a cold time is only read together with this number; cold times of two machines compare through the
    ratio of their probes, not directly."""
    import torch

    from .models import VAE, VAEConfig
    from .runtime import cpu_threads
    from .training.loop import TrainConfig, make_optimizer
    from .training.step import train_step

    with cpu_threads(1):
        gen = torch.Generator().manual_seed(0)
        model = VAE(VAEConfig(hidden=(200,), latent_dim=20))
        opt = make_optimizer(model.parameters(), TrainConfig())
        params = list(model.parameters())
        x = torch.rand(64, 1, 28, 28, generator=gen)
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            train_step(model.loss, torch.bernoulli(x, generator=gen), opt, params)
        return steps / (time.perf_counter() - t0)


def previous_cold(run_info: Path, profile: str) -> dict:
    """The last cold run's fields of the same profile, carried over by a run that reloaded from the cache."""
    try:
        info = json.loads(run_info.read_text())
    except (OSError, ValueError):
        return {}
    if info.get("profile") != profile:
        return {}
    return {k: v for k, v in info.items() if k.startswith("cold_")}


def summary_table(results: list[NotebookResult]) -> str:
    """Status, time and this run's verdicts per notebook; a failed one shows its error and executed copy instead."""
    lines = ["", f"{'notebook':34s} {'status':7s} {'time':>7s}  verdicts (this run)"]
    for r in results:
        if r.status == "ok":
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(r.verdicts.items())) or "- (no claims table written)"
        else:
            detail = f"{r.error}\n{'':52s}executed notebook: {r.executed}"
        lines.append(f"{r.name:34s} {r.status:7s} {r.seconds:6.0f}s  {detail}")
    total = sum(r.seconds for r in results)
    lines.append(f"{'total':34s} {'':7s} {total:6.0f}s")
    return "\n".join(lines)
