"""Notebook 00's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates."""
from __future__ import annotations

from ...experiments.paper_steps import TEST, TRAIN, Counter, Job, calibration, iwae_vae, kind, steps, vae
from . import experiments as moe_exp
from .settings import SETTINGS, half_budget


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("00_mixture_of_vaes")
    h, z, b, k = (s["hidden"],), s["latent"], s["batch"], s["n_experts"]
    moe = kind("moe", f"MoE-VAE {k} experts 784-{s['hidden']}-{z} + manager, batch {b}", n_experts=k,
               hidden=s["hidden"], latent=z, batch=b)
    for d in s["datasets"]:
        c.add(f"mixture on {d}", moe, steps(TRAIN[d], b, s["epochs"]))
        c.add(f"plain VAE on {d}", vae(h, z, b), steps(TRAIN[d], b, s["epochs"]))
        # MoEVAE.likelihoods: every expert's IWAE-k, drawn twice (best re-drawn)
        c.add(f"IWAE of the mixture on {d}", iwae_vae(h, z), 2 * k * min(s["iwae_n"], TEST[d]) * s["iwae_k"],
              "2 draws x every expert")
    calibration(c, moe_exp.joint_spec(s))
    n_abl = min(TRAIN["mnist"], s["ablation_train"] or TRAIN["mnist"])
    c.add("balancing ablation (with and without)", moe,
          2 * len(s["ablation_seeds"]) * steps(n_abl, b, s["ablation_epochs"]))
    for comps in s["beyond_components"]:
        c.add(f"mixture-prior VAE, {comps} components",
              kind("mog", f"MoG-prior VAE 784-{s['hidden']}-{z}, {comps} components, batch {b}", hidden=s["hidden"],
                   latent=z, components=comps, batch=b), steps(TRAIN["mnist"], b, s["beyond_epochs"]))
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget"]
