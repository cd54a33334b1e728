"""The datasets the package knows: their torchvision classes, file stems and expected files, and whether a split is
on disk. Kept apart from the loader (datasets.py) so that the downloader (fetch.py), which the loader calls, can
read it without importing the loader back."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import paths


@dataclass(frozen=True)
class DatasetInfo:
    torchvision_name: str  # class in torchvision.datasets
    stem: str  # file stem of the .npz copies and the committed sample
    expected: tuple[str, ...]  # files torchvision reads, relative to the data root


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("MNIST", "mnist", ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
                                            "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte")),
    "fashion": DatasetInfo("FashionMNIST", "fashion-mnist", tuple(
        f"FashionMNIST/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))),
    "kmnist": DatasetInfo("KMNIST", "kmnist", tuple(
        f"KMNIST/raw/{f}" for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))),
    "svhn": DatasetInfo("SVHN", "svhn", ("SVHN/train_32x32.mat", "SVHN/test_32x32.mat")),
    "cifar10": DatasetInfo("CIFAR10", "cifar10", ("cifar-10-batches-py/data_batch_1 ... data_batch_5",
                                                  "cifar-10-batches-py/test_batch")),
    "celeba": DatasetInfo("CelebA", "celeba", ("celeba/img_align_celeba/*.jpg", "celeba/list_eval_partition.txt",
                                                "celeba/identity_CelebA.txt")),
    "omniglot": DatasetInfo("Omniglot", "omniglot", ("omniglot-py/images_background/", "omniglot-py/images_evaluation/")),
}
ALIASES = {"fashion-mnist": "fashion", "fashionmnist": "fashion", "cifar": "cifar10"}


def canonical_name(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return key


def expected_files(key: str, split: str) -> tuple[str, ...]:
    """The files torchvision reads for one split, relative to the data root."""
    name = DATASETS[key].torchvision_name
    if key in ("mnist", "fashion", "kmnist"):  # torchvision checks all four files whichever split is asked for
        return tuple(f"{name}/raw/{p}-{kind}-ubyte" for p in ("train", "t10k")
                     for kind in ("images-idx3", "labels-idx1"))
    if key == "cifar10":  # likewise all six batches
        return tuple(f"cifar-10-batches-py/{f}" for f in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"))
    if key == "svhn":
        return (f"SVHN/{split}_32x32.mat",)
    if key == "omniglot":
        return ("omniglot-py/images_background" if split == "train" else "omniglot-py/images_evaluation",)
    return ("celeba/img_align_celeba", "celeba/list_eval_partition.txt", "celeba/identity_CelebA.txt")


def is_present(key: str, split: str, root: str | Path | None = None) -> bool:
    """Whether load_images(key, split, root) finds the split on disk without downloading."""
    root = paths.data_root(root)
    if (root / "npz" / f"{DATASETS[key].stem}-{split}.npz").exists():
        return True
    if key in ("celeba", "omniglot") and (root / f"{key}-{split}-cache.pt").exists():
        return True
    # copied .gz IDX files count: the loader unpacks them
    return all((root / f).exists() or (root / f"{f}.gz").exists() for f in expected_files(key, split))
