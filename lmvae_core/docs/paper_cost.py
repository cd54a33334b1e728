"""The paper-cost section of docs/paper_cost.md, from the committed benchmarks/results/paper_cost.json (never typed by
hand).

`benchmarks/paper_cost.py --json FILE` writes the JSON; results/train_speed_gpu.json (train_speed.py on a GPU) checks
its launch assumption and logs/gpu/paper_*/ (gpu_run.sh) adds the paper-profile runs measured. `lmvae readme` writes it
between the paper-cost markers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from . import read_results


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:,.1f}" if h >= 1 else f"{h:.2f}"


def cost_section(r: dict) -> str:
    a = r["assumptions"]
    lines = ["`benchmarks/paper_cost.py` counts, from the experiment modules' `paper` settings, the optimiser steps "
             "and evaluation passes (image-samples: images x IWAE samples) each notebook runs, builds each kind of "
             "step's real model at paper size, times a few real steps on the CPU and counts their FLOPs "
             "(`FlopCounterMode`). `lmvae readme` writes this section from "
             "`benchmarks/results/paper_cost.json`.", "",
             "| notebook | training steps | evaluation image-samples | CPU hours (measured step times) "
             "| GPU hours (projected, assumed L) | GPU hours at measured times per operation (graphed - eager) "
             "| largest part of the GPU time |", "|---|---:|---:|---:|---:|---:|---|"]
    basis = r.get("measured_basis") or {}

    def measured(h: dict | None) -> str:
        return f"{_hours(h['graphed'])} - {_hours(h['eager'])}" if h else "-"

    for nb, v in r["notebooks"].items():
        top = v["kinds"][0]
        share = top["gpu_hours"] / v["gpu_hours"] if v["gpu_hours"] else 0.0
        lines.append(f"| {nb} | {v['train_steps']:,} | {v['eval_image_samples']:.2g} | {_hours(v['cpu_hours'])} "
                     f"| {_hours(v['gpu_hours'])} | {measured(basis.get('hours', {}).get(nb))} "
                     f"| {top['kind']} ({share:.0%}) |")
    t = r["total"]
    lines.append(f"| **all** | {t['train_steps']:,} | | {_hours(t['cpu_hours'])} | {_hours(t['gpu_hours'])} "
                 f"| {measured(basis.get('total'))} | |")
    load = max(r["load_average_start_end"][0][0], r["load_average_start_end"][1][0])
    lines += ["", f"GPU hours are a projection, not a measurement: per training step max(FLOPs / R, operations x L) "
                  f"with R = {a['gpu_rate_flops'] / 1e12:g} TFLOP/s (a sustained fp32/TF32 rate for these matrix "
                  f"sizes on an H100-class GPU) and L = {a['launch_s_per_op'] * 1e6:g} us per dispatched operation "
                  "(eager launch overhead; most of these networks are small enough to be launch-bound, and the "
                  "package's torch.compile of long runs lowers it); evaluation at FLOPs / R. Launch-bound kinds "
                  "(`launch_bound` in the JSON) scale with the host's launch overhead, the others with the GPU's "
                  "rate. CPU hours: the steps times the measured seconds per step (medians of repeated real steps "
                  f"after warm-up, {r['threads']} thread, torch {r['torch']}, {r['device']}) "
                  + (f"on a machine busy with other runs (load average up to {load:.1f}), so they are inflated. "
                     if load > r["threads"] + 0.5 else  # the run itself keeps `threads` cores busy
                     f"with nothing else running (load average up to {load:.1f}). ")
                  + (f"The measured column replaces L by the times per operation measured on "
                     f"{basis['per_op']['device']} for the 784-400-20 VAE's step (`train_speed_gpu.json`): "
                     f"{basis['per_op']['graph_s'] * 1e6:.1f} us replayed as a CUDA graph, every training kind so "
                     f"(the lower end), and {basis['per_op']['eager_s'] * 1e6:.1f} us eager, every one so (the upper "
                     "end). Which loops run graphed on CUDA differs by method (`train()` and OCM's memory passes are "
                     "graphed, the L-MVAE and LGM loops not yet), so a notebook's cost lies between the two; the "
                     "basis is measured, but on another network. " if basis else "")
                  + "Counts that depend on what a run decides (L-MVAE's reuse test, Dynamic-OCM's "
                  "expansions, early stopping) take the expected or the largest value; the per-kind breakdown with "
                  "every call is in the JSON."]
    return "\n".join(lines) + "\n"


def launch_check(r: dict, gpu: dict) -> str:
    """The launch assumption against the committed GPU measurement of the same kind of step."""
    batch = gpu.get("settings", {}).get("batch_size", 128)  # 128: results written before train_speed.py recorded it
    steps = math.ceil(gpu["gpu_epoch_images"] / batch)
    eager_us = gpu["gpu_epoch_ms"]["eager"] * 1000 / steps
    graphed_us = gpu["gpu_epoch_ms"]["compiled_graph"] * 1000 / steps
    # the count of the code that was timed, where train_speed.py recorded it; else today's code's count, which a
    # later change (a11f327's fused ReLU backward: 83 -> 78 operations) can have lowered, so the time per operation
    # below is then an upper estimate, and the sentence says so
    recorded = "eager_step_ops" in gpu
    if not recorded:
        from ..training.op_count import eager_step_ops  # here: torch is not needed to write the other sections
    ops = gpu["eager_step_ops"] if recorded else eager_step_ops(batch)
    per_op = eager_us / ops
    assumed = r["assumptions"]["launch_s_per_op"] * 1e6
    counted = ("dispatches" if recorded else
               "dispatches, as the current code counts them (the timed code is older and may have dispatched more, "
               "so the time per operation is an upper estimate),")
    return (f"Checked against the one GPU measurement (`benchmarks/results/train_speed_gpu.json`, {gpu['device']}): "
            f"an eager training step of the 784-400-20 VAE at batch {batch} {counted} {ops} operations and took {eager_us:,.0f} us, "
            f"{per_op:.1f} us per operation against the assumed L = {assumed:g} us, so eager launch-bound steps would "
            f"take about {per_op / assumed:.1f} times the projected time on that machine. The same step compiled and "
            f"replayed as a CUDA graph (what `train()` does on CUDA for runs of 2,000 steps or more) took "
            f"{graphed_us:,.0f} us, {graphed_us / (ops * assumed):.1f} times the projection's floor of {ops} x L. "
            "Notebook 00's MoE-VAE trains through `train()` and is graphed the same way, and OCM's memory passes "
            "replay uncompiled graphs (`continual/ocm.py`); the L-MVAE and LGM loops are not graphed yet and run "
            "eagerly.")


OCM_TARGETS_H = {"all six notebooks": 6.0, "04_ocm": 3.0}  # issue 38's targets for the projected paper profile


def _target_hours(what: str, path: dict) -> float:
    """A path's hours for one of OCM_TARGETS_H: all six notebooks, or notebook 04."""
    return path["total_gpu_hours"] if what == "all six notebooks" else path["gpu_hours"][what]


