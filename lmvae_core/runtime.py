"""Seeds, device selection and profile resolution shared by every experiment."""
from __future__ import annotations

import contextlib
import functools
import os
import random

import numpy as np
import torch

PROFILES = ("smoke", "paper-shape", "quick", "paper")
# Profiles that read the committed sample (data/sample) and write outside figures/: CI's checks of the code.
# paper-shape runs the paper profile's settings with only its sizes scaled down (images, steps or passes,
# evaluation images and IWAE samples, seeds: `experiments.common.paper_shape`), so the paper's architectures,
# likelihoods, samples per step, caps and code paths run on a CPU in seconds.
SAMPLE_PROFILES = ("smoke", "paper-shape")


def uses_sample(profile: str) -> bool:
    """Whether a profile reads the committed sample instead of the data root (and writes under .lmvae/)."""
    return profile in SAMPLE_PROFILES


def seed_everything(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r} ({type(seed).__name__})")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} was asked for but CUDA is not available; use 'auto' or 'cpu'")
        idx = torch.device(device).index or 0
        if idx >= torch.cuda.device_count():
            raise RuntimeError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device(device)
    if device == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


def resolve_profile(profile: str | None = None) -> str:
    """'auto' (or None) means paper on a CUDA machine and quick otherwise; $LMVAE_PROFILE is the default."""
    if profile is None:
        profile = os.environ.get("LMVAE_PROFILE", "auto")
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a string, got {profile!r}")
    if profile == "auto":
        return "paper" if torch.cuda.is_available() else "quick"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)} or 'auto'")
    return profile


@contextlib.contextmanager
def temporarily(get, set_, value):
    """set_(value) for a block, then set_ back to what get() returned before (also on an error)."""
    old = get()
    set_(value)
    try:
        yield
    finally:
        set_(old)


@contextlib.contextmanager
def cpu_threads(n: int | None = 1, device: str | torch.device | None = None):
    """Limit torch's intra-op threads on the CPU for a block (restored afterwards).

    Small MLP steps run faster on one thread than on several competing ones when other processes
    share the cores. n=None, or a non-CPU device, leaves the setting alone."""
    if n is None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    with temporarily(torch.get_num_threads, torch.set_num_threads, n):
        yield


# Results are computed on one CPU thread wherever the thread count would change them. torch's CPU convolutions and
# some of its matrix products split their sums by thread: trained at the caller's thread count, notebook 05's feature
# classifier ends up to 0.24 apart with 2 threads and with 1 (benchmarks/results/thread_invariance.json; before this
# fix its FID moved from 23.5 to 21.4, the same file at 715b557). The cache key holds no thread count, so without
# this a cached classifier, FID or fitting capacity would depend on whether the main process (2 threads) or a Dask
# worker (1) made it.
RESULT_THREADS = 1


def one_thread(fn):
    """Run fn with torch on RESULT_THREADS CPU threads (restored afterwards): its result cannot depend on the
    caller's thread count."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with cpu_threads(RESULT_THREADS):
            return fn(*args, **kwargs)
    return wrapper
