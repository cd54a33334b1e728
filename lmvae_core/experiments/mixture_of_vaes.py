"""Notebook 00: a manager routes images to VAE experts, trained without labels."""
from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import torch

from ..continual import pack, restore
from ..data.preprocess import binarize_fixed
from ..data.streams import DataConfig, load_split
from ..metrics import cluster_accuracy, contingency, iwae_log_likelihood, negative_elbo, usage_entropy
from ..models.moe_vae import MoEVAE, MoEVAEConfig
from ..models.vae import VAEConfig
from ..results.cache import cached
from ..results.claims import AtLeast, AtMost, Claim
from ..training.loop import TrainConfig, train
from .common import Run

SETTINGS = {
    "smoke": dict(datasets=("mnist", "fashion"), n_experts=10, hidden=64, latent=8, epochs=1, batch=128,
                  iwae_k=10, iwae_n=200, ablation_seeds=(0, 1), ablation_epochs=1, ablation_train=1000),
    "quick": dict(datasets=("mnist", "fashion"), n_experts=10, hidden=256, latent=10, epochs=10, batch=128,
                  iwae_k=500, iwae_n=2000, ablation_seeds=(0, 1, 2), ablation_epochs=3, ablation_train=10000),
    "paper": dict(datasets=("mnist", "fashion"), n_experts=10, hidden=400, latent=20, epochs=50, batch=128,
                  iwae_k=5000, iwae_n=10000, ablation_seeds=(0, 1, 2, 3, 4), ablation_epochs=10,
                  ablation_train=60000),
}


def model_config(s: dict, balance: str = "kl") -> MoEVAEConfig:
    return MoEVAEConfig(n_experts=s["n_experts"], expert=VAEConfig(latent_dim=s["latent"], hidden=(s["hidden"],)),
                        manager_hidden=(s["hidden"],), balance=balance)


def train_mixture(dataset: str, cfg: MoEVAEConfig, tcfg: TrainConfig, data: DataConfig, seed: int,
                  train_limit: int | None = None, force: bool = False) -> dict:
    """Train (or reload) one mixture; returns its state, training history and time. Cached by all inputs."""
    key = {"dataset": dataset, "model": asdict(cfg), "train": asdict(tcfg) | {"progress": None},
           "data": asdict(data) | {"device": None}, "seed": seed, "train_limit": train_limit}

    def fit():
        torch.manual_seed(seed)
        x = load_split(dataset, "train", data).x[:train_limit]
        model = MoEVAE(cfg).to(x.device)
        t0 = time.time()
        history = train(model, x, tcfg, desc=f"MoE-VAE {dataset} {cfg.balance} seed {seed}")
        return pack(model) | {"history": history, "train_seconds": time.time() - t0}

    return cached("moe_vae", key, fit, force=force)


def rebuild(result: dict, device) -> MoEVAE:
    return restore(MoEVAE, result, device)


def evaluate(model: MoEVAE, x: torch.Tensor, y: torch.Tensor, iwae_k: int, iwae_n: int) -> dict:
    """Clustering of the manager (labels for evaluation only) and the likelihood under the routed expert."""
    xb = binarize_fixed(x)
    assign = model.assign(xb).cpu().numpy()
    labels = y.cpu().numpy()
    k = model.config.n_experts
    counts = contingency(labels, assign, 10, k)
    per_expert = counts.sum(0)
    purity = float(counts.max(0).sum() / counts.sum())
    return {
        "accuracy": cluster_accuracy(labels, assign),
        "purity": purity,
        "confusion": counts,
        "usage": per_expert / per_expert.sum(),
        "usage_entropy": usage_entropy(assign, k),
        "iwae": float(iwae_log_likelihood(model, xb[:iwae_n], k=iwae_k).mean()),
        "neg_elbo_routed": negative_elbo(_Routed(model), xb[:iwae_n]),
    }


class _Routed:
    """The routed expert's ELBO terms, for negative_elbo()."""

    def __init__(self, model: MoEVAE):
        self.model = model

    def terms(self, x):
        choice = self.model.assign(x)
        return {"elbo": self.model.experts.per_input(x, choice, op="terms")["elbo"]}


