"""OCM's memory training for S seeds: S separate learners against one StackedOCM, timed side by side.

Each round times one arriving batch's passes over a full STM (512 images, no LTM yet) for every seed, first as S
separate `OCMLearner.train_memory` calls, then as one `StackedOCM.train_memory`, on the same learners (so both
paths train the same weights; the work per round is the same). Rounds alternate, and the medians are compared:
the ratio separate / stacked is the speed-up of stacking, measured in one process. Two step shapes: the paper's
(784-200-200-50, a 50-sample ELBO, minibatches of 64) and the quick profile's (the same net, 1 sample).

It also counts the operations each path dispatches per round (training/op_count.py): on a GPU an eager step costs
about one kernel launch per operation, so their ratio is what stacking saves where the step is launch-bound.

Why the CPU shows little, or loses: at 50 samples a step multiplies 3,200 rows through the decoder, so the CPU is
busy with arithmetic and stacking S seeds only batches the same work. On a quiet 2-core machine the stacked 50-sample
round was 0.72-0.77x as fast as the separate ones (three runs); torch's profiler put the loss in the batched matmuls,
the same FLOPs taking 498 ms stacked against 383 ms separately per round, plus the padding mask's elementwise work. Stacking pays where a step is bound by kernel launches
(a GPU: issue 38) or by per-step overhead (small steps on a CPU).

The separate and stacked contenders run eagerly (`cuda_graph=False`). On CUDA two more run: the same seeds as
separate learners drawing the process's random numbers, whose memory passes replay CUDA graphs (`OCMLearner` on
CUDA), and the stack replaying its graphs (`StackedOCM` on CUDA, each member's generator registered with the
graphs); each case runs in three precisions: fp32, TF32 matmuls and bf16 autocast (issue 38, items 3 and 6). The
graphs are captured in the warm-up round, inside the case's precision.

Usage: python benchmarks/ocm_stacked.py [--seeds 3] [--rounds 5] [--threads 2] [--precisions fp32 tf32 bf16] [--json FILE]
(default JSON: benchmarks/results/ocm_stacked_<device>.json)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time

import torch

from lmvae_core.continual.ocm import OCMLearner
from lmvae_core.continual.ocm_stacked import StackedOCM
from lmvae_core.models.ocm import OCM, OCMConfig
from lmvae_core.paths import benchmark_results
from lmvae_core.training.loop import tf32_matmuls
from lmvae_core.training.op_count import OpCounter

SHAPES = {"paper step (50-sample ELBO)": 50, "quick step (1-sample ELBO)": 1}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


PRECISIONS = ("fp32", "tf32", "bf16")


def memories(seeds: int, memory: int) -> torch.Tensor:
    return torch.rand(seeds, memory, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def stacked_learners(samples: int, seeds: int, memory: int, device: torch.device, cuda_graph: bool = False
                     ) -> StackedOCM:
    cfg = OCMConfig(train_samples=samples, epochs_per_batch=1, stm_size=memory)
    stacked = StackedOCM.from_config(cfg, list(range(seeds)), device, cuda_graph=cuda_graph)
    for m, x in zip(stacked.members, memories(seeds, memory)):
        m.arrive(x)  # a full STM: what one arriving batch trains on, 512 / 64 = 8 steps a pass
    return stacked


def graphed_learners(samples: int, seeds: int, memory: int, device: torch.device) -> list[OCMLearner]:
    """The same seeds and memories as separate learners on the process's random numbers: graphed on CUDA."""
    cfg = OCMConfig(train_samples=samples, epochs_per_batch=1, stm_size=memory)
    out = []
    for seed, x in zip(range(seeds), memories(seeds, memory)):
        torch.manual_seed(seed)
        learner = OCMLearner(OCM(cfg), seed=seed, device=device, cuda_graph=True)
        learner.arrive(x)
        out.append(learner)
    return out


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """fp32; TF32 matmuls (CUDA); or the step under bf16 autocast (a graph captured inside keeps it)."""
    with tf32_matmuls(name == "tf32"), torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
        yield


