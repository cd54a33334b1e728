"""Binarized regularisation (Hu & Rostami 2023, arXiv 2303.12255): an r-shifted KL term.

Per latent dimension j the KL term of any VAE of the package becomes

    KL( N(mu_j, s_j^2) || N(sign(mu_j) * r, 1) ) = 0.5 * ((|mu_j| - r)^2 + s_j^2 - 1 - log s_j^2),

so each dimension is pulled to +r or -r, whichever side its mean is on; r = 0 is the plain VAE.
The implied prior is the symmetric two-mode mixture p(z_j) = 0.5 N(-r, 1) + 0.5 N(+r, 1), from
which `sample_prior` draws (a random sign times r plus unit noise) and which `log_prior` uses, so
the IWAE bound of the package evaluates the model under that prior.

The regulariser bounds the true KL to the mixture prior: since p(z_j) >= 0.5 N(z_j; sign(mu_j) r, 1),

    KL(q || p_mix) <= sum_j KL_shift_j + d log 2,

and exactly KL(q || p_mix)_j = KL_shift_j + log 2 - E_q[softplus(-2 sign(mu_j) r z_j)], which
`mixture_kl_per_dim` evaluates by Gauss-Hermite quadrature (and `mixture_kl_monte_carlo` by sampling).
The reported ELBO (`terms()["elbo"]`) is the ELBO under the mixture prior; the training loss uses
the shifted KL, with the beta-VAE weight or the capacity objective gamma |KL - C| of `VAEConfig`.

Capacity as in the official code (zizhao-hu/BVAE, engine.py): there the KL is summed over a batch of 64 before
|KL - C| is taken, with C = 10, so C is 10/64 = 0.156 nats per image, not 10. `capacity_scope='batch'` applies
|mean_batch KL - C| (the official form, C per image), `'image'` the per-image |KL_i - C| of Burgess et al.

Collapse, with the shift taken out: the shifted KL of a dimension depends on its mean only through |mu| - r, and
pushing the means of an r = 0 posterior out by r (m -> m + r sign(m)) gives a posterior that the r > 0
regulariser charges exactly what the plain KL charged the original. Counting a unit as active when
Var_x(mu) > 0.01 (Burda et al.) is not invariant to that push and favours r > 0: a unit whose means merely sit
at +-r with a sign that varies has variance ~r^2. `unit_activity` also counts on the means folded back,
sign(mu) max(|mu| - r, 0) (a mean's excess beyond its mode; Burda's measure at r = 0), which gives the same
answer for a posterior and its pushed-out copy. Its limits, in both directions: a unit that carries a sign
only (means at +-r) and variation inside the valley |mu| < r both count as no activity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import register_model
from .vae import LOG_2PI, VAE, VAEConfig, diag_gaussian_log_prob

LOG2 = math.log(2.0)


@dataclass
class BinarizedVAEConfig(VAEConfig):
    r: float = 0.5  # binarizing shift: the prior's modes sit at -r and +r in every dimension (0: plain VAE)
    # 'image': gamma |KL_i - C| per image; 'batch': gamma |mean_batch KL - C|, the official code's |sum KL - 64 C|
    capacity_scope: str = "image"

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.r, (int, float)) and math.isfinite(self.r) and self.r >= 0):
            raise ValueError(f"r must be a finite number >= 0, got {self.r!r}")
        self.r = float(self.r)
        if self.capacity_scope not in ("image", "batch"):
            raise ValueError(f"capacity_scope must be 'image' or 'batch', got {self.capacity_scope!r}")


def shifted_kl(mu: torch.Tensor, logvar: torch.Tensor, r: float) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(sign(mu) r, 1)) per latent dimension, closed form."""
    return 0.5 * ((mu.abs() - r).pow(2) + logvar.exp() - 1.0 - logvar)


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - LOG2


def two_mode_log_prob(z: torch.Tensor, r: float) -> torch.Tensor:
    """log prod_j [0.5 N(z_j; -r, 1) + 0.5 N(z_j; r, 1)], summed over the last dimension."""
    return (-0.5 * (z.pow(2) + r * r + LOG_2PI) + log_cosh(r * z)).sum(-1)


_GH_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _GH_CACHE:
        _GH_CACHE[n] = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-x^2/2)
    return _GH_CACHE[n]


def mixture_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor, r: float, n_nodes: int = 48) -> torch.Tensor:
    """KL(N(mu, s^2) || 0.5 N(-r,1) + 0.5 N(r,1)) per dimension, by Gauss-Hermite quadrature of the
    one-dimensional gap E_q[log 2 - softplus(-2 sign(mu) r z)] added to the shifted KL."""
    if r == 0:
        return shifted_kl(mu, logvar, 0.0)
    nodes, weights = _hermite(n_nodes)
    nodes = torch.as_tensor(nodes, dtype=mu.dtype, device=mu.device)
    weights = torch.as_tensor(weights / math.sqrt(2 * math.pi), dtype=mu.dtype, device=mu.device)
    sign = torch.where(mu >= 0, 1.0, -1.0).to(mu.dtype)
    z = mu.unsqueeze(-1) + torch.exp(0.5 * logvar).unsqueeze(-1) * nodes  # [..., d, n]
    gap = LOG2 - (F.softplus(-2.0 * r * sign.unsqueeze(-1) * z) * weights).sum(-1)
    return shifted_kl(mu, logvar, r) + gap


