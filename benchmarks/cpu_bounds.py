"""How far this machine lets the CPU speed targets go: three upper bounds, measured side by side in one run.

The CPU targets of `train_speed.py` and `grid_speed.py` are ratios. Each has a ceiling set by the hardware and
the network's shapes, and this script measures the ceilings instead of guessing them:

1. step_gemm_fraction: the matrix products of one VAE training step (784-400-20, batch 128: the forward
   products, the weight gradients, the input gradients of every layer but the first), run back to back with
   nothing else, as a fraction of the 1024x1024 fp32 matmul rate. The step also runs activations, the loss,
   sampling and Adam on the same cores, so `roofline_fraction` (the step's matrix-product FLOPs per second over
   the 1024x1024 rate) cannot exceed this fraction. roofline_tight_bound adds what no step can skip either:
   Adam's update of the VAE's parameters, timed back to back with its data in cache (A). From each round's own
   product time G and A: the step's product FLOPs / (G + A), over the 1024x1024 rate. `roofline_ms` also gives the
   step time the 0.6 target allows and what of it is left, after G and A, for everything else (the loss,
   activations, sampling, the calls themselves).
2. mixture_gemm_bound and mixture_bound: the same products for 10 experts stacked into batched products
   (torch.bmm, what the vmapped mixture computes) against a loop of 10 separate products. On a CPU whose cores
   are already busy with one expert's products, stacking wins only what larger products gain in rate
   (mixture_gemm_bound), plus the loop's fixed cost per operation. mixture_bound adds that: the loop's step at
   batch 128 (`train_speed.time_mixture`, T) against the same step with (a) the products' time cut by the
   batched rate gain (dG) and (b) the whole step at batch 1 removed (T1: the fixed cost of every operation,
   and also Adam's update, which stacking cannot save, so the bound is generous): T / (T - dG - T1). The
   per-element work (activations, loss, sampling) costs the same stacked or not and stays in. So
   `mixture_vs_loop` cannot exceed mixture_bound on this machine, under that model of a step.
   mixture_tight_bound counts only what no batched step can skip: the 10 experts' products at the batched
   rate (G: the faster of bmm and one wide product for the first layer, whose input all experts share) and
   Adam's update of the 10 experts' parameters timed back to back with its data in cache (A: the project's fused
   update). Every other cost of the batched step is set to zero: T / (G + A), from each round's own T, G and A.
   Adam stays in because stacking does not shrink it: the same parameters are updated either way.
3. parallel_bound: the same training run (the project's `train`) as one process with 2 threads, as one process
   with 1 thread, and as 2 one-thread processes side by side, each on the full work. The last against the first
   is the most a grid of runs can gain from `executor="local"` (one one-thread worker per core) over serial
   runs in one 2-thread process on this machine, before any scheduling or per-run cost. Measured for the
   benchmark's VAE and for the 784-200-20 batch-64 network of notebook 05's quick grid.

Contenders alternate over rounds; medians are reported. Usage:
    python benchmarks/cpu_bounds.py [--rounds 3] [--json benchmarks/results/cpu_bounds.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from lmvae_core import paths

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # train_speed: its matmul rate and mixture loop, exactly as that benchmark times them
NETS = {"784-400-20, batch 128 (train_speed.py)": (400, 20, 128),
        "784-200-20, batch 64 (notebook 05 quick)": (200, 20, 64)}


def vae_layers(hidden: int, latent: int) -> list[tuple[int, int]]:
    """(in, out) of the VAE's Linear layers, the project's MLP VAE (encoder head 2*latent wide)."""
    from lmvae_core.models import VAE

    model = VAE(hidden=(hidden,), latent_dim=latent)
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def step_gemms(layers, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every product of one step: forward x W, weight gradient, input gradient (not the first)."""
    fwd = [(batch, i, o) for i, o in layers]
    wgrad = [(o, batch, i) for i, o in layers]
    igrad = [(batch, o, i) for i, o in layers[1:]]
    return fwd + wgrad + igrad


