"""Build the small committed real-data sample under data/sample/ from full .npz copies.

Usage: python tools/make_sample.py SOURCE_DIR   (a folder with the files of ../shared/data)
The sample is what the smoke profile and the tests read; it is a few MB and never random noise.
"""
import sys
from pathlib import Path

import numpy as np

# (file stem, train count, test count): class-balanced by taking images in their original order.
SAMPLE = {
    "mnist": (3000, 1000),
    "fashion-mnist": (2000, 600),
    "kmnist": (1000, 500),
    "cifar10": (300, 100),
}


def balanced_head(labels: np.ndarray, n: int) -> np.ndarray:
    classes = np.unique(labels)
    per_class = n // len(classes)
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in classes])
    return np.sort(keep)


def main(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for stem, (n_train, n_test) in SAMPLE.items():
        for split, n in (("train", n_train), ("test", n_test)):
            d = np.load(src / f"{stem}-{split}.npz")
            idx = balanced_head(d["labels"], n)
            np.savez_compressed(dst / f"{stem}-{split}.npz", images=d["images"][idx], labels=d["labels"][idx])
    # Omniglot: 40 characters x 20 drawers; drawers 1-15 train, 16-20 test (no official split here).
    d = np.load(src / "omniglot-background-small.npz")
    chars = np.unique(d["labels"])[::6][:40]
    sel = np.isin(d["labels"], chars)
    for split, mask in (("train", d["drawer"] <= 15), ("test", d["drawer"] > 15)):
        idx = np.flatnonzero(sel & mask)
        np.savez_compressed(dst / f"omniglot-{split}.npz", images=d["images"][idx], labels=d["labels"][idx],
                            class_names=d["class_names"])
    for f in sorted(dst.glob("*.npz")):
        print(f.name, f.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "data" / "sample")
