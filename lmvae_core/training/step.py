"""One optimisation step, shared by every training loop in the package.

The step returns the loss and its terms as detached *device* tensors: no `float(...)` and no
`torch.isfinite(...)` test on the host, so a GPU never waits for the host at every step. The
`LossMonitor` accumulates the terms on the device and checks a device-side "all finite so far" flag
only every `check_every` steps and at the end; when the flag is down it finds and names the first bad
step and its loss terms from the per-step record it kept since the last check.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict]]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or Inf loss; the message names the step and every loss term."""


def train_step(loss_fn: LossFn, batch, optimizer: torch.optim.Optimizer,
               params: Iterable[nn.Parameter] | None = None, grad_clip: float | None = None,
               autocast: torch.dtype | None = None, cudagraphs: bool = False
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss_fn(batch) -> (scalar loss, {name: scalar}); one backward and optimiser step.
    Returns the detached loss and terms, still on the device.

    autocast: run loss_fn under torch.autocast with this dtype (e.g. torch.bfloat16); the returned
    terms are float32 either way. cudagraphs: loss_fn was compiled with CUDA graphs
    (mode='reduce-overhead'): mark the step and copy the outputs out of the graph's static buffers,
    which the next replay overwrites."""
    if cudagraphs:
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
    if autocast is not None or cudagraphs:
        return loss.detach().float().clone(), {k: v.detach().float().clone() for k, v in terms.items()}
    return loss.detach(), {k: v.detach() for k, v in terms.items()}


class LossMonitor:
    """Device-side running sums of the loss terms and a deferred NaN/Inf guard.

    `update` costs a few tiny device ops and never synchronises; `check` (every `check_every`
    updates, and at the end through `close`) reads one boolean from the device."""

    def __init__(self, check_every: int = 50, where: Callable[[int], str] | None = None):
        self.check_every = max(1, int(check_every))
        self.where = where or (lambda step: f"step {step}")
        self.step = 0  # steps seen so far
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._ok: torch.Tensor | None = None
        self._pending: list[tuple[int, torch.Tensor, dict]] = []  # (step, loss, terms) since the last check

    def update(self, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        finite = torch.isfinite(loss)
        self._ok = finite if self._ok is None else self._ok & finite
        for k, v in terms.items():
            v = v.detach()
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._pending.append((self.step, loss, terms))
        self._count += 1
        self.step += 1
        if len(self._pending) >= self.check_every:
            self.check()

    def check(self) -> None:
        """Raise NonFiniteLossError naming the first non-finite step since the last check (one host sync)."""
        if self._ok is not None and not bool(self._ok):
            for step, loss, terms in self._pending:
                if not bool(torch.isfinite(loss)):
                    parts = ", ".join(f"{k}={_fmt(v)}" for k, v in terms.items())
                    raise NonFiniteLossError(f"non-finite loss {_fmt(loss)} at {self.where(step)}; terms: {parts}")
        self._pending.clear()

    def means_tensors(self, reset: bool = True) -> dict[str, torch.Tensor]:
        """Mean of every term since the last reset, as CPU tensors (terms may be vectors, e.g. one
        value per ensemble member); one host sync for all terms together."""
        self.check()
        if not self._sums:
            return {}
        names = list(self._sums)
        sums = [self._sums[k].float() for k in names]
        flat = (torch.cat([v.reshape(-1) for v in sums]) / max(self._count, 1)).cpu()
        out, start = {}, 0
        for k, v in zip(names, sums):
            out[k] = flat[start:start + v.numel()].view(v.shape)
            start += v.numel()
        if reset:
            self._sums, self._count = {}, 0
        return out

    def means(self, reset: bool = True) -> dict[str, float]:
        """Mean of every scalar term since the last reset (one host sync for all terms together)."""
        return {k: v.tolist() for k, v in self.means_tensors(reset).items()}

    def close(self) -> None:
        self.check()


def _fmt(v: torch.Tensor) -> str:
    """A scalar as 4 significant digits; a vector (one value per ensemble member) as a list."""
    return f"{float(v):.4g}" if v.numel() == 1 else str([float(f"{u:.4g}") for u in v.flatten().tolist()])
