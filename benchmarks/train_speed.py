"""Training speed, measured side by side in one run (ratios, not absolute times, are the point).

1. vae_vs_dataloader: the project's VAE step over device tensors (`training.train`) against a
   reference loop in the style of the PyTorch examples VAE (torchvision MNIST + ToTensor +
   DataLoader, 784-400-20, batch 128, Adam 1e-3). The project's side runs the way long runs train: on the CPU the
   whole step compiled (training/compiled_step.py; `TrainConfig(compile=True)`, which train() chooses on its own in
   runs of at least `cpu_compile_min_steps` steps), after a warm-up call that paid the compile
   (`cpu_first_compiled_call_s`, per process). `vae_eager_vs_dataloader` and `roofline_fraction_eager`: the same
   with the step uncompiled (the fused loss and FusedAdam), train()'s way in shorter runs, as a third contender.
2. matmul_gflops, vae_gflops, roofline_fraction: the measured fp32 matrix-product rate (square
   1024 x 1024 products), the rate the VAE step achieves in its matrix products (FLOPs counted from
   the layers: forward 2*MACs, backward 2*MACs for the weight gradients plus 2*MACs for the input
   gradients of every layer but the first, whose input, the data, needs none), and their ratio.
3. mixture_vs_loop: an ExpertMixture of 10 such experts (weights stacked, one vmapped step) against a
   Python loop over 10 separate VAEs (one backward, one fused Adam over all their parameters). On CUDA both
   sides are also run the way train() runs a long graph-safe loss there, the whole step replayed as a CUDA
   graph 8 steps at a time (`mixture_vs_loop_graphed`; `mixture_vs_loop` stays the eager pair, which on a GPU
   counts the host's kernel launches more than the batching). `mixture_vs_own_loss_loop`: the same mixture against
   the loop through each VAE's own `loss`, which on the CPU has a hand-written backward (models/fused_vae.py) as
   the stacked mixture's terms do there (models/fused_stack.py): it tells the batching's gain from the fusion's.
4. ensemble_vs_separate: 5 seeds trained as one stacked ensemble (`train_ensemble`) against the same
   5 runs one after the other (`stacked=False`, the same random draws, autograd through `terms`).
   `ensemble_vs_train_runs`: against 5 runs of `train()`, the package's loop for one model (fused on the CPU).
On CUDA, the VAE is also timed epoch by epoch over full MNIST in the package's ways of running a step
(eager, torch.compile, the whole step as a CUDA graph replaying 8 steps at a time, compile and graph
with 1 or 8 steps per replay, and that last with TF32 matrix products): `gpu_epoch_ms` holds each one's
steady epoch (median of the epochs after the first) and `gpu_first_epoch_s` the first epoch, which pays
the compile and the capture. `vae_vs_dataloader` and `mnist_epoch_ms` use the long-run default there
(compile and graph, fp32). `gpu_step_kernels` counts the GPU kernels of one step and their summed
time (torch.profiler over an epoch, eager-compiled and graphed), which tells launch gaps from kernel time.
The contenders alternate over several rounds and the medians are reported, so that background load
affects both alike; the contenders of a ratio run one right after the other, in an order rotated every round
(two contenders: swapped every other round; the mixture and the ensemble have a third, their fused reference). The load
average at the start and end is recorded, since other jobs may share the CPU.

Usage: python benchmarks/train_speed.py [--device auto] [--images 12800] [--rounds 3] [--processes 1] [--json FILE]
(--processes N, on the CPU: N fresh processes of --rounds rounds each, pooled; see `pooled`.)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lmvae_core import paths
from lmvae_core.data import DataConfig, load_split
from lmvae_core.data.datasets import DataMissingError, load_images
from lmvae_core.data.idx import write_mnist_root
from lmvae_core.models import VAE, ExpertMixture
from lmvae_core.runtime import pick_device
from lmvae_core.training import TrainConfig, make_optimizer, train, train_ensemble
from lmvae_core.training.graphs import CudaGraphStep, StepBlock
from lmvae_core.training.loop import steps_per_epoch


BATCH = 128  # the batch size of every timed step (pytorch/examples' VAE), recorded in the results' settings


class ExamplesVAE(nn.Module):
    """The architecture of pytorch/examples vae/main.py."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def examples_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def mnist_root(data_root: str | None) -> str:
    """torchvision's MNIST under the data root (argument, else $LMVAE_DATA, else ./data), or the committed
    sample written as IDX files."""
    try:
        load_images("mnist", "train", data_root, source="torchvision", download=False)
        return str(paths.data_root(data_root))
    except DataMissingError:
        tmp = Path(tempfile.mkdtemp())
        x, y = load_images("mnist", "train", source="sample")
        write_mnist_root(tmp, "MNIST", (x[:, 0].numpy(), y.numpy()), (x[:10, 0].numpy(), y[:10].numpy()))
        print(f"(full MNIST not found: timing on the committed sample, {len(x)} images, written as IDX)")
        return str(tmp)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_vae() -> VAE:
    return VAE(hidden=(400,), latent_dim=20)


