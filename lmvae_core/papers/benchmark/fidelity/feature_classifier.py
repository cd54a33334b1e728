"""Issue 11, item 16: does the FID / fitting-capacity feature classifier reach its accuracy floor?

Trains the feature classifier (nets.classifier, training.classifier) as notebook 05 does in each setting (the old
quick one: 1,000 images per split-MNIST task, i.e. 5,000 images, 2 epochs; the new one: every training image,
`features.clf_epochs` epochs) on MNIST and Fashion-MNIST from a torchvision root, and writes the test accuracies
next to the floors, in feature_classifier.json beside this file.

    python -m lmvae_core.papers.benchmark.fidelity.feature_classifier --data-root ROOT [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.papers.benchmark.features import clf_epochs
from lmvae_core.papers.benchmark.settings import SETTINGS
from lmvae_core.metrics.fid import ACCURACY_FLOORS, classifier_check
from lmvae_core.training.classifier import train_classifier
from lmvae_core.training.loop import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--json", default=str(Path(__file__).with_suffix(".json")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for dataset in ACCURACY_FLOORS:
        for label, limit in (("old quick", 5000), ("new quick", None)):
            cfg = DataConfig(source="torchvision", root=args.data_root, train_limit=limit)
            tr, te = load_split(dataset, "train", cfg), load_split(dataset, "test", cfg)
            # old: 1,000 images per split-MNIST task, 2 epochs; new: every image, max(3 epochs, 150k passes)
            epochs = 2 if limit else clf_epochs(SETTINGS["quick"], len(tr.x))
            t0 = time.time()
            clf = train_classifier(tr.x, tr.y, TrainConfig(epochs=epochs), seed=0)
            check = classifier_check(clf, dataset, te.x, te.y)
            rows.append({"setting": label, "n_train": len(tr.x), "epochs": epochs, "seconds": round(time.time() - t0, 1)}
                        | check)
            print(rows[-1], flush=True)
    with open(args.json, "w") as f:
        json.dump({"torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
