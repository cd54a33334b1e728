"""Single-VAE learners and the offline mixture: fine-tuning, generative replay (plain or binarized VAE),
the jointly trained VAE, and the mixture of VAEs with a manager (MoE-VAE), plus the mixture density
every multi-expert learner is evaluated with.

Generative replay (Shin et al. 2017, generator only): on task t every step takes the driver's full real
batch B and B images Bernoulli-sampled from a frozen copy of the model after task t-1; the loss is
(L(real) + t L(replayed)) / (t + 1). The replayed rows are counted on top of the real budget.
"""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from ..data.preprocess import binarize_dynamic
from ..metrics import iwae_log_likelihood, mixture_log_likelihood
from ..models.binarized import BinarizedVAE, BinarizedVAEConfig
from ..models.mixture import ExpertMixture
from ..models.moe_vae import MoEVAE, MoEVAEConfig
from ..models.vae import VAE, VAEConfig
from ..training.loop import make_optimizer
from .base import BaseLearner, TaskData, count_params, frozen_copy


def _generator(module: nn.Module, seed: int) -> torch.Generator:
    return torch.Generator(device=next(module.parameters()).device).manual_seed(seed)


def draw_counts(weights: torch.Tensor, n: int, seed: int) -> list[int]:
    """How many of n samples each mixture component draws, multinomial in its weight (seeded)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.multinomial(weights.float().cpu() / weights.sum(), n, replacement=True, generator=g)
    return torch.bincount(idx, minlength=len(weights)).tolist()


def experts_log_likelihood(mixture: ExpertMixture, ids: list[int], weights: torch.Tensor, x: torch.Tensor, k: int,
                           batch_size: int = 500) -> torch.Tensor:
    """log sum_i w_i p_i(x) over the experts `ids` of a mixture, each p_i(x) the expert's IWAE-k estimate, all
    experts in one batched computation."""
    chunk = max(1, min(k, 2_500_000 // (len(ids) * min(batch_size, len(x)) * x[0].numel())))
    per = iwae_log_likelihood(lambda xb, kk: mixture.all_experts(xb, op="log_weights", ids=ids, k=kk), x, k,
                              batch_size=batch_size, chunk=chunk, sample_dim=1)
    return mixture_log_likelihood(per, weights)


def experts_sample(experts: list[VAE], weights: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = _generator(experts[0], seed)
    return torch.cat([e.sample(c, generator=g) for e, c in zip(experts, draw_counts(weights, n, seed)) if c])


def replay_loss(learner: "SequentialVAE", old: nn.Module, t: int):
    """(L(real batch) + t L(batch sampled from `old`)) / (t + 1); counts the replayed rows."""
    model = learner.model

    def loss_fn(batch):
        with torch.no_grad():
            replay = binarize_dynamic(old.sample(batch.shape[0]))
        learner.replayed_rows += batch.shape[0]
        cur, terms = model.loss(batch)
        rep, _ = model.loss(replay)
        return (cur + t * rep) / (t + 1), terms | {"replay_loss": rep.detach()}

    return loss_fn


class SequentialVAE(BaseLearner):
    """One VAE (a BinarizedVAE when the config is a BinarizedVAEConfig) trained task after task: plain
    fine-tuning, or generative replay with replay=True. A fresh optimiser per task."""

    def __init__(self, config: VAEConfig, replay: bool = False, device="cpu", **common):
        super().__init__(device, **common)
        self.config, self.replay = config, replay
        self.init_args = {"config": config, "replay": replay, **self.common_args()}
        cls = BinarizedVAE if isinstance(config, BinarizedVAEConfig) else VAE
        self.model = cls(config).to(self.device)
        self.old = None

    def fit_task(self, task: TaskData) -> dict:
        t = self.tasks_done
        loss_fn = replay_loss(self, self.old, t) if self.replay and self.old is not None else self.model.loss
        history = self.fit(task, loss_fn, make_optimizer(self.model.parameters(), self.optim), self.model)
        if self.replay:
            self.old = frozen_copy(self.model)
        self.tasks_done += 1
        return {"history": history}

    def after_load(self) -> None:
        self.old = frozen_copy(self.model) if self.replay and self.tasks_done else None

    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return iwae_log_likelihood(self.model, x, k=k)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.model.sample(n, generator=_generator(self.model, seed))


class JointVAE(SequentialVAE):
    """The upper bound: one VAE trained on the union of all tasks at once (the driver hands it one task)."""
    kind = "offline"

    def __init__(self, config: VAEConfig, device="cpu", **common):
        super().__init__(config, replay=False, device=device, **common)
        self.init_args.pop("replay")

    def fit_task(self, task: TaskData) -> dict:
        self._memory_images = task.x.shape[0]
        return super().fit_task(task)


class MixtureOfVAEs(BaseLearner):
    """The mixture of VAEs with a manager (notebook 00), trained offline on all data. As a density it is
    sum_k pi_k p_k(x), pi the manager's average routing on the (binarised) training images."""
    kind = "offline"

    def __init__(self, config: MoEVAEConfig, device="cpu", **common):
        super().__init__(device, **common)
        self.init_args = {"config": config, **self.common_args()}
        self.model = MoEVAE(config).to(self.device)
        self.usage = torch.full((config.n_experts,), 1.0 / config.n_experts)

    def fit_task(self, task: TaskData) -> dict:
        history = self.fit(task, self.model.loss, make_optimizer(self.model.parameters(), self.optim), self.model)
        x = task.x
        with torch.no_grad():
            gates = [self.model.gate(binarize_dynamic(x[i:i + 2000])) for i in range(0, len(x), 2000)]
        self.usage = torch.cat(gates).mean(0).cpu()
        self._memory_images = x.shape[0]
        self.tasks_done += 1
        return {"history": history, "usage": self.usage}

    def state(self) -> dict:
        return super().state() | {"usage": self.usage}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.usage = state["usage"]

    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return experts_log_likelihood(self.model.experts, list(range(len(self.model.experts))), self.usage, x, k)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return experts_sample(list(self.model.experts.experts), self.usage, n, seed)


def binarized_config(config: VAEConfig, r: float) -> BinarizedVAEConfig:
    return BinarizedVAEConfig(**asdict(config), r=r)


__all__ = ["SequentialVAE", "JointVAE", "MixtureOfVAEs", "replay_loss", "draw_counts", "experts_log_likelihood",
           "experts_sample", "binarized_config", "count_params"]
