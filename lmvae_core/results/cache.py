"""An on-disk cache for experiment results, keyed by the experiment's full configuration and the code.

A notebook re-run with the same parameters reloads instead of retraining; force=True retrains.
The key includes a hash of every source file of the package, so after any code change old results are
recomputed, never silently reused. Entries are written atomically; one that cannot be read (a truncated
or corrupt file) is reported, moved aside as <key>.pt.corrupt and recomputed.

While compute() runs, `resume_dir()` names a folder beside the entry, <name>/<key>.partial/, where a long run
keeps its checkpoints (the driver's `Checkpointing`): the key identifies the run, so a run killed and started
again finds its own (force=True resumes it too: same key, same code, so the same result). The folder is
removed once the result is written; one left by older code (another key) is never read.
"""
from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, TypeVar

import torch

from .. import paths
from .atomic import atomic_write, write_text

T = TypeVar("T")
PACKAGE = Path(__file__).resolve().parents[1]
_RESUME_DIR: contextvars.ContextVar[Path | None] = contextvars.ContextVar("resume_dir", default=None)


@functools.lru_cache(maxsize=None)
def source_hash(package: Path = PACKAGE) -> str:
    """SHA-1 over the relative paths and contents of every .py file of the package (once per process)."""
    h = hashlib.sha1()
    for file in sorted(package.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        h.update(file.relative_to(package).as_posix().encode() + b"\0")
        h.update(file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def jsonable(value):
    """How a key's value that JSON does not know is written: a mapping (a notebook's Settings) as its entries, so
    that the key reads and hashes as the dict it replaced; anything else as its str."""
    return dict(value) if isinstance(value, Mapping) else str(value)


def config_key(config: dict) -> str:
    text = json.dumps({"config": config, "code": source_hash()}, sort_keys=True, default=jsonable)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cache_file(name: str, config: dict, root: str | Path | None = None) -> Path:
    return Path(root or paths.cache_root()) / name / f"{config_key(config)}.pt"


def partial_dir(file: Path) -> Path:
    """The checkpoint folder of the run whose result goes to `file`."""
    return file.with_suffix(".partial")


def resume_dir() -> Path | None:
    """The checkpoint folder of the cached computation now running (None outside `cached`); not created here."""
    return _RESUME_DIR.get()


class CorruptCacheWarning(RuntimeWarning):
    """A cache entry could not be read; it was moved aside and is recomputed."""


def _load(file: Path):
    """The stored result, or None (with a warning, the file moved aside) when it cannot be read."""
    try:
        return True, torch.load(file, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated zip, bad pickle, ...: whatever torch.load raises
        aside = file.with_name(file.name + ".corrupt")
        try:
            file.replace(aside)
        except FileNotFoundError:  # a concurrent reader (another grid worker) moved it aside first
            pass
        warnings.warn(f"cache entry {file} could not be read ({type(err).__name__}: {err}); moved to {aside.name} "
                      f"and recomputing", CorruptCacheWarning, stacklevel=3)
        return False, None


def cached(name: str, config: dict, compute: Callable[[], T], force: bool = False,
           root: str | Path | None = None, verbose: bool = False) -> T:
    """compute() once per (name, config, code); later calls load the stored result."""
    file = cache_file(name, config, root)
    if file.exists() and not force:
        ok, result = _load(file)
        if ok:
            if verbose:
                print(f"[cache] {name}: loaded {file.name}")
            return result
    token = _RESUME_DIR.set(partial_dir(file))
    try:
        result = compute()
    finally:
        _RESUME_DIR.reset(token)
    _write(file, config, result)
    return result


def store(name: str, config: dict, result, root: str | Path | None = None) -> Path:
    """Write a result computed elsewhere (a cluster worker without the shared cache) under its key."""
    file = cache_file(name, config, root)
    _write(file, config, result)
    return file


def _write(file: Path, config: dict, result) -> None:
    # atomic_write uses a unique temporary name (mkstemp): parallel workers may write the same entry (a
    # shared classifier) at once, and the last rename wins with a complete file.
    atomic_write(file, lambda tmp: torch.save(result, tmp))
    write_text(file.with_suffix(".json"), json.dumps(config, indent=1, sort_keys=True, default=jsonable))
    shutil.rmtree(partial_dir(file), ignore_errors=True)  # the run's checkpoints: its result is kept now


def is_cached(name: str, config: dict, root: str | Path | None = None) -> bool:
    return cache_file(name, config, root).exists()
