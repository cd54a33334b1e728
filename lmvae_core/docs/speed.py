"""The speed section of docs/speed.md, from the committed benchmark results (never typed by hand).

Reads benchmarks/results/train_speed_cpu.json and, when present, train_speed_gpu.json (both written by
`benchmarks/train_speed.py --json`), cpu_bounds.json (cpu_bounds.py), cpu_modes.json (cpu_modes.py) and
gpu_precision.json (gpu_precision.py), all in benchmarks/results/. `lmvae readme` writes it between the speed markers.
"""
from __future__ import annotations

from pathlib import Path

from . import read_results

# (key, what, target on 2 CPU cores, target on a GPU, how the number reads); every target is a floor except
# those in AT_MOST, which are ceilings
AT_MOST = {"mnist_epoch_ms"}
ROWS = [
    ("vae_vs_dataloader", "VAE 784-400-20 step (device tensors, index batches) as long runs train it (CPU: the whole "
     "step compiled; CUDA: compiled and graphed) vs the DataLoader reference", 3.0, 100.0, "{:.2f}x"),
    ("vae_eager_vs_dataloader", "the same step uncompiled (CPU: fused loss and FusedAdam, train()'s way in runs "
     "shorter than `cpu_compile_min_steps`)", None, None, "{:.2f}x"),
    ("roofline_fraction", "VAE step's matrix-product rate / measured fp32 matmul rate", 0.6, None, "{:.2f}"),
    ("roofline_fraction_eager", "the same, the step uncompiled", None, None, "{:.2f}"),
    ("mixture_vs_loop", "mixture of 10 experts (stacked weights; on the CPU one fused stacked step, else vmap) vs a "
     "loop over 10 VAEs (autograd)", 1.5, 5.0, "{:.2f}x"),
    ("mixture_vs_own_loss_loop", "the same mixture vs a loop over 10 VAEs each through its own fused loss (CPU): "
     "what the stacking gains over the fusion", None, None, "{:.2f}x"),
    ("mixture_vs_loop_graphed", "the same pair, each side's step replayed as a CUDA graph (how train() runs long "
     "graph-safe runs on CUDA)", None, 5.0, "{:.2f}x"),
    ("ensemble_vs_separate", "ensemble of 5 seeds (one stacked computation) vs 5 separate runs (autograd, the same "
     "draws)", 1.0, 4.0, "{:.2f}x"),
    ("ensemble_vs_train_runs", "the same ensemble vs 5 runs of `train()`, the package's loop for one model (fused "
     "loss on the CPU)", None, None, "{:.2f}x"),
    ("mnist_epoch_ms", "one MNIST epoch (60,000 images) of the 784-400-20 VAE, ms, at most", None, 35.0, "{:.1f}"),
]


# each ratio's contenders in a result's "rounds" (measured one right after the other in every round)
PAIRS = {"vae_vs_dataloader": ("project", "reference"), "vae_eager_vs_dataloader": ("project_eager", "reference"),
         "mixture_vs_loop": ("mixture", "loop"),
         "mixture_vs_loop_graphed": ("mixture_graphed", "loop_graphed"), "ensemble_vs_separate": ("ensemble", "separate"),
         "mixture_vs_own_loss_loop": ("mixture", "own_loss_loop"), "ensemble_vs_train_runs": ("ensemble", "train_runs")}


def round_ratios(r: dict, key: str) -> list[float]:
    """The measure in each round, sorted (empty when the result keeps no rounds for it). A round's contenders run
    one after the other, so the spread over rounds shows how much the machine moved the median."""
    rounds = r.get("rounds", {})
    vae = {"roofline_fraction": "project", "roofline_fraction_eager": "project_eager"}.get(key)
    if vae and rounds.get(vae) and rounds.get("matmul"):
        return sorted(ips * r["vae_step_mflop_per_image"] / 1000 / mm for ips, mm in zip(rounds[vae], rounds["matmul"]))
    a, b = PAIRS.get(key, (None, None))
    if not rounds.get(a) or not rounds.get(b):
        return []
    return sorted(x / y for x, y in zip(rounds[a], rounds[b]))


