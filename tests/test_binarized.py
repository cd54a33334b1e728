"""Binarized regularisation (notebook 03): the r-shifted KL, its prior, its bound, and the model."""
import math

import pytest
import torch

from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.metrics import iwae_log_likelihood
from lmvae_core.models.binarized import (BinarizedVAE, BinarizedVAEConfig, mixture_kl_monte_carlo,
                                         mixture_kl_per_dim, shifted_kl, shifted_kl_monte_carlo, two_mode_log_prob)
from lmvae_core.models.vae import VAE, VAEConfig, diag_gaussian_log_prob, gaussian_kl
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint
from lmvae_core.training.loop import TrainConfig, train

SAMPLE = DataConfig(source="sample")


def _posteriors(n=64, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(n, d, generator=g, dtype=torch.float64) - 0.5
    return mu, logvar


def _kl_gauss(mu1, var1, mu2, var2):
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mu1 - mu2) ** 2) / var2 - 1)


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0, 2.0])
def test_shifted_kl_equals_gaussian_kl_to_signed_mode(r):
    mu, logvar = _posteriors()
    centre = torch.where(mu >= 0, r, -r)
    expected = _kl_gauss(mu, logvar.exp(), centre, torch.ones_like(mu))
    assert torch.allclose(shifted_kl(mu, logvar, r), expected, atol=1e-10)
    # the code's form -0.5 (1 + log s^2 - (|mu| - r)^2 - s^2)
    code = -0.5 * (1 + logvar - (mu.abs() - r) ** 2 - logvar.exp())
    assert torch.allclose(shifted_kl(mu, logvar, r), code, atol=1e-10)


@pytest.mark.parametrize("r", [0.5, 2.0])
def test_shifted_kl_matches_monte_carlo(r):
    mu, logvar = _posteriors(n=8)
    g = torch.Generator().manual_seed(1)
    mc = shifted_kl_monte_carlo(mu, logvar, r, n_samples=100_000, generator=g)
    exact = shifted_kl(mu, logvar, r).sum(-1)
    assert torch.allclose(mc, exact, atol=0.05 + 0.01 * exact.abs().max().item())


def test_reduces_to_standard_kl_and_prior_at_r0():
    mu, logvar = _posteriors()
    assert torch.allclose(shifted_kl(mu, logvar, 0.0), gaussian_kl(mu, logvar), atol=1e-12)
    z = torch.randn(100, 5, dtype=torch.float64)
    assert torch.allclose(two_mode_log_prob(z, 0.0), -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(-1), atol=1e-10)
    # the model at r = 0 is the package's VAE: same loss and ELBO for the same weights and noise
    x = load_split("mnist", "test", SAMPLE).x[:16].bernoulli(generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    binar = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=0.0))
    binar.load_state_dict(plain.state_dict())
    eps = torch.randn(16, 4)
    a, b = plain.terms(x, eps=eps), binar.terms(x, eps=eps)
    for k in ("loss", "recon", "kl", "elbo"):
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_two_mode_log_prob_is_the_mixture_density():
    r = 1.3
    z = torch.linspace(-5, 5, 41, dtype=torch.float64).unsqueeze(1)
    n = lambda m: torch.exp(-0.5 * (z - m) ** 2) / math.sqrt(2 * math.pi)
    assert torch.allclose(two_mode_log_prob(z, r), torch.log(0.5 * n(-r) + 0.5 * n(r)).squeeze(1), atol=1e-10)


@pytest.mark.parametrize("r", [0.1, 0.5, 1.0, 3.0])
def test_bound_regularised_kl_plus_dlog2_holds(r):
    """KL(q || mixture) <= sum_j KL_r + d log 2, by quadrature and by Monte Carlo, on random posteriors."""
    mu, logvar = _posteriors(n=32, d=6, seed=int(r * 10))
    d = mu.shape[1]
    bound = shifted_kl(mu, logvar, r).sum(-1) + d * math.log(2)
    exact = mixture_kl_per_dim(mu, logvar, r).sum(-1)
    assert (exact <= bound + 1e-9).all()
    assert (exact >= 0).all()
    g = torch.Generator().manual_seed(2)
    z = mu + torch.randn((20_000, *mu.shape), generator=g, dtype=mu.dtype) * torch.exp(0.5 * logvar)
    log_ratio = diag_gaussian_log_prob(z, mu, logvar) - two_mode_log_prob(z, r)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(z.shape[0])
    assert ((mc - exact).abs() <= 4 * se + 1e-6).all()  # quadrature agrees with sampling
    assert (mc <= bound + 4 * se).all()
    g = torch.Generator().manual_seed(3)
    assert ((mixture_kl_monte_carlo(mu, logvar, r, 20_000, g) - exact).abs() <= 4 * se + 1e-6).all()
    # the gap is not always slack: tight (-> 0) for posteriors far from zero relative to their spread
    far_mu, far_lv = torch.full((1, d), 8.0, dtype=torch.float64), torch.full((1, d), -4.0, dtype=torch.float64)
    gap = shifted_kl(far_mu, far_lv, r).sum(-1) + d * math.log(2) - mixture_kl_per_dim(far_mu, far_lv, r).sum(-1)
    assert gap.item() < 1e-3 + d * math.log(2) * math.exp(-2 * r * 8.0) * 2


