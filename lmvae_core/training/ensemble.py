"""S independent models of one architecture trained as one stacked computation (torch.func).

The members differ in their seed (initial weights, batch order, dynamic binarisation, the
reparameterisation noise) and optionally in their learning rate and KL weight (a grid of
hyperparameters). Their weights are stacked along a leading member axis (`stack_module_state`),
the shared model code runs once per step under `vmap` (`functional_call`), each member's batch is
gathered by index from the device data, and one optimiser steps every stack. Adam is elementwise,
so one Adam over the stacks is S separate Adams; the members' losses are summed, so each member's
gradient is its own.
The stacks of Linear weights are kept transposed ([S, in, out], the layout their gradients arrive in
under vmap; models/stacking.py) and read through a transposed view, so no gradient is copied per step.
For MLP VAEs on the CPU the step runs `fused_stack.terms` instead of the vmap (the same terms with
a hand-written backward; models/fused_stack.py).

Random numbers: member s draws everything from its own generators seeded with seeds[s], in a fixed
order (per epoch a permutation; per batch the Bernoulli binarisation, then the Gaussian noise).
`stacked=False` trains the members one after the other as plain modules with exactly those draws,
which is the reference the stacked path is tested (and benchmarked) against.

The models must follow the VAE interface: `terms(x, eps=...)` returning per-image 'loss', 'recon'
and 'kl', and `config.latent_dim`.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..data.preprocess import binarize_dynamic
from ..data.streams import take_rows
from ..models import fused_stack
from ..models.stacking import as_stacks, linear_weights, stored
from .loop import TrainConfig, binarized, make_optimizer
from .step import LossMonitor, train_step


def _member_loss(call: Callable, xb: torch.Tensor, eps: torch.Tensor, kl_weight):
    """One member's mean loss and terms; with a KL weight, loss = recon + kl_weight * kl."""
    t = call(xb, eps)
    loss = t["loss"] if kl_weight is None else t["recon"] + kl_weight * t["kl"]
    return loss.mean(), {k: v.mean() for k, v in t.items()}


class _MemberDraws:
    """One member's random numbers: batch order from a CPU generator (as `batch_indices`), Bernoulli
    binarisation and reparameterisation noise from a generator on the data's device."""

    def __init__(self, seed: int, device: torch.device):
        self.order = torch.Generator().manual_seed(seed)
        self.noise = torch.Generator(device=device).manual_seed(seed)

    def permutation(self, n: int, device) -> torch.Tensor:
        return torch.randperm(n, generator=self.order).to(device)

    def batch(self, xb: torch.Tensor, mode: str | None) -> torch.Tensor:
        return binarize_dynamic(xb, self.noise) if mode == "dynamic" else xb

    def eps(self, n: int, latent_dim: int, device) -> torch.Tensor:
        return torch.randn(n, latent_dim, generator=self.noise, device=device)


class StackedAdam(torch.optim.Optimizer):
    """Adam over stacked tensors with one learning rate per member (leading axis); the same update as
    torch.optim.Adam for each member (used when the members' learning rates differ)."""

    def __init__(self, params, lrs: Sequence[float], betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(list(params), {"betas": betas, "eps": eps})
        self.lrs = torch.tensor(list(lrs), dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p),
                                 lr=self.lrs.to(p.device, p.dtype).view(-1, *[1] * (p.dim() - 1)))
                state["step"] += 1
                state["m"].lerp_(p.grad, 1 - b1)
                state["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (state["v"].sqrt() / math.sqrt(1 - b2 ** state["step"])).add_(group["eps"])
                p.sub_(state["lr"] / (1 - b1 ** state["step"]) * state["m"] / denom)


def _clip_per_member(grads: list[torch.Tensor], max_norm: float) -> None:
    """clip_grad_norm_ applied to each member separately (norm over that member's rows of every stack)."""
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))


