"""Notebook 02, issue 11 item 4 (and 6): does the discrete code z_d carry anything, before and after matching
the official code? Writes discrete_code.json beside this file (discrete_code_3ep.json: `--epochs 3 --out ...`).

Full split MNIST (10 tasks of one class), the quick profile's network (784-200-(20 + K)), batch 64, `--epochs`
passes over each task (default 1: a tenth of the official default of 10) for every variant, the same real
batches through the driver. Variants:
- before: the earlier defaults: no mutual-information term, a new category's logit started 5 above the
  old ones (new_bias=5); the temperature here already follows the official fixed-rate decay, which at this
  schedule stays above 0.98 (the earlier code annealed to 0.5 within every task);
- official: discrete_mut_info=1 (the official --discrete-mut-info term), new categories freshly initialised;
- official, replay only: the same with gamma_c = 0;
- official + continuous term: continuous_mut_info=1 as well;
- official + prior-code MI: prior_mut_info=1 as well (InfoGAN's term on prior codes; not in the official code);
- naive: sequential fine-tuning (its head no longer grows).
After the last task: -ELBO on the full binarised test set, the mutual information between the category a test
image is assigned to and its task, how much z_d changes the decoder's output per pixel, and the classes that
prior samples cover, by argmax (>= 2% of samples) and at a classifier confidence that 95% of real test
images reach (lmvae_core/metrics/coverage.py).

    OMP_NUM_THREADS=1 python -m lmvae_core.papers.lgm.fidelity.discrete_code --data-root ROOT   # full MNIST
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lmvae_core.continual import Budget, LGMLearner, LifelongConfig, run_stream
from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.data.streams import DataConfig, class_split_stream, load_split
from lmvae_core.metrics import negative_elbo
from lmvae_core.metrics.coverage import (classes_covered, confidence_threshold, mutual_information,
                                         sample_coverage, share_of)
from lmvae_core.training.classifier import feature_classifier
from lmvae_core.models.lgm import LGMConfig

BASE = LGMConfig(latent_dim=20, hidden=(200,))
VARIANTS = {
    "before": (replace(BASE, discrete_mut_info=0.0, new_bias=5.0), "lgm"),
    "official": (BASE, "lgm"),
    "official, replay only": (replace(BASE, gamma_c=0.0), "replay"),
    "official + continuous term": (replace(BASE, continuous_mut_info=1.0), "lgm"),
    # not in the official code: InfoGAN's term with prior codes, to see whether z_d can carry the task at all
    "official + prior-code MI (not official)": (replace(BASE, prior_mut_info=1.0), "lgm"),
    "naive": (BASE, "naive"),
}


@torch.no_grad()
def measure(model, stream, tests, classifier, threshold, seed) -> dict:
    model.eval()
    torch.manual_seed(seed)
    nelbo = [negative_elbo(model, x) for x in tests]
    sizes = np.array([len(x) for x in tests])
    cats = torch.cat([model.assign(x) for x in tests]).numpy()
    info = mutual_information(np.repeat(np.arange(len(tests)), sizes), cats)
    g = torch.Generator().manual_seed(seed)
    samples = model.sample(2000, generator=g)
    cov = sample_coverage(classifier, samples, threshold)
    last = sorted(set(stream[len(stream) - 1].test.y.tolist()))
    return {"cum_nelbo": float(np.dot(nelbo, sizes) / sizes.sum()), "task_mi_nats": info["nats"],
            "task_nmi": info["normalised"], "code_effect": model.code_effect(200, g),
            "categories": model.n_categories, "categories_used": int(len(np.unique(cats))),
            "classes_argmax": classes_covered(cov["argmax_shares"]),
            "classes_calibrated": classes_covered(cov["confident_shares"]),
            "last_class_share": share_of(cov["argmax_shares"], last), "confident_share": cov["confident"],
            "argmax_shares": np.round(cov["argmax_shares"], 3).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True, help="a torchvision root with full MNIST")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = DataConfig(source="torchvision", root=args.data_root)
    stream = class_split_stream("mnist", 10, cfg)
    tests = [binarize_fixed(t.test.x, 123 + j) for j, t in enumerate(stream)]
    train = load_split("mnist", "train", cfg)
    t0 = time.time()
    # the first 20k training images, 2 epochs; cached on disk (lmvae_core.results.cache)
    classifier = feature_classifier("mnist", train.x[:20000], train.y[:20000], epochs=2)
    real = stream.cumulative_test(len(stream) - 1)
    acc = float((classifier.predict(real.x) == real.y).float().mean())
    threshold = confidence_threshold(classifier, real.x, 0.95)
    old = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    out = {"epochs_per_task": args.epochs, "batch": 64, "seed": args.seed, "classifier_test_accuracy": acc,
           "confidence_threshold_95": threshold, "classifier": "FeatureClassifier, first 20k MNIST training images, "
           "2 epochs", "variants": {}}
    if old.get("epochs_per_task") == args.epochs and old.get("seed") == args.seed:
        out["variants"] = old["variants"]  # a run of some variants adds to the earlier ones
    print(f"classifier: accuracy {acc:.4f}, threshold {threshold:.3f}", flush=True)
    for name in args.variants:
        mcfg, method = VARIANTS[name]
        torch.manual_seed(args.seed)
        learner = LGMLearner(mcfg, LifelongConfig(method), seed=args.seed)
        t0 = time.time()
        result = run_stream(learner, stream, Budget(epochs=args.epochs, batch_size=64))
        row = measure(learner.student, stream, tests, classifier, threshold, args.seed)
        row |= {"train_seconds": time.time() - t0, "real_rows_per_task": result.real_rows,
                "replay_rows_per_task": result.replay_rows, "final_tau": float(learner.student.tau)}
        out["variants"][name] = row
        print(name, {k: v for k, v in row.items() if k != "argmax_shares"}, flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