def step_flops_per_image(model: nn.Module) -> int:
    """Matrix-product FLOPs of one training step per image (forward and backward), from the Linear layers.
    The first layer (the one that reads the data) computes no input gradient."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    macs = [m.in_features * m.out_features for m in layers]
    return 2 * sum(macs) + 2 * sum(macs) + 2 * sum(macs[1:])


def time_reference(root: str, device, n_images: int) -> float:
    from torchvision import datasets, transforms

    ds = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True,
                                         **({"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}))
    model = ExamplesVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen = 0
    sync(device)
    t0 = time.perf_counter()
    while seen < n_images:
        for x, _ in loader:
            x = x.to(device)
            opt.zero_grad()
            recon, mu, logvar = model(x)
            loss = examples_loss(recon, x, mu, logvar)
            loss.backward()
            opt.step()
            seen += x.shape[0]
            if seen >= n_images:
                break
    sync(device)
    return seen / (time.perf_counter() - t0)


def time_project(x: torch.Tensor, n_images: int, compile: bool | str = "auto") -> float:
    """train() over n_images (whole batches). On the CPU compile=True compiles the whole step (what train() does in
    runs of at least TrainConfig.cpu_compile_min_steps): the first such call in a process pays the compile."""
    model = make_vae().to(x.device)
    data = x[:n_images]
    sync(x.device)
    t0 = time.perf_counter()
    train(model, data, TrainConfig(epochs=1, batch_size=BATCH, binarize=None, progress=False, compile=compile))
    sync(x.device)
    return data.shape[0] / (time.perf_counter() - t0)


# TrainConfig settings of each way to run the step on CUDA; the last is what long CUDA runs use ('auto')
GPU_VARIANTS = {"eager": {"compile": False, "cuda_graph": False}, "compiled": {"compile": True, "cuda_graph": False},
                "graph": {"compile": False, "cuda_graph": True},
                "compiled_graph_1_step_per_replay": {"compile": True, "cuda_graph": True, "graph_steps": 1},
                "compiled_graph": {"compile": True, "cuda_graph": True},
                # TF32 matrix products (10-bit mantissa; not what train() does by default): what the tensor cores add
                "compiled_graph_tf32": {"compile": True, "cuda_graph": True, "tf32": True}}


def timed_train(model: nn.Module, x: torch.Tensor, cfg: TrainConfig) -> list[float]:
    """`training.train(model, x, cfg)`, returning the seconds of each epoch (the first pays compile and capture)."""
    marks = []

    def on_epoch(epoch, means):  # after the epoch's one host read of its loss terms
        sync(x.device)
        marks.append(time.perf_counter())

    sync(x.device)
    marks.append(time.perf_counter())
    train(model, x, cfg, on_epoch=on_epoch)
    return [b - a for a, b in zip(marks, marks[1:])]


def time_epochs(x: torch.Tensor, settings: dict, epochs: int = 4) -> list[float]:
    """Seconds of each epoch of the 784-400-20 VAE over all of x through `training.train`."""
    settings = dict(settings)
    tf32 = settings.pop("tf32", False)
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        return timed_train(make_vae().to(x.device), x,
                           TrainConfig(epochs=epochs, batch_size=BATCH, binarize=None, progress=False, **settings))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def step_kernels(x: torch.Tensor, settings: dict) -> dict:
    """GPU kernels per training step of the VAE and their summed device time (torch.profiler over the second of
    two epochs, so that compile and capture stay out). Kernel time well under the step's wall time means the GPU
    waits between kernels (launches, or the gaps inside a graph); close to it, the kernels themselves set the pace."""
    from torch.profiler import ProfilerActivity, profile

    model = make_vae().to(x.device)
    cfg = TrainConfig(epochs=1, batch_size=BATCH, binarize=None, progress=False, **settings)
    train(model, x, cfg)
    steps = steps_per_epoch(x.shape[0], cfg.batch_size)
    sync(x.device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train(model, x, cfg)
        sync(x.device)
    # device-side events, less the annotation ranges that span kernels (an optimiser step's, inductor's
    # "## Call CompiledFxGraph ... ##"): counting those would count their kernels twice
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and not getattr(e, "is_user_annotation", False) and "#" not in e.name]
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:12]
    return {"kernels_per_step": len(kernels) / steps,
            "kernel_us_per_step": sum(sum(v) for v in by_name.values()) / steps,
            "top": [{"kernel": k[:120], "calls_per_step": len(v) / steps, "us_per_step": sum(v) / steps}
                    for k, v in top]}


def time_matmul(device, n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def time_mixture(x: torch.Tensor, batched: bool, steps: int, k: int = 10, batch: int = BATCH,
                 graph: bool = False, own_loss: bool = False) -> float:
    """Images per second through all k experts (each image counted once per step). graph (CUDA): the whole step
    replayed as a CUDA graph, 8 steps per replay, as train() runs long graph-safe runs; the first block, which
    captures, is not timed. own_loss (the loop): each VAE's `loss`, which on the CPU takes its fused backward
    (models/fused_vae.py), instead of autograd through `terms`."""
    torch.manual_seed(0)
    if batched:
        mix = ExpertMixture(make_vae, k).to(x.device)
        params = mix.trainable_parameters()

        def loss_fn(b):
            return mix.all_experts(b)["loss"].mean(1).sum()
    else:
        experts = [make_vae().to(x.device) for _ in range(k)]
        params = [p for e in experts for p in e.parameters()]

        def loss_fn(b):
            if own_loss:
                return sum(e.loss(b)[0] for e in experts)
            return sum(e.terms(b)["loss"].mean() for e in experts)
    opt = make_optimizer(params, TrainConfig())
    if graph:
        per_replay = 8
        blocks = [StepBlock(b.view(per_replay, batch, *x.shape[1:]))
                  for b in x[: batch * per_replay * (steps // per_replay + 1)].split(batch * per_replay)]
        stepper = CudaGraphStep(lambda b: (loss_fn(b), {}), opt, params)
        stepper(blocks[0])  # warm-up and capture
        sync(x.device)
        t0 = time.perf_counter()
        for b in blocks[1:]:
            stepper(b)
        sync(x.device)
        if stepper.failed or stepper.eager_steps:
            raise RuntimeError(f"the mixture's step did not run as a graph: {stepper.failed}")
        return (len(blocks) - 1) * per_replay * batch / (time.perf_counter() - t0)
    batches = x[: batch * steps].split(batch)
    sync(x.device)
    t0 = time.perf_counter()
    for b in batches:
        loss = loss_fn(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(x.device)
    return len(batches) * batch / (time.perf_counter() - t0)


def time_ensemble(x: torch.Tensor, stacked: bool, n_images: int, seeds=(0, 1, 2, 3, 4), via_train: bool = False) -> float:
    """Member-images per second: each of the len(seeds) members sees n_images once. via_train (not stacked): the
    separate runs through `train()`, the package's loop for one model (on the CPU, the fused VAE loss), instead of
    the ensemble's own one-member reference (autograd through `terms`, with the ensemble's random draws)."""
    data = x[:n_images]
    cfg = TrainConfig(epochs=1, batch_size=BATCH, binarize=None, progress=False)
    sync(x.device)
    t0 = time.perf_counter()
    if via_train:
        for seed in seeds:
            torch.manual_seed(seed)
            train(make_vae().to(x.device), data, cfg)
    else:
        train_ensemble(make_vae, data, cfg, seeds=list(seeds), stacked=stacked)
    sync(x.device)
    return len(seeds) * data.shape[0] / (time.perf_counter() - t0)


def eager_step_ops(batch: int) -> int:
    """The operations of the 784-400-20 VAE's eager training step (training.op_count; the CPU's count is the GPU's)."""
    from lmvae_core.training.op_count import eager_step_ops as count

    return count(batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=12800, help="images per timing of the single VAE")
    p.add_argument("--mixture-steps", type=int, default=30)
    p.add_argument("--ensemble-images", type=int, default=3840, help="images per member per ensemble timing")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None, help="write the measurements to this file")
    p.add_argument("--processes", type=int, default=1,
                   help="on the CPU: run the rounds in this many fresh processes, one after the other, and pool them")
    args = p.parse_args()
    device = pick_device(args.device)
    if args.processes > 1 and device.type == "cpu":
        return finish(pooled(args), args)
    root = mnist_root(args.data_root)
    x = load_split("mnist", "train", DataConfig(source="torchvision", root=root, device=str(device))).x
    load_before = os.getloadavg()
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {x.shape[0]} images, "
          f"load average {load_before}")
    # warm-up, so that first-call allocation and kernel selection are not timed
    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    if not cuda:  # the compile of the whole step, paid once per process, is reported, not timed with the rounds
        time_project(x, 1280, compile=True)
    first_call_s = time.perf_counter() - t0
    time_project(x, 1280), time_reference(root, device, 1280), time_matmul(device)
    time_mixture(x, True, 2), time_mixture(x, False, 2), time_ensemble(x, True, 256), time_ensemble(x, False, 256)
    time_mixture(x, False, 2, own_loss=True), time_ensemble(x, False, 256, via_train=True)
    if cuda:
        for v in GPU_VARIANTS.values():
            time_epochs(x, v, epochs=2)
        time_mixture(x, True, 16, graph=True), time_mixture(x, False, 16, graph=True)
    runs = {k: [] for k in ("reference", "project", "matmul", "mixture", "loop", "own_loss_loop", "ensemble",
                            "separate", "train_runs")}
    if cuda:
        runs |= {"mixture_graphed": [], "loop_graphed": []}
    else:
        runs |= {"project_eager": []}
    epochs = {v: [] for v in GPU_VARIANTS}
    def project() -> float:
        """The VAE the way long runs train it: on the CPU the whole step compiled, on CUDA compiled and graphed."""
        if not cuda:
            return time_project(x, args.images, compile=True)
        for v, flags in GPU_VARIANTS.items():
            epochs[v].append(time_epochs(x, flags))
        return x.shape[0] / statistics.median(epochs["compiled_graph"][-1][1:])

    def pair(r: int, first: tuple, *others: tuple) -> None:
        """Time contenders one right after the other, in an order rotated every round, so that none always runs
        in the state another leaves behind (caches, the allocator's free blocks)."""
        contenders = [first, *others]
        for name, timed in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
            runs[name].append(timed())

    steps, images = args.mixture_steps, args.ensemble_images
    for r in range(args.rounds):
        pair(r, ("reference", lambda: time_reference(root, device, args.images)), ("project", project),
             *([] if cuda else [("project_eager", lambda: time_project(x, args.images, compile=False))]))
        runs["matmul"].append(time_matmul(device))
        pair(r, ("mixture", lambda: time_mixture(x, True, steps)), ("loop", lambda: time_mixture(x, False, steps)),
             ("own_loss_loop", lambda: time_mixture(x, False, steps, own_loss=True)))
        if cuda:
            pair(r, ("mixture_graphed", lambda: time_mixture(x, True, steps, graph=True)),
                 ("loop_graphed", lambda: time_mixture(x, False, steps, graph=True)))
        pair(r, ("ensemble", lambda: time_ensemble(x, True, images)), ("separate", lambda: time_ensemble(x, False, images)),
             ("train_runs", lambda: time_ensemble(x, False, images, via_train=True)))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items())
              + "".join(f"; {v} epochs {[round(t * 1000, 1) for t in e[-1]]} ms" for v, e in epochs.items() if e))
    kernels = {}
    if cuda:
        for v in ("compiled", "compiled_graph"):
            try:
                kernels[v] = step_kernels(x, GPU_VARIANTS[v])
            except Exception as e:  # noqa: BLE001  (the profile is a diagnostic; it must not lose the timings)
                kernels[v] = {"error": f"{type(e).__name__}: {e}"}
            print(f"{v}: {kernels[v].get('kernels_per_step', '?')} kernels per step, "
                  f"{kernels[v].get('kernel_us_per_step', '?')} us of kernel time per step")
    result = summarise(runs, epochs, kernels, device, x.shape[0], args)
    if not cuda:
        result["cpu_first_compiled_call_s"] = first_call_s
    result["load_average_start_end"] = [list(load_before), list(os.getloadavg())]
    finish(result, args)