def train_ensemble(make_model: Callable[[], nn.Module], x: torch.Tensor, cfg: TrainConfig, seeds: Sequence[int],
                   lrs: Sequence[float] | None = None, kl_weights: Sequence[float] | None = None,
                   stacked: bool = True, history: list | None = None) -> list[nn.Module]:
    """Train len(seeds) members on images x (in [0,1]); returns them as ordinary modules.

    Member s is made by make_model() right after torch.manual_seed(seeds[s]). lrs and kl_weights
    (optional, one per member) form a hyperparameter grid. `history`, if given, receives one list of
    per-epoch mean loss terms per member."""
    seeds = [int(s) for s in seeds]
    n_members = len(seeds)
    if n_members == 0:
        raise ValueError("give at least one seed")
    lrs = [cfg.lr] * n_members if lrs is None else [float(v) for v in lrs]
    weights = [None] * n_members if kl_weights is None else [float(v) for v in kl_weights]
    if len(lrs) != n_members or len(weights) != n_members:
        raise ValueError(f"{n_members} seeds but {len(lrs)} learning rates and {len(weights)} KL weights")
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(make_model().to(x.device))
    draws = [_MemberDraws(seed, x.device) for seed in seeds]
    data = binarized(x, "static") if cfg.binarize == "static" else x
    mode = cfg.binarize if cfg.binarize == "dynamic" else None
    if stacked:
        runs = [_train_stacked(models, data, cfg, draws, lrs, weights, mode)]
    else:
        runs = [_train_stacked([m], data, cfg, [d], [lr], [w], mode, plain=True)
                for m, d, lr, w in zip(models, draws, lrs, weights)]
    if history is not None:
        history.extend(member for run in runs for member in run)
    for m in models:
        m.eval()
    return models


def _train_stacked(models, x, cfg, draws, lrs, weights, mode, plain: bool = False) -> list[list[dict]]:
    """The training loop for S members at once (plain=True: one member as an ordinary module)."""
    n, bs, device = x.shape[0], cfg.batch_size, x.device
    latent = models[0].config.latent_dim
    if plain:
        model, w = models[0], weights[0]
        model.train()
        optimizer = make_optimizer(model.parameters(), TrainConfig(lr=lrs[0], betas=cfg.betas))
        step_fn = None
    else:
        params, buffers = stack_module_state(models)
        transposed = linear_weights(models[0])
        kept = {k: stored(v.detach()).requires_grad_() if k in transposed else v for k, v in params.items()}

        def stacks():  # the stacks in the members' layout: a transposed view of each kept Linear weight
            return as_stacks(kept, transposed)

        template = copy.deepcopy(models[0]).to("meta")
        kl = None if weights[0] is None else torch.tensor(weights, device=device)
        optimizer = (make_optimizer(kept.values(), TrainConfig(lr=lrs[0], betas=cfg.betas))
                     if len(set(lrs)) == 1 else StackedAdam(kept.values(), lrs, cfg.betas))

        def one(p, b, xb, eps, w):
            return _member_loss(lambda xx, ee: functional_call(template, (p, b), (xx,), {"op": "terms", "eps": ee}),
                                xb, eps, w)

        batched = vmap(one, in_dims=(0, 0, 0, 0, None if kl is None else 0))
        fused = fused_stack.applies(models[0], x)

        def step_fn(batch):
            xb, eps = batch
            if fused:  # the same terms with a hand-written backward (CPU speed; models/fused_stack.py)
                t = fused_stack.terms(models[0], kept, xb, eps)  # as _member_loss, for every member at once
                loss = t["loss"] if kl is None else t["recon"] + kl[:, None] * t["kl"]
                losses, terms = loss.mean(1), {k: v.mean(1) for k, v in t.items()}
            else:
                losses, terms = batched(stacks(), buffers, xb, eps, kl)
            return losses.sum(), terms  # independent members: the sum's gradient is each member's own

        grads = list(kept.values())
    histories = [[] for _ in models]
    monitor = LossMonitor(cfg.check_every, where=lambda s: f"epoch {s // math.ceil(n / bs)}, step {s}")
    for epoch in range(cfg.epochs):
        order = torch.stack([d.permutation(n, device) for d in draws])  # [S, n]
        for start in range(0, n, bs):
            idx = order[:, start:start + bs]
            xb = torch.stack([d.batch(take_rows(x, i), mode) for d, i in zip(draws, idx)])
            eps = torch.stack([d.eps(idx.shape[1], latent, device) for d in draws])
            if plain:
                loss, terms = train_step(lambda b: _member_loss(
                    lambda xx, ee: model.terms(xx, eps=ee), b[0], b[1], w), (xb[0], eps[0]), optimizer,
                    grad_clip=cfg.grad_clip)
                terms = {k: v[None] for k, v in terms.items()}
            else:
                loss, terms = step_fn((xb, eps))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    _clip_per_member([p.grad for p in grads], cfg.grad_clip)
                optimizer.step()
                loss, terms = loss.detach(), {k: v.detach() for k, v in terms.items()}
            monitor.update(loss, terms)
        means = monitor.means_tensors()
        for s, h in enumerate(histories):
            h.append({k: float(v[s]) for k, v in means.items()})
    monitor.close()
    if not plain:
        with torch.no_grad():
            final = stacks()
            for s, m in enumerate(models):
                for name, t in [*m.named_parameters(), *m.named_buffers()]:
                    t.copy_((final if name in final else buffers)[name][s])
    return histories
