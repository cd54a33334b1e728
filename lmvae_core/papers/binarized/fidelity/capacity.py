"""Notebook 03, issue 11 item 7: the capacity C of the capacity-VAE, official against the old setting.

The official code (zizhao-hu/BVAE, engine.py) computes beta |KL_sum - C| on the KL summed over a batch of 64,
with beta = 10 and C = 10: per image 10 |mean KL - 0.156|. Notebook 03 used 10 |KL_i - 10| per image. Both,
plus the beta = 10 beta-VAE, at r = 0 and r = 0.5, 3 seeds each (one stacked ensemble per setting), on full
MNIST with a short schedule: 784-256-20 (the quick profile's network), 1 epoch, batch 64, IWAE-100 on 1,000
test images. Also: the largest weight difference between the official capacity-VAE and the beta-VAE trained
from the same seeds (the same gradients while every batch's KL is above C).

    LMVAE_DATA=ROOT OMP_NUM_THREADS=1 python -m lmvae_core.papers.binarized.fidelity.capacity   # writes capacity.json

(ROOT: a torchvision root with full MNIST.)
"""
from __future__ import annotations

import torch

from lmvae_core.models.binarized import BinarizedVAEConfig
from lmvae_core.training.loop import TrainConfig

from .common import difference, mnist, setup, train_setting, write
from ..settings import CAPACITY_PER_IMAGE_10, OBJECTIVES

torch.set_num_threads(1)
SEEDS, EPOCHS, K, TEST_N = [0, 1, 2], 1, 100, 1000
VARIANTS = {"capacity official (C = 10/64 per image, batch |.|)": OBJECTIVES["capacity-VAE"],
            "capacity old (C = 10 per image)": CAPACITY_PER_IMAGE_10,
            "beta-VAE (beta = 10)": OBJECTIVES["beta-VAE"]}


def main() -> None:
    x, x_test = mnist(TEST_N)
    tcfg = TrainConfig(epochs=EPOCHS, batch_size=64, progress=False)
    results, models = {}, {}
    for r in (0.0, 0.5):
        for name, objective in VARIANTS.items():
            cfg = BinarizedVAEConfig(latent_dim=20, hidden=(256,), r=r, **objective)
            res = train_setting(cfg, x, x_test, tcfg, SEEDS, K)
            models[(name, r)] = res.pop("members")
            results[f"{name}, r = {r:g}"] = res
            print(name, r, res["ci"], flush=True)
    official, old, beta = list(VARIANTS)
    summary = {}
    for r in (0.0, 0.5):
        a, b, c = (results[f"{n}, r = {r:g}"] for n in (official, old, beta))
        weight_gap = max(float((p - q).abs().max()) for ma, mb in zip(models[(official, r)], models[(beta, r)])
                         for p, q in zip(ma.parameters(), mb.parameters()))
        summary[f"r = {r:g}"] = {
            "official minus old: IWAE (nats)": difference(a, b, "iwae"),
            "official minus old: KL_r (nats)": difference(a, b, "kl_shifted"),
            "official minus old: active units (folded)": difference(a, b, "active_folded"),
            "official minus beta-VAE: IWAE (nats)": difference(a, c, "iwae"),
            "largest weight difference, official capacity-VAE vs beta-VAE (same seeds)": weight_gap,
        }
    write("capacity", {"setup": setup("784-256-20 MLP, Bernoulli", tcfg, SEEDS, K, TEST_N), "summary": summary,
                       "results": results})


if __name__ == "__main__":
    main()
