"""Notebook 04, the memory study's lambda1 claim: why lambda1 in the paper's range does not move the memory.

Algorithm 2 admits an STM sample when its mean RBF similarity (poster kernel, alpha 10) to the LTM is above
lambda1, at most `per_round` (14) per round, the most similar first. This run records, for every selection round
of one VAE-ELBO-OCM run at the quick profile's settings and the memory study's passes per arriving batch (11),
the scores' minimum, mean and maximum and how many of the STM's samples pass lambda1 = 0.6 (the method's) and
0.8 (the study's other value), and the 14th-highest score: lambda1 changes what is admitted only when it lies
above that.

Usage: OMP_NUM_THREADS=1 python -m lmvae_core.papers.ocm.fidelity.selection_scores --data-root /work/tvroot
Writes selection_scores.json beside this module.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from lmvae_core.continual import OCMLearner
from lmvae_core.continual import ocm as ocm_learner
from lmvae_core.papers.ocm import experiments as exp
from lmvae_core.experiments.common import setup

OUT = Path(__file__).with_suffix(".json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--passes", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    run = setup("04_ocm", "quick", data_root=args.data_root, out_dir=tempfile.mkdtemp(), offline=True,
                settings=exp.SETTINGS, progress=False)
    cfg = exp.model_config(run.settings, "mnist", "VAE-ELBO-OCM", epochs_per_batch=args.passes)
    rounds = []
    original = ocm_learner.kernel_scores

    def recording(*a, **k):  # the scores of each round, as the learner computes them
        scores = original(*a, **k)
        top = scores.sort(descending=True).values
        rounds.append({"n": int(scores.numel()), "min": float(scores.min()), "mean": float(scores.mean()),
                       "max": float(scores.max()), "pass_0.6": int((scores > 0.6).sum()),
                       "pass_0.8": int((scores > 0.8).sum()),
                       "top14": float(top[min(cfg.per_round, len(top)) - 1])})
        return scores

    ocm_learner.kernel_scores = recording
    start = time.time()
    train, _ = exp.load_stream(run, "mnist", args.images)
    torch.manual_seed(args.seed)
    learner = OCMLearner(config=cfg, seed=args.seed, device=run.device)
    from lmvae_core.continual import Budget, run_stream
    from lmvae_core.data.streams import TaskFreeStream
    run_stream(learner, TaskFreeStream(train, cfg.batch_size, seed=args.seed), Budget(seed=args.seed))
    ocm_learner.kernel_scores = original
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary = {"rounds_scored": len(rounds), "lowest_score": min(r["min"] for r in rounds),
               "mean_score": sum(r["mean"] for r in rounds) / len(rounds),
               "fewest_passing_0.6": min(r["pass_0.6"] for r in rounds),
               "fewest_passing_0.8": min(r["pass_0.8"] for r in rounds),
               "lowest_14th_highest": min(r["top14"] for r in rounds)}
    OUT.write_text(json.dumps({"commit": commit, "images": len(train), "passes": args.passes, "seed": args.seed,
                               "steps": learner.steps, "memory": learner.memory_size,
                               "seconds": round(time.time() - start, 1), "summary": summary, "rounds": rounds},
                              indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
