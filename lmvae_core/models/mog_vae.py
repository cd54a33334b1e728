"""Beyond the blog post (notebook 00): one shared latent space with a mixture-of-Gaussians prior (VaDE style).

The post's mixture routes whole images to K separate VAEs by their pixel-space losses, which is hard EM over
pixel likelihoods: it merges the digits pixel k-means merges. Here the mixture lives in the latent space of one
VAE instead: p(z) = sum_c pi_c N(z; m_c, diag s_c^2), p(x|z) a shared decoder. Training follows VaDE
(Jiang et al. 2017): pretrain a plain VAE, fit a Gaussian mixture to the latent means of the training images
(`fit_diag_gmm`), then train the ELBO with the mixture prior, its parameters learned with the networks. An
image's cluster is argmax_c p(c | z = mu(x)).

The KL term is estimated with the one reparameterised sample the reconstruction uses,
log q(z|x) - log p(z), an unbiased estimate of VaDE's bound without its q(c|x) factorisation; the importance
weights of `log_weights` (IWAE) use the same prior, so test log-likelihoods are valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import register_model
from .vae import LOG_2PI, VAE, VAEConfig, diag_gaussian_log_prob


@dataclass
class MoGVAEConfig(VAEConfig):
    n_components: int = 10

    def __post_init__(self):
        super().__post_init__()
        if self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")


def component_log_probs(z: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                        logvars: torch.Tensor) -> torch.Tensor:
    """log pi_c + log N(z; m_c, diag exp(logvar_c)) for every component: [..., C] from z [..., D]."""
    # sum_d (z_d - m_cd)^2 / v_cd expanded into matrix products: no [..., C, D] tensor (60k x 50 x 10 in a GMM fit)
    prec = torch.exp(-logvars)  # [C, D]
    quad = z.pow(2) @ prec.T - 2 * z @ (means * prec).T + (means.pow(2) * prec).sum(-1)
    log_n = -0.5 * (quad + logvars.sum(-1) + LOG_2PI * z.shape[-1])
    return torch.log_softmax(logits, -1) + log_n


@register_model
class MoGVAE(VAE):
    config_class = MoGVAEConfig
    step_compiles = False  # inductor (torch 2.14) fails on its step ("KeyError: 'buf41'"); train() stays eager

    def build(self, c: MoGVAEConfig) -> None:
        super().build(c)
        # A standard normal split into C equal components until `init_prior` puts the GMM fit here.
        self.prior_logits = nn.Parameter(torch.zeros(c.n_components))
        self.prior_means = nn.Parameter(torch.zeros(c.n_components, c.latent_dim))
        self.prior_logvars = nn.Parameter(torch.zeros(c.n_components, c.latent_dim))

    def init_prior(self, weights: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> None:
        """Set the prior to a fitted Gaussian mixture (weights [C], means and diagonal variances [C, D])."""
        c, d = self.config.n_components, self.config.latent_dim
        if means.shape != (c, d) or variances.shape != (c, d) or weights.shape != (c,):
            raise ValueError(f"a GMM of {c} components in {d} dimensions is needed, got means {tuple(means.shape)}, "
                             f"variances {tuple(variances.shape)}, weights {tuple(weights.shape)}")
        with torch.no_grad():
            self.prior_logits.copy_(weights.clamp_min(1e-8).log())
            self.prior_means.copy_(means)
            self.prior_logvars.copy_(variances.clamp_min(1e-6).log())

    def _components(self, z: torch.Tensor) -> torch.Tensor:
        # The clamp keeps a component from shrinking onto a single latent point (its density would diverge).
        return component_log_probs(z, self.prior_logits, self.prior_means, self.prior_logvars.clamp(-8.0, 4.0))

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._components(z), -1)

    def terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """ELBO with a one-sample KL estimate: the mixture prior has no closed-form KL to a Gaussian."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, eps)
        recon = -self.log_px_given_z(x, self.decode(z))
        kl = diag_gaussian_log_prob(z, mu, logvar) - self.log_prior(z)
        return {"loss": self.objective(recon, kl), "recon": recon, "kl": kl, "elbo": -(recon + kl)}

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        p = self.prior_means
        c = torch.multinomial(torch.softmax(self.prior_logits, -1), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.config.latent_dim, device=p.device, generator=generator)
        return self.prior_means[c] + eps * torch.exp(0.5 * self.prior_logvars.clamp(-8.0, 4.0))[c]

    @torch.no_grad()
    def cluster_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """p(c | z = mu(x)): [B, C]."""
        return torch.softmax(self._components(self.encode(x)[0]), -1)

    @torch.no_grad()
    def assign(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """The most probable mixture component of each image: an unsupervised cluster label."""
        return torch.cat([self.cluster_posterior(x[s:s + batch_size]).argmax(1)
                          for s in range(0, x.shape[0], batch_size)])


@torch.no_grad()
def fit_diag_gmm(z: torch.Tensor, n_components: int, iters: int = 100, seed: int = 0,
                 init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM for a diagonal-covariance Gaussian mixture on z [N, D], from k-means++ centres (or `init` [C, D]).

    Returns (weights [C], means [C, D], variances [C, D])."""
    z = z.double()
    n, d = z.shape
    if n < n_components:
        raise ValueError(f"cannot fit {n_components} components to {n} points")
    means = kmeans_pp_centres(z, n_components, seed) if init is None else init.double().clone()
    floor = 1e-4 * z.var(0, unbiased=False).mean()  # keeps a component from collapsing onto a single point
    # Start from the hard assignment to the nearest centre: starting every component with the global variance lets
    # broad components drift onto the same blobs and merge.
    r = torch.nn.functional.one_hot(torch.cdist(z, means).argmin(1), n_components).to(z.dtype)
    for step in range(iters + 1):
        if step:  # E step: responsibilities [N, C]
            r = torch.softmax(component_log_probs(z, weights.clamp_min(1e-12).log(), means, var.log()), -1)
        nk = r.sum(0) + 1e-10
        weights = nk / n
        means = (r.T @ z) / nk[:, None]
        var = ((r.T @ z.pow(2)) / nk[:, None] - means.pow(2)).clamp_min(floor)
    return weights.float(), means.float(), var.float()


def kmeans_pp_centres(z: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; 2 + log k candidates per centre, as scikit-learn):
    candidates drawn with probability ~ squared distance, the one that lowers the total squared distance most kept.
    Plain k-means++ puts two centres in one blob often enough to matter for EM, which cannot move them apart."""
    g = torch.Generator().manual_seed(seed)
    trials = 2 + int(math.log(k))
    centres = [z[torch.randint(z.shape[0], (1,), generator=g)].squeeze(0)]
    d2 = (z - centres[0]).pow(2).sum(1)
    for _ in range(1, k):
        idx = torch.multinomial(d2 / d2.sum(), trials, replacement=True, generator=g)
        cand = torch.minimum(d2[None], torch.cdist(z[idx], z).pow(2))  # [trials, N]
        best = int(cand.sum(1).argmin())
        centres.append(z[idx[best]])
        d2 = cand[best]
    return torch.stack(centres)


__all__ = ["MoGVAE", "MoGVAEConfig", "component_log_probs", "fit_diag_gmm", "kmeans_pp_centres"]
