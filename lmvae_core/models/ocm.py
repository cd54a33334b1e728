"""OCM: online cooperative memorization for task-free continual VAE learning (Ye & Bors, ECCV 2022).

A stream of fixed-size batches arrives with no task labels. Every batch is appended to a short-term
memory (STM); the model trains on STM u LTM after every arriving batch. When the STM is full, a
selection moves samples into the long-term memory (LTM) by a kernel score on the encoder means
(every component's means concatenated): each STM sample's score is its mean kernel similarity to the
LTM. The *direction* of the criterion is a parameter:

- ``direction="diverse"`` (the paper's intent): keep samples whose score is below lambda1, lowest first;
- ``direction="similar"`` (the official code): keep samples whose score is above lambda1, highest first.

At most ``per_round`` samples pass per round, and the LTM never exceeds ``ltm_capacity``; the STM is
cleared afterwards. ``memory="reservoir"`` replaces the selection by reservoir sampling over the whole
stream into a memory of the same kind (the VAE-ELBO-Random baseline).

Dynamic-OCM: after each selection, R = the mean IWAE log-likelihood of STM u LTM (averaged over
components); if |R - R_last| > lambda2 (strictly) and fewer than ``max_components`` exist, a new
component is added, every earlier component (and the shared first layers) is frozen and leaves the
optimiser, and the LTM is cleared.

Network (as the official code): x -> shared dense(hidden, tanh) -> per-component dense(hidden, tanh) ->
(mu, log sigma^2); z -> shared dense(hidden, tanh) -> per-component dense(hidden, relu) -> Bernoulli logits.
All components are evaluated in one stacked computation (weights stacked along a leading K axis, one
batched matmul per layer), never a Python loop per image or per component.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import register_model
from ..training.loop import TrainConfig, check_finite, make_optimizer
from ..metrics.loglik import iwae_log_likelihood
from .vae import LOG_2PI, standard_normal_log_prob

DIRECTIONS = ("diverse", "similar")
KERNELS = ("poster", "code")


@dataclass
class OCMConfig:
    input_dim: int = 784
    image_shape: tuple[int, ...] = (1, 28, 28)
    hidden: int = 200
    latent_dim: int = 50
    objective: str = "elbo"  # 'elbo' (ELBO averaged over train_samples) | 'iwae' (IWAE bound, train_samples)
    train_samples: int = 50
    # memory
    memory: str = "ocm"  # 'ocm' (kernel selection) | 'reservoir' (VAE-ELBO-Random baseline)
    stm_size: int = 512
    ltm_capacity: int = 2560
    per_round: int = 14
    direction: str = "diverse"  # 'diverse' (paper) | 'similar' (official code)
    kernel: str = "poster"  # 'poster': exp(-d^2 / (2 alpha^2)) | 'code': exp(-d / (sqrt(2) alpha))
    alpha: float = 10.0
    lambda1: float = 0.5
    # dynamic expansion
    dynamic: bool = False
    lambda2: float = 10.0
    max_components: int = 30
    r_samples: int = 1000  # IWAE samples for R
    # After a component is added, R_last is measured afresh at the next round instead of being compared
    # (otherwise the fresh, untrained component's low likelihood alone triggers the next expansion).
    r_reset_on_expand: bool = True
    # training schedule
    epochs_per_batch: int = 100
    batch_size: int = 64
    lr: float = 1e-4
    beta1: float = 0.5

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        if self.objective not in ("elbo", "iwae"):
            raise ValueError(f"objective must be 'elbo' or 'iwae', got {self.objective!r}")
        if self.memory not in ("ocm", "reservoir"):
            raise ValueError(f"memory must be 'ocm' or 'reservoir', got {self.memory!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if min(self.stm_size, self.ltm_capacity, self.per_round, self.max_components, self.train_samples) < 1:
            raise ValueError("stm_size, ltm_capacity, per_round, max_components and train_samples must be >= 1")


# -- the memory rules, as plain functions (tested on constructed cases) ---------------------------
def kernel_scores(stm_emb: torch.Tensor, ltm_emb: torch.Tensor, kernel: str = "poster",
                  alpha: float = 10.0) -> torch.Tensor:
    """Each STM sample's mean kernel similarity to the LTM samples: shape [n_stm]."""
    d = torch.cdist(stm_emb, ltm_emb)
    if kernel == "poster":
        k = torch.exp(-d.pow(2) / (2 * alpha ** 2))
    elif kernel == "code":
        k = torch.exp(-d / (math.sqrt(2) * alpha))
    else:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return k.mean(1)