def summarise(runs: dict, epochs: dict, kernels: dict, device, n_images: int, args) -> dict:
    """The results file's fields from the rounds (medians over them) and, on CUDA, the epochs and kernel profiles."""
    cuda = device.type == "cuda"
    m = {k: statistics.median(v) for k, v in runs.items()}
    flops = step_flops_per_image(make_vae())
    vae_gflops = m["project"] * flops / 1e9
    return {
        "vae_vs_dataloader": m["project"] / m["reference"],
        "matmul_gflops": m["matmul"],
        "vae_gflops": vae_gflops,
        "roofline_fraction": vae_gflops / m["matmul"],
        "mixture_vs_loop": m["mixture"] / m["loop"],
        **({"mixture_vs_loop_graphed": m["mixture_graphed"] / m["loop_graphed"]} if cuda else {}),
        "ensemble_vs_separate": m["ensemble"] / m["separate"],
        # on the CPU, the VAE step as train() runs it in shorter runs (not compiled: the fused loss and FusedAdam)
        **({"vae_eager_vs_dataloader": m["project_eager"] / m["reference"],
            "roofline_fraction_eager": m["project_eager"] * flops / 1e9 / m["matmul"]} if "project_eager" in m else {}),
        # the same against the package's fastest way to run each one alone, where it has one (older files lack them)
        **({"mixture_vs_own_loss_loop": m["mixture"] / m["own_loss_loop"]} if "own_loss_loop" in m else {}),
        **({"ensemble_vs_train_runs": m["ensemble"] / m["train_runs"]} if "train_runs" in m else {}),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "img_per_s": {"vae_project": m["project"], "vae_dataloader_reference": m["reference"],
                      "mixture10_batched": m["mixture"], "mixture10_loop": m["loop"],
                      **({"mixture10_batched_graphed": m["mixture_graphed"], "mixture10_loop_graphed": m["loop_graphed"]}
                         if cuda else {}),
                      "ensemble5_stacked_member_images": m["ensemble"], "ensemble5_separate_member_images": m["separate"],
                      **({"mixture10_own_loss_loop": m["own_loss_loop"]} if "own_loss_loop" in m else {}),
                      **({"vae_project_eager": m["project_eager"]} if "project_eager" in m else {}),
                      **({"ensemble5_train_runs_member_images": m["train_runs"]} if "train_runs" in m else {})},
        "vae_step_mflop_per_image": flops / 1e6,
        "mnist_epoch_ms": 60000 / m["project"] * 1000,
        **({"gpu_epoch_ms": {v: 1000 * statistics.median(t for run in e for t in run[1:]) for v, e in epochs.items()},
            "gpu_first_epoch_s": {v: statistics.median(run[0] for run in e) for v, e in epochs.items()},
            "gpu_epoch_images": n_images, "gpu_step_kernels": kernels,
            # the operations this code's eager step dispatches, counted beside its timing: training/op_count.py
            # divides the eager step's time by it, and a later code change must not change the divisor
            "eager_step_ops": eager_step_ops(BATCH)} if cuda else {}),
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in runs.items()},
        "settings": {"batch_size": BATCH, "images": args.images, "mixture_steps": args.mixture_steps,
                     "ensemble_images": args.ensemble_images, "rounds": len(runs["project"])},
    }


