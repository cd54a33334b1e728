"""Write Omniglot's offline subset as an npz data-root entry: SRC/omniglot-background-small.npz ->
DST/npz/omniglot-{train,test}.npz (all 242 characters x 20 drawers; drawers 1-15 train, 16-20 test, the split of
the committed sample in data/sample/, since these sets have no official train/test split).

Usage: python tools/omniglot_npz.py SRC_DIR DATA_ROOT
"""
import sys
from pathlib import Path

import numpy as np


def main(src: Path, root: Path) -> None:
    d = np.load(src / "omniglot-background-small.npz")
    (root / "npz").mkdir(parents=True, exist_ok=True)
    for split, mask in (("train", d["drawer"] <= 15), ("test", d["drawer"] > 15)):
        idx = np.flatnonzero(mask)
        np.savez_compressed(root / "npz" / f"omniglot-{split}.npz", images=d["images"][idx], labels=d["labels"][idx],
                            class_names=d["class_names"])
        print(f"omniglot {split}: {len(idx)} images")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
