"""What the GPU paths do to a trained model's test log-likelihood (needs CUDA; run on a GPU machine).

The calibration network of the brief, 784-200-20 trained 10 epochs on full MNIST (reference: about -99.7
nats at IWAE-500, `lmvae_core/experiments/references/mnist_784-200-20_10ep.json`), is trained on the GPU
three ways from the same seed:
- `graphed`: the long-run default on CUDA (torch.compile + the whole step as one CUDA graph);
- `eager`: neither (the step as on a CPU);
- `bf16`: the graphed step under bfloat16 autocast (`TrainConfig(autocast='bf16')`).
Each is scored with IWAE-500 in fp32 on the full fixed-binarised test set. The graphed and eager runs draw
their random numbers in a different order, so their difference is a seed-to-seed difference, not zero.
`precision_gap` then scores the graphed model a second time under bf16 autocast with the same importance
samples (evaluation precision alone).

Usage: python benchmarks/gpu_precision.py [--data-root ROOT] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lmvae_core.data import DataConfig, load_split
from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.experiments.calibration import REFERENCES, reference
from lmvae_core.metrics import mean_iwae
from lmvae_core.models import VAE
from lmvae_core.runtime import seed_everything
from lmvae_core.training import TrainConfig, precision_gap

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import timed_train  # noqa: E402  (the benchmark's per-epoch timer)

KEY = "mnist_784-200-20_10ep"
WAYS = {"graphed": {"compile": True, "cuda_graph": True}, "eager": {"compile": False, "cuda_graph": False},
        "bf16": {"compile": True, "cuda_graph": True, "autocast": "bf16"}}


def fit(x: torch.Tensor, spec, **cfg) -> tuple[VAE, float, list[float]]:
    seed_everything(spec.seed)
    model = VAE(hidden=spec.hidden, latent_dim=spec.latent).to(x.device)
    epochs = timed_train(model, x, TrainConfig(epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                                               progress=False, **cfg))
    return model, sum(epochs), epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-root", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_precision.py needs a CUDA GPU")
    spec = REFERENCES[KEY]
    cfg = DataConfig(source="torchvision", root=args.data_root, device="cuda")
    x = load_split("mnist", "train", cfg).x
    x_test = binarize_fixed(load_split("mnist", "test", cfg).x)
    ref, src = reference(KEY)
    out = {"network": spec.model, "reference": ref, "reference_source": src, "iwae_k": spec.iwae_k,
           "train_images": int(x.shape[0]), "test_images": int(x_test.shape[0]),
           "device": torch.cuda.get_device_name(), "torch": torch.__version__, "ways": {}}
    models = {}
    for way, flags in WAYS.items():
        model, seconds, epochs = fit(x, spec, **flags)
        with torch.no_grad():
            ll = mean_iwae(model, x_test, k=spec.iwae_k, generator_seed=0)
        models[way] = model
        out["ways"][way] = {"flags": flags, "log_likelihood": ll, "vs_reference": ll - ref, "train_s": seconds,
                            "first_epoch_s": epochs[0], "steady_epoch_ms": 1000 * sorted(epochs[1:])[len(epochs[1:]) // 2]}
        print(f"{way}: IWAE-{spec.iwae_k} {ll:.2f} (reference {ref:.2f}), {seconds:.1f} s", flush=True)
    out["graphed_minus_eager"] = out["ways"]["graphed"]["log_likelihood"] - out["ways"]["eager"]["log_likelihood"]
    out["bf16_training_minus_fp32"] = out["ways"]["bf16"]["log_likelihood"] - out["ways"]["graphed"]["log_likelihood"]
    out["bf16_evaluation_gap"] = precision_gap(models["graphed"], x_test, k=spec.iwae_k)
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