def ocm_paths_section(r: dict) -> str:
    """OCM's steps on each path (benchmarks/paper_cost.py's `ocm_paths`): counts, projected hours, and the arithmetic
    floor against the targets."""
    o = r["ocm_paths"]
    per, kinds, paths = o["per_op"], list(o["counts"]), o["paths"]
    big = max(kinds, key=lambda k: o["counts"][k]["separate"]["flops"])
    c = o["counts"][big]
    nbs = list(r["notebooks"])
    ocm_share = {nb: sum(k["gpu_hours"] for k in v["kinds"] if k["build"] == "ocm" and k["train"]) / v["gpu_hours"]
                 for nb, v in r["notebooks"].items() if nb in ("04_ocm", "05_benchmark")}
    measured = {p: v for p, v in paths.items() if v.get("basis", "projected") != "projected"}
    lines = [f"**OCM's paths.** OCM's training steps are {ocm_share['04_ocm']:.0%} of notebook 04's projection and "
             f"{ocm_share['05_benchmark']:.0%} of 05's. Counted over one arriving batch's pass on a full "
             f"{c['memory_images']}-image STM ({big}): one learner dispatches {c['separate']['ops']:.1f} operations a "
             f"step, and {c['seeds']} seeds stacked as one `StackedOCM` {c['stacked']['ops']:.1f} per seed's step, for "
             f"the same FLOPs ({c['separate']['flops'] / 1e9:.2f} GFLOP). They are projected with the times per "
             f"operation measured on the {per['device']} for the 784-400-20 VAE's step (`train_speed_gpu.json`, "
             f"{per['step_ops']} operations): {per['eager_s'] * 1e6:.1f} us eager and {per['graph_s'] * 1e6:.1f} us "
             "replayed as an uncompiled CUDA graph. That basis is measured, but on another network"
             + ("; the rows marked measured are OCM's own step, timed on a GPU (`ocm_stacked_cuda.json`)."
                if measured else ": no OCM step has run on a GPU yet.")
             + " The graphed paths are in the code (`OCMLearner` and `StackedOCM` replay graphs on "
             "CUDA) and tested on the CPU in their eager form, bitwise against the eager passes; their CUDA tests "
             "wait for a GPU. On a GPU, notebook 04's paper profile trains the runs that share a stream and a step "
             "(seeds, the ELBO methods, an ablation's values) as stacks of up to 16 (`stack_seeds`, "
             "`papers/ocm/runs.py`: each run draws its own noise, so alone or stacked it is the same run, and a stack "
             "resumes mid-stream): the stacked and graphed row, or better where its stacks are larger than 3 (below); "
             "notebook 05 trains each run alone, the graphed row.", "",
             "| path | in the code | basis | " + " | ".join(f"us per step, {k.split(', ')[-1]}" for k in kinds)
             + " | " + " | ".join(f"{nb} GPU hours" for nb in nbs if nb in ocm_share) + " | all six |",
             "|---|---|---|" + "---:|" * (len(kinds) + len(ocm_share) + 1)]
    for path, v in paths.items():
        lines.append(f"| {path} | {'yes' if v['built'] else 'no'} | {v.get('basis', 'projected')} | "
                     + " | ".join(f"{v['step_s'][k] * 1e6:,.0f}" for k in kinds) + " | "
                     + " | ".join(_hours(v["gpu_hours"][nb]) for nb in nbs if nb in ocm_share)
                     + f" | {_hours(v['total_gpu_hours'])} |")
    if measured:  # the targets against what was timed, not projected
        verdicts = []
        for what, target in OCM_TARGETS_H.items():
            best = min(measured, key=lambda p: _target_hours(what, measured[p]))
            h = _target_hours(what, measured[best])
            verdicts.append(f"{what} at best {_hours(h)} h ({best}), {'within' if h <= target else 'over'} the target "
                            f"of {target:g} h")
        lines += ["", "On the measured rows: " + "; ".join(verdicts) + "."]
    floor = o["compute_floor_hours"]
    floors = {"all six notebooks": sum(floor.values()), "04_ocm": floor["04_ocm"]}
    rate = r["assumptions"]["gpu_rate_flops"]
    needs = "; ".join(f"{what} at most {t:g} h needs {rate * floors[what] / t / 1e12:,.0f} TFLOP/s" for what, t in
                      OCM_TARGETS_H.items())

    def kernel_floor_04(ops_per_step) -> float:
        """Notebook 04's OCM steps at the graphed time per kernel, in hours; ops_per_step(count of a kind)."""
        return sum(k["units"] * ops_per_step(o["counts"][k["kind"]]) * per["graph_s"]
                   for k in r["notebooks"]["04_ocm"]["kinds"] if k["kind"] in o["counts"]) / 3600

    kernels_04 = kernel_floor_04(lambda count: count["stacked"]["ops"])
    lines += ["", f"Arithmetic alone, every FLOP at R = {rate / 1e12:g} TFLOP/s, is {_hours(floors['04_ocm'])} h for "
                  f"notebook 04 and {_hours(floors['all six notebooks'])} h for all six: graphs and stacking remove "
                  f"launches, not FLOPs, so no path above can reach the targets at that rate. Sustained, {needs}: "
                  "a lower precision than fp32 (bf16 or TF32 tensor cores: their speed on OCM waits for a GPU, "
                  "their cost in nats is measured below) or fewer FLOPs. "
                  f"The kernels set a second floor: even with free arithmetic, the stacked and graphed OCM steps of "
                  f"notebook 04 take {_hours(kernels_04)} h at {per['graph_s'] * 1e6:.1f} us a kernel, so the targets "
                  "also need fewer kernels per seed's step (more seeds or methods per stack, or fused kernels)."]
    if all("stacked_ops_by_members" in k for k in o["counts"].values()):  # counted since the stacked graphs
        sizes = list(c["stacked_ops_by_members"])
        floor_by_size = {n: kernel_floor_04(lambda count, n=n: count["stacked_ops_by_members"][n]) for n in sizes}
        big_ops = c["stacked_ops_by_members"]
        lines[-1] += (" Counted the same way, stacks of " + ", ".join(sizes) + " members dispatch "
                      + ", ".join(f"{big_ops[n]:.1f}" for n in sizes) + f" operations per member's step ({big}); "
                      "notebook 04's stacked and graphed kernel floor at those sizes is "
                      + ", ".join(f"{_hours(floor_by_size[n])} h" for n in sizes) + ", against the arithmetic's "
                      f"{_hours(floors['04_ocm'])} h at R.")
    return "\n".join(lines)


