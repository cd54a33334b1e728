"""Notebook 04's runs at the paper's schedule, a few at a time, resumable across short GPU leases (issue 38, item 6).

The runs (one stream; some methods and seeds) go through the notebook's own code at a profile's settings (default
paper): `papers/ocm/runs.py`'s `stream_call` and `run_grid`, so on CUDA the seeds of a method train as one stack,
graphed, in the precision measured for the device. Their cache lives in `--cache`, and a run checkpoints at least
every `--checkpoint-s` seconds into it. A run killed (by the lease's end, a timeout) continues from its last checkpoint
when the script starts again on the same cache: carry the folder to the next lease (it holds checkpoints of a few MB:
keep it out of git). Methods run in the order given: the reservoir (VAE-ELBO-Random) takes its size and steps from the
VAE-ELBO-OCM run of its seed, which it trains first if absent.

Writes `--json`, also when it is stopped (SIGTERM, Ctrl-C): per run its state, complete with Table 1's numbers or
partial with the arriving batches done out of the stream's, with the profile, the settings' schedule, the device and
the commit. Commit that file (`benchmarks/results/ocm_paper_runs_<device type>.json`), not the cache.

Usage: python benchmarks/ocm_paper_runs.py [--profile paper] [--stream mnist] [--methods VAE-ELBO-OCM VAE-ELBO-Random]
       [--seeds 0] [--cache DIR] [--data-root ROOT] [--device auto] [--checkpoint-s 60] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from lmvae_core.experiments.common import Run
from lmvae_core.papers.ocm import runs
from lmvae_core.papers.ocm.settings import METHODS, SETTINGS
from lmvae_core.paths import benchmark_results
from lmvae_core.results.cache import cache_file, is_cached, partial_dir
from lmvae_core.runtime import pick_device


def progress(run: Run, call, batches: int) -> dict:
    """A run's state from the cache: complete (with Table 1's row), partial (from its own or its stack's
    checkpoint: the arriving batches done) or not started."""
    if is_cached(call.name, call.config):
        r = runs.run_stream(run, call.cell["stream"], call.cell["method"], call.cell["seed"], force=False)
        return {"state": "complete"} | runs.table_row(call.cell["stream"], call.cell["method"], call.cell["seed"], r)
    own = partial_dir(cache_file(call.name, call.config)) / "state.pt"
    if own.exists():
        done = torch.load(own, map_location="cpu", weights_only=False)["position"]["batches"]
        return {"state": "partial", "batches_done": done, "batches": batches}
    return {"state": "not started", "batches": batches}


def stacked_progress(run: Run, calls: list) -> dict:
    """{seed: rounds done} from the checkpoints of the stacks these calls form (their members share a round)."""
    out = {}
    if len(calls) < 2:
        return out
    for stack in runs.stacked_calls(run, calls, stack=True)[0]:
        state = partial_dir(cache_file(stack.name, stack.config)) / "state.pt"
        if state.exists():
            done = torch.load(state, map_location="cpu", weights_only=False)["rounds"]
            out |= {member["seed"]: done for member in stack.cell["members"]}
    return out


def stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")  # a timeout's kill: the runs' checkpoints stay, and the JSON is written


def ocm_done(run: Run, stream: str, seed: int) -> bool:
    c = runs.stream_call(run, stream, "VAE-ELBO-OCM", seed)
    return is_cached(c.name, c.config)


def states(run: Run, stream: str, methods: list[str], seeds: list[int], batches: int) -> list[dict]:
    """Every run's state, without training anything (a reservoir run whose OCM run is unfinished waits)."""
    table = []
    for method in methods:
        ready = [METHODS[method].get("memory") != "reservoir" or ocm_done(run, stream, seed) for seed in seeds]
        calls = [runs.stream_call(run, stream, method, seed) if ok else None for seed, ok in zip(seeds, ready)]
        stacked = stacked_progress(run, [c for c in calls if c is not None])
        for seed, call in zip(seeds, calls):
            if call is None:
                table.append({"method": method, "seed": seed, "state": "waiting for its VAE-ELBO-OCM run"})
                continue
            row = {"method": method, "seed": seed} | progress(run, call, batches)
            if row["state"] != "complete" and seed in stacked:
                row |= {"state": "partial (stacked)", "batches_done": stacked[seed]}
            table.append(row)
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="paper", choices=sorted(SETTINGS))
    p.add_argument("--stream", default="mnist")
    p.add_argument("--methods", nargs="+", default=["VAE-ELBO-OCM", "VAE-ELBO-Random"], choices=list(METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--cache", default="benchmarks/logs/gpu/ocm_cache")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--checkpoint-s", type=float, default=60.0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    os.environ["LMVAE_CACHE"] = str(Path(args.cache).resolve())
    os.environ["LMVAE_CHECKPOINT_S"] = str(args.checkpoint_s)
    device = pick_device(args.device)
    s = SETTINGS[args.profile]
    run = Run("04_ocm", args.profile, 0, device, args.data_root, None, settings=s)
    out = Path(args.json or benchmark_results() / f"ocm_paper_runs_{device.type}.json")
    train, _ = runs.load_stream(run, args.stream, s["stream_limit"])
    batches = math.ceil(len(train) / s["batch_size"])
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    start, stopped = time.time(), None
    try:
        for method in args.methods:
            calls = [runs.stream_call(run, args.stream, method, seed) for seed in args.seeds]
            grid = runs.run_grid(run, calls, f"{method} on {args.stream}")
            for f in grid.failures:
                print(f.report(), flush=True)
    except KeyboardInterrupt as stop:
        stopped = str(stop) or "interrupted"
    finally:
        table = states(run, args.stream, args.methods, args.seeds, batches)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        result = {"what": f"notebook 04's {args.profile} runs on {args.stream}, resumable across leases",
                  "profile": args.profile, "stream": args.stream, "epochs_per_batch": s["epochs_per_batch"],
                  "train_samples": s["train_samples"], "device": torch.cuda.get_device_name(device)
                  if device.type == "cuda" else "cpu", "commit": commit or "unknown",
                  "seconds_this_session": time.time() - start, "stopped": stopped, "runs": table}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        for row in table:
            print(f"{row['method']}, seed {row['seed']}: {row['state']}"
                  + (f", {row.get('batches_done', 0)} of {row['batches']} batches" if "partial" in row["state"]
                     else f", best component {row['ll_best']:.2f} nats" if row["state"] == "complete" else ""))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
