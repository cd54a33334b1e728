"""Mixture of VAEs with a manager (notebook 00): Mixture of Experts with x -> x instead of x -> y.

A manager maps each image to a softmax p(x) over K VAE experts; the loss per image is
sum_k p_k(x) * L_k(x), L_k the negative ELBO of expert k. Differentiating it, the manager shifts
probability to the experts that model an image best and each expert learns most from the images
routed to it, so experts specialise. Without a balancing term the manager can collapse onto one
expert; the balancing term pushes the batch-average of p towards uniform.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..nets import mlp
from .base import register_model
from .configured import Configured
from .mixture import ExpertMixture
from .vae import VAE, VAEConfig

BALANCES = ("kl", "cv", "none")


@dataclass
class MoEVAEConfig:
    n_experts: int = 10
    expert: VAEConfig = field(default_factory=lambda: VAEConfig(latent_dim=10, hidden=(256,)))
    manager_hidden: tuple[int, ...] = (256,)
    balance: str = "kl"  # 'kl': KL(mean_batch p || uniform); 'cv': squared coefficient of variation; 'none'
    balance_weight: float = 100.0  # in nats per image, the unit of the expert losses

    def __post_init__(self):
        if isinstance(self.expert, dict):
            self.expert = VAEConfig(**self.expert)
        self.manager_hidden = tuple(self.manager_hidden)
        if self.balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}, got {self.balance!r}")
        if self.n_experts < 1:
            raise ValueError("n_experts must be >= 1")


def balance_penalty(p: torch.Tensor, kind: str) -> torch.Tensor:
    """How far the batch-average gate p.mean(0) is from uniform use of the experts."""
    usage = p.mean(0)
    k = p.shape[1]
    if kind == "kl":
        return (usage * (usage.clamp_min(1e-12) * k).log()).sum()
    if kind == "cv":
        return usage.var(unbiased=False) / usage.mean().pow(2)
    return p.new_zeros(())


@register_model
class MoEVAE(Configured):
    config_class = MoEVAEConfig
    # The loss reads nothing from the host (the experts' noise is drawn on the device, the gate and the balancing
    # term are tensor ops), so train() may replay its whole step as a CUDA graph (training/graphs.py).
    graph_safe = True

    def build(self, c: MoEVAEConfig) -> None:
        self.manager = nn.Sequential(nn.Flatten(), mlp([math.prod(c.expert.input_shape), *c.manager_hidden,
                                                        c.n_experts], "relu"))
        self.experts = ExpertMixture(lambda: VAE(c.expert), c.n_experts)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """p(x): the manager's softmax over experts, [B, K]."""
        return torch.softmax(self.manager(x), dim=-1)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p = self.gate(x)
        per_expert = self.experts.all_experts(x)["loss"].T  # [B, K]
        mixture = (p * per_expert).sum(1).mean()
        balance = balance_penalty(p, self.config.balance)
        loss = mixture + self.config.balance_weight * balance
        usage = p.mean(0)
        entropy = -(usage * usage.clamp_min(1e-12).log()).sum()
        return loss, {"loss": loss, "mixture_nelbo": mixture, "balance": balance, "usage_entropy": entropy}

    @torch.no_grad()
    def assign(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """The expert the manager routes each image to (argmax p): an unsupervised cluster label."""
        return torch.cat([self.gate(x[s:s + batch_size]).argmax(1) for s in range(0, x.shape[0], batch_size)])

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """Importance weights [k, B] of the expert each image is routed to (only that expert runs),
        for the IWAE estimate of log p(x) under the routed expert."""
        choice = self.assign(x)
        out = x.new_empty((k, x.shape[0]))
        for e in choice.unique().tolist():
            rows = (choice == e).nonzero().squeeze(1)
            out[:, rows] = self.experts.experts[e].log_weights(x[rows], k)
        return out

    @torch.no_grad()
    def expert_losses(self, x: torch.Tensor, draws: int = 4, batch_size: int = 1000) -> torch.Tensor:
        """Each expert's negative ELBO of each image, averaged over `draws` posterior samples: [B, K]."""
        out = []
        for s in range(0, x.shape[0], batch_size):
            xb = x[s:s + batch_size]
            out.append(torch.stack([self.experts.all_experts(xb)["loss"] for _ in range(draws)]).mean(0).T)
        return torch.cat(out)

    @torch.no_grad()
    def routing_diagnostics(self, x: torch.Tensor, draws: int = 4, batch_size: int = 1000) -> dict[str, torch.Tensor]:
        """What the objective sum_k p_k L_k makes of the gate, per image: the manager's choice (argmax p), the
        experts' own choice (argmin_k L_k, the hard-EM assignment) and the gate's largest probability.

        When the manager routes to the lowest-loss expert and its gate is nearly one-hot, training is hard EM over
        the experts' pixel-space likelihoods, and its clusters are what those likelihoods separate."""
        gate = torch.cat([self.gate(x[s:s + batch_size]) for s in range(0, x.shape[0], batch_size)])
        lowest = self.expert_losses(x, draws, batch_size).argmin(1)
        return {"routed": gate.argmax(1), "lowest_loss": lowest, "max_gate": gate.max(1).values}

    @torch.no_grad()
    def likelihoods(self, x: torch.Tensor, k: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """Per-image IWAE-k log-likelihoods (nats) [N] under four readings of the mixture.

        - 'mixture': log (1/K) sum_k p_k(x), a valid density (a lower bound on it, each p_k an IWAE bound);
        - 'routed': the expert the manager picks; the gate does not see the draw, but picking by x is no density:
          it can exceed the mixture by up to log K;
        - 'best_same_draw': the best expert per image, picked and scored with the same draw (noise-selected upward);
        - 'best_redrawn': picked with one draw, scored with an independent second draw (the official OCM code's way).
        """
        from ..metrics.loglik import iwae_log_likelihood  # here: metrics imports models

        def per_expert(draw_seed: int) -> torch.Tensor:
            fn = lambda xb, kk: self.experts.all_experts(xb, op="log_weights", k=kk)  # noqa: E731
            return iwae_log_likelihood(fn, x, k=k, generator_seed=draw_seed, sample_dim=1)  # [K, N]

        first, second = per_expert(seed), per_expert(seed + 1)
        rows = torch.arange(x.shape[0], device=x.device)
        pick = first.argmax(0)
        return {"mixture": torch.logsumexp(first, 0) - math.log(first.shape[0]),
                "routed": first[self.assign(x), rows],
                "best_same_draw": first[pick, rows],
                "best_redrawn": second[pick, rows]}

    @torch.no_grad()
    def sample_per_expert(self, n: int, seed: int = 0) -> torch.Tensor:
        """n samples from each expert: [K, n, C, H, W]."""
        g = torch.Generator(device=next(self.parameters()).device).manual_seed(seed)
        return torch.stack([e.sample(n, generator=g) for e in self.experts.experts])
