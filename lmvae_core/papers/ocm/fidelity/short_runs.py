"""Notebook 04 (OCM): measured effects of the fidelity choices of issue 11, items 10-12.

One pass of VAE-ELBO-OCM (or Dynamic-ELBO-OCM) over a class-sorted split-MNIST stream of N training images
(class-balanced subsample), the OCM network (784-200-200-50), STM 512, 1 pass over STM u LTM per arriving batch,
lr 1e-3, 1-sample ELBO; test log-likelihood IWAE-K on a fixed, once-binarised subset of the MNIST test split.
A short schedule on purpose (CPU, minutes): differences here say how much each choice moves a short run, not
what it does at the paper's 1.56M steps.

    python -m lmvae_core.papers.ocm.fidelity.short_runs PART --data-root ROOT

PART: `selection` (Algorithm 2 vs the official code's setting vs 'diverse'); `code_order` (Dynamic-ELBO-OCM: the
official code's order and trigger, grey embeddings; every run also reports the best component, same draw and
re-drawn, and the uniform mixture); `summary` (means over seeds and differences paired by seed against each
part's first variant, from the two files above).

Each writes <part>.json beside this module. Data root: --data-root (default /work/data_root).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lmvae_core.continual import OCMLearner
from lmvae_core.data.streams import DataConfig, TaskFreeStream, load_split
from lmvae_core.papers.ocm.runs import evaluate, test_images
from lmvae_core.papers.ocm.studies import class_coverage
from lmvae_core.models.ocm import OCMConfig

BASE = dict(hidden=200, latent_dim=50, stm_size=512, epochs_per_batch=1, lr=1e-3, beta1=0.9, train_samples=1,
            per_round=14, ltm_capacity=2560, r_samples=10)
PARTS = {
    "selection": {
        "paper (Algorithm 2: similar, RBF, lambda1 0.6)": dict(direction="similar", kernel="poster", lambda1=0.6),
        "official code (similar, code kernel, lambda1 0.35)": dict(direction="similar", kernel="code", lambda1=0.35),
        "diverse (code kernel, lambda1 0.9; the earlier default)": dict(direction="diverse", kernel="code",
                                                                        lambda1=0.9),
    },
    "code_order": {
        "paper order, binarised embeddings (default)": dict(dynamic=True, lambda2=10.0, max_components=5),
        "code order (R before selection, LTM cleared before it, STM fires above 512)":
            dict(dynamic=True, lambda2=10.0, max_components=5, order="code"),
        "grey embeddings": dict(dynamic=True, lambda2=10.0, max_components=5, embed_binarized=False),
    },
}


def run_one(cfg: OCMConfig, train, test, seed: int, k: int) -> dict:
    torch.manual_seed(seed)
    learner = OCMLearner(config=cfg, seed=seed)
    start = time.time()
    for x, y in TaskFreeStream(train, cfg.batch_size, seed=seed):
        learner.observe(x, y)
    seconds = time.time() - start
    m = evaluate(learner.model, test, k)
    n_cls, ent = class_coverage(learner.ltm_y.cpu())
    return {k_: m[k_] for k_ in ("ll_best", "ll_best_same_draw", "ll_mixture", "ll_by_recon")} | {
        "memory": learner.memory_size, "classes_in_memory": n_cls, "memory_entropy": ent,
        "components": len(learner.model), "steps": learner.steps, "train_seconds": round(seconds, 1)}


METRICS = ("ll_best", "ll_best_same_draw", "ll_mixture", "memory", "classes_in_memory", "components", "steps")


def summary() -> dict:
    """Means over seeds per variant, and each variant minus the part's first variant, paired by seed."""
    out = {}
    for part in PARTS:
        path = Path(__file__).with_name(f"{part}.json")
        if not path.exists():
            continue
        runs = json.loads(path.read_text())["runs"]
        names = list(dict.fromkeys(r["variant"] for r in runs))
        by = {n: {r["seed"]: r for r in runs if r["variant"] == n} for n in names}
        part_out = {}
        for n in names:
            seeds = sorted(by[n])
            row = {m: sum(by[n][s_][m] for s_ in seeds) / len(seeds) for m in METRICS} | {"seeds": seeds}
            row["same_draw_minus_redrawn"] = row["ll_best_same_draw"] - row["ll_best"]
            common = [s_ for s_ in seeds if s_ in by[names[0]]]
            if n != names[0] and common:
                diffs = [by[n][s_]["ll_best"] - by[names[0]][s_]["ll_best"] for s_ in common]
                row["ll_best_minus_first_per_seed"] = diffs
                row["ll_best_minus_first_mean"] = sum(diffs) / len(diffs)
            part_out[n] = row
        out[part] = {"first_variant": names[0], "variants": part_out}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=sorted(PARTS) + ["summary"])
    ap.add_argument("--data-root", default="/work/data_root")
    ap.add_argument("--n", type=int, default=10_000, help="training images in the stream")
    ap.add_argument("--test-n", type=int, default=1000)
    ap.add_argument("--k", type=int, default=50, help="IWAE samples")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    if args.part == "summary":
        path = Path(__file__).with_name("summary.json")
        path.write_text(json.dumps(summary(), indent=1) + "\n")
        print(path.read_text())
        return
    torch.set_num_threads(1)
    data = DataConfig(source="torchvision", root=args.data_root, train_limit=args.n)
    train, test = load_split("mnist", "train", data), load_split("mnist", "test", data)
    test = test_images(test, args.test_n)
    rows = []
    for name, over in PARTS[args.part].items():
        for seed in args.seeds:
            cfg = OCMConfig(**(BASE | over))
            r = run_one(cfg, train, test, seed, args.k)
            rows.append({"variant": name, "seed": seed} | r)
            print(json.dumps(rows[-1]), flush=True)
    out = {"part": args.part, "stream_images": len(train), "test_images": args.test_n, "iwae_k": args.k,
           "base": BASE, "torch": torch.__version__, "omp_threads": os.environ.get("OMP_NUM_THREADS"),
           "configs": {n: asdict(OCMConfig(**(BASE | o))) for n, o in PARTS[args.part].items()}, "runs": rows}
    path = Path(__file__).with_name(f"{args.part}.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