def _table(r: dict, gpu: bool) -> list[str]:
    lines = ["| measure | measured (median) | rounds | target | met |", "|---|---|---|---|---|"]
    for key, what, cpu_target, gpu_target, fmt in ROWS:
        if key not in r:
            continue  # measured on one kind of device only, or by an older version of the benchmark
        target = gpu_target if gpu else cpu_target
        if target is None and key in AT_MOST:
            continue  # a GPU-only target
        ok = target is not None and (r[key] <= target if key in AT_MOST else r[key] >= target)
        met = "n/a" if target is None else ("yes" if ok else "**no**")
        each = round_ratios(r, key)
        spread = f"{fmt.format(each[0])} to {fmt.format(each[-1])}" if each else "-"
        lines.append(f"| {what} | {fmt.format(r[key])} | {spread} | "
                     f"{'-' if target is None else fmt.format(target).replace('.00', '')} | {met} |")
    ips = r["img_per_s"]
    lines += ["", f"Raw rates (medians of {r['settings']['rounds']} alternating rounds): VAE {ips['vae_project']:,.0f} img/s"
              + (f" ({ips['vae_project_eager']:,.0f} uncompiled)" if "vae_project_eager" in ips else "") + ", "
              f"DataLoader reference {ips['vae_dataloader_reference']:,.0f} img/s; VAE step {r['vae_gflops']:.1f} GFLOP/s "
              f"({r['vae_step_mflop_per_image']:.2f} MFLOP per image) against {r['matmul_gflops']:.1f} GFLOP/s for a "
              f"1024x1024 fp32 matmul; mixture {ips['mixture10_batched']:,.0f} vs loop {ips['mixture10_loop']:,.0f} img/s"
              + (f" (loop of fused VAEs {ips['mixture10_own_loss_loop']:,.0f})" if "mixture10_own_loss_loop" in ips else "")
              + f"; ensemble {ips['ensemble5_stacked_member_images']:,.0f} vs separate "
              f"{ips['ensemble5_separate_member_images']:,.0f}"
              + (f" (runs of train() {ips['ensemble5_train_runs_member_images']:,.0f})"
                 if "ensemble5_train_runs_member_images" in ips else "")
              + f" member-images/s. Device: {r['device']}, torch {r['torch']}, "
              f"{r['threads']} threads, load average at start and end {r['load_average_start_end'][0][0]:.2f} / "
              f"{r['load_average_start_end'][1][0]:.2f}."]
    lines += _compile_cost(r) + _spread(r) + _processes(r)
    if "gpu_epoch_ms" in r:
        ways = ", ".join(f"{k.replace('_', ' ')} {v:,.1f} ms" for k, v in r["gpu_epoch_ms"].items())
        lines += ["", f"Steady MNIST epoch of the VAE ({r['gpu_epoch_images']:,} images, median of the epochs after the "
                  f"first) by way of running the step: {ways}. 'graph' replays the whole step (forward, backward, Adam) "
                  "as one CUDA graph, 8 steps per replay unless stated; 'compiled graph' is what long CUDA runs use."]
        if "mixture10_batched_graphed" in ips:
            lines[-1] += (f" Graphed mixture {ips['mixture10_batched_graphed']:,.0f} vs graphed loop "
                          f"{ips['mixture10_loop_graphed']:,.0f} img/s.")
        lines += _kernels(r)
    if max(r["load_average_start_end"][0][0], r["load_average_start_end"][1][0]) > r["threads"]:
        lines += ["", f"Other jobs shared the machine during this run (load average above its {r['threads']} threads): "
                  "the rates are far below a quiet machine's and the ratios are noisy; re-run it on a quiet machine."]
    return lines


def _compile_cost(r: dict) -> list[str]:
    """What the compiled CPU step costs before its first step: the warm-up call that compiled it, per process."""
    first = r.get("cpu_first_compiled_call_s")
    if first is None:
        return []
    first = first if isinstance(first, list) else [first]
    each = ", ".join(f"{t:.1f}" for t in first)
    return ["", f"The compiled CPU step's first call (the compile, plus 10 steps) took {each} s per process "
            "(inductor keeps compiled kernels on disk: a first process with an empty cache pays the most), outside the "
            "timed rounds; train() compiles on its own only in runs of at least `TrainConfig.cpu_compile_min_steps` "
            "steps, where that is paid back."]


