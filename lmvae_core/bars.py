"""Progress bars that stay readable in logs.

tqdm draws a bar opened while another is open (a training bar inside a grid's bar, an IWAE bar inside a
notebook's loop) on a line of its own below the first, and moves the cursor there and back with `ESC[A`. On a
terminal that is what nested bars look like; in a log file, a pipe or the output `lmvae reproduce` prints from a
kernel it is a stream of raw escape codes. So where the output is not a terminal, only the outermost bar is shown
(tqdm's own single-line `\\r` updates, no cursor movement) and bars opened inside it are switched off.

Plain mode is on when $LMVAE_PLAIN_PROGRESS is "1" (`lmvae reproduce` sets it for its kernels when its own output
is not a terminal: a kernel cannot see where its output ends up), off when it is "0", and otherwise on when this
process's stderr is not a terminal and this is not a Jupyter kernel (where tqdm.auto draws widgets, or text the
front end renders).

Text bars in every kernel `lmvae reproduce` runs ($LMVAE_TEXT_BARS=1): with ipywidgets installed, tqdm.auto draws
widgets in a kernel, which JupyterLab shows live, but a notebook executed by papermill would keep only each widget's
first frame; text bars leave their final state, which `clean_for_commit` keeps.

This module is imported by the training loop: it must not import papermill or anything slow.
"""
from __future__ import annotations

import os
import sys
import weakref

PLAIN_ENV = "LMVAE_PLAIN_PROGRESS"
TEXT_ENV = "LMVAE_TEXT_BARS"

# Weak references to the bars plain mode let through (the outermost one), so that nested ones can be refused.
_OPEN: list = []


def _in_kernel() -> bool:
    return "ipykernel" in sys.modules and type(sys.stderr).__name__ == "OutStream"


def plain() -> bool:
    """True when bars must not move the cursor (see the module docstring)."""
    value = os.environ.get(PLAIN_ENV, "").strip()
    if value in ("0", "1"):
        return value == "1"
    if _in_kernel():
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return True


def bar(iterable=None, *, disable: bool = False, **kwargs):
    """tqdm.auto.tqdm(iterable, disable=..., **kwargs), except in plain mode, where a bar opened while another of
    ours is open is disabled (no `ESC[A`) and the outermost one keeps its line (position 0, left on close only if
    asked)."""
    if os.environ.get(TEXT_ENV, "").strip() == "1":
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm

    if disable or not plain():
        return tqdm(iterable, disable=disable, **kwargs)
    _OPEN[:] = [r for r in _OPEN if r() is not None and not r().disable]  # tqdm.close() sets disable
    if _OPEN:
        return tqdm(iterable, disable=True, **kwargs)
    kwargs.pop("position", None)
    t = tqdm(iterable, position=0, **kwargs)
    _OPEN.append(weakref.ref(t))
    return t