def time_case(samples: int, seeds: int, memory: int, rounds: int, device: torch.device) -> dict:
    stacked = stacked_learners(samples, seeds, memory, device)
    stacked.train_memory()  # warm-up: Adam's state, allocator, kernels
    graphed = graphed_learners(samples, seeds, memory, device) if device.type == "cuda" else []
    for m in graphed:
        m.train_memory()  # warm-up: the graphs are captured here
    graphed_stack = stacked_learners(samples, seeds, memory, device, cuda_graph=True) if graphed else None
    if graphed_stack is not None:
        graphed_stack.train_memory()
    separate_s, stacked_s, graphed_s, graphed_stack_s = [], [], [], []
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        for m in stacked.members:
            m.train_memory()
        sync(device)
        t1 = time.perf_counter()
        stacked.train_memory()
        sync(device)
        t2 = time.perf_counter()
        for m in graphed:
            m.train_memory()
        sync(device)
        t3 = time.perf_counter()
        if graphed_stack is not None:
            graphed_stack.train_memory()
        sync(device)
        t4 = time.perf_counter()
        separate_s.append(t1 - t0)
        stacked_s.append(t2 - t1)
        graphed_s.append(t3 - t2)
        graphed_stack_s.append(t4 - t3)
    sep, stk = statistics.median(separate_s), statistics.median(stacked_s)
    steps = seeds * -(-memory // stacked.members[0].config.batch_size)
    # operations dispatched per round: on a GPU, where an eager step costs about one launch per operation
    # (training/op_count.py), their ratio is what stacking saves in a launch-bound step
    with OpCounter() as separate_ops:
        for m in stacked.members:
            m.train_memory()
    with OpCounter() as stacked_ops:
        stacked.train_memory()
    return {"seeds": seeds, "memory_images": memory, "train_samples": samples, "steps_per_round": steps,
            "separate_s": separate_s, "stacked_s": stacked_s, "separate_median_s": sep, "stacked_median_s": stk,
            "separate_ms_per_step": 1e3 * sep / steps, "stacked_ms_per_step": 1e3 * stk / steps,
            "speedup": sep / stk, "separate_ops_per_round": separate_ops.ops, "stacked_ops_per_round": stacked_ops.ops,
            "ops_ratio": separate_ops.ops / stacked_ops.ops} | ({} if not graphed else {
            "graphed_s": graphed_s, "graphed_median_s": statistics.median(graphed_s),
            "graphed_ms_per_step": 1e3 * statistics.median(graphed_s) / steps,
            "graphed_speedup": sep / statistics.median(graphed_s),
            "graphs_eager_steps": sum(m._graphs.eager_steps for m in graphed if m._graphs is not None),
            "graph_failures": [m.graph_failure for m in graphed if m.graph_failure],
            "graphed_stack_s": graphed_stack_s, "graphed_stack_median_s": statistics.median(graphed_stack_s),
            "graphed_stack_ms_per_step": 1e3 * statistics.median(graphed_stack_s) / steps,
            "graphed_stack_speedup": sep / statistics.median(graphed_stack_s),
            "graphed_stack_failure": graphed_stack.graph_failure})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--memory", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None,
                   help="default: fp32 on a CPU, all three on CUDA")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precisions = args.precisions or (list(PRECISIONS) if device.type == "cuda" else ["fp32"])
    cases = {}
    for shape, samples in SHAPES.items():
        for prec in precisions:
            name = shape if prec == "fp32" else f"{shape}, {prec}"
            with precision(prec, device):
                cases[name] = time_case(samples, args.seeds, args.memory, args.rounds, device) | {"precision": prec}
            c = cases[name]
            print(f"{name}: {args.seeds} seeds separately {c['separate_median_s']:.3f} s, stacked "
                  f"{c['stacked_median_s']:.3f} s a round of {c['steps_per_round']} member steps: {c['speedup']:.2f}x"
                  + (f", graphed {c['graphed_median_s']:.3f} s: {c['graphed_speedup']:.2f}x, stacked and graphed "
                     f"{c['graphed_stack_median_s']:.3f} s: {c['graphed_stack_speedup']:.2f}x"
                     if "graphed_s" in c else "")
                  + f"; operations {c['separate_ops_per_round']} against {c['stacked_ops_per_round']} "
                  f"({c['ops_ratio']:.2f}x)", flush=True)
    result = {"what": "OCM memory training, S seeds: separate learners vs one StackedOCM (medians of alternating "
                      "rounds in one process)",
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "device_type": device.type, "threads": args.threads, "torch": torch.__version__,
              "rounds": args.rounds, "cases": cases,
              # other work on the machine shows here: the ratios are side by side, the absolute times are not
              "load_average_1min_at_end": os.getloadavg()[0]}
    out = args.json or benchmark_results() / f"ocm_stacked_{device.type}.json"
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