def gemm_rate(gemms, experts: int = 1, batched: bool = False, reps: int = 30) -> float:
    """GFLOP/s of running `gemms` back to back, for `experts` experts: one bmm per product, or a loop."""
    torch.manual_seed(0)
    ops = []
    for m, k, n in gemms:
        if batched:
            ops.append((torch.randn(experts, m, k), torch.randn(experts, k, n)))
        else:
            ops.append([(torch.randn(m, k), torch.randn(k, n)) for _ in range(experts)])

    def once():
        if batched:
            for a, b in ops:
                torch.bmm(a, b)
        else:
            for per in ops:
                for a, b in per:
                    a @ b

    once()
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    seconds = time.perf_counter() - t0
    flops = 2 * experts * sum(m * k * n for m, k, n in gemms) * reps
    return flops / seconds / 1e9


def first_layer_ms(layers, batch: int, experts: int = 10, reps: int = 30) -> float:
    """Milliseconds of the first layer's two products (forward, weight gradient) for `experts` experts, the faster
    of bmm and one wide product: every expert reads the same input, so x [batch, in] @ W [in, experts * out]."""
    i, o = layers[0]
    torch.manual_seed(0)
    x, w, g = torch.randn(batch, i), torch.randn(i, experts * o), torch.randn(batch, experts * o)
    xb, wb, gb = x.expand(experts, batch, i), torch.randn(experts, i, o), torch.randn(experts, o, batch)
    wide = ms_per_call(lambda: (x @ w, g.t() @ x), reps)
    return min(wide, ms_per_call(lambda: (torch.bmm(xb, wb), torch.bmm(gb, xb)), reps))


def adam_ms(params, reps: int = 30) -> float:
    """Milliseconds of one update of `params` by the project's optimizer (`make_optimizer`), back to back, so that
    its data stays in cache: the least an update of these parameters costs on this machine."""
    from lmvae_core.training import TrainConfig, make_optimizer

    for p in params:
        p.grad = torch.randn_like(p)
    opt = make_optimizer(params, TrainConfig())
    return ms_per_call(opt.step, reps, warmup=3)


def ms_per_call(f, reps: int, warmup: int = 1) -> float:
    """Milliseconds per call of f(), called `reps` times back to back after `warmup` untimed calls."""
    for _ in range(warmup):
        f()
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return 1e3 * (time.perf_counter() - t0) / reps


def tight_roofline_bound(rates: dict, step_flops: float, target: float = 0.6) -> dict:
    """roofline_tight_bound of each round: the step's product FLOPs over the time of its products alone (at that
    round's rate, GFLOP/s in rates["step"]) plus Adam's update (rates["adam_vae_ms"]), as a fraction of that round's
    1024x1024 rate (rates["square"]); with the medians' step time at `target` and what is left of it for the rest."""
    gemm_ms = [1e3 * step_flops / (g * 1e9) for g in rates["step"]]
    rounds = [step_flops / ((g + a) / 1e3) / 1e9 / sq for g, a, sq in zip(gemm_ms, rates["adam_vae_ms"], rates["square"])]
    at_target = 1e3 * step_flops / (target * statistics.median(rates["square"]) * 1e9)
    gemm, adam = statistics.median(gemm_ms), statistics.median(rates["adam_vae_ms"])
    return {"rounds": rounds, "bound": statistics.median(rounds),
            "ms": {"gemms": gemm, "adam": adam, "step_at_target": at_target, "left_at_target": at_target - gemm - adam}}


