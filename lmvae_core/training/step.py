"""One optimisation step, shared by every training loop in the package.

The step returns the loss and its terms as detached *device* tensors: no `float(...)` and no
`torch.isfinite(...)` test on the host, so a GPU never waits for the host at every step. The
`LossMonitor` accumulates the terms on the device and checks a device-side "all finite so far" flag
only every `check_every` steps and at the end; when the flag is down it finds and names the first bad
step and its loss terms from the per-step record it kept since the last check.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch import nn

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict]]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss; the message names the step and every loss term."""


def train_step(loss_fn: LossFn, batch, optimizer: torch.optim.Optimizer,
               params: Iterable[nn.Parameter] | None = None, grad_clip: float | None = None,
               autocast: torch.dtype | None = None, compiled_cudagraphs: bool = False
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss_fn(batch) -> (scalar loss, {name: scalar}); one backward and optimiser step.
    Returns the detached loss and terms, still on the device.

    autocast: run loss_fn under torch.autocast with this dtype (e.g. torch.bfloat16); the returned
    terms are float32 either way. compiled_cudagraphs: loss_fn was compiled with torch.compile's own CUDA
    graphs (mode='reduce-overhead'; not the whole-step graph of training/graphs.py): mark the step and copy the
    outputs out of the graph's static buffers, which the next replay overwrites."""
    if compiled_cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    if autocast is not None:
        device_type = (batch[0] if isinstance(batch, (tuple, list)) else batch).device.type
        with torch.autocast(device_type, dtype=autocast):
            loss, terms = loss_fn(batch)
    else:
        loss, terms = loss_fn(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        if params is None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if autocast is not None or compiled_cudagraphs:
        return loss.detach().float().clone(), {k: v.detach().float().clone() for k, v in terms.items()}
    return loss.detach(), {k: v.detach() for k, v in terms.items()}


class LossMonitor:
    """Device-side running sums of the loss terms and a deferred NaN/Inf guard.

    `update` packs the loss and its terms into one small device vector and adds it to a running sum
    (two tiny device ops, no synchronisation); `check` (every `check_every` updates, and at the end
    through `close`) tests the losses recorded since the last check with one host read."""

    def __init__(self, check_every: int = 50, where: Callable[[int], str] | None = None):
        self.check_every = max(1, int(check_every))
        self.where = where or (lambda step: f"step {step}")
        self.step = 0  # steps seen so far
        self._count = 0
        self._layout: tuple[tuple[str, tuple], ...] | None = None  # (name, shape) of each packed term
        self._sum: torch.Tensor | None = None
        self._folded: dict[str, torch.Tensor] = {}  # sums of terms from an earlier layout
        self._pending: list[tuple[int, torch.Tensor]] = []  # (first step, rows [steps, 1 + terms]) since the check
        self._checked_at = 0  # self.step at the last check

    def update(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], steps: int = 1) -> None:
        """Record one step, or `steps` consecutive steps whose loss and terms are stacked along a leading axis
        (a replayed block of steps, training/graphs.py)."""
        skip = 1 if steps > 1 else 0  # the leading axis of stacked steps
        layout = tuple((k, tuple(v.shape[skip:])) for k, v in terms.items())
        if layout != self._layout:
            self.check()  # pending rows are unpacked with the layout they were recorded in (rare: one sync)
            self._fold()
            self._layout = layout
        rows = torch.cat([loss.detach().reshape(steps, 1).float(),
                          *(v.detach().reshape(steps, -1).float() for v in terms.values())], 1)
        total = rows[0] if steps == 1 else rows.sum(0)
        self._sum = total.clone() if self._sum is None else self._sum.add_(total)
        self._pending.append((self.step, rows))
        self._count += steps
        self.step += steps
        if self.step - self._checked_at >= self.check_every:
            self.check()

    def _unpack(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 1
        for name, shape in self._layout or ():
            n = math.prod(shape)
            out[name] = row[start:start + n].view(shape)
            start += n
        return out

    def _fold(self) -> None:
        """Move the running sum of the current layout into per-name sums (when the terms change)."""
        if self._sum is not None:
            for k, v in self._unpack(self._sum).items():
                self._folded[k] = self._folded[k] + v if k in self._folded else v.clone()
        self._sum = None

    def check(self) -> None:
        """Raise NonFiniteLossError naming the first non-finite step since the last check (one host sync)."""
        if not self._pending:
            return
        losses = torch.cat([rows[:, 0] for _, rows in self._pending])
        if not bool(torch.isfinite(losses).all()):
            bad = int((~torch.isfinite(losses)).nonzero()[0, 0])
            for first, rows in self._pending:
                if bad < len(rows):
                    break
                bad -= len(rows)
            row = rows[bad]
            parts = ", ".join(f"{k}={_fmt(v)}" for k, v in self._unpack(row).items())
            raise NonFiniteLossError(f"non-finite loss {_fmt(row[0])} at {self.where(first + bad)}; terms: {parts}")
        self._pending.clear()
        self._checked_at = self.step

    def means_tensors(self, reset: bool = True) -> dict[str, torch.Tensor]:
        """Mean of every term since the last reset, as CPU tensors (terms may be vectors, e.g. one
        value per ensemble member); one host sync for all terms together."""
        self.check()
        self._fold()
        if not self._folded:
            return {}
        names = list(self._folded)
        flat = (torch.cat([self._folded[k].reshape(-1) for k in names]) / max(self._count, 1)).cpu()
        out, start = {}, 0
        for k in names:
            n = self._folded[k].numel()
            out[k] = flat[start:start + n].view(self._folded[k].shape)
            start += n
        if reset:
            self._folded, self._count = {}, 0
        return out

    def means(self, reset: bool = True) -> dict[str, float]:
        """Mean of every scalar term since the last reset (one host sync for all terms together)."""
        return {k: v.tolist() for k, v in self.means_tensors(reset).items()}

    def close(self) -> None:
        self.check()


def _fmt(v: torch.Tensor) -> str:
    """A scalar as 4 significant digits; a vector (one value per ensemble member) as a list."""
    return f"{float(v):.4g}" if v.numel() == 1 else str([float(f"{u:.4g}") for u in v.flatten().tolist()])
