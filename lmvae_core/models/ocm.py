"""OCM: online cooperative memorization for task-free continual VAE learning (Ye & Bors, ECCV 2022).

A stream of fixed-size batches arrives with no task labels. Every batch is appended to a short-term
memory (STM); the model trains on STM u LTM after every arriving batch. When the STM is full, a
selection moves samples into the long-term memory (LTM) by a kernel score on the encoder means
(every component's means concatenated): each STM sample's score is its mean kernel similarity to the
LTM. The *direction* of the criterion is a parameter:

- ``direction="similar"`` (default: the supplement's Algorithm 2, step 12, and the official code): keep
  samples whose score is above lambda1, highest first. A larger lambda1 then gives a smaller memory, as the
  supplement's Appendix E reports;
- ``direction="diverse"`` (a variant: the main text's wish for diverse samples): keep samples whose score
  is below lambda1, lowest first.

The defaults are the paper's: the RBF kernel of Algorithm 2 (step 8) with alpha 10, and lambda1 = 0.6 (the
value the supplement fixes for its lambda2 ablation; its lambda1 ablation spans 0.4-0.8). The official code
uses ``kernel="code"`` (exp(-d / (sqrt(2) alpha))) with lambda1 = 0.35; notebook 04 compares the three.
At most ``per_round`` samples pass per round (the code's 14), and the LTM never exceeds ``ltm_capacity``
(the code's 5 x 512); the STM is cleared afterwards. ``memory="reservoir"`` replaces the selection by
reservoir sampling over the whole stream into a memory of the same kind (the VAE-ELBO-Random baseline).
Embeddings are taken on a Bernoulli sample of the STM and LTM images, as the official code does
(``embed_binarized``; the model is trained on binarised images).

Dynamic-OCM: R = the mean IWAE log-likelihood of STM u LTM (averaged over components); if |R - R_last| >
lambda2 (strictly) and fewer than ``max_components`` exist, a new component is added, every earlier
component (and the shared first layers) is frozen and leaves the optimiser, and the LTM is cleared.
``order`` fixes when: ``"paper"`` (Algorithm 2, default): the STM fires at ``>= stm_size``, selection first,
then R and the expansion, which clears the LTM including this round's selections; ``"code"`` (the official
code): the STM fires once it *exceeds* ``stm_size``, R is measured and the expansion decided before the
selection, and this round's selections (scored against the LTM before clearing) go into the emptied LTM.

Network (as the official code): x -> shared dense(hidden, tanh) -> per-component dense(hidden, tanh) ->
(mu, log sigma^2); z -> shared dense(hidden, tanh) -> per-component dense(hidden, relu) -> Bernoulli logits.
All components are evaluated in one stacked computation (weights stacked along a leading K axis, one
batched matmul per layer), never a Python loop per image or per component. The online procedure (STM,
LTM, training after every arriving batch) is `lmvae_core.continual.ocm.OCMLearner`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

from .base import register_model
from ..metrics.loglik import iwae_log_likelihood
from .likelihoods import bernoulli_log_prob
from .vae import LOG_2PI, standard_normal_log_prob

DIRECTIONS = ("similar", "diverse")
KERNELS = ("poster", "code")
ORDERS = ("paper", "code")


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
    direction: str = "similar"  # 'similar' (Algorithm 2 and the code) | 'diverse' (a variant)
    kernel: str = "poster"  # 'poster' (Algorithm 2): exp(-d^2 / (2 alpha^2)) | 'code': exp(-d / (sqrt(2) alpha))
    alpha: float = 10.0
    lambda1: float = 0.6
    embed_binarized: bool = True  # embed a Bernoulli sample of the images (the code) instead of the grey values
    order: str = "paper"  # 'paper' (Algorithm 2) | 'code' (the official code's order; see the module docstring)
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
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
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

    similar: score > lambda1, highest first (Algorithm 2, step 12); diverse: score < lambda1, lowest first.
    At most min(per_round, room) pass."""
    if direction == "similar":
        passing = (scores > lambda1).nonzero().squeeze(1)
        order = passing[scores[passing].argsort(descending=True)]
    elif direction == "diverse":
        passing = (scores < lambda1).nonzero().squeeze(1)
        order = passing[scores[passing].argsort()]
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


def training_bound(lw: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-image training bound from log weights [samples, ...]: their mean (the ELBO averaged over the samples)
    or the IWAE bound (log-mean-exp)."""
    if objective == "elbo":
        return lw.mean(0)
    return torch.logsumexp(lw, 0) - math.log(lw.shape[0])


# -- the network --------------------------------------------------------------------------------
class Component(nn.Module):
    """One component's own layers (the shared first layers live in OCM)."""

    def __init__(self, hidden: int, latent: int, out_dim: int):
        super().__init__()
        self.enc2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, 2 * latent)
        self.dec2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, out_dim)

    @torch.no_grad()
    def reset_from(self, generator: torch.Generator) -> None:
        """nn.Linear's own initialisation (Kaiming-uniform weights with a = sqrt(5), uniform biases in
        +-1/sqrt(fan_in)), drawn from `generator`: a learner with its own random numbers (OCMLearner's
        `own_noise`) grows the same component whatever else the process has drawn."""
        for layer in (self.enc2, self.head, self.dec2, self.out):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