def tight_mixture_bound(rates: dict, flops10: float, flops_first10: float) -> dict:
    """mixture_tight_bound of each round, T / (G + A), and from each contender's fastest round (the estimate least
    touched by other load; see lmvae_core/docs/speed._within). G: the products at that round's batched rate (GFLOP/s in
    rates["bmm10"]), the first layer's two at the faster of that and rates["first_layer10_best_ms"]."""
    gemm_ms = [1e3 * (flops10 - flops_first10) / (b * 1e9) + min(f, 1e3 * flops_first10 / (b * 1e9))
               for b, f in zip(rates["bmm10"], rates["first_layer10_best_ms"])]
    loop, adam = rates["loop10_step_ms"], rates["adam10_ms"]
    return {"rounds": [t / (g + a) for t, g, a in zip(loop, gemm_ms, adam)], "gemm_ms": gemm_ms,
            "fastest": min(loop) / (min(gemm_ms) + min(adam))}


# ---- 3. the parallel bound: worker processes --------------------------------------------------------------

def worker(threads: int, images: int, hidden: int, latent: int, batch: int, start_at: float) -> None:
    """Train the VAE one epoch over `images` random binary images; print start/end wall-clock times. All
    workers of one measurement begin at `start_at`, after their imports, so they really run side by side."""
    torch.set_num_threads(threads)
    from lmvae_core.models import VAE
    from lmvae_core.training import TrainConfig, train

    x = (torch.rand(images, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    model = VAE(hidden=(hidden,), latent_dim=latent)
    cfg = TrainConfig(epochs=1, batch_size=batch, binarize=None, progress=False)
    train(model, x[: batch * 20], cfg)  # warm-up outside the timed window
    while time.time() < start_at:
        time.sleep(0.01)
    t0 = time.time()
    train(model, x, cfg)
    print(json.dumps({"start": t0, "end": time.time()}), flush=True)


def side_by_side(threads: list[int], images: int, net) -> float:
    """Wall seconds from the common start to the last worker's end, one process per entry of `threads`."""
    hidden, latent, batch = net
    start_at = time.time() + 12.0  # time for every process to import torch and warm up
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(t), str(images), str(hidden), str(latent),
                               str(batch), repr(start_at)], stdout=subprocess.PIPE, text=True,
                              env=os.environ | {"OMP_NUM_THREADS": str(t)})
             for t in threads]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("a worker failed")
    if min(o["start"] for o in outs) > start_at + 1.0:
        raise RuntimeError("the workers did not start together: raise the 12 s start delay")
    return max(o["end"] for o in outs) - min(o["start"] for o in outs)


