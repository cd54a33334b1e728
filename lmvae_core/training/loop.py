"""A plain training loop over device tensors: index-sliced batches, dynamic binarisation, progress
bars, and a loud stop on NaN or Inf losses."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from ..bars import bar as progress_bar
from ..data.preprocess import binarize_dynamic, binarize_static
from ..data.streams import batch_indices, take_rows
from .compiled_step import CompiledStep
from .graphs import CudaGraphStep, StepBlock, should_graph
from .optim import FusedAdam
from .step import LossMonitor, NonFiniteLossError, train_step  # noqa: F401  (NonFiniteLossError re-exported)


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    binarize: str | None = "dynamic"  # 'dynamic' (fresh draw every epoch), 'static' or None (keep [0,1] values)
    grad_clip: float | None = None
    progress: bool = True
    check_every: int = 50  # steps between the NaN/Inf checks; each check is one host sync
    # torch.compile the loss (forward and backward): 'auto' compiles on CUDA when the run has at least
    # compile_min_steps steps, where the compile time (tens of seconds) is paid back; True/False force it.
    compile: bool | str = "auto"
    compile_min_steps: int = 2000
    compile_mode: str = "default"  # 'reduce-overhead' adds CUDA graphs (launch-bound small models)
    # On a CPU, compile the whole step instead (forward, backward and Adam; training/compiled_step.py), for a
    # graph-safe model's own loss: 'auto' does so in runs of at least this many steps of a model whose
    # `step_compiles` says compiling pays (the MLP VAEs), True in any run (eager again if it fails to compile). About
    # 0.35 ms a step less for 784-400-20 (2 threads); the first compile took 13 s with inductor's disk cache empty
    # (2 s with it filled), so 'auto' waits for runs that pay it back even cold.
    cpu_compile_min_steps: int = 40_000
    autocast: str | None = None  # 'bf16': bfloat16 autocast for the loss (paper runs on a GPU); None: fp32
    # Replay the whole step (forward, backward, Adam) as one CUDA graph (training/graphs.py): 'auto' does so on
    # CUDA for a graph-safe model loss in runs of at least compile_min_steps steps; True/False force it.
    cuda_graph: bool | str = "auto"
    graph_steps: int = 8  # optimiser steps per graph replay (fewer host launches per step; the same batches)

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"invalid TrainConfig: epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr}")
        if self.binarize not in (None, "dynamic", "static"):
            raise ValueError(f"binarize must be 'dynamic', 'static' or None, got {self.binarize!r}")
        if self.compile not in (True, False, "auto"):
            raise ValueError(f"compile must be 'auto', True or False, got {self.compile!r}")
        if self.graph_steps < 1:
            raise ValueError(f"graph_steps must be at least 1, got {self.graph_steps}")
        if self.cuda_graph not in (True, False, "auto"):
            raise ValueError(f"cuda_graph must be 'auto', True or False, got {self.cuda_graph!r}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {list(AUTOCAST)}, got {self.autocast!r}")


AUTOCAST = {None: None, "bf16": torch.bfloat16}  # no fp16: it would need loss scaling


@contextlib.contextmanager
def tf32_matmuls(on: bool):
    """CUDA matmuls in TF32 inside when `on` (a CUDA graph captured inside keeps them), as before after; the flag
    untouched when not `on`."""
    before = torch.backends.cuda.matmul.allow_tf32
    if on:
        torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def should_compile(cfg: TrainConfig, device: torch.device, steps: int) -> bool:
    """'auto': only on CUDA (on a CPU the compiled step was not measured faster than the eager one
    for these MLPs, and the compile costs tens of seconds) and only for runs long enough to pay back."""
    if cfg.compile == "auto":
        return torch.device(device).type == "cuda" and steps >= cfg.compile_min_steps
    return bool(cfg.compile)


def should_compile_step(cfg: TrainConfig, device: torch.device, steps: int, safe: bool,
                        optimizer: torch.optim.Optimizer, pays: bool = True) -> bool:
    """The whole step compiled (CompiledStep): on a CPU, for a graph-safe loss, a plain Adam, without gradient
    clipping or autocast; True in any run, 'auto' in runs of at least cfg.cpu_compile_min_steps steps of a model
    where compiling was measured to pay (`pays`: the model's `step_compiles`)."""
    if (torch.device(device).type != "cpu" or not safe or cfg.grad_clip or cfg.autocast is not None
            or cfg.compile is False or not CompiledStep.supports(optimizer)):
        return False
    return cfg.compile is True or (pays and steps >= cfg.cpu_compile_min_steps)


def compiled_loss(loss_fn: Callable, cfg: TrainConfig, graphs_allowed: bool = True) -> Callable:
    """The loss function under torch.compile (fixed shapes: the short last batch gets its own graph)."""
    mode = cfg.compile_mode if graphs_allowed or "reduce-overhead" not in cfg.compile_mode else "default"
    return torch.compile(loss_fn, mode=mode, dynamic=False)


def make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: every parameter is frozen")
    # The fused kernel updates every tensor in one pass: about 20% faster per step for these small MLPs on a CPU;
    # FusedAdam also skips torch's per-step bookkeeping there (training/optim.py).
    if all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        return FusedAdam(params, lr=cfg.lr, betas=cfg.betas)
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)


