"""Grid speed: notebook 05's quick grid (or a stated subset) serially and on a local Dask cluster, side by side.

Both runs compute the same (stream, method, seed) runs from an empty cache each (two temporary cache folders),
in one invocation, one after the other: first serially in this process exactly as the notebook does by default
(each run on runtime.RESULT_THREADS torch threads, as a worker computes it), then with executor="local" (one single-threaded worker process per core).
The ratio serial / local is the point; the machine's load average before and after is recorded because other
processes sharing the cores change both times.

Usage: LMVAE_DATA=/path/to/torchvision/root python benchmarks/grid_speed.py
       [--streams split_mnist,taskfree_mnist] [--seeds 0] [--executor local] [--json benchmarks/results/grid_speed_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from lmvae_core import paths
from lmvae_core.runtime import RESULT_THREADS


def grid_seconds(executor: str | None, streams, seeds, cache: Path) -> tuple[float, list[dict], int, int, dict]:
    """The notebook's own path, benchmark.run_all: on a cluster the stream classifiers first, then every run,
    costliest first. Also returns each computed run's own seconds (on a cluster, measured on its worker)."""
    from lmvae_core.papers.benchmark import experiments as B
    from lmvae_core.experiments.common import setup

    os.environ["LMVAE_CACHE"] = str(cache)
    run = setup("05_benchmark", "quick", out_dir=str(cache / "out"), progress=True, settings=B.SETTINGS,
                executor=executor)
    run = run.with_settings(run.settings.replace(streams=tuple(streams), seeds=tuple(seeds)))
    # rows expected; offline cells of the task-free stream reuse split MNIST's runs (fewer calls than rows)
    n = len(B.grid_cells(run.settings))
    computed = len(B.grid_calls(run))
    per_run = {}

    def echo(line: str) -> None:  # "stream=..., method=..., seed=0: 12.3 s" from the grid runner
        label, _, took = line.rpartition(": ")
        per_run[label] = float(took.removesuffix(" s")) if took.endswith(" s") else None

    t0 = time.perf_counter()
    rows = B.run_all(run, progress=echo)
    seconds = time.perf_counter() - t0
    if len(rows) != n:
        raise RuntimeError(f"{n - len(rows)} of {n} cells missing: runs failed (printed above)")
    return seconds, rows, n, computed, per_run


def main() -> None:
    from lmvae_core.papers.benchmark.experiments import METHOD_NAMES, STREAM_TITLES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="split_mnist,taskfree_mnist",
                        help=f"comma-separated, of {', '.join(STREAM_TITLES)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (quick profile: 0,1,2)")
    parser.add_argument("--executor", default="local", help="the parallel contender (default: local)")
    parser.add_argument("--json", default=str(paths.benchmark_results() / "grid_speed_cpu.json"))
    args = parser.parse_args()
    if not os.environ.get("LMVAE_DATA"):
        raise SystemExit("set LMVAE_DATA to a torchvision data root (the quick profile needs the real datasets), "
                         "e.g. python /path/to/make_torchvision_root.py /tmp/lmvae_data")
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lmvae_grid_") as tmp:
        serial_s, serial_rows, n, computed, serial_runs = grid_seconds(None, streams, seeds, Path(tmp) / "serial")
        local_s, local_rows, _, _, local_runs = grid_seconds(args.executor, streams, seeds, Path(tmp) / "local")
    load_after = os.getloadavg()
    # The same runs, so the same results (timing columns aside): a speed-up that changed results would not count.
    same = all(a["final_ll"] == b["final_ll"] and a["fid"] == b["fid"] for a, b in zip(serial_rows, local_rows))
    from lmvae_core.results.cluster import gpu_count, local_cores

    workers = gpu_count() or local_cores()
    busy = sum(v for v in local_runs.values() if v)

    result = {
        "grid": {"notebook": "05_benchmark", "profile": "quick", "streams": streams, "methods": list(METHOD_NAMES),
                 "seeds": seeds, "runs": n, "computed_runs": computed},
        "serial_seconds": round(serial_s, 1), "local_seconds": round(local_s, 1),
        "speedup_local_vs_serial": round(serial_s / local_s, 2),
        "executor": args.executor, "workers": workers, "cores": local_cores(),
        # where the parallel time goes: the runs' own seconds serially and on the workers (side by side), and
        # how much of the workers' time the runs filled (the rest: classifier stage, start-up, idle at the end)
        "run_seconds": {"serial": serial_runs, "local": local_runs},
        "sum_run_seconds": {"serial": round(sum(v for v in serial_runs.values() if v), 1), "local": round(busy, 1)},
        "worker_utilisation": round(busy / (workers * local_s), 3),
        "serial_torch_threads": RESULT_THREADS,  # what each serial run computes on (results/runner.py)
        "process_torch_threads": torch.get_num_threads(),
        "same_results": same,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "note": ("cores shared with other processes: see the load averages (1, 5, 15 min); a load above the core "
                 "count during the run slows both contenders and the parallel one more"),
        "torch": torch.__version__, "python": platform.python_version(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":  # required: local Dask workers are spawned processes that re-import this file
    main()