def kmeans_pixel_accuracy(x: torch.Tensor, y: torch.Tensor, k: int = 10, seed: int = 0) -> float:
    """The baseline the manager must beat: k-means on raw pixels, Hungarian-matched."""
    from scipy.cluster.vq import kmeans2  # here: scipy.cluster costs a second at every `lmvae` start-up

    pixels = x.flatten(1).cpu().numpy().astype(np.float64)
    _, assign = kmeans2(pixels, k, minit="++", seed=seed, iter=30)
    return cluster_accuracy(y.cpu().numpy(), assign)


def run_dataset(run: Run, dataset: str) -> dict:
    s = run.settings
    data = run.data()
    tcfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], progress=run.progress)
    result = train_mixture(dataset, model_config(s), tcfg, data, run.seed, force=run.force)
    model = rebuild(result, run.device)
    test = load_split(dataset, "test", data)
    metrics = evaluate(model, test.x, test.y, s["iwae_k"], s["iwae_n"])
    metrics["kmeans_accuracy"] = kmeans_pixel_accuracy(test.x, test.y, seed=run.seed)
    return {"model": model, "metrics": metrics, "history": result["history"],
            "train_seconds": result["train_seconds"]}


def balancing_ablation(run: Run, dataset: str = "mnist") -> list[dict]:
    """With and without the balancing term, over seeds, on a shorter schedule."""
    s = run.settings
    data = run.data()
    test = load_split(dataset, "test", data)
    tcfg = TrainConfig(epochs=s["ablation_epochs"], batch_size=s["batch"], progress=run.progress)
    xb = binarize_fixed(test.x)
    rows = []
    for balance in ("kl", "none"):
        for seed in s["ablation_seeds"]:
            res = train_mixture(dataset, model_config(s, balance), tcfg, data, seed, s["ablation_train"], run.force)
            model = rebuild(res, run.device)
            assign = model.assign(xb).cpu().numpy()
            usage = np.bincount(assign, minlength=s["n_experts"]) / len(assign)
            rows.append({"balance": balance, "seed": seed, "usage_entropy": usage_entropy(assign, s["n_experts"]),
                         "max_usage": float(usage.max()), "experts_used": int((usage > 0.01).sum()),
                         "accuracy": cluster_accuracy(test.y.cpu().numpy(), assign), "usage": usage})
    return rows


def claims(results: dict[str, dict], ablation: list[dict], profile: str, n_experts: int) -> list[Claim]:
    mnist = results["mnist"]["metrics"]
    log_k = math.log(n_experts)
    ent_none = float(np.mean([r["usage_entropy"] for r in ablation if r["balance"] == "none"]))
    ent_kl = float(np.mean([r["usage_entropy"] for r in ablation if r["balance"] == "kl"]))
    out = [
        Claim("Experts specialise: each expert's images are mostly one digit (purity of argmax routing, MNIST)",
              "qualitative ('mostly one digit')", mnist["purity"], AtLeast(0.7, partly=0.5), profile),
        Claim("The manager classifies digits without labels (Hungarian clustering accuracy, MNIST test)",
              "no number; GMVAE 82-88%, VaDE ~94%", mnist["accuracy"], AtLeast(0.82, partly=mnist["kmeans_accuracy"]),
              profile, note=f"k-means on pixels: {mnist['kmeans_accuracy']:.3f} (measured)"),
        Claim("The mixture beats k-means on raw pixels (accuracy gain, MNIST test)",
              "k-means on pixels ~53-55%", mnist["accuracy"] - mnist["kmeans_accuracy"], AtLeast(0.05, partly=0.0),
              profile),
        Claim("Without balancing the manager degenerates (usage entropy / log K, no balancing term)",
              "qualitative (collapse to one expert)", ent_none / log_k, AtMost(0.5, partly=0.8), profile,
              note=f"mean over {len([r for r in ablation if r['balance'] == 'none'])} seeds"),
        Claim("With balancing, expert usage is near uniform (usage entropy / log K)",
              "qualitative", ent_kl / log_k, AtLeast(0.9, partly=0.75), profile),
    ]
    if "fashion" in results:
        out.append(Claim("Same on Fashion-MNIST: the manager clusters without labels (accuracy)",
                         "not given", results["fashion"]["metrics"]["accuracy"],
                         AtLeast(results["fashion"]["metrics"]["kmeans_accuracy"]), profile,
                         note=f"k-means on pixels: {results['fashion']['metrics']['kmeans_accuracy']:.3f}"))
    return out