RATIOS = ("vae_vs_dataloader", "roofline_fraction", "mixture_vs_loop", "ensemble_vs_separate")
AGAINST_FUSED = ("mixture_vs_own_loss_loop", "ensemble_vs_train_runs")  # the targets read RATIOS
UNCOMPILED = ("vae_eager_vs_dataloader", "roofline_fraction_eager")  # the CPU's VAE step in runs too short to compile


def pooled(args) -> dict:
    """The benchmark run in args.processes fresh processes, one after the other, with their rounds pooled.

    Why: on the 2-core VM behind results/train_speed_cpu.json a process keeps one of two speeds for most of its life (the plain
    VAE step takes about 4.3 or 6.7 ms, in identical runs; the other contenders move less), so the rounds of one
    process sample one mode and its ratios swing with it (the mixture 1.15x in one process, 1.48x in the next).
    Pooled rounds from several processes sample both. Each process's own medians are kept in `per_process`."""
    children = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.processes):
            out = Path(tmp) / f"{i}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--device", "cpu", "--processes", "1",
                   "--images", str(args.images), "--mixture-steps", str(args.mixture_steps),
                   "--ensemble-images", str(args.ensemble_images), "--rounds", str(args.rounds), "--json", str(out)]
            print(f"process {i + 1} of {args.processes}", flush=True)
            subprocess.run(cmd + (["--data-root", args.data_root] if args.data_root else []), check=True)
            children.append(json.loads(out.read_text()))
    runs = {k: [v for c in children for v in c["rounds"][k]] for k in children[0]["rounds"]}
    result = summarise(runs, {}, {}, torch.device("cpu"), 0, args)
    result["per_process"] = [{k: c[k] for k in RATIOS + AGAINST_FUSED + UNCOMPILED if k in c} for c in children]
    firsts = [c["cpu_first_compiled_call_s"] for c in children if "cpu_first_compiled_call_s" in c]
    if firsts:
        result["cpu_first_compiled_call_s"] = firsts
    result["load_average_start_end"] = [children[0]["load_average_start_end"][0],
                                        children[-1]["load_average_start_end"][1]]
    result["settings"] |= {"processes": args.processes, "rounds_per_process": args.rounds}
    return result


