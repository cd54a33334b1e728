"""An on-disk cache for experiment results, keyed by the experiment's full configuration.

A notebook re-run with the same parameters reloads instead of retraining; force=True retrains.
The key includes the package version, so results from older code are not silently reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Callable, TypeVar

import torch

from .. import paths

T = TypeVar("T")
VERSION = "0.1.0"


def config_key(config: dict) -> str:
    text = json.dumps({"config": config, "version": VERSION}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_file(name: str, config: dict, root: str | Path | None = None) -> Path:
    return Path(root or paths.cache_root()) / name / f"{config_key(config)}.pt"


def cached(name: str, config: dict, compute: Callable[[], T], force: bool = False,
           root: str | Path | None = None, verbose: bool = False) -> T:
    """compute() once per (name, config); later calls load the stored result."""
    file = cache_file(name, config, root)
    if file.exists() and not force:
        if verbose:
            print(f"[cache] {name}: loaded {file.name}")
        return torch.load(file, map_location="cpu", weights_only=False)
    result = compute()
    _write(file, config, result)
    return result


def store(name: str, config: dict, result, root: str | Path | None = None) -> Path:
    """Write a result computed elsewhere (a cluster worker without the shared cache) under its key."""
    file = cache_file(name, config, root)
    _write(file, config, result)
    return file


def _write(file: Path, config: dict, result) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name per process: parallel workers may compute the same entry (a shared classifier) at once.
    tmp = file.with_name(f"{file.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    torch.save(result, tmp)
    tmp.replace(file)
    file.with_suffix(".json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))


def is_cached(name: str, config: dict, root: str | Path | None = None) -> bool:
    return cache_file(name, config, root).exists()