LAYERS = ("enc2", "head", "dec2", "out")


def _apply(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h [K, ..., in] with stacked weights w [K, out, in], b [K, out] -> [K, ..., out]."""
    k = h.shape[0]
    flat = h.reshape(k, -1, h.shape[-1])
    y = torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return y.reshape(*h.shape[:-1], w.shape[1])


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

    def add_component(self, generator: torch.Generator | None = None) -> int:
        """A new component, the only one that trains from now on; its weights drawn from `generator` if given
        (else from the process's random numbers, as nn.Linear draws them)."""
        device = self.enc1.weight.device
        component = Component(self.config.hidden, self.config.latent_dim, self.config.input_dim)
        if generator is not None:
            component.reset_from(generator)
        self.components.append(component.to(device))
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

    def log_weights(self, x: torch.Tensor, k: int, ids: Sequence[int] | None = None, _w=None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x, z) - log q(z|x) for k samples per image and component: [K, k, B]. The noise comes from
        `generator` (on x's device) if given, else from the process's random numbers."""
        w = _w or self._stack(self._ids(ids))
        mu, logvar = self.encode(x, _w=w)
        std = torch.exp(0.5 * logvar)
        eps = torch.randn(mu.shape[0], k, *mu.shape[1:], device=mu.device, generator=generator)
        z = mu.unsqueeze(1) + eps * std.unsqueeze(1)
        logits = self.decode_logits(z, _w=w)
        log_px = bernoulli_log_prob(x.flatten(1), logits).sum(-1)
        log_pz = standard_normal_log_prob(z)
        log_qz = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)
        return log_px + log_pz - log_qz

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """The training objective of the newest component on a batch."""
        lw = self.log_weights(x, self.config.train_samples, ids=[len(self) - 1], generator=generator)[0]  # [S, B]
        loss = -training_bound(lw, self.config.objective).mean()
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def iwae_per_component(self, x: torch.Tensor, k: int, ids: Sequence[int] | None = None,
                           batch_size: int = 250, budget: int = 4_000_000,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """IWAE-k bound of every component for every image, in one stacked computation: [K, N]."""
        w = self._stack(self._ids(ids))
        n_k = w["out"][0].shape[0]
        chunk = max(1, min(k, budget // (n_k * min(batch_size, x.shape[0]) * x[0].numel())))
        return iwae_log_likelihood(lambda xb, kk: self.log_weights(xb, kk, _w=w, generator=generator), x, k,
                                   batch_size=batch_size, chunk=chunk, sample_dim=1)

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

    def newest_parameters(self) -> dict[str, nn.Parameter]:
        """What the training loss reads, by layer: the shared first layers (enc1, dec1) and the newest component's
        layers. `member_log_weights` takes a stack of these over several models (one per seed)."""
        newest = self.components[-1]
        layers = {"enc1": self.enc1, "dec1": self.dec1} | {n: getattr(newest, n) for n in LAYERS}
        return {f"{n}.{p}": getattr(m, p) for n, m in layers.items() for p in ("weight", "bias")}

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder means of all components, concatenated: [N, K * latent]."""
        mu, _ = self.encode(x)
        return mu.permute(1, 0, 2).reshape(x.shape[0], -1)


def member_log_weights(stack: dict[str, torch.Tensor], x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """`OCM.log_weights` of the newest component for S models at once (one per seed: the seeds of a method run as
    one computation, continual/ocm_stacked.py): [S, k, B].

    stack: `newest_parameters()` of each model stacked along a leading axis (weights [S, out, in], biases
    [S, out]); x: each model's batch [S, B, D], flat; eps: each model's noise [S, k, B, latent]. The same
    operations as log_weights with the member axis in place of the component axis, and per-member shared layers."""
    def layer(h, name):
        return _apply(h, stack[f"{name}.weight"], stack[f"{name}.bias"])

    h2 = torch.tanh(layer(torch.tanh(layer(x, "enc1")), "enc2"))
    mu, logvar = layer(h2, "head").chunk(2, dim=-1)
    logvar = logvar.clamp(-12.0, 8.0)
    z = mu.unsqueeze(1) + eps * torch.exp(0.5 * logvar).unsqueeze(1)
    logits = layer(torch.relu(layer(torch.tanh(layer(z, "dec1")), "dec2")), "out")
    log_px = bernoulli_log_prob(x.unsqueeze(1), logits).sum(-1)
    log_qz = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)
    return log_px + standard_normal_log_prob(z) - log_qz


__all__ = ["OCM", "member_log_weights", "training_bound", "OCMConfig", "kernel_scores", "select_indices", "reservoir_update", "ORDERS"]