def mixture_kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, r: float, n_samples: int = 10_000,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte Carlo estimate of KL(q || two-mode mixture) summed over dimensions, per row: E_q[log q - log p]."""
    eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + eps * torch.exp(0.5 * logvar)
    return (diag_gaussian_log_prob(z, mu, logvar) - two_mode_log_prob(z, r)).mean(0)


def shifted_kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, r: float, n_samples: int = 10_000,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte Carlo estimate of KL(q || N(sign(mu) r, I)) summed over dimensions, per row."""
    eps = torch.randn((n_samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + eps * torch.exp(0.5 * logvar)
    centre = torch.where(mu >= 0, r, -r)
    log_p = -0.5 * ((z - centre).pow(2) + LOG_2PI).sum(-1)
    return (diag_gaussian_log_prob(z, mu, logvar) - log_p).mean(0)


def fold_to_modes(mu: torch.Tensor, r: float) -> torch.Tensor:
    """sign(mu) max(|mu| - r, 0): a posterior mean's excess beyond the mode it is pulled to, signed. It undoes
    the push of r = 0 means out by r, fold(m + r sign(m)) = m, and is 0 at a mode and inside the valley |mu| < r
    (where an untrained encoder's means start: counting them as r - |mu| from the mode would credit an untrained
    r > 0 model with every unit). At r = 0 it is the identity."""
    return torch.sign(mu) * (mu.abs() - r).clamp(min=0.0)


@torch.no_grad()
def unit_activity(mu: torch.Tensor, logvar: torch.Tensor, r: float, threshold: float = 0.01,
                  kl_threshold: float = 0.01) -> dict:
    """Per-unit activity of posteriors (rows: inputs), three ways:
    - 'variance': Var_x(mu_u), Burda et al.'s measure (counts a unit whose means sit at +-r);
    - 'folded_variance': Var_x(fold_to_modes(mu_u, r)), Burda's measure on the means with the shift taken out
      (equal to 'variance' at r = 0, unchanged when the means are pushed out by r);
    - 'kl': the mean KL_r per unit (the regulariser's own cost of the unit, also unchanged by that push).
    Counts use `threshold` on the variances (0.01, as Burda et al.) and `kl_threshold` nats on the KL."""
    var = mu.var(0)
    folded = fold_to_modes(mu, r).var(0)
    kl = shifted_kl(mu, logvar, r).mean(0)
    return {"active_raw": int((var > threshold).sum()), "active_folded": int((folded > threshold).sum()),
            "active_kl": int((kl > kl_threshold).sum()), "variance": var, "folded_variance": folded, "kl": kl}


@register_model
class BinarizedVAE(VAE):
    """Any VAE of the package (MLP/conv, Bernoulli/Gaussian, beta, capacity) with the r-shifted KL."""
    config_class = BinarizedVAEConfig

    @property
    def r(self) -> float:
        return self.config.r

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return shifted_kl(mu, logvar, self.r)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return two_mode_log_prob(z, self.r)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = next(self.parameters())
        d = self.config.latent_dim
        sign = torch.randint(0, 2, (n, d), device=p.device, generator=generator).to(p.dtype) * 2 - 1
        return sign * self.r + torch.randn(n, d, device=p.device, generator=generator, dtype=p.dtype)

    def objective(self, recon: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
        """As VAE.objective; with capacity_scope='batch' the per-image values recon_i + gamma s (KL_i - C), with
        s = sign(mean KL - C) over the batch held fixed, average to recon + gamma |mean KL - C| (value and
        gradient): the official code's capacity term. They are not per-image losses on their own."""
        c = self.config
        if c.capacity is None or c.capacity_scope == "image":
            return super().objective(recon, kl)
        side = torch.sign(kl.mean() - self.capacity_now).detach()
        return recon + c.gamma * side * (kl - self.capacity_now)

    def terms(self, x: torch.Tensor, eps: torch.Tensor | None = None, exact_elbo: bool | None = None):
        """recon, kl (the shifted KL, the regulariser), loss (beta / capacity objective on it) and kl_mixture
        with the ELBO under the two-mode prior. exact_elbo=False skips the latter two; by default (None) they
        are skipped only in training mode with gradients on (the ensemble trainer calls terms() directly; the
        quadrature costs about a hidden layer and training needs neither)."""
        if exact_elbo is None:
            exact_elbo = not (self.training and torch.is_grad_enabled())
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        recon = -self.log_px_given_z(x, self.decode(z))
        kl = self.kl_per_dim(mu, logvar).sum(-1)
        out = {"loss": self.objective(recon, kl), "recon": recon, "kl": kl}
        if exact_elbo:
            with torch.no_grad():
                kl_mix = mixture_kl_per_dim(mu, logvar, self.r).sum(-1)
            out["kl_mixture"] = kl_mix
            out["elbo"] = -(recon + kl_mix)
        return out

    def loss(self, x: torch.Tensor):
        t = self.terms(x, exact_elbo=False)
        return t["loss"].mean(), {k: v.mean() for k, v in t.items()}


__all__ = ["BinarizedVAE", "BinarizedVAEConfig", "fold_to_modes", "unit_activity", "shifted_kl", "two_mode_log_prob",
           "mixture_kl_per_dim", "mixture_kl_monte_carlo", "shifted_kl_monte_carlo", "log_cosh"]