def select_indices(scores: torch.Tensor, lambda1: float, direction: str, per_round: int, room: int) -> torch.Tensor:
    """Indices of the STM samples that pass to the LTM (best first).

    diverse: score < lambda1, lowest score first; similar: score > lambda1, highest first.
    At most min(per_round, room) pass."""
    if direction == "diverse":
        passing = (scores < lambda1).nonzero().squeeze(1)
        order = passing[scores[passing].argsort()]
    elif direction == "similar":
        passing = (scores > lambda1).nonzero().squeeze(1)
        order = passing[scores[passing].argsort(descending=True)]
    else:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return order[: max(0, min(per_round, room))]


def reservoir_update(slots: torch.Tensor, seen: int, n_new: int, capacity: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Algorithm R over n_new arriving items. `slots` holds the stream positions in memory.

    Returns the new slots and the moves (slot index, arriving item index 0..n_new-1) to apply; an
    item keeps its place in memory with probability capacity / (items seen so far)."""
    slots = slots.clone()
    moves = []
    for i in range(n_new):
        pos = seen + i  # 0-based stream position of this item
        if len(slots) < capacity:
            slots = torch.cat([slots, slots.new_tensor([pos])])
            moves.append((len(slots) - 1, i))
        else:
            j = int(torch.randint(pos + 1, (1,), generator=generator))
            if j < capacity:
                slots[j] = pos
                moves.append((j, i))
    return slots, moves


# -- the network --------------------------------------------------------------------------------
class Component(nn.Module):
    """One component's own layers (the shared first layers live in OCM)."""

    def __init__(self, hidden: int, latent: int, out_dim: int):
        super().__init__()
        self.enc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 2 * latent)
        self.dec2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, out_dim)


LAYERS = ("enc2", "head", "dec2", "out")


