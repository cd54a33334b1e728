"""Downloads through torchvision (its own progress bars) that give up within seconds without a network.

torchvision retries every mirror of every file with no connection timeout, which can hang for minutes on a
machine without network. So a download first opens one TCP connection to the dataset's host with a short
timeout, and the whole download runs under a short socket timeout ($LMVAE_DOWNLOAD_TIMEOUT, default 10 s).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .. import paths
from ..runtime import temporarily
from .catalog import DATASETS, canonical_name, is_present


def timeout_seconds() -> float:
    return float(os.environ.get("LMVAE_DOWNLOAD_TIMEOUT", "10"))


def source_url(key: str) -> str:
    """The first URL torchvision downloads the dataset from, read from the torchvision class itself."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[key].torchvision_name)
    if getattr(cls, "mirrors", None):
        return cls.mirrors[0]
    for attr in ("url", "download_url_prefix"):
        if isinstance(getattr(cls, attr, None), str):
            return getattr(cls, attr)
    if isinstance(getattr(cls, "split_list", None), dict):
        return cls.split_list["train"][0]
    return "https://drive.google.com/"  # CelebA is hosted on Google Drive


def probe(url: str, timeout: float) -> None:
    """Raise OSError within `timeout` seconds when the host of `url` cannot be reached."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise OSError(f"cannot reach {parsed.hostname}:{port} within {timeout:g} s ({err}); no network?") from None


def socket_timeout(seconds: float):
    return temporarily(socket.getdefaulttimeout, socket.setdefaulttimeout, seconds)


def fetch(name: str, split: str, root: str | Path | None = None) -> Path:
    """Download one split (torchvision fetches whole archives: MNIST-likes and CIFAR-10 get both splits)."""
    import torchvision.datasets as tvd

    key = canonical_name(name)
    root = paths.data_root(root)
    if is_present(key, split, root):
        return root
    timeout = timeout_seconds()
    probe(source_url(key), timeout)
    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, DATASETS[key].torchvision_name)
    with socket_timeout(timeout):
        if key == "svhn":
            cls(str(root / "SVHN"), split=split, download=True)
        elif key == "omniglot":
            cls(str(root), background=split == "train", download=True)
        elif key == "celeba":
            cls(str(root), split="all", target_type="identity", download=True)
        else:
            cls(str(root), train=split == "train", download=True)
    if not is_present(key, split, root):
        raise RuntimeError(f"torchvision's download of {key} finished but the expected files are not under {root}")
    return root
