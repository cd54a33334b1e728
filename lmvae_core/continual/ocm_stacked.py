"""The seeds of an OCM method as one computation: S learners, each with its own memory and selection, whose
memory training (the paper's 100 passes over STM u LTM after every arriving batch) runs as one stacked step.

Why: at the paper's schedule OCM's memory training is most of the paper profile's cost, and its step is small
(784-200-200-50, minibatches of 64): on a GPU it is bound by kernel launches, so S seeds stacked along a leading
axis cost about what one does. The memory, the kernel selection, R and the expansion stay per learner (a
handful of operations per arriving batch): only the passes are stacked.

How a stacked round matches S separate runs:
- each member is an `OCMLearner(own_noise=True)`: its binarisations, reparameterisation noise and a new
  component's weights come from its own generators, so the order in which the stack draws for its members
  changes nothing;
- the members' weights (the shared first layers and the newest component: what the loss reads) are stacked,
  the loss is `models.ocm.member_log_weights` with the member axis in place of the component axis, and the
  members' losses are summed, so each member's gradient is its own;
- memories differ in size (the kernel rule admits a different number per round), so a pass runs as many steps
  as the largest memory needs: a member's short last minibatch is padded and masked (its loss is the mean over
  its own rows), and a member whose pass has ended sits the step out (no Adam update, no step count);
- Adam is torch's fused kernel called on each active member's slices of the stacks, with that member's own step
  counts and moments: the very update its own optimiser would make;
- before the passes the members' weights and Adam state are gathered into the stacks, after them written back,
  so everything else (selection, R, expansion, saving, resuming) is the learners' own code.

Members stack only where their shapes agree: the same component count (hence the same frozen layers). A member
alone in its shape trains through its own eager loop. The stacked values equal the separate runs' up to float
rounding (a batched product sums in another order): tests/test_ocm_stacked.py holds them within 1e-5.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Sequence

import torch

from ..data.preprocess import binarize_dynamic
from ..data.streams import take_rows
from ..models.ocm import OCM, OCMConfig, member_log_weights, training_bound
from ..training.step import NonFiniteLossError
from .ocm import OCMLearner


@contextmanager
def _seeded(seed: int):
    """The process's random numbers seeded for one member's construction, and restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def own_noise_learners(config: OCMConfig, seeds: Sequence[int], device: torch.device | str = "cpu"
                       ) -> list[OCMLearner]:
    """One `OCMLearner(own_noise=True)` per seed, each initialised from torch.manual_seed(seed): the members of a
    `StackedOCM`, and (built again) the separate runs it is tested against."""
    learners = []
    for seed in seeds:
        with _seeded(seed):
            learners.append(OCMLearner(OCM(config), seed=seed, device=device, own_noise=True))
    return learners


class StackedOCM:
    """S OCM learners that observe their streams in lockstep; `observe` takes one arriving batch per member."""

    def __init__(self, members: Sequence[OCMLearner]):
        if not members:
            raise ValueError("StackedOCM needs at least one learner")
        if any(m.noise is None for m in members):
            raise ValueError("stacked learners must draw their own noise: build them with OCMLearner(own_noise=True) "
                             "(or own_noise_learners)")
        if len({m.device for m in members}) > 1:
            raise ValueError("stacked learners must live on one device")
        self.members = list(members)
        self.device = members[0].device

    @classmethod
    def from_config(cls, config: OCMConfig, seeds: Sequence[int], device: torch.device | str = "cpu") -> "StackedOCM":
        return cls(own_noise_learners(config, seeds, device))

    def __len__(self) -> int:
        return len(self.members)

    def observe(self, batches: Sequence[torch.Tensor], labels: Sequence[torch.Tensor | None] | None = None
                ) -> list[dict]:
        """Each member's `OCMLearner.observe` on its own batch, with the training passes stacked."""
        if len(batches) != len(self.members):
            raise ValueError(f"one batch per member: got {len(batches)} for {len(self.members)} learners")
        labels = [None] * len(batches) if labels is None else labels
        for m, x, y in zip(self.members, batches, labels):
            m.arrive(x, y)
        losses = self.train_memory()
        return [m.after_training(loss) for m, loss in zip(self.members, losses)]

    def shape_groups(self) -> list[list[int]]:
        """Member indices grouped by what the stacked step needs to agree: the component count."""
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(self.members):
            groups.setdefault(len(m.model), []).append(i)
        return list(groups.values())

    def train_memory(self) -> list[float]:
        """Every member's passes over its STM u LTM; returns each member's mean loss over its steps."""
        losses = [float("nan")] * len(self.members)
        for group in self.shape_groups():
            members = [self.members[i] for i in group]
            values = [members[0].train_memory()] if len(members) == 1 else _StackedPasses(members).run()
            for i, v in zip(group, values):
                losses[i] = v
        return losses


