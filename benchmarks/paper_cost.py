"""What `make reproduce` costs in the paper profile: steps per notebook, measured CPU step times, projected GPU hours.

For every kind of step that experiments/paper_steps.py counts (each paper package's steps.py, from its `paper` SETTINGS), the
package's real model is built at paper size and a few real steps are timed on the CPU (after warm-up; median of
repeats; one thread), and the FLOPs of one step are counted with torch.utils.flop_counter.FlopCounterMode, with
the aten operations it dispatches (views left out; counted on the autograd path a GPU takes, not the CPU's
hand-written backward) as a proxy for the kernels a GPU would launch.

CPU hours = units x measured seconds per unit. GPU hours = sum over kinds of units x max(FLOPs / R, ops x L):
either the matrix arithmetic at a sustained rate R or the launch floor of small networks, whichever is larger.
R and L are ASSUMPTIONS (no GPU was measured for this table), stated here and in the JSON:
- R = 20 TFLOP/s: an H100's fp32 matrix rate with TF32 tensor cores is several times that at large sizes; the
  matrices here (hundreds to a few thousand wide, batches of 64-300) reach a fraction of it. A GPU without TF32
  (or fp32 strictly) would be 2-3x slower on the compute-bound kinds.
- L = 5 us per dispatched operation: eager PyTorch's host overhead per kernel launch. The package compiles runs of
  >= 2000 steps on CUDA (training.loop.should_compile), which fuses kernels, so the floor is pessimistic there.
Evaluation (IWAE-k over test sets, R of Dynamic-OCM) runs in large chunks: its GPU time is FLOPs / R alone.
The machine's load average is recorded at the start and end: other runs on the cores inflate the CPU times.

OCM's paths (`ocm_paths`, issue 38): the OCM kinds dominate (98% of notebook 04's projection, 85% of 05's). For
each, the operations and FLOPs per member step are counted the same way over one arriving batch's pass on a full
STM, as one learner runs it (eagerly, or replayed as CUDA graphs on a GPU: the same kernels) and as `StackedOCM`
runs 3 seeds at once. They are projected with the per-operation times measured on the one GPU measured so far
(`benchmarks/results/train_speed_gpu.json`: the 784-400-20 VAE's eager step and its step replayed as an uncompiled
CUDA graph), not the assumed L: a basis measured on another network of the same kind, not on OCM. Where OCM's own
step has been timed on a GPU (`benchmarks/results/ocm_stacked_cuda.json`, written by `ocm_stacked.py` through
`gpu_run.sh`: eager, stacked, graphed, stacked and graphed, per precision), each timed path joins as a measured row
with those seconds per step.

Peak memory of a training step (`peak_bytes`, read by `lmvae reproduce --dry-run`): the tensors a built kind holds
after a warm-up step (parameters, Adam's states, the batch; found with gc) plus the distinct storages autograd saves
for backward during one more step, on the autograd path a GPU takes. It leaves out the allocator's caching, a
GPU's context and workspaces, and the temporaries freed before backward: an estimate, not a measurement on a GPU.

Usage: python benchmarks/paper_cost.py [--json benchmarks/results/paper_cost.json] [--repeats 3] [--steps 3]
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lmvae_core.continual.ocm_stacked import StackedOCM  # noqa: E402
from lmvae_core.experiments import paper_steps  # noqa: E402
from lmvae_core.nets.classifier import FeatureClassifier  # noqa: E402
from lmvae_core.metrics.fitting_capacity import MLPClassifier  # noqa: E402
from lmvae_core.models import fused_vae  # noqa: E402
from lmvae_core.models.binarized import BinarizedVAE, BinarizedVAEConfig  # noqa: E402
from lmvae_core.models.lgm import LGM, LGMConfig, fork, student_teacher_loss  # noqa: E402
from lmvae_core.models.lmvae import LMVAE, LMVAEConfig  # noqa: E402
from lmvae_core.models.mog_vae import MoGVAE, MoGVAEConfig  # noqa: E402
from lmvae_core.models.moe_vae import MoEVAE, MoEVAEConfig  # noqa: E402
from lmvae_core.models.ocm import OCM, OCMConfig  # noqa: E402
from lmvae_core.models.vae import VAE, VAEConfig  # noqa: E402
from lmvae_core.training.ensemble import train_ensemble  # noqa: E402
from lmvae_core.training.loop import TrainConfig, make_optimizer  # noqa: E402
from lmvae_core.training.op_count import OpCounter, eager_step_ops  # noqa: E402
from lmvae_core.training.step import train_step  # noqa: E402

GPU_RATE = 20e12  # R, FLOP/s: an assumption (see the docstring)
LAUNCH_S = 5e-6  # L, seconds per dispatched operation: an assumption (see the docstring)
EVAL_ROWS, EVAL_K = 100, 50  # an evaluation kind is timed on 100 images x 50 samples (conv experts: 10 x 10)
SLOW_S = 1.0  # a kind whose warm-up step takes longer is timed on single steps, two repeats


def images(n: int, shape, binary: bool = True) -> torch.Tensor:
    x = torch.rand(n, *shape)
    return torch.bernoulli(x) if binary else x


def vae_config(a: dict, cls=VAEConfig, **extra) -> VAEConfig:
    return cls(input_shape=tuple(a["shape"]), latent_dim=a["latent"], hidden=tuple(a["hidden"]), **extra)


def stepper(model, loss_fn, x, params=None):
    """run(n): n real optimiser steps of the package (training.step.train_step, fused Adam as make_optimizer)."""
    params = [p for p in (params or model.parameters()) if p.requires_grad]
    opt = make_optimizer(params, TrainConfig())

    def run(n: int):
        for _ in range(n):
            train_step(loss_fn, x, opt, params)
    return run


def forward(model, x, k: int):
    @torch.no_grad()
    def run(n: int):
        for _ in range(n):
            model.log_weights(x, k)
    run.per = x.shape[0] * k  # image-samples per call
    return run


# ---- builders: args (paper_steps.Kind.args) -> run(n) ---------------------------------------------------------
def build_vae(a: dict, train: bool):
    binarized = a.get("binarized", False)
    cfg = vae_config(a, BinarizedVAEConfig, r=0.5) if binarized else vae_config(a)
    model = (BinarizedVAE if binarized else VAE)(cfg)
    if not train:
        return forward(model, images(EVAL_ROWS, a["shape"]), EVAL_K)
    x = images(a["batch"], a["shape"])
    if not a.get("replay"):
        return stepper(model, lambda b: model.loss(b), x)
    old = copy.deepcopy(model).eval()  # generative replay (continual/vae.replay_loss): a batch sampled from `old`

    def loss(b):
        cur, terms = model.loss(b)
        with torch.no_grad():
            replay = torch.bernoulli(old.sample(b.shape[0]))
        return (cur + model.loss(replay)[0]) / 2, terms
    return stepper(model, loss, x)


def build_moe(a: dict, train: bool):
    expert = VAEConfig(latent_dim=a["latent"], hidden=(a["hidden"],))
    model = MoEVAE(MoEVAEConfig(n_experts=a["n_experts"], expert=expert, manager_hidden=(a["hidden"],)))
    return stepper(model, lambda b: model.loss(b), images(a["batch"], (1, 28, 28)))


def build_mog(a: dict, train: bool):
    model = MoGVAE(MoGVAEConfig(latent_dim=a["latent"], hidden=(a["hidden"],), n_components=a["components"]))
    return stepper(model, lambda b: model.loss(b), images(a["batch"], (1, 28, 28)))


def build_lmvae(a: dict, train: bool):
    gaussian = a["likelihood"] == "gaussian"
    expert = VAEConfig(input_shape=tuple(a["shape"]), latent_dim=a["latent"], arch=a["arch"], hidden=tuple(a["hidden"]),
                       channels=tuple(a["channels"]), activation=a["activation"], likelihood=a["likelihood"],
                       gaussian_std=a["gaussian_std"])
    if not train:
        return forward(VAE(expert), images(10, a["shape"], not gaussian), 10)
    model = LMVAE(LMVAEConfig(expert=expert, n_experts=a["experts"]))  # every expert trainable, stacked
    return stepper(model, lambda b: model.loss(b), images(a["batch"], a["shape"], not gaussian),
                   model.experts.trainable_parameters())


def build_ensemble(a: dict, train: bool):
    """train_ensemble itself (stacked members, vmap): run(n) trains one epoch of n batches, set-up included;
    measure() takes differences of two lengths to leave the set-up out."""
    cfg = BinarizedVAEConfig(latent_dim=a["latent"], hidden=(a["hidden"],), r=0.5)
    tcfg = TrainConfig(epochs=1, batch_size=a["batch"], progress=False)

    def run(n: int):
        train_ensemble(lambda: BinarizedVAE(cfg), torch.rand(n * a["batch"], 1, 28, 28), tcfg, range(a["members"]))
    run.has_setup = True
    return run


def build_lgm(a: dict, train: bool):
    cfg = LGMConfig(input_shape=tuple(a["shape"]), latent_dim=a["latent"], hidden=tuple(a["hidden"]),
                    gamma_c=a["gamma"])
    student = LGM(cfg)
    if not train:
        return forward(student, images(EVAL_ROWS, a["shape"]), EVAL_K)
    teacher = None
    if a["replay"]:
        teacher, student = fork(student)

    def loss(b):
        replay = torch.bernoulli(teacher.sample(b.shape[0])) if teacher is not None else None
        return student_teacher_loss(student, teacher, b, replay, a["gamma"], replay_weight=0.5 if replay is not None
                                    else None)
    return stepper(student, loss, images(a["batch"], a["shape"]))


def build_ocm(a: dict, train: bool):
    model = OCM(OCMConfig(hidden=a["hidden"], latent_dim=a["latent"], train_samples=a["samples"]))
    if not train:
        return forward(model, images(EVAL_ROWS, (1, 28, 28)), EVAL_K)
    return stepper(model, lambda b: model.loss(b), images(a["batch"], (1, 28, 28)), model.trainable_parameters())


def build_classifier(a: dict, train: bool):
    model = MLPClassifier(10) if a["mlp"] else FeatureClassifier()
    x, y = torch.rand(a["batch"], 1, 28, 28), torch.randint(10, (a["batch"],))
    return stepper(model, lambda b: (F.cross_entropy(model(b[0]), b[1]), {}), (x, y))


BUILDERS = {"vae": build_vae, "moe": build_moe, "mog": build_mog, "lmvae": build_lmvae, "ensemble": build_ensemble,
            "lgm": build_lgm, "ocm": build_ocm, "classifier": build_classifier}


def measure(k: paper_steps.Kind, steps: int, repeats: int) -> dict:
    """Seconds, FLOPs and dispatched operations per unit (a step, or an image-sample for evaluation kinds)."""
    torch.manual_seed(0)
    run = BUILDERS[k.build](json.loads(k.args), k.train)
    setup = getattr(run, "has_setup", False)
    per = getattr(run, "per", 1)

    def timed(n):
        t0 = time.perf_counter()
        run(n)
        return time.perf_counter() - t0

    if timed(1) > SLOW_S:  # warm-up; a slow kind (conv experts) gets fewer timed steps
        steps, repeats = 1, 2
    else:
        run(1)

    def counted(n):
        # the CPU's hand-written backward paths (models/fused_vae.py, fused_stack.py) never run on a GPU: count the
        # operations of the path a GPU takes; the CPU timings above keep the CPU's own path
        with fused_vae.disabled(), FlopCounterMode(display=False) as fc, OpCounter() as oc:
            run(n)
        return fc.get_total_flops(), oc.ops

    if setup:  # differences of 1 + steps and 1 batches: the set-up cancels
        times = [(timed(1 + steps) - timed(1)) / steps for _ in range(repeats)]
        (f2, o2), (f1, o1) = counted(2), counted(1)
        flops, ops = f2 - f1, o2 - o1
    else:
        times = [timed(steps) / steps for _ in range(repeats)]
        flops, ops = counted(1)
    return {"cpu_s": statistics.median(times) / per, "cpu_s_repeats": [t / per for t in times],
            "flops": flops / per, "ops": ops, "gpu_s": gpu_seconds(flops / per, ops / per, k.train)}


def _storages() -> dict[int, int]:
    """Every live tensor's storage: data pointer -> bytes (views share one)."""
    gc.collect()
    out = {}
    with warnings.catch_warnings():  # isinstance() on every object touches deprecated lazy module attributes
        warnings.simplefilter("ignore")
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    for o in tensors:
        if o.device.type != "meta":
            s = o.untyped_storage()
            out[s.data_ptr()] = s.nbytes()
    return out


