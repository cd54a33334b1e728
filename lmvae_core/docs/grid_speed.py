"""The grid-speed paragraph of docs/dask.md, from the committed benchmarks/results/grid_speed_cpu.json (never typed by
hand).

`benchmarks/grid_speed.py` writes the JSON; cpu_bounds.json (cpu_bounds.py) and thread_invariance.json
(thread_invariance.py), beside it in benchmarks/results/, add to it where present. `lmvae readme` writes it between
the grid-speed markers.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from . import read_results
from .speed import parallel_fastest  # the same reading of the bounds as the speed section

TARGET = 1.7  # issue "Sweeps that outgrow one machine": local cluster vs serial on 2 cores


def thread_sentence(t: dict) -> str:
    """What benchmarks/thread_invariance.py found: which models train to the same bits with 1 and 2 threads."""
    vae, clf = t["vae_784_200_20_2_epochs"], t["split_mnist_feature_classifier"]
    fids = " against ".join(f"{v:.1f} with {k} thread{'s' if k != '1' else ''}"
                            for k, v in clf["fid_2000_train_vs_test"].items())
    same = lambda c: "bitwise the same" if c["identical"] else (  # noqa: E731
        f"not the same (parameters up to {c['max_abs_parameter_difference']:.2g} apart)")
    if "split_mnist_feature_classifier_unpinned" in t:  # run after the package fixed its thread count
        n = t["result_threads"]
        return (f"`benchmarks/thread_invariance.py` ({t['finished']}) trains in fresh processes with 1 and with 2 "
                f"torch threads: a 784-200-20 VAE comes out {same(vae)}; notebook 05's split-MNIST feature classifier, "
                f"trained at the caller's thread count, comes out {same(t['split_mnist_feature_classifier_unpinned'])}; "
                f"trained through the package, which trains and reads its classifiers on {n} thread"
                f"{'s' if n != 1 else ''} (`runtime.RESULT_THREADS`), it comes out {same(clf)} (FID of 2,000 real "
                f"training images: {fids}).")
    return (f"`benchmarks/thread_invariance.py` ({t['finished']}) found a cause in the thread count (the serial side "
            "runs torch's 2 threads, a worker 1): a 784-200-20 VAE trained with 1 and with 2 threads comes out "
            f"{same(vae)}, but notebook 05's split-MNIST feature classifier comes out {same(clf)}, so the FID and "
            f"fitting capacity read through it change with the executor (FID of 2,000 real training images: {fids}).")


def _threads(r: dict) -> tuple[int, int]:
    """(threads each serial run computes on, threads of the serial process); equal in runs before the thread fix,
    which recorded only the process's."""
    return r["serial_torch_threads"], r.get("process_torch_threads", r["serial_torch_threads"])


def serial_threads_sentence(r: dict, bounds: dict | None) -> str:
    """Since the thread fix a serial grid runs each run on one thread, as a worker does: say what that costs, and
    judge the target like for like too (it was set when the serial side ran torch's 2 threads)."""
    n, process = _threads(r)
    if n >= process:
        return ""
    text = (f"The serial side runs each run on {n} thread, as a worker does, so that both executors give the same "
            f"results (`runtime.RESULT_THREADS`); its process has {process}. The target was set when the serial side "
            f"ran on {process} threads, so the ratio above is not like for like with it.")
    quick = next((v for k, v in (bounds or {}).get("parallel", {}).items() if "quick" in k), {})
    if "two_threads_speedup" in quick:
        like = r["speedup_local_vs_serial"] / quick["two_threads_speedup"]
        text += (f" A second thread speeds one run up {quick['two_threads_speedup']:.2f}x (`cpu_bounds.py`, "
                 f"{bounds['finished'][:10]}), so against a serial grid on {process} threads the cluster would gain "
                 f"about {like:.2f}x: the target, like for like, {'met' if like >= TARGET else 'missed'}.")
    return text


def serial_threads(r: dict) -> str:
    n, process = _threads(r)
    if n < process:
        return f"each run on {n} torch thread in a {process}-thread process"
    return f"torch's {n} threads in one process"