def _spread(r: dict) -> list[str]:
    """How far the machine moved the contenders between rounds: each one's fastest round over its slowest."""
    rounds = {k: v for k, v in r.get("rounds", {}).items() if v and k != "matmul"}
    if not rounds:
        return []
    each = ", ".join(f"{k.replace('_', ' ')} {max(v) / min(v):.2f}x" for k, v in rounds.items())
    return ["", f"Fastest round over slowest, per contender: {each}. A contender that moves much more than the other "
            "side of its pair moves that pair's ratio with it; the rounds column above shows by how much."]


def _processes(r: dict) -> list[str]:
    """A pooled run (train_speed.py --processes N): how far apart the processes' own medians fell."""
    each = r.get("per_process")
    if not each:
        return []
    names = {"vae_vs_dataloader": "VAE vs DataLoader", "vae_eager_vs_dataloader": "uncompiled VAE vs DataLoader",
             "roofline_fraction": "roofline fraction", "roofline_fraction_eager": "uncompiled roofline fraction",
             "mixture_vs_loop": "mixture vs loop", "mixture_vs_own_loss_loop": "mixture vs loop of fused VAEs",
             "ensemble_vs_separate": "ensemble vs separate", "ensemble_vs_train_runs": "ensemble vs runs of train()"}
    ranges = "; ".join(f"{name} {min(p[k] for p in each):.2f} to {max(p[k] for p in each):.2f}"
                       for k, name in names.items() if all(k in p for p in each))
    why = ("on a machine where the plain VAE step has two speeds (`cpu_modes` below), a process tends to keep one, so "
           "one process's rounds sample one speed")
    return ["", f"The rounds come from {len(each)} fresh processes run one after the other, "
            f"{r['settings'].get('rounds_per_process', '?')} rounds each, pooled: {why}. Each process's own "
            f"medians ranged: {ranges}."]