def projected_seconds(notebook: dict, half_runs: bool = True) -> float:
    """A notebook's projected GPU seconds, with or without its half-budget runs (experiments.paper_steps.with_half_runs)."""
    if half_runs or "kinds" not in notebook:
        return notebook["gpu_hours"] * 3600
    return sum(k["gpu_s_per_unit"] * c["units"] for k in notebook["kinds"] for c in k["calls"]
               if not c["what"].startswith("half-budget run: "))


def paper_runs(r: dict, logs: Path, root: Path) -> str:
    """The paper-profile notebooks actually run on a GPU (`gpu_run.sh` with PAPER_NOTEBOOK), against the projection;
    their folders are named relative to the repository root."""
    import csv

    parts = []
    for run_file in sorted(logs.glob("paper_*/paper_run.json")):
        run = json.loads(run_file.read_text())
        nb = run["notebook"]
        with open(run_file.parent / "claims.csv") as f:
            rows = list(csv.DictReader(f))
        before_rule = bool(rows) and "half budget" not in rows[0]
        # a run from before the half-budget rule made no half-budget runs: compare it with the rest of the projection
        projected = projected_seconds(r["notebooks"][nb], half_runs=not before_rule)
        verdicts = [row["verdict"] for row in rows]
        counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
        if before_rule:
            counts += (" as that run judged them, before claims needed a half-budget value: under that rule none of "
                       "them is decided until the paper profile runs again (the results headline counts them so)")
        rel = run_file.parent.relative_to(root)
        finished = "ran in" if run["rc"] == 0 else f"stopped (exit code {run['rc']}) after"
        parts.append(f"notebook {nb}'s paper profile {finished} {run['seconds']:,} s from an empty cache on an "
                     f"{run['device']} (commit {run['commit']}), against {projected:,.0f} s projected above"
                     + (" for the notebook without its half-budget runs (it made none)" if before_rule else "")
                     + "; its claims "
                     f"(`{rel}/claims.md`, with the run's log and tables): {counts}")
    if not parts:
        return ""
    return ("Measured: " + "; ".join(parts) + ". The notebook's source ran as a script (`benchmarks/gpu_run.sh`; the "
            "GPU machine has no Jupyter), on the data this project ships: full MNIST, and part of Fashion-MNIST's "
            "training set; each claim's schedule column counts the images it saw. The committed notebook stays the "
            "quick profile.")


