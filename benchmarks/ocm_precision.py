"""What training precision does to the OCM component's test log-likelihood (issue 38, item 3).

The component of notebooks 04 and 05 at paper size (784-200-200-50, the 50-sample ELBO, minibatches of 64, Adam at
lr 1e-4 and beta1 0.5, as `OCMConfig`) is trained on full MNIST (dynamic binarisation) for `--epochs` epochs, once
per way and seed:
- `fp32`: the reference;
- `bf16`: the loss under bfloat16 autocast (`TrainConfig(autocast='bf16')`; the matmuls in bf16, accumulated and
  the optimiser in fp32): on a CPU with AMX, and on a GPU's tensor cores;
- `tf32` (CUDA only): fp32 with TF32 matmuls (`torch.backends.cuda.matmul.allow_tf32`).
The runs of one seed start from the same weights and draw the same random numbers, so each way's difference from
fp32 is paired by seed; the mean difference gets a Student-t 95% interval over the seeds. Every model is scored in
fp32 with IWAE-k on the fixed-binarised test set, with the same importance samples. A way is `within` the issue's
0.3 nats when its whole interval lies inside +-0.3, `outside` when it lies outside, else `cannot tell`.

It trains the component alone, on i.i.d. minibatches, not through OCM's memory passes: the precision acts on the
same network, loss and optimiser, not on the selection. The speed of each way is timed too (`train_s`), for the
device it ran on. On CUDA the training step replays a CUDA graph (as OCM's memory passes do there), so that a lease
measures 3 seeds in each precision in a couple of minutes.

Usage: python benchmarks/ocm_precision.py [--data-root ROOT] [--epochs 10] [--seeds 0 1 2] [--iwae-k 500]
       [--threads 2] [--device cpu|cuda] [--json FILE]   (default JSON: benchmarks/results/ocm_precision_<device>.json)
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from lmvae_core.data import DataConfig, load_split
from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.metrics.significance import paired_difference
from lmvae_core.models.ocm import OCM, OCMConfig
from lmvae_core.paths import benchmark_results
from lmvae_core.runtime import seed_everything
from lmvae_core.training import TrainConfig, train
from lmvae_core.training.loop import tf32_matmuls

from lmvae_core.papers.ocm.precision import TOLERANCE, this_device  # within TOLERANCE nats paper runs use the faster


def ways(device: torch.device) -> dict[str, dict]:
    out = {"fp32": {}, "bf16": {"autocast": "bf16"}}
    if device.type == "cuda":
        out["tf32"] = {"tf32": True}
    return out


def fit(x: torch.Tensor, seed: int, epochs: int, way: dict) -> tuple[OCM, float]:
    seed_everything(seed)
    c = OCMConfig()
    model = OCM(c).to(x.device)
    with tf32_matmuls(way.get("tf32", False)):
        t0 = time.perf_counter()
        train(model, x, TrainConfig(epochs=epochs, batch_size=c.batch_size, lr=c.lr, betas=(c.beta1, 0.999),
                                    progress=False, compile=False, autocast=way.get("autocast"),
                                    cuda_graph=True))  # on CUDA replayed as graphs, as OCM's memory passes are
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        return model, time.perf_counter() - t0


@torch.no_grad()
def test_ll(model: OCM, x_test: torch.Tensor, k: int) -> float:
    g = torch.Generator(device=x_test.device).manual_seed(0)  # the same importance samples for every model
    return float(model.iwae_per_component(x_test, k, generator=g)[0].mean())


def verdict(lo: float, hi: float) -> str:
    if -TOLERANCE < lo and hi < TOLERANCE:
        return "within"
    if hi < -TOLERANCE or lo > TOLERANCE:
        return "outside"
    return "cannot tell"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iwae-k", type=int, default=500)
    p.add_argument("--train-images", type=int, default=None, help="the first N training images (default: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = DataConfig(source="torchvision", root=args.data_root, device=str(device))
    x = load_split("mnist", "train", data).x[:args.train_images]
    x_test = binarize_fixed(load_split("mnist", "test", data).x)
    runs: dict[str, dict[int, dict]] = {w: {} for w in ways(device)}
    for seed in args.seeds:
        for name, way in ways(device).items():
            model, seconds = fit(x, seed, args.epochs, way)
            ll = test_ll(model, x_test, args.iwae_k)
            runs[name][seed] = {"log_likelihood": ll, "train_s": seconds}
            print(f"seed {seed}, {name}: IWAE-{args.iwae_k} {ll:.3f} nats, trained in {seconds:.0f} s", flush=True)
    fp32 = [runs["fp32"][s]["log_likelihood"] for s in args.seeds]
    differences = {}
    for name in runs:
        if name == "fp32":
            continue
        d = paired_difference([runs[name][s]["log_likelihood"] for s in args.seeds], fp32)
        speed = sum(runs["fp32"][s]["train_s"] for s in args.seeds) / sum(runs[name][s]["train_s"] for s in args.seeds)
        differences[name] = {"mean": d.mean, "lo": d.lo, "hi": d.hi, "seeds": d.n, "verdict": verdict(d.lo, d.hi),
                             "speed_vs_fp32": speed}
        print(f"{name} - fp32: {d.mean:+.3f} nats [{d.lo:+.3f}, {d.hi:+.3f}] -> {differences[name]['verdict']} "
              f"+-{TOLERANCE}; {speed:.2f}x the speed of fp32", flush=True)
    result = {"what": "OCM component 784-200-200-50 (50-sample ELBO, batch 64) trained on MNIST in each precision, "
                      "scored in fp32; differences paired by seed",
              "epochs": args.epochs, "train_images": int(x.shape[0]), "test_images": int(x_test.shape[0]),
              "iwae_k": args.iwae_k, "seeds": args.seeds, "tolerance_nats": TOLERANCE, "runs": runs,
              "differences_vs_fp32": differences, "threads": args.threads, "torch": torch.__version__,
              "device": this_device(device.type),  # what papers/ocm/precision.py matches a paper run's device to
              "device_type": device.type, "load_average_1min_at_end": os.getloadavg()[0]}
    out = args.json or benchmark_results() / f"ocm_precision_{device.type}.json"
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