@pytest.mark.parametrize("r", [0.5, 2.0, 6.0])
def test_prior_sampler_modes_at_plus_minus_r(r):
    model = BinarizedVAE(BinarizedVAEConfig(latent_dim=6, hidden=(16,), r=r))
    z = model.sample_prior(200_000, generator=torch.Generator().manual_seed(0)).double()
    # moments of 0.5 N(-r,1) + 0.5 N(r,1): mean 0, second moment r^2 + 1, fourth r^4 + 6 r^2 + 3
    assert torch.allclose(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=0.02 * (1 + r))
    assert torch.allclose(z.pow(2).mean(0), torch.full((6,), r * r + 1, dtype=torch.float64), rtol=0.02)
    assert torch.allclose(z.pow(4).mean(0), torch.full((6,), r ** 4 + 6 * r * r + 3, dtype=torch.float64), rtol=0.04)
    if r >= 6.0:  # well separated: the per-dimension mean of each mode is +r / -r, each mode half the mass
        pos = torch.where(z > 0, z, torch.nan)
        neg = torch.where(z < 0, z, torch.nan)
        assert torch.allclose(pos.nanmean(0), torch.full((6,), r, dtype=torch.float64), atol=0.02)
        assert torch.allclose(neg.nanmean(0), torch.full((6,), -r, dtype=torch.float64), atol=0.02)
        assert torch.allclose((z > 0).double().mean(0), torch.full((6,), 0.5, dtype=torch.float64), atol=0.01)


def test_config_rejects_negative_r():
    with pytest.raises(ValueError):
        BinarizedVAEConfig(r=-0.5)


def test_composes_with_beta_and_capacity():
    x = load_split("mnist", "test", SAMPLE).x[:16].bernoulli(generator=torch.Generator().manual_seed(0))
    eps = torch.randn(16, 4)
    base = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0))
    beta = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0, beta=10.0))
    cap = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0, capacity=10.0, gamma=10.0))
    beta.load_state_dict(base.state_dict())
    cap.load_state_dict(base.state_dict())  # this copies base's capacity buffer (0) too
    assert float(cap.capacity_now) == 0.0
    cap.set_capacity(10.0)
    t, tb, tc = base.terms(x, eps=eps), beta.terms(x, eps=eps), cap.terms(x, eps=eps)
    assert torch.allclose(tb["loss"], t["recon"] + 10.0 * t["kl"], rtol=1e-5, atol=1e-3)
    assert torch.allclose(tc["loss"], t["recon"] + 10.0 * (t["kl"] - 10.0).abs(), rtol=1e-5, atol=1e-3)
    assert torch.allclose(tb["elbo"], t["elbo"]) and torch.allclose(tc["elbo"], t["elbo"])


def test_elbo_bounds_iwae_and_checkpoint_roundtrip(tmp_path):
    """Trained briefly on real digits: ELBO <= IWAE(k) under the mixture prior, and the model reloads."""
    torch.manual_seed(0)
    data = load_split("mnist", "train", SAMPLE).x[:1000]
    test = load_split("mnist", "test", SAMPLE).x[:100].bernoulli(generator=torch.Generator().manual_seed(0))
    model = BinarizedVAE(BinarizedVAEConfig(latent_dim=8, hidden=(64,), r=1.0))
    hist = train(model, data, TrainConfig(epochs=2, batch_size=100, progress=False))
    assert hist[-1]["loss"] < hist[0]["loss"]
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = float(torch.stack([model.terms(test)["elbo"] for _ in range(30)]).mean())
    iwae = float(iwae_log_likelihood(model, test, k=100).mean())
    assert elbo <= iwae
    # the IWAE with k=1 is an unbiased single-sample estimate of the same ELBO (mixture prior, exact KL)
    torch.manual_seed(2)
    iwae1 = float(torch.stack([iwae_log_likelihood(model, test, k=1) for _ in range(30)]).mean())
    assert abs(iwae1 - elbo) < 1.0
    path = save_checkpoint(model, tmp_path / "bvae.pt")
    again = load_checkpoint(path)
    assert isinstance(again, BinarizedVAE) and again.config.r == 1.0
    mu_a, _ = model.encode(test)
    mu_b, _ = again.encode(test)
    assert torch.allclose(mu_a, mu_b)