def parallel_bound(net, images: int, rounds: int) -> dict:
    runs = {"one_process_2_threads": [], "one_process_1_thread": [], "two_processes_1_thread": []}
    for _ in range(rounds):
        runs["one_process_2_threads"].append(side_by_side([2], images, net))
        runs["one_process_1_thread"].append(side_by_side([1], images, net))
        runs["two_processes_1_thread"].append(side_by_side([1, 1], images, net))
    m = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "images_per_run": images,
        "seconds": {k: round(v, 2) for k, v in m.items()},
        "rounds": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        # serial: 2 runs one after the other in a 2-thread process; local: the 2 runs side by side
        "parallel_bound": 2 * m["one_process_2_threads"] / m["two_processes_1_thread"],
        "two_threads_speedup": m["one_process_1_thread"] / m["one_process_2_threads"],
        "side_by_side_slowdown": m["two_processes_1_thread"] / m["one_process_1_thread"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=128_000, help="images per training run in the parallel bound")
    p.add_argument("--json", default=str(paths.benchmark_results() / "cpu_bounds.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    load_start = os.getloadavg()

    from train_speed import time_matmul, time_mixture

    hidden, latent, batch = NETS["784-400-20, batch 128 (train_speed.py)"]
    layers = vae_layers(hidden, latent)
    gemms = step_gemms(layers, batch)
    x = (torch.rand(128 * 30, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    from lmvae_core.models import ExpertMixture

    from train_speed import make_vae

    flops_first10 = 2 * 10 * sum(m * k * n for m, k, n in step_gemms(layers[:1], batch))  # forward, weight gradient
    mixture_params = ExpertMixture(make_vae, 10).trainable_parameters()
    rates = {"square": [], "step": [], "loop10": [], "bmm10": [], "loop10_step_ms": [], "loop10_step_ms_batch1": [],
             "first_layer10_best_ms": [], "adam10_ms": [], "adam_vae_ms": []}
    for _ in range(args.rounds):
        rates["square"].append(time_matmul(torch.device("cpu")))
        rates["step"].append(gemm_rate(gemms))
        rates["loop10"].append(gemm_rate(gemms, experts=10))
        rates["bmm10"].append(gemm_rate(gemms, experts=10, batched=True))
        rates["loop10_step_ms"].append(1e3 * batch / time_mixture(x, False, steps=30, batch=batch))
        rates["loop10_step_ms_batch1"].append(1e3 / time_mixture(x, False, steps=60, batch=1))
        rates["first_layer10_best_ms"].append(first_layer_ms(layers, batch))
        rates["adam10_ms"].append(adam_ms(mixture_params))
        rates["adam_vae_ms"].append(adam_ms(list(make_vae().parameters())))
    step_flops = 2 * sum(m * k * n for m, k, n in gemms)
    flops10 = 10 * step_flops
    tight = tight_mixture_bound(rates, flops10, flops_first10)
    roofline = tight_roofline_bound(rates, step_flops)
    r = {k: statistics.median(v) for k, v in rates.items()}
    gemm_saving_ms = 1e3 * (flops10 / (r["loop10"] * 1e9) - flops10 / (r["bmm10"] * 1e9))
    mixture_bound = r["loop10_step_ms"] / (r["loop10_step_ms"] - gemm_saving_ms - r["loop10_step_ms_batch1"])

    parallel = {name: parallel_bound(net, args.images, args.rounds) for name, net in NETS.items()}
    load_end = os.getloadavg()
    cpu_speed = paths.benchmark_results() / "train_speed_cpu.json"
    cpu = json.loads(cpu_speed.read_text()) if cpu_speed.exists() else {}
    result = {
        "step_gemm_fraction": r["step"] / r["square"],
        "roofline_tight_bound": roofline["bound"],
        "roofline_tight_bound_rounds": [round(v, 3) for v in roofline["rounds"]],
        "roofline_ms": roofline["ms"],
        "mixture_gemm_bound": r["bmm10"] / r["loop10"],
        "mixture_bound": mixture_bound,
        "mixture_tight_bound": statistics.median(tight["rounds"]),
        "mixture_tight_bound_rounds": [round(v, 3) for v in tight["rounds"]],
        "mixture_tight_bound_fastest": tight["fastest"],
        "mixture_ms": {"loop_step": r["loop10_step_ms"], "loop_step_batch1": r["loop10_step_ms_batch1"],
                       "gemm_saving": gemm_saving_ms, "batched_gemms": statistics.median(tight["gemm_ms"]),
                       "adam": r["adam10_ms"], "first_layer_best": r["first_layer10_best_ms"]},
        "parallel_bound": {name: v["parallel_bound"] for name, v in parallel.items()},
        "gflops": {"square_1024": r["square"], "vae_step_gemms": r["step"], "mixture10_loop_gemms": r["loop10"],
                   "mixture10_bmm_gemms": r["bmm10"]},
        "rounds": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "gemms_per_step": [list(g) for g in gemms],
        "parallel": parallel,
        "compare": {k: cpu.get(k) for k in ("roofline_fraction", "mixture_vs_loop")},
        "threads": 2, "cores": len(os.sched_getaffinity(0)),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "load_average_start_end": [list(load_start), list(load_end)],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("step_gemm_fraction", "roofline_tight_bound", "roofline_ms",
                                             "mixture_gemm_bound", "mixture_bound",
                                             "mixture_tight_bound",
                                             "parallel_bound", "gflops", "mixture_ms")}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        t, n, h, l, b, s = sys.argv[2:8]
        worker(int(t), int(n), int(h), int(l), int(b), float(s))
    else:
        main()
