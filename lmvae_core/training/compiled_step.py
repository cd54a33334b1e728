"""The whole training step (forward, backward and Adam) as one torch.compile'd function, for long runs on a CPU.

Why: on a CPU the 784-400-20 VAE's step is its matrix products (about half of it), Adam, and some sixty small
operations, each dispatched from Python with its own pass over memory. The hand-written backward of
models/fused_vae.py removes autograd's share of that; compiling the step removes most of the rest. The gradient
comes from `torch.func.grad_and_value` of the model's loss at the model's parameters, and Adam's update is
written out with torch's own formula, so that inductor sees forward, backward and update as one graph: it
fuses the elementwise work into a few C++ loops around the library's matrix products, and the step costs one
call from Python instead of about eighty. Measured side by side in one process (784-400-20, batch 128, 2 threads,
100 steps, medians of 5 alternating rounds): 2.46 ms a step against 2.80 through the fused loss and
FusedAdam (1.14x); compiling the loss alone (`TrainConfig(compile=True)` before this module) reached 2.77 ms
against 2.88. The compile costs seconds to tens of seconds once per process (inductor caches the kernels on
disk), so `train()` uses it on its own only for runs long enough to pay it back (`TrainConfig.cpu_compile_min_steps`).

What it computes: the same loss and the same Adam update as `train_step` with `FusedAdam`, up to rounding, with
one difference: random numbers drawn inside the compiled loss (a VAE's eps) come from inductor's generator, which
is seeded from torch's default generator at every call. A run is therefore reproducible from its seed, but it
does not draw the numbers the eager step would (under `torch._inductor.config.fallback_random = True` it does,
which is how tests/test_compiled_step.py compares the two trajectories).

The step updates the model's parameters and the optimiser's own state tensors (exp_avg, exp_avg_sq, step) in
place, so the optimiser stays valid: a batch of another shape (the short last batch of an epoch) runs an eager
`train_step` on the same state instead of compiling a second graph, and a checkpoint saves the state as usual.
It serves a loss that is a pure function of the batch and the parameters (`graph_safe` models' own loss) and an
Adam without weight decay, amsgrad, maximize or a tensor learning rate, and no gradient clipping or autocast
(`CompiledStep.supports`); `train()` checks that before choosing it.

Compiles: the learning rate, betas and eps are inputs of the compiled code, not constants, so every model of one
architecture in a process shares one compile; another architecture or batch shape compiles again, up to dynamo's
recompile limit (8 by default), after which a new CompiledStep warns and runs eagerly, as after any failed compile.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

from .optim import FusedAdam, plain_update
from .step import LossFn, train_step


class _LossModule(nn.Module):
    """Holds the model so that functional_call can put the traced parameters in place of its own while loss_fn
    (a bound method of the model, or a function of it) runs."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(batch)


def _plain_adam(optimizer: torch.optim.Optimizer) -> bool:
    """torch's Adam or the package's FusedAdam (the same update; a subclass with its own step is another rule), every
    group with the plain update and without maximize."""
    return (isinstance(optimizer, torch.optim.Adam) and type(optimizer).step in (torch.optim.Adam.step, FusedAdam.step)
            and all(plain_update(g) and not g["maximize"] for g in optimizer.param_groups))