def grid_section(r: dict, bounds: dict | None = None, threads: dict | None = None) -> str:
    g = r["grid"]
    ratio = r["speedup_local_vs_serial"]
    # the load after the run counts the run itself; only the load before says whether others shared the cores
    before = r["load_average_before"][0]
    busy = (f"{'with other processes on the cores' if before > r['cores'] * 0.5 else 'with nothing else running'} "
            f"(1-minute load average {before:.1f} before the run)")
    computed = (f", of which {g['computed_runs']} are trained: the task-free stream's offline references are split "
                "MNIST's runs" if g.get("computed_runs", g["runs"]) != g["runs"] else "")
    lines = [f"Speed: `benchmarks/grid_speed.py` runs a fixed subset of notebook 05's quick grid ({', '.join(g['streams'])}; "
             f"{len(g['methods'])} methods; seeds {', '.join(map(str, g['seeds']))}: {g['runs']} runs{computed}) from an empty "
             f"cache serially and then with `executor=\"{r['executor']}\"`, in one invocation, and writes "
             "`benchmarks/results/grid_speed_cpu.json`; `lmvae readme` writes this paragraph from it. "
             f"The committed run ({r['finished']}, {r['cores']} cores, {busy}, torch {r['torch']}): "
             f"{r['serial_seconds']:,.1f} s serially ({serial_threads(r)}) "
             f"against {r['local_seconds']:,.1f} s on the local cluster ({r['workers']} workers, one thread each), "
             f"**{ratio:.2f}x** against the {TARGET}x target: {'met' if ratio >= TARGET else 'missed'}. "
             f"The two gave {'identical' if r['same_results'] else 'different'} results (final log-likelihood and "
             "FID of every run)."]
    lines.append(serial_threads_sentence(r, bounds))
    if threads:
        lines.append(thread_sentence(threads))
    elif not r["same_results"]:
        lines.append("The serial side sums in another order (several intra-op threads against one per worker), a "
                     "likely cause that was not checked.")
    runs = r.get("run_seconds")
    if runs:  # where the parallel time went (grid_speed.py records each run's own seconds on both sides)
        ratios = {k: runs["local"][k] / v for k, v in runs["serial"].items() if v and runs["local"].get(k)}
        per_run = sorted(ratios.values())
        lines.append(f"On a worker, side by side with the other, a run took {statistics.median(per_run):.2f}x its serial "
                     f"time (median; {per_run[0]:.2f}x to {per_run[-1]:.2f}x), and the runs of the main grid kept the "
                     f"workers busy {r['worker_utilisation']:.0%} of the cluster's wall time (the rest: the stage "
                     "before the grid, which trains the stream classifiers with the calibration VAE alongside, "
                     "start-up, and the end of the grid, when one worker waits for the other's last run).")
        below_half = [k for k, v in ratios.items() if v < 0.5]
        if below_half:  # serially, a stream's first run also trains the stream's classifier (the cluster's first stage)
            lines.append(f"Below 0.5x: {', '.join(below_half)}; serially such a run also trains what it needs first (its "
                         "stream's classifier), which on the cluster the stage before the grid had trained.")
    if bounds:
        name, b = next((k, v) for k, v in bounds["parallel"].items() if "quick" in k)
        lines.append(f"For comparison, `benchmarks/cpu_bounds.py` ({bounds['finished'][:10]}) measured the most two "
                     f"one-thread processes can gain over one 2-thread process on this kind of machine, for the "
                     f"grid's network ({name}): {b['parallel_bound']:.2f}x at the median of its rounds"
                     + (f", {parallel_fastest(b):.2f}x from each side's fastest round (docs/speed.md says why "
                        "the two differ)." if "rounds" in b else "."))
    return " ".join(line for line in lines if line) + "\n"


def section(results_dir: Path) -> str:
    """The paragraph from the results files in results_dir (the repository's benchmarks/results/)."""
    grid = read_results(results_dir, "grid_speed_cpu.json")
    if grid is None:
        return "No grid-speed run is committed yet: `python benchmarks/grid_speed.py` writes one.\n"
    return grid_section(grid, read_results(results_dir, "cpu_bounds.json"),
                        read_results(results_dir, "thread_invariance.json"))