def _kernels(r: dict) -> list[str]:
    """Where a GPU step's time goes: its kernels' summed device time against the step's wall time."""
    k = r.get("gpu_step_kernels") or {}
    steps = -(-r["gpu_epoch_images"] // r["settings"].get("batch_size", 128))  # 128: results written before it was recorded
    parts = []
    for way, p in k.items():
        if "kernels_per_step" not in p or not p["kernels_per_step"]:
            continue
        # annotation ranges ('#' in the name, e.g. "Optimizer.step#Adam.step") span kernels: results written
        # before train_speed.py left them out counted them among the kernels, so they come out here
        notes = [t for t in p["top"] if "#" in t["kernel"]]
        count = p["kernels_per_step"] - sum(t["calls_per_step"] for t in notes)
        busy = p["kernel_us_per_step"] - sum(t["us_per_step"] for t in notes)
        wall = 1000 * r["gpu_epoch_ms"][way] / steps
        top = [f"{_short(t['kernel'])} {t['us_per_step']:.1f} us" for t in p["top"] if t not in notes][:3]
        parts.append(f"{way.replace('_', ' ')}: {count:.0f} kernels, {busy:.0f} us of kernel time in a {wall:.0f} us "
                     f"step ({busy / wall:.0%}; the largest: {', '.join(top)})")
    if not parts:
        return []
    return ["", "One training step's GPU kernels (torch.profiler over an epoch, `gpu_step_kernels`): " + "; ".join(parts)
            + ". Kernel time near the step's wall time means the kernels themselves, not launches, set the pace."]


def _short(kernel: str) -> str:
    """A kernel's name without return type, namespaces and template arguments."""
    name = kernel.removeprefix("void ").replace("(anonymous namespace)", "").split("<")[0].split("(")[0]
    return name.split("::")[-1][:48]


def _precision(p: dict) -> list[str]:
    """The GPU paths' effect on the calibration network (benchmarks/gpu_precision.py)."""
    ways = "; ".join(f"{name} {w['log_likelihood']:.2f} ({w['vs_reference']:+.2f}; steady epoch {w['steady_epoch_ms']:,.0f} ms)"
                     for name, w in p["ways"].items())
    gap = p["bf16_evaluation_gap"]
    return [f"**GPU paths against the calibration** (`benchmarks/results/gpu_precision.json`, {p['device']}): "
            f"{p['network']} on {p['train_images']:,} MNIST images, IWAE-{p['iwae_k']} in fp32 on {p['test_images']:,} "
            f"test images, reference {p['reference']:.2f}. Trained {ways}. Graphed minus eager "
            f"{p['graphed_minus_eager']:+.2f} nats and bf16 training minus fp32 {p['bf16_training_minus_fp32']:+.2f} "
            "nats (each a different random stream, so a seed-to-seed difference); the same model scored under bf16 "
            f"autocast with the same importance samples differs by {gap['diff']:+.4f} nats on average (at most "
            f"{gap['max_abs_diff_per_image']:.2f} on one image)."]


def _within(bound: float, target: float, rounds: list[float] | None = None, fastest: float | None = None,
            slowed: str = "their 2-thread run was slower, against its own fastest round, than their side-by-side run") -> str:
    """Is a target within the measured ceiling? `rounds`: the ceiling of each round; `fastest`: from each contender's
    fastest round. Background load only ever slows a run down, so the fastest rounds are the best estimate of the
    undisturbed times, while a single round can pair a slowed run with an undisturbed one and overshoot. A median
    below the target therefore rules it out unless the fastest rounds reach it (or, without them, a round does), and
    a median above it that the fastest rounds do not reach is reported as such.
    `slowed`: why the rounds that reached the target overshot (which contender of the ratio was slowed)."""
    if bound >= target and fastest is not None and fastest < target:
        return (f"reached at the median only: from each contender's fastest round it is {fastest:.2f}x; the rounds "
                f"that reached the target did so because {slowed}")
    if bound >= target:
        return "within reach"
    if fastest is not None and fastest >= target:
        return f"below it at the median, but not ruled out: from each contender's fastest round it is {fastest:.2f}x"
    if fastest is None and rounds and max(rounds) >= target:
        return "below it at the median, but not ruled out: a round reached it (a noisy machine)"
    if fastest is not None and rounds and max(rounds) >= target:
        return (f"**out of reach on this CPU**: from each contender's fastest round it is {fastest:.2f}x; the rounds "
                f"that reached the target did so because {slowed}")
    return "**out of reach on this CPU**"


def _per_round(p: dict) -> list[float]:
    """The parallel bound of each round (the rounds pair up in time), so its spread shows."""
    r = p["rounds"]
    return sorted(2 * a / b for a, b in zip(r["one_process_2_threads"], r["two_processes_1_thread"]))


def parallel_fastest(p: dict) -> float:
    """The parallel bound from each contender's fastest round."""
    r = p["rounds"]
    return 2 * min(r["one_process_2_threads"]) / min(r["two_processes_1_thread"])


def _tight(b: dict) -> str:
    """The mixture's tight ceiling: only the products and Adam's update, which no batched step can skip."""
    if "mixture_tight_bound" not in b:
        return ""
    ms, rounds = b["mixture_ms"], sorted(b["mixture_tight_bound_rounds"])
    slowed = "their loop step was slower, against its own fastest round, than their products and update"
    return (" That ceiling also lets stacking remove Adam's update, which it cannot: the batched step updates the "
            "same parameters. Counting only what no batched step can skip, the 10 experts' products at the batched "
            f"rate ({ms['batched_gemms']:.1f} ms, the first layer's at the faster of bmm and one wide product over the "
            f"input all experts share) and Adam's update of their parameters ({ms['adam']:.1f} ms, back to back, "
            f"data in cache), against the loop's {ms['loop_step']:.1f} ms step, the mixture could be at most "
            f"{b['mixture_tight_bound']:.2f}x the loop ({rounds[0]:.2f}x to {rounds[-1]:.2f}x over the rounds): "
            f"target 1.5x, {_within(b['mixture_tight_bound'], 1.5, rounds, b['mixture_tight_bound_fastest'], slowed)}.")


def _tight_roofline(b: dict) -> str:
    """The roofline ceiling with Adam's update counted (cpu_bounds.tight_roofline_bound), and what a 0.6 step leaves."""
    if "roofline_tight_bound" not in b:
        return ""
    ms, rounds = b["roofline_ms"], sorted(b["roofline_tight_bound_rounds"])
    left = ms["left_at_target"]
    rest = (f"leaves {1000 * left:.0f} us of it for everything else (the loss, activations, sampling and the calls "
            "themselves)" if left > 0 else "leaves nothing for anything else")
    return (f" Counting also Adam's update of the VAE's parameters ({ms['adam']:.2f} ms, back to back, data in cache) "
            f"beside the products ({ms['gemms']:.2f} ms), the step could reach at most {b['roofline_tight_bound']:.2f} "
            f"({rounds[0]:.2f} to {rounds[-1]:.2f} over the rounds): target 0.6, "
            f"{_within(b['roofline_tight_bound'], 0.6, rounds)}. A step at 0.6 takes {ms['step_at_target']:.2f} ms "
            f"and {rest}.")


def _bounds(b: dict) -> list[str]:
    """What the CPU allows at all (benchmarks/cpu_bounds.py): ceilings for the CPU targets, measured."""
    quick = next(v for k, v in b["parallel"].items() if "quick" in k)
    name = next(k for k in b["parallel"] if "quick" in k)
    each = _per_round(quick)
    return [f"**What this CPU allows** (`benchmarks/cpu_bounds.py`, `benchmarks/results/cpu_bounds.json`, "
            f"{b['finished'][:10]}, medians of {len(b['rounds']['square'])} rounds; a ceiling below a target means "
            "no code change can meet that target on this machine):",
            "",
            f"- The VAE step's own matrix products, run alone back to back, reach {b['step_gemm_fraction']:.2f} of the "
            f"1024x1024 rate ({b['gflops']['vae_step_gemms']:.0f} of {b['gflops']['square_1024']:.0f} GFLOP/s): the "
            f"ceiling for the roofline fraction, target 0.6, {_within(b['step_gemm_fraction'], 0.6)}. The rest of the "
            f"step (loss, activations, sampling, Adam) runs on the same cores and takes the difference.{_tight_roofline(b)}",
            f"- Stacking 10 experts' products into batched ones gains {b['mixture_gemm_bound']:.2f}x in rate. Adding "
            "every fixed cost of the loop's operations (the loop's whole step at batch 1, "
            f"{b['mixture_ms']['loop_step_batch1']:.1f} of {b['mixture_ms']['loop_step']:.1f} ms) as if stacking removed "
            f"it, the mixture could be at most {b['mixture_bound']:.2f}x the loop: target 1.5x, "
            f"{_within(b['mixture_bound'], 1.5)}.{_tight(b)}",
            f"- The same training run as two one-thread processes side by side against one process with 2 threads: "
            f"{quick['parallel_bound']:.2f}x for {name} ({each[0]:.2f}x to {each[-1]:.2f}x over the rounds; "
            "2 threads speed one run up "
            f"{quick['two_threads_speedup']:.2f}x, "
            f"and two runs side by side each take {quick['side_by_side_slowdown']:.2f}x their time alone). That is "
            "the most `executor=\"local\"` can gain over a serial grid before any scheduling or per-run cost: "
            f"target 1.7x, {_within(quick['parallel_bound'], 1.7, each, parallel_fastest(quick))}."]


def two_speeds(m: dict) -> bool:
    """Whether cpu_modes found two speeds: the split at the widest gap leaves at least 2 rounds on each side, the
    slow side's first step at least twice the fast side's (relative to the repeat), and a median speed 10% lower.
    Otherwise the widest gap is just the largest step in one cloud of rounds."""
    fast, slow = m["groups"]
    return (min(fast["rounds"], slow["rounds"]) >= 2 and slow["ratio_min"] >= 2 * fast["ratio_max"]
            and slow["img_per_s"] <= 0.9 * fast["img_per_s"])


def _modes(m: dict) -> list[str]:
    """The VAE step's two speeds on this VM, or that this machine showed one (benchmarks/cpu_modes.py)."""
    fast, slow = m["groups"]
    n = sum(g["rounds"] for g in m["groups"])
    if not two_speeds(m):
        lo, hi = min(fast["ratio_min"], slow["ratio_min"]), max(fast["ratio_max"], slow["ratio_max"])
        speeds = [g["img_per_s_min"] for g in m["groups"]] + [g["img_per_s_max"] for g in m["groups"]]
        return [f"**One speed for the CPU step on this machine** (`benchmarks/cpu_modes.py`, "
                f"`benchmarks/results/cpu_modes.json`, {m['finished'][:10]}, {m['processes']} fresh processes of "
                f"{n // m['processes']} rounds, {m['threads']} threads). Inside `train`, the script times the optimizer "
                "step right after each backward pass and the same step repeated at once (then undone). In every round "
                f"the first step took {lo:.2f}x to {hi:.2f}x the repeat, and the rounds ran at {min(speeds):,.0f} to "
                f"{max(speeds):,.0f} img/s: no second, slower speed. Other machines of this project showed one, a first "
                "step several times the repeat, which moved every CPU ratio with it; this one did not."]
    return [f"**Why the CPU step has two speeds** (`benchmarks/cpu_modes.py`, `benchmarks/results/cpu_modes.json`, "
            f"{m['finished'][:10]}, {m['processes']} fresh processes of {n // m['processes']} rounds, "
            f"{m['threads']} threads). Inside `train`, the script times the optimizer step right after each backward "
            "pass and the same step repeated at once (then undone). Split at the widest gap in that ratio: "
            f"{fast['rounds']} rounds at {fast['ratio_min']:.1f}x to {fast['ratio_max']:.1f}x ran at "
            f"{fast['img_per_s']:,.0f} img/s (median; {fast['img_per_s_min']:,.0f} to {fast['img_per_s_max']:,.0f}), "
            f"first step {fast['first_step_ms']:.2f} ms, repeat {fast['repeat_step_ms']:.2f} ms; {slow['rounds']} rounds "
            f"at {slow['ratio_min']:.1f}x to {slow['ratio_max']:.1f}x ran at {slow['img_per_s']:,.0f} img/s "
            f"({slow['img_per_s_min']:,.0f} to {slow['img_per_s_max']:,.0f}), first step {slow['first_step_ms']:.2f} "
            f"ms, repeat {slow['repeat_step_ms']:.2f} ms. The repeat costs about the same in both groups; the first "
            "step reads and writes memory that both cores touched since the last update, so the slow rounds pay for "
            "moving cache lines between the VM's two virtual CPUs, whose placement the host chooses and changes "
            "(the project cannot). This is why the CPU table's rounds fall into two groups."]


def speed_section(results_dir: Path) -> str:
    """The section from the results files in results_dir (the repository's benchmarks/results/)."""
    lines = ["`make bench` (`benchmarks/train_speed.py --json FILE`) times each pair side by side in one run: the "
             "contenders run one right after the other, in an order rotated every round (two contenders: swapped every "
             "other round; results written before this kept one order), and the table gives the ratio of the two "
             "contenders' median rates over the rounds and the range of each round's own ratio. `lmvae readme` "
             "writes this section from the committed results files."]
    for name, gpu in (("train_speed_cpu.json", False), ("train_speed_gpu.json", True)):
        r = read_results(results_dir, name)
        if r is not None:
            lines += ["", f"**{'GPU' if gpu else 'CPU'}** (`benchmarks/results/{name}`):", "", *_table(r, gpu)]
    for name, part in (("cpu_bounds.json", _bounds), ("cpu_modes.json", _modes), ("gpu_precision.json", _precision)):
        r = read_results(results_dir, name)
        if r is not None:
            lines += ["", *part(r)]
    if not (results_dir / "train_speed_gpu.json").exists():
        lines += ["", "No GPU run is committed yet: the GPU targets (>= 100x, MNIST epoch <= 35 ms, >= 5x, >= 4x) are "
                  "unmeasured. Run `python benchmarks/train_speed.py --json benchmarks/results/train_speed_gpu.json` on one."]
    return "\n".join(lines) + "\n"