def _apply(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h [K, ..., in] with stacked weights w [K, out, in], b [K, out] -> [K, ..., out]."""
    k = h.shape[0]
    flat = h.reshape(k, -1, h.shape[-1])
    y = torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return y.reshape(*h.shape[:-1], w.shape[1])


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over pixels; x [B, D] broadcast against logits [..., B, D]."""
    return (x * logits - F.softplus(logits)).sum(-1)


@register_model
class OCM(nn.Module):
    config_class = OCMConfig

    def __init__(self, config: OCMConfig | None = None, n_components: int = 1, **kwargs):
        super().__init__()
        self.config = c = config or OCMConfig(**kwargs)
        self.enc1 = nn.Linear(c.input_dim, c.hidden)
        self.dec1 = nn.Linear(c.latent_dim, c.hidden)
        self.components = nn.ModuleList([Component(c.hidden, c.latent_dim, c.input_dim)
                                         for _ in range(n_components)])
        self._apply_freezing()

    # -- structure ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.components)

    def spec(self) -> dict:
        return {"config": asdict(self.config), "n_components": len(self)}

    @classmethod
    def from_spec(cls, spec: dict) -> "OCM":
        return cls(OCMConfig(**spec["config"]), n_components=spec["n_components"])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._apply_freezing()
        return result

    def _apply_freezing(self) -> None:
        """Only the newest component trains; the shared first layers train while it is the only one."""
        k = len(self)
        for p in (*self.enc1.parameters(), *self.dec1.parameters()):
            p.requires_grad_(k == 1)
        for i, comp in enumerate(self.components):
            for p in comp.parameters():
                p.requires_grad_(i == k - 1)

    def add_component(self) -> int:
        device = self.enc1.weight.device
        self.components.append(Component(self.config.hidden, self.config.latent_dim, self.config.input_dim).to(device))
        self._apply_freezing()
        return len(self) - 1

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _stack(self, ids: Sequence[int]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        comps = [self.components[i] for i in ids]
        if len(comps) == 1:
            c = comps[0]
            return {n: (getattr(c, n).weight.unsqueeze(0), getattr(c, n).bias.unsqueeze(0)) for n in LAYERS}
        return {n: (torch.stack([getattr(c, n).weight for c in comps]), torch.stack([getattr(c, n).bias for c in comps]))
                for n in LAYERS}

    def _ids(self, ids) -> list[int]:
        return list(range(len(self))) if ids is None else list(ids)

    # -- batched pieces: outputs carry a leading component axis K ---------------------------------
    def encode(self, x: torch.Tensor, ids: Sequence[int] | None = None, _w=None):
        """x [B, ...] -> mu, logvar [K, B, latent]."""
        w = _w or self._stack(self._ids(ids))
        h1 = torch.tanh(self.enc1(x.flatten(1)))
        k = w["enc2"][0].shape[0]
        h2 = torch.tanh(_apply(h1.expand(k, *h1.shape), *w["enc2"]))
        mu, logvar = _apply(h2, *w["head"]).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor, ids: Sequence[int] | None = None, _w=None) -> torch.Tensor:
        """z [K, ..., latent] -> Bernoulli logits [K, ..., D]."""
        w = _w or self._stack(self._ids(ids))
        d1 = torch.tanh(self.dec1(z))
        return _apply(torch.relu(_apply(d1, *w["dec2"])), *w["out"])

    def log_weights(self, x: torch.Tensor, k: int, ids: Sequence[int] | None = None, _w=None) -> torch.Tensor:
        """log p(x, z) - log q(z|x) for k samples per image and component: [K, k, B]."""
        w = _w or self._stack(self._ids(ids))
        mu, logvar = self.encode(x, _w=w)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(mu.shape[0], k, *mu.shape[1:], device=mu.device)
        z = mu.unsqueeze(1) + eps * std.unsqueeze(1)
        logits = self.decode_logits(z, _w=w)
        log_px = bernoulli_log_prob(x.flatten(1), logits)
        log_pz = standard_normal_log_prob(z)
        log_qz = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)
        return log_px + log_pz - log_qz

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The training objective of the newest component on a batch."""
        c = self.config
        lw = self.log_weights(x, c.train_samples, ids=[len(self) - 1])[0]  # [S, B]
        if c.objective == "elbo":
            bound = lw.mean(0)
        else:
            bound = torch.logsumexp(lw, 0) - math.log(c.train_samples)
        loss = -bound.mean()
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def iwae_per_component(self, x: torch.Tensor, k: int, ids: Sequence[int] | None = None,
                           batch_size: int = 250, budget: int = 4_000_000) -> torch.Tensor:
        """IWAE-k bound of every component for every image, in one stacked computation: [K, N]."""
        w = self._stack(self._ids(ids))
        n_k = w["out"][0].shape[0]
        chunk = max(1, min(k, budget // (n_k * min(batch_size, x.shape[0]) * x[0].numel())))
        return iwae_log_likelihood(lambda xb, kk: self.log_weights(xb, kk, _w=w), x, k, batch_size=batch_size,
                                   chunk=chunk, sample_dim=1)

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor, ids: Sequence[int] | None = None) -> torch.Tensor:
        """Squared error of every component's reconstruction at the posterior mean: [K, N]."""
        w = self._stack(self._ids(ids))
        mu, _ = self.encode(x, _w=w)
        rec = torch.sigmoid(self.decode_logits(mu, _w=w))
        return (rec - x.flatten(1)).pow(2).sum(-1)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, ids: Sequence[int] | None = None) -> torch.Tensor:
        """Every component's reconstruction: [K, N, C, H, W]."""
        w = self._stack(self._ids(ids))
        mu, _ = self.encode(x, _w=w)
        return torch.sigmoid(self.decode_logits(mu, _w=w)).view(mu.shape[0], x.shape[0], *self.config.image_shape)

    @torch.no_grad()
    def sample_per_component(self, n: int, seed: int = 0) -> torch.Tensor:
        """n prior samples from every component (the same z for all): [K, n, C, H, W]."""
        g = torch.Generator(device="cpu").manual_seed(seed)
        z = torch.randn(n, self.config.latent_dim, generator=g).to(self.enc1.weight.device)
        k = len(self)
        img = torch.sigmoid(self.decode_logits(z.expand(k, *z.shape)))
        return img.view(k, n, *self.config.image_shape)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder means of all components, concatenated: [N, K * latent]."""
        mu, _ = self.encode(x)
        return mu.permute(1, 0, 2).reshape(x.shape[0], -1)


# -- the online learner -------------------------------------------------------------------------
class OCMLearner:
    """Runs OCM (or the reservoir baseline) over a task-free stream of batches.

    `observe(x, y)` takes one arriving batch: STM append, training on STM u LTM, then, when the STM is
    full, selection, the expansion check and clearing of the STM. Labels y are only recorded."""

    def __init__(self, model: OCM, seed: int = 0, device: torch.device | str | None = None):
        self.model, self.config = model, model.config
        self.device = torch.device(device) if device is not None else model.enc1.weight.device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        d = self.config.image_shape
        self.stm_x = torch.empty(0, *d, device=self.device)
        self.stm_y = torch.empty(0, dtype=torch.long, device=self.device)
        self.ltm_x = torch.empty(0, *d, device=self.device)
        self.ltm_y = torch.empty(0, dtype=torch.long, device=self.device)
        self.ltm_pos = torch.empty(0, dtype=torch.long)  # stream positions (reservoir bookkeeping)
        self.seen = 0
        self.batches = 0
        self.r_last: float | None = None
        self.optimizer = self._optimizer()
        self.history: list[dict] = []  # one row per arriving batch
        self.selections: list[dict] = []  # one row per selection round
        self.expansions: list[int] = []  # batch index at which a component was added
        self.steps = 0

    def _optimizer(self):
        c = self.config
        return make_optimizer(self.model.trainable_parameters(), TrainConfig(lr=c.lr, betas=(c.beta1, 0.999)))

    # -- training ---------------------------------------------------------------------------------
    def train_memory(self, epochs: int | None = None) -> float:
        c = self.config
        data = torch.cat([self.stm_x, self.ltm_x])
        n = data.shape[0]
        # The loss is summed on the device and checked once per arriving batch: no host sync per step, so a
        # GPU queues the whole schedule (the paper's 100 passes per batch) without stalling.
        total, count = torch.zeros((), device=self.device), 0
        self.model.train()
        for _ in range(c.epochs_per_batch if epochs is None else epochs):
            xb_all = torch.bernoulli(data)
            order = torch.randperm(n, generator=self.generator).to(self.device, non_blocking=True)
            for s in range(0, n, c.batch_size):
                loss, _ = self.model.loss(xb_all[order[s:s + c.batch_size]])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.detach()
                count += 1
                self.steps += 1
        self.model.eval()
        mean = total / max(count, 1)
        check_finite(mean, {"mean loss": mean}, self.steps)
        return float(mean)

    # -- memory -------------------------------------------------------------------------------------
    def select(self) -> dict:
        """Move STM samples into the LTM by the configured rule; returns what happened (STM not yet cleared)."""
        c = self.config
        n_stm = self.stm_x.shape[0]
        info = {"scores_mean": float("nan"), "added": 0}
        if c.memory == "reservoir":
            slots, moves = reservoir_update(self.ltm_pos, self.seen - n_stm, n_stm, c.ltm_capacity, self.generator)
            for slot, i in moves:
                if slot >= self.ltm_x.shape[0]:
                    self.ltm_x = torch.cat([self.ltm_x, self.stm_x[i:i + 1]])
                    self.ltm_y = torch.cat([self.ltm_y, self.stm_y[i:i + 1]])
                else:
                    self.ltm_x[slot] = self.stm_x[i]
                    self.ltm_y[slot] = self.stm_y[i]
            self.ltm_pos = slots
            info["added"] = len(moves)
            return info
        room = c.ltm_capacity - self.ltm_x.shape[0]
        if room <= 0:
            return info
        if self.ltm_x.shape[0] == 0:
            # Nothing to compare with yet: the first round takes per_round STM samples at random.
            chosen = torch.randperm(n_stm, generator=self.generator)[: min(c.per_round, room)].to(self.device)
        else:
            scores = kernel_scores(self.model.embed(self.stm_x), self.model.embed(self.ltm_x), c.kernel, c.alpha)
            chosen = select_indices(scores, c.lambda1, c.direction, c.per_round, room)
            info["scores_mean"] = float(scores.mean())
            info["scores_min"], info["scores_max"] = float(scores.min()), float(scores.max())
            info["passing"] = int(((scores < c.lambda1) if c.direction == "diverse" else (scores > c.lambda1)).sum())
        self.ltm_x = torch.cat([self.ltm_x, self.stm_x[chosen]])
        self.ltm_y = torch.cat([self.ltm_y, self.stm_y[chosen]])
        info["added"] = int(chosen.numel())
        return info

    def memory_loglik(self) -> float:
        """R: mean IWAE log-likelihood of STM u LTM, averaged over components."""
        data = torch.bernoulli(torch.cat([self.stm_x, self.ltm_x]), generator=None)
        return float(self.model.iwae_per_component(data, self.config.r_samples).mean())

    def maybe_expand(self, r: float) -> bool:
        """|R - R_last| > lambda2 (strictly) adds a component, freezes the rest and clears the LTM."""
        c = self.config
        grow = (self.r_last is not None and abs(r - self.r_last) > c.lambda2 and len(self.model) < c.max_components)
        self.r_last = None if (grow and c.r_reset_on_expand) else r
        if grow:
            self.model.add_component()
            self.optimizer = self._optimizer()  # frozen parameters leave the optimiser
            self.ltm_x, self.ltm_y = self.ltm_x[:0], self.ltm_y[:0]
            self.ltm_pos = self.ltm_pos[:0]
            self.expansions.append(self.batches)
        return grow

    def observe(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        c = self.config
        y = torch.full((x.shape[0],), -1, dtype=torch.long, device=self.device) if y is None else y
        self.stm_x = torch.cat([self.stm_x, x.to(self.device)])
        self.stm_y = torch.cat([self.stm_y, y.to(self.device)])
        self.seen += x.shape[0]
        self.batches += 1
        loss = self.train_memory()
        row = {"batch": self.batches, "seen": self.seen, "loss": loss, "stm": int(self.stm_x.shape[0]),
               "components": len(self.model)}
        if self.stm_x.shape[0] >= c.stm_size:
            info = self.select()
            if c.dynamic:
                r = self.memory_loglik()
                info["R"] = r
                info["expanded"] = self.maybe_expand(r)
            self.stm_x, self.stm_y = self.stm_x[:0], self.stm_y[:0]
            info |= {"batch": self.batches, "ltm": int(self.ltm_x.shape[0]), "components": len(self.model),
                     "ltm_labels": self.ltm_y.cpu()}
            self.selections.append(info)
        row |= {"ltm": int(self.ltm_x.shape[0]), "components_after": len(self.model)}
        self.history.append(row)
        return row

    @property
    def memory_size(self) -> int:
        return int(self.ltm_x.shape[0])


__all__ = ["OCM", "OCMConfig", "OCMLearner", "kernel_scores", "select_indices", "reservoir_update"]