class CompiledStep:
    """A drop-in for `train_step(loss_fn, batch, optimizer)`: returns the detached loss and terms of the step,
    on the device. The first call with a batch of the first shape compiles; other shapes run eagerly."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer):
        if not self.supports(optimizer):
            raise ValueError("CompiledStep needs a plain Adam (no amsgrad, weight decay, maximize or tensor lr)")
        self.module = _LossModule(model, loss_fn)
        self.loss_fn, self.optimizer = loss_fn, optimizer
        self.groups = []  # per parameter group with a trainable parameter: (its dict, the parameters' names, them)
        names = {id(p): n for n, p in self.module.named_parameters()}
        for g in optimizer.param_groups:
            params = [p for p in g["params"] if p.requires_grad]
            for p in params:
                if id(p) not in names:
                    raise ValueError("the optimiser holds a parameter that is not the model's")
                state = optimizer.state[p]
                if not state:  # Adam's fresh state, as torch makes it for a fused or capturable group
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if params:
                self.groups.append((g, [names[id(p)] for p in params], params))
        self.shape: tuple | None = None  # the batch shape the compiled graph serves
        self.eager_steps = 0  # steps of another batch shape (or every step after a failed compile), run eagerly
        self.compiled_steps = 0
        self.failed: str | None = None
        self._hyper_values: list | None = None
        self._hyper_tensors: list = []
        self._compiled = torch.compile(self._step, dynamic=False, fullgraph=True)  # a graph break raises: eager then

    @staticmethod
    def supports(optimizer: torch.optim.Optimizer) -> bool:
        return _plain_adam(optimizer)

    def _loss(self, params: dict, batch):
        loss, terms = functional_call(self.module, params, (batch,), strict=False)
        return loss, (loss.detach(), {k: v.detach() for k, v in terms.items()})

    def _step(self, params: dict, states: list, hypers: list, batch):
        grads, (_, (loss, terms)) = grad_and_value(self._loss, has_aux=True)(params, batch)
        with torch.no_grad():
            for (_, names, _), group_states, (lr, beta1, beta2, eps) in zip(self.groups, states, hypers):
                for name, (step, exp_avg, exp_avg_sq) in zip(names, group_states):
                    # torch's Adam: lerp the first moment, then step / bias corrections, as its fused kernel
                    grad = grads[name]
                    step.add_(1)
                    exp_avg.lerp_(grad, 1 - beta1)
                    exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
                    bias1 = 1 - beta1 ** step
                    bias2_sqrt = (1 - beta2 ** step).sqrt()
                    denom = (exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
                    params[name].sub_(lr / bias1 * exp_avg / denom)
        return loss, terms

    def _hypers(self) -> list[tuple[torch.Tensor, ...]]:
        """Each group's lr, betas and eps as 0-d tensors: inputs of the compiled step, not constants, so that another
        learning rate (a second model, a schedule) reuses the compiled code instead of compiling again."""
        values = [(g["lr"], *g["betas"], g["eps"]) for g, _, _ in self.groups]
        if values != self._hyper_values:
            device = self.groups[0][2][0].device
            self._hyper_values = values
            self._hyper_tensors = [tuple(torch.tensor(float(v), device=device) for v in vs) for vs in values]
        return self._hyper_tensors

    def __call__(self, batch):
        shape = tuple(batch.shape)
        if self.shape is None:
            self.shape = shape
        if shape != self.shape:
            self.eager_steps += 1
            return train_step(self.loss_fn, batch, self.optimizer)
        params = {n: p.detach() for _, names, ps in self.groups for n, p in zip(names, ps)}
        states = [[(self.optimizer.state[p]["step"], self.optimizer.state[p]["exp_avg"],
                    self.optimizer.state[p]["exp_avg_sq"]) for p in ps] for _, _, ps in self.groups]
        for _, _, ps in self.groups:
            for p in ps:
                p.grad = None  # as train_step leaves no stale gradient behind an eager step
        if self.compiled_steps:
            self.compiled_steps += 1
            return self._compiled(params, states, self._hypers(), batch)
        try:  # the first call compiles (and runs the step, with nothing mutated before the compile succeeds)
            out = self._compiled(params, states, self._hypers(), batch)
        except Exception as e:  # noqa: BLE001  (a loss torch.compile cannot trace must not end the run)
            self.failed = f"{type(e).__name__}: {e}"
            warnings.warn(f"compiling the whole step failed, the run continues eagerly: {self.failed[:500]}")
            self.shape = ()  # no batch has this shape: every later step runs eagerly
            return self(batch)
        self.compiled_steps = 1
        return out