class _StackedPasses:
    """One stacked round of memory training for members of one shape: gather, the passes, write back."""

    def __init__(self, members: list[OCMLearner]):
        self.members = members
        self.config = members[0].config
        step_shape = ("batch_size", "train_samples", "objective", "epochs_per_batch", "input_dim", "hidden",
                      "latent_dim", "lr", "beta1")
        differ = [f for f in step_shape if len({getattr(m.config, f) for m in members}) > 1]
        if differ:
            raise ValueError(f"stacked learners must share the step's shape and optimiser; they differ in {differ}")
        params = [m.model.newest_parameters() for m in members]
        self.names = list(params[0])
        self.trains = [n for n in self.names if params[0][n].requires_grad]
        with torch.no_grad():
            self.stack = {n: torch.stack([p[n] for p in params]).requires_grad_(n in self.trains) for n in self.names}
        self.params = params
        self.moments = self._gather_adam()

    # -- Adam state: each member's optimiser state for its trainable parameters, stacked ----------------------------
    def _gather_adam(self) -> dict[str, list[torch.Tensor]]:
        exp_avg, exp_avg_sq, steps = [], [], []
        for n in self.trains:
            states = [m.optimizer.state.get(p[n], {}) for m, p in zip(self.members, self.params)]
            zeros = torch.zeros_like(self.stack[n][0])
            exp_avg.append(torch.stack([s.get("exp_avg", zeros) for s in states]))
            exp_avg_sq.append(torch.stack([s.get("exp_avg_sq", zeros) for s in states]))
            # torch's fused Adam keeps each step count as a float32 tensor on the parameter's device
            steps.append([s["step"].clone() if "step" in s else torch.zeros((), device=zeros.device)
                          for s in states])
        return {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq, "steps": steps}

    def _write_back(self) -> None:
        with torch.no_grad():
            for s, (m, p) in enumerate(zip(self.members, self.params)):
                for i, n in enumerate(self.trains):
                    p[n].copy_(self.stack[n][s])
                    state = m.optimizer.state[p[n]]
                    state["step"] = self.moments["steps"][i][s]
                    state["exp_avg"] = self.moments["exp_avg"][i][s].clone()
                    state["exp_avg_sq"] = self.moments["exp_avg_sq"][i][s].clone()

    @torch.no_grad()
    def _adam(self, active: list[int]) -> None:
        group = self.members[0].optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        lists = [[], [], [], [], []]
        for i, n in enumerate(self.trains):
            grad = self.stack[n].grad
            for s in active:
                for target, t in zip(lists, (self.stack[n][s], grad[s].contiguous(), self.moments["exp_avg"][i][s],
                                             self.moments["exp_avg_sq"][i][s], self.moments["steps"][i][s])):
                    target.append(t)
        params, grads, exp_avgs, exp_avg_sqs, steps = lists
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)

    # -- the passes ---------------------------------------------------------------------------------------------------
    def run(self) -> list[float]:
        c, members, device = self.config, self.members, self.members[0].device
        data = [m.memory_data().flatten(1) for m in members]
        sizes = [d.shape[0] for d in data]
        bs = c.batch_size
        loss_sums = torch.zeros(len(members), device=device)
        steps = [0] * len(members)
        for _ in range(c.epochs_per_batch):
            # per member, as its own loop draws them: the pass's binarisation, then its batch order
            binary, orders = [], []
            for m, d, n in zip(members, data, sizes):
                binary.append(binarize_dynamic(d, m.noise))
                orders.append(torch.randperm(n, generator=m.generator).to(device, non_blocking=True))
            for start in range(0, max(sizes), bs):
                active = [s for s, n in enumerate(sizes) if start < n]
                loss = self._step(binary, orders, sizes, start, active)
                loss_sums += loss.detach()
                for s in active:
                    b = min(bs, sizes[s] - start)
                    steps[s] += 1
                    members[s].steps += 1
                    members[s].replayed_rows += b
        self._write_back()
        means = (loss_sums.cpu() / torch.tensor([max(n, 1) for n in steps])).tolist()
        for m, v in zip(members, means):
            if not math.isfinite(v):
                raise NonFiniteLossError(f"stacked OCM training (seed {m.seed}): mean loss {v} over an arriving "
                                         f"batch's passes")
        return [v if n else float("nan") for v, n in zip(means, steps)]

    def _step(self, binary, orders, sizes, start, active) -> torch.Tensor:
        """One stacked minibatch step; returns each member's loss (0 for a member sitting it out)."""
        c, device = self.config, self.members[0].device
        bs, k, latent = c.batch_size, c.train_samples, c.latent_dim
        counts = [max(0, min(bs, n - start)) for n in sizes]
        width = max(counts)
        if all(b == width for b in counts):
            x = torch.stack([take_rows(binary[s], orders[s][start:start + width]) for s in range(len(sizes))])
            eps = torch.stack([torch.randn(1, k, width, latent, device=device, generator=self.members[s].noise)[0]
                               for s in range(len(sizes))])
            mask = None
        else:
            x = torch.zeros(len(sizes), width, binary[0].shape[1], device=device)
            eps = torch.zeros(len(sizes), k, width, latent, device=device)
            mask = torch.zeros(len(sizes), width, device=device)
            for s in active:
                b = counts[s]
                x[s, :b] = take_rows(binary[s], orders[s][start:start + b])
                # the same call as the member's own loss makes, so its generator gives the same numbers
                eps[s, :, :b] = torch.randn(1, k, b, latent, device=device, generator=self.members[s].noise)[0]
                mask[s, :b] = 1.0
        bound = training_bound(member_log_weights(self.stack, x, eps).transpose(0, 1), c.objective)  # [S, B]
        if mask is None:
            loss = -bound.mean(1)
        else:
            loss = -(bound * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        for n in self.trains:
            self.stack[n].grad = None
        loss.sum().backward()
        self._adam(active)
        return loss


__all__ = ["StackedOCM", "own_noise_learners"]