def peak_bytes(k: paper_steps.Kind) -> int | None:
    """Estimated peak bytes of one training step of a kind (see the docstring); None for evaluation kinds, which
    the package evaluates in chunks of a size of its own."""
    if not k.train:
        return None
    torch.manual_seed(0)
    before = _storages()
    with fused_vae.disabled():
        run = BUILDERS[k.build](json.loads(k.args), True)
        run(1)  # warm-up: Adam's states exist from here
        resident = {p: n for p, n in _storages().items() if p not in before}
        saved: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in resident:
                saved[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run(1)
    del run
    return sum(resident.values()) + sum(saved.values())


def gpu_seconds(flops: float, ops: float, train: bool, launch_s: float = LAUNCH_S) -> float:
    """Projected GPU seconds per unit: compute at GPU_RATE, floored for training steps by launches of launch_s each
    (the assumed L, or a time per operation measured on a GPU)."""
    return max(flops / GPU_RATE, ops * launch_s) if train else flops / GPU_RATE


def project(jobs, measured: dict) -> dict:
    """Per notebook: totals and the per-kind breakdown."""
    out = {}
    for nb in paper_steps.counters():
        kinds = defaultdict(lambda: {"units": 0, "calls": []})
        for j in (j for j in jobs if j.notebook == nb):
            e = kinds[j.kind]
            e["units"] += j.units
            e["calls"].append({"what": j.what, "units": j.units, **({"note": j.note} if j.note else {})})
        rows = []
        for k, e in kinds.items():
            m = measured[k]
            rows.append({"kind": k.label, "build": k.build, "args": json.loads(k.args), "train": k.train,
                         "units": e["units"],
                         "unit": "optimiser steps" if k.train else "image-samples",
                         "cpu_s_per_unit": m["cpu_s"], "flops_per_unit": m["flops"], "ops_per_step": m["ops"],
                         "gpu_s_per_unit": m["gpu_s"], "peak_bytes": m.get("peak"),
                         "cpu_hours": e["units"] * m["cpu_s"] / 3600,
                         "gpu_hours": e["units"] * m["gpu_s"] / 3600,
                         "launch_bound": k.train and m["ops"] * LAUNCH_S > m["flops"] / GPU_RATE,
                         "calls": merge_calls(e["calls"])})
        rows.sort(key=lambda r: -r["gpu_hours"])
        out[nb] = {"train_steps": sum(r["units"] for r in rows if r["train"]),
                   "eval_image_samples": sum(r["units"] for r in rows if not r["train"]),
                   "cpu_hours": sum(r["cpu_hours"] for r in rows), "gpu_hours": sum(r["gpu_hours"] for r in rows),
                   "gpu_hours_train": sum(r["gpu_hours"] for r in rows if r["train"]),
                   "gpu_hours_eval": sum(r["gpu_hours"] for r in rows if not r["train"]),
                   "peak_bytes": max((r["peak_bytes"] for r in rows if r["peak_bytes"]), default=None),
                   "kinds": rows}
    return out


def counted_pass(run) -> tuple[float, int]:
    """FLOPs and dispatched operations of run()."""
    with FlopCounterMode(display=False) as fc, OpCounter() as oc:
        run()
    return fc.get_total_flops(), oc.ops


STACK_SWEEP = (6, 12)  # stack sizes counted beside the 3 seeds: a method's seeds with other methods of its step shape


def full_stm_stack(samples: int, seeds: int, memory: int) -> StackedOCM:
    """`seeds` OCM learners of the paper's component, each with a full STM of `memory` images, after a warm-up pass
    (Adam's state exists)."""
    torch.manual_seed(0)
    stacked = StackedOCM.from_config(OCMConfig(train_samples=samples, epochs_per_batch=1, stm_size=memory),
                                     list(range(seeds)))
    for m, x in zip(stacked.members, torch.rand(seeds, memory, 1, 28, 28, generator=torch.Generator().manual_seed(0))):
        m.arrive(x)
    stacked.train_memory()
    return stacked


def ocm_counts(samples: int, seeds: int = 3, memory: int = 512, sweep: tuple[int, ...] = STACK_SWEEP) -> dict:
    """Operations and FLOPs per member step of one pass over a full STM of `memory` images (minibatches of 64), for
    `seeds` learners run one after another and as one `StackedOCM`; and the stacked operations per member step for
    stacks of each size in `sweep` (more seeds, or several methods of one step shape, per stack)."""
    stacked = full_stm_stack(samples, seeds, memory)
    steps_per_member = -(-memory // stacked.members[0].config.batch_size)
    member_steps = seeds * steps_per_member
    sep_flops, sep_ops = counted_pass(lambda: [m.train_memory() for m in stacked.members])
    stk_flops, stk_ops = counted_pass(stacked.train_memory)
    larger = {}
    for size in sweep:
        stack = full_stm_stack(samples, size, memory)
        larger[str(size)] = counted_pass(stack.train_memory)[1] / (size * steps_per_member)
    return {"seeds": seeds, "memory_images": memory, "member_steps": member_steps,
            "separate": {"ops": sep_ops / member_steps, "flops": sep_flops / member_steps},
            "stacked": {"ops": stk_ops / member_steps, "flops": stk_flops / member_steps},
            "stacked_ops_by_members": {str(seeds): stk_ops / member_steps} | larger}


def gpu_per_op(gpu: dict) -> dict:
    """Seconds per dispatched operation of the measured GPU step (train_speed_gpu.json): eager, and replayed as an
    uncompiled CUDA graph (what OCM's memory passes replay). The count is the recorded one, else today's code's."""
    batch = gpu.get("settings", {}).get("batch_size", 128)
    steps = -(-gpu["gpu_epoch_images"] // batch)
    ops = gpu.get("eager_step_ops") or eager_step_ops(batch)
    return {"device": gpu["device"], "step_ops": ops, "eager_s": gpu["gpu_epoch_ms"]["eager"] / 1e3 / steps / ops,
            "graph_s": gpu["gpu_epoch_ms"]["graph"] / 1e3 / steps / ops}


def measured_basis(notebooks: dict, gpu: dict | None) -> dict | None:
    """Each notebook's GPU hours with the launch floor at the per-operation times measured on a GPU
    (train_speed_gpu.json) instead of the assumed L: every training kind replayed as a CUDA graph (the lower end) and
    every one eager (the upper end); evaluation at FLOPs / R in both. Which loops the package graphs on CUDA differs
    by method (train() and OCM's memory passes do; the L-MVAE and LGM loops do not yet), so the cost lies between."""
    if gpu is None:
        return None
    per_op = gpu_per_op(gpu)
    ends = {"graphed": per_op["graph_s"], "eager": per_op["eager_s"]}
    hours = {nb: {end: sum(r["units"] * gpu_seconds(r["flops_per_unit"], r["ops_per_step"], r["train"], t)
                           for r in v["kinds"]) / 3600 for end, t in ends.items()}
             for nb, v in notebooks.items()}
    return {"per_op": per_op, "hours": hours, "total": {end: sum(h[end] for h in hours.values()) for end in ends}}


OCM_PATHS = {  # path: (which count, which per-operation time, built?)
    "eager (the table's assumed L)": ("separate", None, True),
    "eager (measured time per operation)": ("separate", "eager_s", True),
    "graphed (OCMLearner on CUDA)": ("separate", "graph_s", True),
    "stacked, 3 seeds (StackedOCM, eager)": ("stacked", "eager_s", True),
    "stacked and graphed (StackedOCM on CUDA)": ("stacked", "graph_s", True),
}


# benchmarks/ocm_stacked.py's timings per member step (ms), by the path they time
MEASURED_PATHS = {"eager": "separate_ms_per_step", "stacked, eager": "stacked_ms_per_step",
                  "graphed": "graphed_ms_per_step", "stacked and graphed": "graphed_stack_ms_per_step"}


def measured_ocm_steps(kinds: dict, stacked: dict | None) -> dict:
    """Seconds per step of each OCM kind on each path and precision that benchmarks/ocm_stacked.py timed on a GPU
    (`ocm_stacked_cuda.json`: the paper's component over a full STM, medians of alternating rounds), for the kinds whose
    number of ELBO samples it timed: {path: {kind: seconds}}, paths named '<path>, <precision> (measured)'."""
    if not stacked or stacked.get("device_type") != "cuda":
        return {}
    out: dict[str, dict[str, float]] = {}
    for case in stacked["cases"].values():
        for kind, args in kinds.items():
            if args["samples"] != case["train_samples"]:
                continue
            for path, field in MEASURED_PATHS.items():
                if field in case:
                    out.setdefault(f"{path}, {case.get('precision', 'fp32')} (measured)", {})[kind] = case[field] / 1e3
    return {path: v for path, v in out.items() if set(v) == set(kinds)}  # a path measured for every kind


def ocm_paths(notebooks: dict, gpu: dict | None, stacked: dict | None = None) -> dict | None:
    """Each OCM training kind's projected seconds per step on each path, and what the paper profile then costs:
    per step max(FLOPs / R, operations x time per operation), the other kinds as projected above. `stacked`: the
    OCM step benchmark's JSON from a GPU (benchmarks/ocm_stacked.py); its timed paths join as measured rows."""
    if gpu is None:
        return None
    per_op = gpu_per_op(gpu)
    kinds, kind_args = {}, {}
    for v in notebooks.values():
        for r in v["kinds"]:
            if r["build"] == "ocm" and r["train"] and r["kind"] not in kinds:
                kinds[r["kind"]] = ocm_counts(r["args"]["samples"])
                kind_args[r["kind"]] = r["args"]
    steps_by_path = {}
    for path, (count, time_key, built) in OCM_PATHS.items():
        step_s = {}
        for kind, c in kinds.items():
            ops, flops = c[count]["ops"], c[count]["flops"]
            step_s[kind] = gpu_seconds(flops, ops, True, LAUNCH_S if time_key is None else per_op[time_key])
        steps_by_path[path] = (built, "projected", step_s)
    for path, step_s in measured_ocm_steps(kind_args, stacked).items():
        steps_by_path[path] = (True, f"measured on {stacked['device']}", step_s)
    paths = {}
    for path, (built, basis, step_s) in steps_by_path.items():
        hours = {nb: sum(r["units"] * (step_s[r["kind"]] if r["kind"] in step_s else r["gpu_s_per_unit"])
                         for r in v["kinds"]) / 3600 for nb, v in notebooks.items()}
        paths[path] = {"built": built, "basis": basis, "step_s": step_s, "gpu_hours": hours,
                       "total_gpu_hours": sum(hours.values())}
    return {"per_op": per_op, "counts": kinds, "paths": paths,
            "compute_floor_hours": {nb: sum(r["units"] * r["flops_per_unit"] for r in v["kinds"]) / GPU_RATE / 3600
                                    for nb, v in notebooks.items()}}


def merge_calls(calls: list[dict]) -> list[dict]:
    """Calls with the same description summed (a run per seed becomes one line with its count)."""
    merged: dict[str, dict] = {}
    for c in calls:
        m = merged.setdefault(c["what"], {"what": c["what"], "units": 0, "calls": 0} | ({"note": c["note"]}
                                                                                      if "note" in c else {}))
        m["units"] += c["units"]
        m["calls"] += 1
    return list(merged.values())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reuse", default=None, help="a JSON this script wrote: re-count with its measurements (kinds "
                                                  "it lacks are measured), e.g. after a settings change")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    jobs = paper_steps.all_jobs()
    measured, old = {}, json.loads(Path(args.reuse).read_text()) if args.reuse else None
    if old:
        for v in old["notebooks"].values():
            for r in v["kinds"]:
                k = paper_steps.Kind(r["build"], json.dumps(r["args"], sort_keys=True), r["kind"], r["train"])
                measured[k] = {"cpu_s": r["cpu_s_per_unit"], "flops": r["flops_per_unit"], "ops": r["ops_per_step"],
                               "gpu_s": gpu_seconds(r["flops_per_unit"], r["ops_per_step"], r["train"]),
                               "peak": r.get("peak_bytes")}
    for k in dict.fromkeys(j.kind for j in jobs):
        if k in measured and measured[k]["peak"] is None and k.train:  # a JSON from before peak_bytes
            measured[k]["peak"] = peak_bytes(k)
        if k in measured:
            continue
        t0 = time.time()
        measured[k] = measure(k, args.steps, args.repeats) | {"peak": peak_bytes(k)}
        print(f"{k.label}: {measured[k]['cpu_s']:.3g} s/unit, {measured[k]['flops']:.3g} FLOP/unit, "
              f"{measured[k]['ops']} ops ({time.time() - t0:.0f} s)", flush=True)
    result = {"notebooks": project(jobs, measured),
              "assumptions": {"gpu_rate_flops": GPU_RATE, "launch_s_per_op": LAUNCH_S,
                              "gpu": "projected, not measured: max(FLOPs / rate, ops x launch) per training step, "
                                     "FLOPs / rate per evaluation image-sample",
                              "eval_timed_on": f"{EVAL_ROWS} images x {EVAL_K} samples",
                              "peak_bytes": "training steps only: resident tensors after a warm-up step (parameters, "
                                            "Adam's states, the batch) plus the storages autograd saves for backward "
                                            "in one step; no allocator cache, GPU context or workspaces",
                              "cpu": f"median of {args.repeats} repeats of {args.steps} steps after 2 warm-up steps "
                                     f"(kinds slower than {SLOW_S} s per step: 2 repeats of 1 step after 1), "
                                     f"{args.threads} thread(s); other runs on the cores inflate them (see load_average_start_end)"},
              "torch": torch.__version__, "device": f"cpu ({platform.processor() or platform.machine()}, "
                                                    f"{os.cpu_count()} cores)",
              "threads": args.threads, "load_average_start_end": [load0, os.getloadavg()]}
    if old:  # the measurements (and so their conditions) are the reused run's
        result |= {k: old[k] for k in ("torch", "device", "threads", "load_average_start_end")}
        result["assumptions"]["cpu"] = old["assumptions"]["cpu"]
        result["measurements_from"] = f"{Path(args.reuse).name}, an earlier run (re-counted with --reuse)"
    total = {k: sum(v[k] for v in result["notebooks"].values()) for k in ("cpu_hours", "gpu_hours", "train_steps")}
    result["total"] = total
    results = Path(__file__).resolve().parent / "results"
    gpu_json, stacked_json = results / "train_speed_gpu.json", results / "ocm_stacked_cuda.json"
    gpu = json.loads(gpu_json.read_text()) if gpu_json.exists() else None
    result["measured_basis"] = measured_basis(result["notebooks"], gpu)
    result["ocm_paths"] = ocm_paths(result["notebooks"], gpu,
                                    json.loads(stacked_json.read_text()) if stacked_json.exists() else None)
    for path, v in (result["ocm_paths"] or {}).get("paths", {}).items():
        print(f"OCM {path}: " + ", ".join(f"{nb[:2]} {h:,.1f} h" for nb, h in v["gpu_hours"].items())
              + f", all {v['total_gpu_hours']:,.1f} h")
    for nb, v in result["notebooks"].items():
        print(f"{nb}: {v['train_steps']:,} steps, CPU {v['cpu_hours']:,.1f} h, GPU {v['gpu_hours']:,.2f} h")
    print(f"total: CPU {total['cpu_hours']:,.1f} h, GPU {total['gpu_hours']:,.2f} h")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