def ocm_measured(results_dir: Path) -> str:
    """What was measured of OCM's step: benchmarks/ocm_stacked.py (separate, stacked, graphed; per precision) and
    benchmarks/ocm_precision.py (the component's test log-likelihood per training precision), per device."""
    lines = []
    for device in ("cuda", "cpu"):
        st = read_results(results_dir, f"ocm_stacked_{device}.json")
        if st:
            cases = "; ".join(
                f"{name} {c['speedup']:.2f}x stacked" + (f", {c['graphed_speedup']:.2f}x graphed" if "graphed_speedup"
                                                          in c else "") + f" ({c['ops_ratio']:.2f}x fewer operations)"
                for name, c in st["cases"].items())
            lines.append(f"Measured, OCM's memory step (`benchmarks/results/ocm_stacked_{device}.json`, {st['device']}, "
                         f"{st['threads']} threads, medians of {st['rounds']} alternating rounds): "
                         f"{next(iter(st['cases'].values()))['seeds']} seeds' passes over a full STM against the same "
                         f"learners run separately and eagerly, speed-ups: {cases}.")
        pr = read_results(results_dir, f"ocm_precision_{device}.json")
        if pr:
            ways = "; ".join(f"{w} minus fp32 {d['mean']:+.2f} nats [{d['lo']:+.2f}, {d['hi']:+.2f}], "
                             f"{d['verdict']} +-{pr['tolerance_nats']:g}, trained at {d['speed_vs_fp32']:.2f}x fp32's "
                             "speed" for w, d in pr["differences_vs_fp32"].items())
            lines.append(f"Measured, OCM's component by training precision (`benchmarks/results/ocm_precision_{device}"
                         f".json`, {pr['device']}): {pr['epochs']} epochs on {pr['train_images']:,} MNIST images, "
                         f"IWAE-{pr['iwae_k']} in fp32 on {pr['test_images']:,} test images, seeds "
                         f"{', '.join(map(str, pr['seeds']))}, differences paired by seed (95% intervals): {ways}.")
    return "\n\n".join(lines)


def section(results_dir: Path, gpu_logs: Path, root: Path) -> str:
    """The section from the files in results_dir (the repository's benchmarks/results/) and the paper-profile runs in
    gpu_logs (benchmarks/logs/gpu/), whose folders are named relative to root."""
    r, gpu = read_results(results_dir, "paper_cost.json"), read_results(results_dir, "train_speed_gpu.json")
    if r is None:
        return ("No paper-cost count is committed yet: "
                "`python benchmarks/paper_cost.py --json benchmarks/results/paper_cost.json`.\n")
    text = cost_section(r)
    if gpu is not None:
        text += "\n" + launch_check(r, gpu) + "\n"
    if r.get("ocm_paths"):
        text += "\n" + ocm_paths_section(r) + "\n"
    measured_ocm = ocm_measured(results_dir)
    if measured_ocm:
        text += "\n" + measured_ocm + "\n"
    measured = paper_runs(r, gpu_logs, root)
    if measured:
        text += "\n" + measured + "\n"
    return text
