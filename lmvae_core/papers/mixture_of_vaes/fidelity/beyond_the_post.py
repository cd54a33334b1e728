"""Notebook 00, beyond the post: does a mixture-of-Gaussians prior in one VAE's latent space (VaDE style) cluster
MNIST to >= 0.85 accuracy, where the post's mixture of pixel-space experts stops near k-means on pixels?

On full MNIST (60,000 train, 10,000 test): a plain VAE of the quick profile's expert architecture (784-256-10,
Bernoulli, 10 epochs) is trained; k-means on its test latent means is the baseline; a diagonal GMM fitted to its
training latent means (from k-means centres) initialises the prior of a MoGVAE with the same networks, which then
trains the ELBO with the mixture prior. Scored on the test set, one-to-one (Hungarian) and many-to-one, for 10
components and for more components than classes. Pixel k-means with as many clusters is measured beside it.

Run: OMP_NUM_THREADS=1 python -m lmvae_core.papers.mixture_of_vaes.fidelity.beyond_the_post --data-root ROOT (a
torchvision root with full MNIST). Writes beyond_the_post.json beside this file.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.papers.mixture_of_vaes.prior import kmeans, latent_means, scores
from lmvae_core.models.mog_vae import MoGVAE, MoGVAEConfig, fit_diag_gmm
from lmvae_core.models.vae import VAE, VAEConfig
from lmvae_core.training.loop import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True, help="a torchvision root with full MNIST")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--components", default="10,50,100")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    cfg = DataConfig(source="torchvision", root=args.data_root, device="cpu")
    tr, te = load_split("mnist", "train", cfg), load_split("mnist", "test", cfg)
    labels, xt = te.y.numpy(), binarize_fixed(te.x)
    vcfg = VAEConfig(latent_dim=10, hidden=(256,))
    start = time.time()
    base = VAE(vcfg)
    train(base, tr.x, TrainConfig(epochs=args.pretrain_epochs, batch_size=128, progress=False))
    out = {"script": Path(__file__).name, "data": "full MNIST: 60,000 train, 10,000 test",
           "plain_vae": f"784-256-10 Bernoulli VAE, {args.pretrain_epochs} epochs, batch 128, Adam 1e-3",
           "mixture_prior_training": f"{args.epochs} epochs, batch 128, Adam 1e-3", "seed": args.seed,
           "pretrain_seconds": time.time() - start, "rows": []}
    z_train, z_test = latent_means(base, tr.x), latent_means(base, te.x)
    for c in [int(v) for v in args.components.split(",")]:
        t0 = time.time()
        row = {"components": c, "kmeans_pixels": scores(labels, kmeans(te.x, c, args.seed, iters=30)[1]),
               "kmeans_latent": scores(labels, kmeans(z_test, c, args.seed)[1])}
        centres, _ = kmeans(z_train, c, args.seed)
        w, m, v = fit_diag_gmm(z_train, c, seed=args.seed, init=torch.from_numpy(centres))
        model = MoGVAE(MoGVAEConfig(latent_dim=10, hidden=(256,), n_components=c))
        model.load_state_dict(base.state_dict(), strict=False)
        model.init_prior(w, m, v)
        row["gmm_init"] = scores(labels, model.assign(xt).numpy())
        per_epoch = []
        train(model, tr.x, TrainConfig(epochs=args.epochs, batch_size=128, progress=False),
              on_epoch=lambda e, t: per_epoch.append(scores(labels, model.eval().assign(xt).numpy())
                                                     | {"epoch": e + 1}) or model.train())
        row["per_epoch"] = per_epoch
        row["mixture_prior_vae"] = per_epoch[-1]
        row["seconds"] = time.time() - t0
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    out["total_seconds"] = time.time() - start
    out["torch"], out["threads"] = torch.__version__, torch.get_num_threads()
    Path(__file__).with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