def finish(result: dict, args) -> None:
    """Print the summary line and write the results file."""
    cuda = "gpu_epoch_ms" in result
    ips = result["img_per_s"]
    print(f"\nmedians of {result['settings']['rounds']} rounds: VAE {ips['vae_project']:.0f} img/s vs DataLoader "
          f"{ips['vae_dataloader_reference']:.0f} -> {result['vae_vs_dataloader']:.2f}x"
          + (f" (uncompiled {result['vae_eager_vs_dataloader']:.2f}x)" if "vae_eager_vs_dataloader" in result else "")
          + f"; VAE "
          f"{result['vae_gflops']:.1f} GFLOP/s of {result['matmul_gflops']:.1f} measured "
          f"-> {result['roofline_fraction']:.2f}; mixture of 10 {result['mixture_vs_loop']:.2f}x the loop"
          + (f" ({result['mixture_vs_loop_graphed']:.2f}x both graphed)" if cuda else "")
          + (f" ({result['mixture_vs_own_loss_loop']:.2f}x a loop of fused VAEs)" if "mixture_vs_own_loss_loop" in result else "")
          + f"; ensemble of 5 {result['ensemble_vs_separate']:.2f}x separate runs"
          + (f" ({result['ensemble_vs_train_runs']:.2f}x runs of train())" if "ensemble_vs_train_runs" in result else "")
          + f"; load {os.getloadavg()}")
    if cuda:
        print("steady epoch ms: " + ", ".join(f"{v} {t:.1f}" for v, t in result["gpu_epoch_ms"].items())
              + "; first epoch s: " + ", ".join(f"{v} {t:.1f}" for v, t in result["gpu_first_epoch_s"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
