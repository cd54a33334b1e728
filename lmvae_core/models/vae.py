"""The VAE every method builds on: MLP or conv networks, Bernoulli or Gaussian likelihood,
beta and capacity-controlled (|KL - C|) objectives, and the pieces importance sampling needs."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from . import fused_vae
from .base import register_model
from ..nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from .configured import Configured
from .likelihoods import LIKELIHOODS, gaussian_kl, log_likelihood, mean_image  # noqa: F401  (gaussian_kl re-exported)

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 20
    arch: str = "mlp"  # 'mlp' | 'conv'
    hidden: tuple[int, ...] = (400,)  # MLP hidden sizes; conv uses hidden[0] for its dense layer
    channels: tuple[int, ...] = (32, 64)  # conv only, one stride-2 layer each
    activation: str = "relu"
    likelihood: str = "bernoulli"  # 'bernoulli' | 'gaussian'
    gaussian_std: float = 0.1
    beta: float = 1.0  # weight of the KL term (beta-VAE)
    capacity: float | None = None  # if set, loss = recon + gamma * |KL - C| (Burgess et al.)
    gamma: float = 1.0

    def __post_init__(self):
        self.input_shape, self.hidden, self.channels = tuple(self.input_shape), tuple(self.hidden), tuple(self.channels)
        if self.arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be 'mlp' or 'conv', got {self.arch!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.latent_dim <= 0 or not self.hidden:
            raise ValueError("latent_dim must be positive and hidden non-empty")
        if self.beta < 0 or self.gamma < 0:
            raise ValueError("beta and gamma must be non-negative")


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


def diag_gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


@register_model
@fused_vae.register_reference  # the fused loss applies to this class's own methods only
class VAE(Configured):
    config_class = VAEConfig
    # loss() is a pure function of the batch, device buffers and torch's device RNG, so `train()` may replay
    # its step as a CUDA graph (training/graphs.py); a subclass with host-side state per step sets False
    graph_safe = True

    @property
    def step_compiles(self) -> bool:
        """Does compiling the whole training step on a CPU pay (training/compiled_step.py; train() does so on its own
        in long runs)? Measured side by side, 2 threads, batch 128: yes for the MLP VAEs (784-400-20 2.46 against
        2.80 ms a step; Gaussian likelihood or a capacity 2.52 against 3.16-3.20; BinarizedVAE 400-32 2.56 against
        3.30), no for the conv VAE (25.9 against 25.2 ms)."""
        return self.config.arch == "mlp"

    def build(self, c: VAEConfig) -> None:
        if c.arch == "mlp":
            self.encoder = MLPEncoder(c.input_shape, c.hidden, c.latent_dim, c.activation)
            self.decoder = MLPDecoder(c.input_shape, c.hidden, c.latent_dim, c.activation)
        else:
            self.encoder = ConvEncoder(c.input_shape, c.channels, c.hidden[0], c.latent_dim, c.activation)
            self.decoder = ConvDecoder(c.input_shape, c.channels, c.hidden[0], c.latent_dim, c.activation)
        # A buffer, so that a growing capacity schedule is saved with the model and batched by vmap.
        self.register_buffer("capacity_now", torch.tensor(float(c.capacity or 0.0)))

    # -- the pieces of the model ------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def log_px_given_z(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return log_likelihood(self.config.likelihood, x, out, self.config.gaussian_std)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z); subclasses with another prior override this and `kl_per_dim` together."""
        return standard_normal_log_prob(z)

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return gaussian_kl(mu, logvar)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * torch.exp(0.5 * logvar)

    # -- objectives ---------------------------------------------------------------------------
    def terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-image ELBO terms: recon = -log p(x|z), kl, elbo, and the training loss (beta/capacity)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        recon = -self.log_px_given_z(x, self.decode(z))
        kl = self.kl_per_dim(mu, logvar).sum(-1)
        return {"loss": self.objective(recon, kl), "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    def objective(self, recon: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """The training loss per image: recon + beta * KL, or recon + gamma * |KL - C| with a capacity."""
        if self.config.capacity is not None:
            return recon + self.config.gamma * (kl - self.capacity_now).abs()
        return recon + self.config.beta * kl

    def forward(self, x: torch.Tensor, op: str = "terms", **kwargs):
        """Dispatch by name, so that a batched mixture can vmap any method through functional_call."""
        return getattr(self, op)(x, **kwargs)

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if fused_vae.applies(self, x):  # the same loss with a hand-written backward (CPU speed; see fused_vae.py)
            return fused_vae.fused_loss(self, x)
        t = self.terms(x)
        return t["loss"].mean(), {k: v.mean() for k, v in t.items()}

    # -- using the model ----------------------------------------------------------------------
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean, in image space."""
        return mean_image(self.config.likelihood, self.decode(self.encode(x)[0]))

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Summed squared error per image between x and its reconstruction at the posterior mean."""
        return (self.reconstruct(x) - x).pow(2).flatten(1).sum(-1)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = next(self.parameters())
        return torch.randn(n, self.config.latent_dim, device=p.device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return mean_image(self.config.likelihood, self.decode(self.sample_prior(n, generator)))

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i|x) for k posterior samples: shape [k, B] (importance weights)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape))
        return self.log_px_given_z(x, self.decode(z)) + self.log_prior(z) - diag_gaussian_log_prob(z, mu, logvar)

    def set_capacity(self, value: float) -> None:
        self.capacity_now.fill_(float(value))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["VAE", "VAEConfig", "count_parameters", "gaussian_kl", "standard_normal_log_prob",
           "diag_gaussian_log_prob"]
