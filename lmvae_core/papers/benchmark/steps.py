"""Notebook 05's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates,
with notebooks 01, 02 and 04's counters for L-MVAE, LGM and OCM."""
from __future__ import annotations

from ...experiments.calibration import JointVAE
from ...experiments.paper_steps import (CLASSIFIER_BATCH, TEST, TRAIN, Counter, Job, calibration, classifier, iwae_vae,
                                        kind, steps, vae)
from ...training.classifier import epochs_for
from ..lgm.steps import lgm_kind
from ..lmvae.steps import lmvae_kind
from ..ocm.steps import expansion_test, ocm_kind, stream_steps
from . import experiments as bench_exp
from .settings import SETTINGS, half_settings as half_budget


BENCH_TASKS = {"split_mnist": ["mnist"] * 5, "split_fashion": ["fashion"] * 5, "taskfree_mnist": ["mnist"] * 5,
               "mnist_fashion": ["mnist", "fashion"]}


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("05_benchmark")
    h, z, b, k = (s["hidden"],), s["latent"], s["batch"], s["iwae_k"]
    ocm_s = dict(s["ocm"], hidden=s["hidden"], latent=z)
    for stream in s["streams"]:
        datasets = BENCH_TASKS[stream]
        per_task = len(datasets) == 5  # split streams: 2 classes (a fifth of the dataset) per task
        sizes = [min(TRAIN[d] // 5 if per_task else TRAIN[d], s["train_per_task"] or TRAIN[d]) for d in datasets]
        tests = [min(s["test_per_task"], TEST[d]) for d in datasets]
        online = stream == "taskfree_mnist"
        for method in s["methods"]:
            for _ in s["seeds"]:
                epochs = (1 if online and method not in bench_exp.OFFLINE
                          else bench_exp.epochs_on(s, bench_exp.trained_on(stream, method)))
                what = f"{stream}, {method}"
                experts = 1
                if method in bench_exp.OFFLINE:
                    k_moe = s["moe_experts"]
                    kd = vae(h, z, b) if method == "Joint VAE" else kind(
                        "moe", f"MoE-VAE {k_moe} experts 784-{s['hidden']}-{z} + manager, batch {b}", n_experts=k_moe,
                        hidden=s["hidden"], latent=z, batch=b)
                    experts = 1 if method == "Joint VAE" else k_moe
                    c.add(what, kd, steps(sum(sizes), b, epochs))
                elif method in ("VAE-ELBO-OCM", "Dynamic-OCM"):
                    c.add(what, ocm_kind(ocm_s, ocm_s["train_samples"]),
                          stream_steps(sum(sizes), ocm_s["batch_size"], ocm_s["stm_size"], ocm_s["epochs_per_batch"],
                                       ocm_s["per_round"], ocm_s["ltm_capacity"]),
                          "upper estimate: the LTM grows by per_round every round")
                    experts = ocm_s["max_components"] if method == "Dynamic-OCM" else 1
                    if method == "Dynamic-OCM":
                        expansion_test(c, ocm_s, what, sum(sizes), experts, "the cap")
                else:
                    trainable = s["lmvae_experts"]
                    for t, n in enumerate(sizes):
                        if method == "L-MVAE":
                            trainable = trainable or 1
                            kd = lmvae_kind(dict(arch="mlp", size=None, latent=z, hidden=s["hidden"],
                                                 likelihood="bernoulli", gaussian_std=0.1, batch=b,
                                                 channels=(32, 64)), trainable)  # channels: unused by an MLP
                            trainable -= 1
                        elif method == "LGM":
                            kd = lgm_kind(dict(hidden=h, latent=z, batch=b), t > 0, s["lgm_gamma"])
                        else:
                            kd = vae(h, z, b, replay=t > 0 and method.startswith("Replay"),
                                     binarized="Binarized" in method)
                        c.add(what, kd, steps(n, b, epochs))
                    experts = len(sizes) if method == "L-MVAE" else 1
                # evaluation: after task t < T-1 every task seen, then the union; each expert/component's IWAE-k
                n_eval = sum(sum(tests[:t + 1]) for t in range(len(tests) - 1)) + sum(tests)
                c.add(f"{what}: IWAE", iwae_vae(h, z), experts * n_eval * k,
                      "Dynamic-OCM at its component cap: an upper estimate" if method == "Dynamic-OCM" else "")
                c.add(f"{what}: fitting capacity", classifier(100, mlp=True),
                      steps(int(s["n_generated"] * 0.9), 100, s["fc_max_epochs"]),
                      "at most fc_max_epochs (early stopped)")
        clf_n = sum(min(TRAIN[d] // 5 if per_task else TRAIN[d], s["clf_train_per_task"] or TRAIN[d]) for d in datasets)
        if stream != "taskfree_mnist":  # shares split MNIST's classifier
            c.add(f"{stream}: feature classifier", classifier(),
                  steps(clf_n, CLASSIFIER_BATCH, epochs_for(clf_n, s["clf_epochs"], s["clf_min_passes"])))
        c.add(f"{stream}: real fitting capacity", classifier(100, mlp=True),
              steps(int(sum(sizes) * 0.9), 100, s["fc_max_epochs"]), "at most fc_max_epochs (early stopped)")
    calibration(c, JointVAE("mnist", h, z, **s["calibration"]))
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget", "BENCH_TASKS"]
