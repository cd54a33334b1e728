"""Load image datasets as uint8 tensors, from torchvision's on-disk layout, .npz copies or the committed sample.

Everything downstream works on tensors that live on the device: datasets this size fit in memory,
and slicing a device tensor by index is far faster than a DataLoader with worker processes.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..results.atomic import atomic_write
from .catalog import ALIASES, DATASETS, DatasetInfo, canonical_name, expected_files, is_present  # noqa: F401


class DataMissingError(FileNotFoundError):
    """A dataset is not on disk and could not (or may not) be downloaded."""


SOURCES = ("auto", "torchvision", "npz", "sample")


def load_images(name: str, split: str = "train", root: str | Path | None = None, source: str = "auto",
                download: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 [N, C, H, W] and labels as int64 [N], on the CPU.

    source: 'torchvision' reads torchvision's layout under root; 'npz' reads root/npz/<stem>-<split>.npz;
    'sample' reads the committed sample; 'auto' tries torchvision's layout, then the .npz copy, then a download.
    download: None follows the process's setting (on unless LMVAE_OFFLINE=1 or a notebook's offline=True).
    """
    key = canonical_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    _record(key, split)
    if source == "sample":
        return _from_npz(paths.sample_root() / f"{DATASETS[key].stem}-{split}.npz", key)
    root = paths.data_root(root)
    npz_file = root / "npz" / f"{DATASETS[key].stem}-{split}.npz"
    if source == "npz":
        return _from_npz(npz_file, key)
    download = downloads_allowed() if download is None else download
    try:  # what is on disk first: a download only when neither layout is there
        return _from_torchvision(key, split, root, False)
    except DataMissingError:
        if source == "auto" and npz_file.exists():
            return _from_npz(npz_file, key)
        if not download:
            raise
    from .fetch import fetch

    try:
        fetch(key, split, root)
    except (OSError, RuntimeError) as err:
        raise _missing(key, root, True, err) from None
    return _from_torchvision(key, split, root, False)


# -- downloads: on unless LMVAE_OFFLINE=1 or a notebook's `offline` parameter says otherwise -------------
_offline_override: bool | None = None


def set_offline(offline: bool | None) -> None:
    """Set by setup() from a notebook's `offline` parameter (None: back to $LMVAE_OFFLINE alone)."""
    global _offline_override
    _offline_override = offline


def downloads_allowed() -> bool:
    env = os.environ.get("LMVAE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")
    return not (env or bool(_offline_override))


# -- what a notebook loads is checked against what it declares (experiments/needs.py) ------------------------
_declared: dict | None = None


def declare(notebook: str | None, pairs: set[tuple[str, str]] = frozenset(), strict: bool = False) -> None:
    """Called by setup(): loading a dataset split outside `pairs` then raises (strict) or warns, so the
    declaration that `lmvae data` and the fail-fast check use cannot silently drift from the code.
    notebook=None lifts the check (a notebook kernel runs one notebook; tests run many in one process)."""
    global _declared
    _declared = None if notebook is None else {"notebook": notebook, "pairs": set(pairs), "strict": strict}


def _record(key: str, split: str) -> None:
    if _declared is None or (key, split) in _declared["pairs"]:
        return
    msg = (f"notebook {_declared['notebook']} loads {key}/{split}, which lmvae_core/experiments/needs.py does not "
           f"declare for it; add it there so that `lmvae data` and `lmvae reproduce` check and fetch it")
    if _declared["strict"]:
        raise RuntimeError(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _missing(key: str, root: Path, download: bool, cause: Exception | None = None) -> DataMissingError:
    info = DATASETS[key]
    files = "\n  ".join(str(root / f) for f in info.expected)
    hint = ("the download failed (offline?)" if download
            else "downloads are off (LMVAE_OFFLINE=1, `--offline` or the notebook's offline=True)")
    return DataMissingError(
        f"dataset {key!r} ({info.torchvision_name}) was not found under {root}; {hint}.\n"
        f"Expected torchvision's layout:\n  {files}\n"
        f"or an .npz copy at {root / 'npz' / (info.stem + '-train.npz')} (arrays 'images' uint8 and 'labels').\n"
        f"Set the root with data_root=..., or the LMVAE_DATA environment variable; `lmvae data --fetch` downloads."
        + (f"\nCause: {cause}" if cause else ""))


def _from_npz(file: Path, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not file.exists():
        raise DataMissingError(f"dataset {key!r}: no file {file}")
    with np.load(file) as d:
        images, labels = d["images"], d["labels"]
    return _to_nchw(images, key), torch.as_tensor(labels.astype(np.int64))


def _to_nchw(images: np.ndarray | torch.Tensor, key: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if key == "omniglot" and x.float().mean() > 127:
        # Omniglot PNGs draw black strokes on white; invert so strokes are "on", as in MNIST.
        x = 255 - x
    return x.contiguous().to(torch.uint8)


def _from_torchvision(key: str, split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    train = split == "train"
    cls = getattr(tvd, DATASETS[key].torchvision_name)
    try:
        if key in ("mnist", "fashion", "kmnist"):
            _gunzip_raw(root / DATASETS[key].torchvision_name / "raw")
            ds = cls(str(root), train=train, download=download)
            return _to_nchw(ds.data, key), ds.targets.long()
        if key == "cifar10":
            ds = cls(str(root), train=train, download=download)
            return _to_nchw(ds.data, key), torch.as_tensor(ds.targets, dtype=torch.int64)
        if key == "svhn":
            ds = cls(str(root / "SVHN"), split=split, download=download)  # torchvision reads root/<file>.mat
            return torch.as_tensor(ds.data), torch.as_tensor(ds.labels, dtype=torch.int64)
        return _from_image_folder(key, cls, split, root, download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise _missing(key, root, download, err) from None
    except (OSError, ValueError) as err:  # failed download or unreadable files
        raise _missing(key, root, download, err) from None


def _gunzip_raw(raw: Path) -> None:
    """torchvision reads only the unpacked IDX files (its download unpacks them); unpack copied .gz files."""
    import gzip
    import shutil

    if not raw.is_dir():
        return
    for gz in raw.glob("*-ubyte.gz"):
        target = gz.with_suffix("")
        if not target.exists():
            with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _from_image_folder(key: str, cls, split: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CelebA and Omniglot are folders of image files: decode them once and cache a tensor file."""
    cache = root / f"{key}-{split}-cache.pt"
    if cache.exists():
        images, labels = torch.load(cache)
        return images, labels
    import torchvision.transforms as T

    if key == "celeba":
        tf = T.Compose([T.CenterCrop(148), T.Resize(64), T.PILToTensor()])
        ds = cls(str(root), split="train" if split == "train" else "test", download=download, transform=tf,
                 target_type="identity")
    else:
        tf = T.PILToTensor()
        ds = cls(str(root), background=(split == "train"), download=download, transform=tf)
    items = [ds[i] for i in range(len(ds))]
    images = _to_nchw(torch.stack([im for im, _ in items]), key)
    labels = torch.as_tensor([int(lbl) for _, lbl in items], dtype=torch.int64)
    atomic_write(cache, lambda tmp: torch.save((images, labels), tmp))
    return images, labels
