"""The whole training step (forward, backward, optimiser) replayed as one CUDA graph.

Why: the networks of these papers are small (784-400-20 is 0.6 MFLOP per image), so on a GPU an
eager step is bound by the host launching its ~70 kernels one by one, not by the GPU. torch.compile
fuses the elementwise kernels but leaves the optimiser step, the autograd engine and the guards on
the host. Capturing the step once and replaying it costs two launches per step (the batch copy and
the replay), so the GPU, not Python, sets the pace.

What a graph freezes, and therefore what a loss function must satisfy to be graphed:
- every random number is drawn on the device by torch (the graph advances the CUDA generator's
  offset on each replay); nothing is drawn on the host or read from a Python attribute that changes
  between steps (device buffers changed in place, such as a VAE's `capacity_now`, are fine);
- the learning rate and the optimiser's other hyperparameters stay fixed (they are baked in);
- the batch keeps its shape: each new shape (a block of several steps, a single batch, the short last
  batch of an epoch) gets its own graph, up to `max_graphs`; further shapes run eagerly, or, with
  `evict=True`, replace the least recently used graph (a loop whose short last batch changes size from
  one round to the next, as OCM's memory passes do while the memory grows).
Models whose `loss` satisfies this say so with `graph_safe = True` (the VAE family); `train()` graphs
only those on its own, other loops opt in.

Faithfulness: capturing needs a few warm-up steps (Adam's state, cuBLAS workspaces, compiled kernels). They run on a
copy's worth of work and are then undone: the parameters, the optimiser's state and the CUDA random generator are
restored in place, so the first replayed step starts from exactly the state an eager step would have and draws the
same random numbers (without the generator's restore, the warm-up's draws would shift every later draw of the run).
A loss that draws from generators of its own (an own-noise OCM learner, the stacked seeds of
continual/ocm_stacked.py) names them in `generators`: their states are restored after the warm-up too, and each
graph registers them (`CUDAGraph.register_generator_state`), so that a replay advances them by what the eager step
draws; without it a replay would repeat the captured draws. `test_cuda.py` checks the graphed trajectory against the
eager one on a GPU, for a deterministic loss and for a VAE's random one.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import nn

from .step import LossFn, train_step


class StepBlock:
    """`len(self)` consecutive batches stacked along a leading axis, trained as that many optimiser steps in
    order. One replay of a block's graph runs them all: the host launches a gather, a copy and a replay per
    block instead of per step (on a virtualised host each launch cost ~35 us, more than a whole step's GPU work)."""
    __slots__ = ("batches",)

    def __init__(self, batches: torch.Tensor):
        self.batches = batches

    def __len__(self) -> int:
        return self.batches.shape[0]


def _tensors(batch) -> tuple[torch.Tensor, ...]:
    if isinstance(batch, StepBlock):
        return (batch.batches,)
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def _signature(batch) -> tuple:
    return (isinstance(batch, StepBlock), *((tuple(t.shape), t.dtype) for t in _tensors(batch)))


def _like(batch, static: tuple[torch.Tensor, ...]):
    """The static buffers in the form of `batch` (a tensor, a tuple of tensors or a StepBlock)."""
    if isinstance(batch, StepBlock):
        return StepBlock(static[0])
    return static if isinstance(batch, (tuple, list)) else static[0]


class CudaGraphStep:
    """A drop-in for `train_step(loss_fn, batch, optimizer, ...)` that captures the step per batch shape and
    replays it. The returned loss and terms live in the graph's static buffers: read (or copy) them before the
    next call, as `fit_batches` does."""

    def __init__(self, loss_fn: LossFn, optimizer: torch.optim.Optimizer, params: list[nn.Parameter] | None = None,
                 grad_clip: float | None = None, autocast: torch.dtype | None = None, warmup: int = 3,
                 max_graphs: int = 3, buffers: list[torch.Tensor] = (), evict: bool = False,
                 generators: list[torch.Generator] = ()):
        """buffers: tensors the loss may change in place (the model's buffers), restored after the warm-up.
        evict: a new shape beyond max_graphs replaces the least recently replayed graph instead of running eagerly.
        generators: CUDA generators the loss draws from besides the default one (see the module docstring)."""
        self.loss_fn, self.optimizer, self.grad_clip, self.autocast = loss_fn, optimizer, grad_clip, autocast
        self.params = params if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
        self.buffers = list(buffers)
        self.generators = list(generators)
        self.warmup, self.max_graphs, self.evict = warmup, max_graphs, evict
        self.graphs: OrderedDict[tuple, tuple] = OrderedDict()  # signature -> (graph, static batch, loss, terms)
        self.captures = 0  # graphs captured so far (evicted ones included)
        self.eager_steps = 0  # steps that ran eagerly (shapes beyond max_graphs, or a failed capture)
        self.failed: str | None = None
        for g in optimizer.param_groups:
            if "capturable" in g and all(p.is_cuda for p in g["params"]):
                g["capturable"] = True  # keeps the step count on the device: no host read inside the graph

    def __call__(self, batch):
        sig = _signature(batch)
        if sig not in self.graphs and self.failed is None and self.evict and 0 < self.max_graphs <= len(self.graphs):
            self.graphs.popitem(last=False)  # the least recently replayed shape makes room
        if sig not in self.graphs and self.failed is None and len(self.graphs) < self.max_graphs:
            try:
                self.graphs[sig] = self._capture(batch)
                self.captures += 1
            except Exception as e:  # noqa: BLE001  (a capture that fails must not end the run)
                torch.cuda.synchronize()
                self.failed = f"{type(e).__name__}: {e}"
                warnings.warn(f"CUDA graph capture failed, the run continues eagerly: {self.failed}")
        if sig not in self.graphs:
            self.eager_steps += len(batch) if isinstance(batch, StepBlock) else 1
            return self._eager(batch)
        self.graphs.move_to_end(sig)
        graph, static, loss, terms = self.graphs[sig]
        for dst, src in zip(static, _tensors(batch)):
            dst.copy_(src, non_blocking=True)
        graph.replay()
        return loss, terms

    def _eager(self, batch):
        if not isinstance(batch, StepBlock):
            return train_step(self.loss_fn, batch, self.optimizer, self.params, self.grad_clip, self.autocast)
        steps = [train_step(self.loss_fn, b, self.optimizer, self.params, self.grad_clip, self.autocast)
                 for b in batch.batches.unbind(0)]
        return (torch.stack([loss for loss, _ in steps]),
                {k: torch.stack([terms[k] for _, terms in steps]) for k in steps[0][1]})

    def _snapshot(self) -> tuple[list[torch.Tensor], dict]:
        tensors = [t.detach().clone() for t in [*self.params, *self.buffers]]
        state = {p: {k: v.clone() for k, v in self.optimizer.state[p].items() if torch.is_tensor(v)}
                 for p in self.params if self.optimizer.state.get(p)}
        return tensors, state

    @torch.no_grad()
    def _restore(self, snapshot) -> None:
        """Undo the warm-up in place (the graph records these very tensors): parameters and buffers back, and
        the optimiser's state back, or to zeros where it had none (Adam's fresh state is zero moments at step 0)."""
        tensors, state = snapshot
        for t, v in zip([*self.params, *self.buffers], tensors):
            t.copy_(v)
        for p in self.params:
            before = state.get(p, {})
            for k, v in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(v):
                    v.copy_(before[k]) if k in before else v.zero_()

    def _capture(self, batch):
        static = tuple(t.clone() for t in _tensors(batch))
        arg = _like(batch, static)
        snapshot = self._snapshot()
        device = static[0].device
        rng = torch.cuda.get_rng_state(device)
        own_rng = [g.get_state() for g in self.generators]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._eager(arg)
        torch.cuda.current_stream().wait_stream(side)
        self._restore(snapshot)
        torch.cuda.set_rng_state(rng, device)  # the warm-up's draws are undone too
        for g, state in zip(self.generators, own_rng):
            g.set_state(state)
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients in its own pool
        graph = torch.cuda.CUDAGraph()
        for g in self.generators:
            graph.register_generator_state(g)  # a replay advances g's offset as the captured draws did
        with torch.cuda.graph(graph):
            loss, terms = self._eager(arg)
        return graph, static, loss, terms


def should_graph(flag: bool | str, device: torch.device, steps: int, min_steps: int, safe: bool) -> bool:
    """'auto': on CUDA, for a loss known to be graph-safe, in runs of at least min_steps steps (capturing
    costs a few warm-up steps and, with torch.compile, the compile); True forces it on CUDA."""
    if torch.device(device).type != "cuda":
        return False
    if flag == "auto":
        return safe and steps >= min_steps
    return bool(flag)

