"""Notebook 03, issue 11 items 8 and 9: posterior collapse, and what one seed can decide.

Item 8: at latent 20 every unit stays active at r = 0, so the old sweep could not show that r prevents collapse;
and Burda's count (Var_x E[z|x] > 0.01) favours r > 0, whose means sit at +-r. Here: a collapse regime (latent
50; the VAE and the beta = 10 beta-VAE) and the old latent-20 VAE, at r = 0 and r = 0.5, each counted three ways
(raw Burda; folded, sign(mu) max(|mu| - r, 0), invariant to the r shift; KL_r per unit > 0.01 nats).
Item 9: the paired (by seed) 95% intervals of the r = 0.5 minus r = 0 differences, over 3 seeds.

Full MNIST, 784-256-d MLPs (the quick profile's width), 2 epochs, batch 64, 3 seeds as one stacked ensemble per
setting, evaluation on 1,000 test images (IWAE-100).

    LMVAE_DATA=ROOT OMP_NUM_THREADS=1 python -m lmvae_core.papers.binarized.fidelity.collapse   # writes collapse.json

(ROOT: a torchvision root with full MNIST.)
"""
from __future__ import annotations

import torch

from lmvae_core.models.binarized import BinarizedVAEConfig
from lmvae_core.training.loop import TrainConfig

from .common import difference, mnist, setup, train_setting, write
from ..settings import OBJECTIVES

torch.set_num_threads(1)
SEEDS, EPOCHS, K, TEST_N = [0, 1, 2], 2, 100, 1000
SETTINGS = [("latent 50, VAE", 50, "VAE"), ("latent 50, beta-VAE (beta = 10)", 50, "beta-VAE"),
            ("latent 20, VAE (the old sweep)", 20, "VAE")]


def main() -> None:
    x, x_test = mnist(TEST_N)
    tcfg = TrainConfig(epochs=EPOCHS, batch_size=64, progress=False)
    results, summary = {}, {}
    for name, latent, objective in SETTINGS:
        pair = {}
        for r in (0.0, 0.5):
            cfg = BinarizedVAEConfig(latent_dim=latent, hidden=(256,), r=r, **OBJECTIVES[objective])
            res = train_setting(cfg, x, x_test, tcfg, SEEDS, K)
            res.pop("members")
            pair[r] = results[f"{name}, r = {r:g}"] = res
            print(name, r, res["ci"], flush=True)
        summary[name] = {f"r = 0.5 minus r = 0: {key}": difference(pair[0.5], pair[0.0], key)
                         for key in ("active_raw", "active_folded", "active_kl", "iwae", "recon_error")}
    write("collapse", {"setup": setup("784-256-d MLP, Bernoulli", tcfg, SEEDS, K, TEST_N), "summary": summary,
                       "results": results})


if __name__ == "__main__":
    main()
