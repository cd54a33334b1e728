"""Notebook 00: is the mixture's clustering accuracy a bug, the schedule, or the objective's ceiling?

Trains the post's mixture (10 VAE experts 784-256-10 and a 256-unit manager, the quick profile's networks, KL
balancing) on full MNIST and, after every epoch, measures on the 10,000 test images: the manager's Hungarian
accuracy, the accuracy of the experts' own lowest-loss assignment (argmin_k of the negative ELBO over 4 draws), how
often the two agree, and the mean of the gate's largest probability. Beside it: k-means on the test pixels.
If the manager routes to the lowest-loss expert with a near one-hot gate and the accuracy stops moving, the loss
sum_k p_k L_k trains as hard EM over pixel likelihoods and its accuracy is what that objective gives.

Run: OMP_NUM_THREADS=1 python -m lmvae_core.papers.mixture_of_vaes.fidelity.ceiling --data-root ROOT (a torchvision
root with full MNIST). Writes ceiling.json beside this file.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.papers.mixture_of_vaes.experiments import kmeans_pixel_accuracy
from lmvae_core.metrics.clustering import cluster_accuracy, contingency
from lmvae_core.models.moe_vae import MoEVAE, MoEVAEConfig
from lmvae_core.models.vae import VAEConfig
from lmvae_core.training.loop import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True, help="a torchvision root with full MNIST")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    cfg = DataConfig(source="torchvision", root=args.data_root, device="cpu")
    tr, te = load_split("mnist", "train", cfg), load_split("mnist", "test", cfg)
    xt, labels = binarize_fixed(te.x), te.y.numpy()
    model = MoEVAE(MoEVAEConfig(n_experts=10, expert=VAEConfig(latent_dim=10, hidden=(256,)), manager_hidden=(256,)))
    per_epoch, start = [], time.time()

    def measure(epoch: int, terms: dict) -> None:
        model.eval()
        d = {k: v.numpy() for k, v in model.routing_diagnostics(xt).items()}
        model.train()
        row = {"epoch": epoch + 1, "accuracy_routed": cluster_accuracy(labels, d["routed"]),
               "accuracy_lowest_loss": cluster_accuracy(labels, d["lowest_loss"]),
               "agreement": float((d["routed"] == d["lowest_loss"]).mean()),
               "mean_max_gate": float(d["max_gate"].mean()), "mixture_nelbo_train": float(terms["mixture_nelbo"]),
               "seconds": time.time() - start}
        per_epoch.append(row)
        print(row, flush=True)

    train(model, tr.x, TrainConfig(epochs=args.epochs, batch_size=128, progress=False), on_epoch=measure)
    model.eval()
    routed = model.routing_diagnostics(xt)["routed"].numpy()
    counts = contingency(labels, routed, 10, 10)
    out = {"script": Path(__file__).name, "data": "full MNIST: 60,000 train, 10,000 test",
           "model": "10 experts 784-256-10 Bernoulli VAE, manager 784-256-10, KL balancing weight 100",
           "schedule": f"{args.epochs} epochs, batch 128, Adam 1e-3, seed {args.seed}",
           "per_epoch": per_epoch, "kmeans_pixels_accuracy": kmeans_pixel_accuracy(te.x, te.y, seed=args.seed),
           # rows: true digit; for each expert, its two most frequent digits and their shares
           "experts_top_digits": [[(int(d), round(float(counts[d, e] / max(1, counts[:, e].sum())), 3))
                                   for d in counts[:, e].argsort()[::-1][:2]] for e in range(10)],
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    Path(__file__).with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "per_epoch"}, indent=1))


if __name__ == "__main__":
    main()
