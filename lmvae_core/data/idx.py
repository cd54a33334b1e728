"""Write arrays as IDX files, the format of LeCun's MNIST distribution that torchvision reads."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> Path:
    """Magic (0, 0, type 0x08 = uint8, ndim), big-endian dimension sizes, then the uint8 payload."""
    array = np.asarray(array)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist_root(root: str | Path, name: str, train: tuple, test: tuple) -> Path:
    """Write (images N x 28 x 28, labels) pairs under root/<Name>/raw/ as torchvision expects."""
    raw = Path(root) / name / "raw"
    for prefix, (x, y) in (("train", train), ("t10k", test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return raw