def binarized(x: torch.Tensor, mode: str | None, generator: torch.Generator | None = None) -> torch.Tensor:
    if mode == "dynamic":
        return binarize_dynamic(x, generator)
    if mode == "static":
        return binarize_static(x)
    return x


def steps_per_epoch(n: int, batch_size: int, epochs: int = 1, max_steps: int | None = None) -> int:
    """Batches per pass over n images; max_steps caps the steps of all passes together (CPU profiles)."""
    steps = math.ceil(n / batch_size)
    return steps if max_steps is None else min(steps, max(1, max_steps // max(1, epochs)))


def epoch_batches(x: torch.Tensor, epochs: int, batch_size: int, binarize: str | None = "dynamic",
                  max_steps: int | None = None, block: int = 1) -> Iterator[tuple[int, torch.Tensor]]:
    """(epoch, batch) pairs: each epoch binarises x afresh and slices it by a fresh random permutation.
    block > 1 (CUDA graphs, without max_steps) yields runs of `block` consecutive batches as one `StepBlock`
    (the same batches in the same order), then the epoch's remaining batches one by one."""
    per_epoch = steps_per_epoch(x.shape[0], batch_size, epochs, max_steps)
    block = block if max_steps is None else 1
    for epoch in range(epochs):
        data = binarized(x, binarize)
        for s, idx in enumerate(batch_indices(x.shape[0], batch_size, device=x.device, block=block)):
            if s == per_epoch:
                break
            yield epoch, (StepBlock(take_rows(data, idx)) if idx.dim() == 2 else take_rows(data, idx))


def fit_batches(batches: Iterable[tuple[int, torch.Tensor]], loss_fn: Callable[[torch.Tensor], tuple],
                optimizer: torch.optim.Optimizer, model: nn.Module | None = None, grad_clip: float | None = None,
                check_every: int = 50, total: int | None = None, per_epoch: int | None = None,
                progress: bool = False, desc: str = "train", on_step: Callable[[int], None] | None = None,
                on_epoch: Callable[[int, dict], None] | None = None, step_options: dict | None = None,
                stepper: Callable | None = None) -> list[dict]:
    """The one training loop of the package: one `train_step` per (epoch, batch) pair; returns one dict of
    mean loss terms per epoch. The terms stay on the device until the end of an epoch (one host sync then,
    and one per check_every steps for the NaN/Inf guard). step_options go to every `train_step` call;
    step_options['cuda_graph'] = True replays the step as a CUDA graph instead (`CudaGraphStep`);
    step_options['compiled_step'] = True runs it as one compiled function (`CompiledStep`, needs the model).
    on_step(steps done so far) is called after each batch, or after each block of steps a graph replays at once
    (a `StepBlock`), so the count it receives can advance by more than one. stepper: a step the caller keeps
    across calls (a `CudaGraphStep` whose graphs outlive one call, as OCM's memory rounds keep theirs), used
    instead of one built from step_options."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    options = dict(step_options or {})
    if stepper is not None:
        step = stepper
    elif options.pop("compiled_step", False):
        step = CompiledStep(model, loss_fn, optimizer)
    elif options.pop("cuda_graph", False):
        step = CudaGraphStep(loss_fn, optimizer, params, grad_clip, options.get("autocast"),
                             buffers=list(model.buffers()) if model is not None else [])
    else:
        def step(batch):
            return train_step(loss_fn, batch, optimizer, params, grad_clip, **options)
    where = (lambda s: f"epoch {s // per_epoch}, step {s}") if per_epoch else None
    monitor = LossMonitor(check_every, where=where)
    bar = progress_bar(total=total, desc=desc, disable=not progress, leave=False)
    history: list[dict] = []

    def close_epoch(epoch: int, steps: int) -> None:
        means = monitor.means()
        history.append(means)
        bar.update(steps)
        bar.set_postfix({k: f"{v:.2f}" for k, v in list(means.items())[:3]})
        if on_epoch:
            on_epoch(epoch, means)

    if model is not None:
        model.train()
    current, start = None, 0
    for epoch, batch in batches:
        if epoch != current and current is not None:
            close_epoch(current, monitor.step - start)
            start = monitor.step
        current = epoch
        loss, terms = step(batch)
        monitor.update(loss, terms, steps=len(batch) if isinstance(batch, StepBlock) else 1)
        if on_step:
            on_step(monitor.step)
    if current is not None:
        close_epoch(current, monitor.step - start)
    monitor.close()
    bar.close()
    if model is not None:
        model.eval()
    return history


def train(model: nn.Module, x: torch.Tensor, cfg: TrainConfig,
          loss_fn: Callable[[torch.Tensor], tuple[torch.Tensor, dict]] | None = None,
          optimizer: torch.optim.Optimizer | None = None, desc: str = "train",
          on_step: Callable[[int], None] | None = None,
          on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train `model` on images x for cfg.epochs; returns one dict of mean loss terms per epoch.

    loss_fn(batch) -> (scalar loss, {name: scalar}) defaults to model.loss."""
    per_epoch = steps_per_epoch(x.shape[0], cfg.batch_size)
    steps = cfg.epochs * per_epoch
    # only the model's own loss is known to be graph-safe (a custom loss_fn may keep host-side state)
    safe = loss_fn is None and getattr(model, "graph_safe", False)
    whole_step_graph = should_graph(cfg.cuda_graph, x.device, steps, cfg.compile_min_steps, safe)
    optimizer = optimizer or make_optimizer(model.parameters(), cfg)
    whole_step_compiled = should_compile_step(cfg, x.device, steps, safe, optimizer,
                                              getattr(model, "step_compiles", False))
    loss_fn = loss_fn or model.loss
    compiled = should_compile(cfg, x.device, steps) and not whole_step_compiled
    if compiled:
        # inside a whole-step graph, torch.compile only fuses kernels (its own CUDA graphs would nest)
        loss_fn = compiled_loss(loss_fn, cfg, graphs_allowed=not whole_step_graph)
    # CUDA graphs (mode 'reduce-overhead') reuse static output buffers: train_step copies the terms out.
    graphs = (compiled and not whole_step_graph and "reduce-overhead" in cfg.compile_mode
              and x.device.type == "cuda")
    step_options = {"autocast": AUTOCAST[cfg.autocast], "compiled_cudagraphs": graphs, "cuda_graph": whole_step_graph,
                    "compiled_step": whole_step_compiled}
    block = cfg.graph_steps if whole_step_graph else 1
    return fit_batches(epoch_batches(x, cfg.epochs, cfg.batch_size, cfg.binarize, block=block), loss_fn,
                       optimizer, model, cfg.grad_clip, cfg.check_every, steps, per_epoch, cfg.progress, desc, on_step,
                       on_epoch, step_options)
