"""Notebook 00, the baselines and the step beyond the post: a plain VAE, k-means on its latent means, and the same
VAE with a mixture-of-Gaussians prior initialised by a GMM on those means (VaDE style, `models.mog_vae`).

The post's mixture (K VAEs routed by their pixel-space losses) is judged against k-means on pixels and on a plain
VAE's latent means. The variant here keeps the mixture but moves it into one latent space, where digits that
overlap in pixels (4/7/9, 3/5/8) are further apart. Scored with C components and, for C > 10 classes, the
many-to-one map (each component votes for its majority label); C = 10 is also scored one-to-one (Hungarian).
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from ...continual import pack, restore
from ...data.preprocess import binarize_fixed
from ...data.streams import DataConfig, load_split
from ...metrics.clustering import cluster_accuracy, many_to_one_accuracy
from ...models.mog_vae import MoGVAE, MoGVAEConfig, fit_diag_gmm
from ...models.vae import VAE, VAEConfig
from ...results.cache import cached
from ...training.loop import TrainConfig, train


def kmeans(points: torch.Tensor, k: int, seed: int = 0, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ then Lloyd iterations (scipy): (centres [k, D], assignment [N])."""
    from scipy.cluster.vq import kmeans2  # here: scipy.cluster costs a second at every `lmvae` start-up

    return kmeans2(points.flatten(1).cpu().numpy().astype(np.float64), k, minit="++", seed=seed, iter=iters)


def scores(labels: np.ndarray, assign: np.ndarray) -> dict:
    """Hungarian (one-to-one) and many-to-one accuracy, and how many clusters were used."""
    return {"accuracy": cluster_accuracy(labels, assign), "many_to_one": many_to_one_accuracy(labels, assign),
            "clusters_used": int(len(np.unique(assign)))}


def train_plain_vae(dataset: str, vcfg: VAEConfig, tcfg: TrainConfig, data: DataConfig, seed: int,
                    force: bool = False) -> dict:
    """One VAE of the experts' architecture trained on the whole dataset (cached by all inputs)."""
    key = {"dataset": dataset, "model": asdict(vcfg), "train": asdict(tcfg) | {"progress": None},
           "data": asdict(data) | {"device": None}, "seed": seed}

    def fit():
        torch.manual_seed(seed)
        x = load_split(dataset, "train", data).x
        model = VAE(vcfg).to(x.device)
        t0 = time.time()
        history = train(model, x, tcfg, desc=f"plain VAE {dataset} seed {seed}")
        return pack(model) | {"history": history, "train_seconds": time.time() - t0}

    return cached("moe_plain_vae", key, fit, force=force)


@torch.no_grad()
def latent_means(model: VAE, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    xb = binarize_fixed(x)
    return torch.cat([model.encode(xb[s:s + batch_size])[0] for s in range(0, x.shape[0], batch_size)])


def latent_kmeans(model: VAE, x: torch.Tensor, y: torch.Tensor, k: int = 10, seed: int = 0) -> dict:
    """The stronger baseline: k-means on a plain VAE's latent means of the test images (as the pixel baseline
    clusters the test pixels)."""
    _, assign = kmeans(latent_means(model, x), k, seed)
    return scores(y.cpu().numpy(), assign)


def train_mog_variant(dataset: str, plain: dict, n_components: int, tcfg: TrainConfig, data: DataConfig,
                      seed: int, force: bool = False) -> dict:
    """VaDE-style: the plain VAE's weights, a diagonal GMM fitted (from k-means centres) to its latent means of
    the training images as the prior, then the ELBO with that mixture prior. Returns the model before (GMM
    initialisation only) and after this training."""
    vcfg = plain["spec"]["config"]
    key = {"dataset": dataset, "plain": plain["spec"], "plain_train_seconds": plain["train_seconds"],
           "n_components": n_components, "train": asdict(tcfg) | {"progress": None},
           "data": asdict(data) | {"device": None}, "seed": seed,
           # results cached while pack() shared storage with the live model hold the trained state as "initial"
           "initial": "snapshot"}

    def fit():
        torch.manual_seed(seed)
        x = load_split(dataset, "train", data).x
        base = restore(VAE, plain, x.device)
        z = latent_means(base, x)
        centres, _ = kmeans(z, n_components, seed)
        weights, means, variances = fit_diag_gmm(z.cpu(), n_components, seed=seed, init=torch.from_numpy(centres))
        model = MoGVAE(MoGVAEConfig(**vcfg, n_components=n_components)).to(x.device)
        model.load_state_dict(base.state_dict(), strict=False)  # encoder and decoder; the prior comes next
        model.init_prior(weights.to(x.device), means.to(x.device), variances.to(x.device))
        initial = pack(model)  # a snapshot (pack clones): training below leaves it at the GMM initialisation
        t0 = time.time()
        history = train(model, x, tcfg, desc=f"MoG-prior VAE {dataset} C={n_components} seed {seed}")
        return pack(model) | {"initial": initial, "history": history, "train_seconds": time.time() - t0}

    return cached("moe_mog_variant", key, fit, force=force)


def evaluate_variant(result: dict, x: torch.Tensor, y: torch.Tensor, device) -> dict:
    """Clustering of the test images by argmax_c p(c | z = mu(x)), at the GMM initialisation and after training."""
    labels, xb = y.cpu().numpy(), binarize_fixed(x)
    out = {}
    for stage, packed in (("gmm_init", result["initial"]), ("trained", result)):
        assign = restore(MoGVAE, packed, device).assign(xb).cpu().numpy()
        out[stage] = scores(labels, assign)
    return out
