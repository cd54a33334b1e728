"""Adam, as every training loop of the package makes it: torch's fused Adam with a short path for its CPU step.

Why the short path: torch.optim.Adam(fused=True) spends part of each step in Python bookkeeping (grouping the
tensors by device and dtype, checking each parameter's state, profiler hooks) before its two calls, one
`_foreach_add_` on the step counts and one `_fused_adam_` over every tensor. For the 784-400-20 VAE on 2 CPU
threads the step took 248 us, the two calls alone 195 us; for a small net (4,456 parameters) 70 against
32 us, a sizeable part of a small model's training step. On a GPU the launches dominate and the CUDA graph
path (training/graphs.py) captures torch's own step, so the short path is CPU-only.
"""
from __future__ import annotations

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks


def plain_update(group: dict) -> bool:
    """Does the group take Adam's plain update, the one the short CPU step below and the compiled step
    (compiled_step.py) pass on or write out: no amsgrad, no weight decay (coupled or decoupled), not
    differentiable, and a float learning rate."""
    return not (group["amsgrad"] or group["weight_decay"] or group["differentiable"]
                or isinstance(group["lr"], torch.Tensor) or group.get("decoupled_weight_decay"))


class FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True). Once every parameter with a gradient has its state (after the first step),
    a step on the CPU makes torch's two calls directly, with the same arguments, so the update is bitwise
    torch's (tested). Anything else takes torch's own step: a closure, a parameter off the CPU or not float32,
    amsgrad, weight decay, a tensor learning rate, differentiable or capturable groups, gradient scaling, and
    step hooks."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr=lr, betas=betas, eps=eps, fused=True)

    def step(self, closure=None):
        calls = None if closure is not None or self._hooked() else self._short_calls()
        if calls is None:
            return super().step(closure)
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in calls:
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1,
                               beta2=beta2, weight_decay=0.0, eps=group["eps"], amsgrad=False,
                               maximize=group["maximize"])
        return None

    def _hooked(self) -> bool:
        return bool(self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _global_optimizer_pre_hooks
                    or _global_optimizer_post_hooks or getattr(self, "grad_scale", None) is not None
                    or getattr(self, "found_inf", None) is not None)

    def _short_calls(self) -> list[tuple] | None:
        """Per group: (group, params, grads, exp_avgs, exp_avg_sqs, steps) of the parameters with a gradient, or
        None when the short path does not apply."""
        calls = []
        for group in self.param_groups:
            if not plain_update(group) or group["capturable"]:
                return None
            lists: tuple[list, ...] = ([], [], [], [], [])
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state.get(p)
                if (not state or p.device.type != "cpu" or p.dtype != torch.float32 or g.dtype != torch.float32
                        or g.is_sparse):
                    return None
                for target, t in zip(lists, (p, g, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                    target.append(t)
            if lists[0]:
                calls.append((group, *lists))
        return calls


__all__ = ["FusedAdam", "plain_update"]
