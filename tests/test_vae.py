import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from lmvae_core.models import VAE, VAEConfig
from lmvae_core.models.vae import gaussian_kl
from lmvae_core.training import load_checkpoint, save_checkpoint


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-5)


@pytest.mark.parametrize("arch,shape,channels", [("mlp", (1, 28, 28), (32,)), ("conv", (1, 28, 28), (16, 32)),
                                                 ("conv", (3, 32, 32), (16, 32, 64))])
def test_shapes_and_terms(arch, shape, channels):
    vae = VAE(VAEConfig(input_shape=shape, arch=arch, channels=channels, hidden=(64,), latent_dim=5))
    x = torch.rand(3, *shape)
    t = vae.terms(x)
    assert all(v.shape == (3,) for v in t.values())
    assert torch.allclose(t["elbo"], -(t["recon"] + t["kl"]))
    assert vae.sample(4).shape == (4, *shape)
    assert vae.log_weights(x, 6).shape == (6, 3)


def test_beta_and_capacity_objectives():
    x = torch.rand(4, 1, 28, 28).round()
    eps = torch.randn(4, 5)
    base = VAE(hidden=(16,), latent_dim=5)
    beta = VAE(VAEConfig(hidden=(16,), latent_dim=5, beta=4.0))
    beta.load_state_dict(base.state_dict())
    cap = VAE(VAEConfig(hidden=(16,), latent_dim=5, capacity=0.0, gamma=10.0))
    cap.load_state_dict(base.state_dict(), strict=False)
    cap.set_capacity(2.5)
    t, tb, tc = base.terms(x, eps), beta.terms(x, eps), cap.terms(x, eps)
    assert torch.allclose(tb["loss"], t["recon"] + 4 * t["kl"])
    assert torch.allclose(tc["loss"], t["recon"] + 10 * (t["kl"] - 2.5).abs())


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="likelihood"):
        VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match="arch"):
        VAEConfig(arch="transformer")


def test_checkpoint_roundtrip(tmp_path):
    vae = VAE(VAEConfig(likelihood="gaussian", hidden=(32,), latent_dim=3, capacity=1.0))
    vae.set_capacity(3.0)
    r = load_checkpoint(save_checkpoint(vae, tmp_path / "v.pt"))
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(vae.reconstruct(x), r.reconstruct(x)) and r.capacity_now.item() == 3.0
    assert r.config == vae.config


def test_bernoulli_log_prob_matches_the_float64_reference_and_its_gradient():
    """The CPU path avoids ATen's slow log1p (models/likelihoods.py): same value as the fused BCE computed
    in float64 (to float32 accuracy, with logits far into both tails), exact gradients in both arguments,
    and broadcasting of x against sampled logits [K, B, D] as IWAE uses it."""
    import torch.nn.functional as F

    from lmvae_core.models.likelihoods import bernoulli_log_prob

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 16, 784, generator=g) * 8
    logits[0, 0, :4] = torch.tensor([-120.0, 120.0, -30.0, 30.0])
    x = (torch.rand(16, 784, generator=g) < 0.3).float()
    ref = -F.binary_cross_entropy_with_logits(logits.double(), x.double().expand(3, 16, 784), reduction="none")
    got = bernoulli_log_prob(x, logits)
    assert got.shape == (3, 16, 784) and got.dtype == torch.float32
    assert torch.isfinite(got).all()
    # per pixel to float32 accuracy, per image (784 pixels summed) within 1e-4 nats
    assert (got.double() - ref).abs().max() < 1e-5 * ref.abs().clamp_min(1).max()
    assert (got.double().sum(-1) - ref.sum(-1)).abs().max() < 1e-4
    # gradients: gradcheck in float64 (logits and a soft target x, as for LGM's replayed means)
    lg = torch.randn(2, 3, 5, dtype=torch.float64, generator=g).requires_grad_()
    xs = torch.rand(3, 5, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(bernoulli_log_prob, (xs, lg))


def test_bernoulli_log_prob_under_vmap_and_per_sample_grad():
    """LGM takes per-sample gradients with vmap(grad(...)) through the likelihood."""
    from torch.func import grad, vmap

    from lmvae_core.models.likelihoods import bernoulli_log_prob

    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 10, generator=g)
    xs = (torch.rand(4, 10, generator=g) < 0.5).float()
    h = torch.randn(4, 6, generator=g)

    def one(w, hi, xi):
        return bernoulli_log_prob(xi, hi @ w).sum()

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))(w, h, xs)
    loop = torch.stack([torch.func.grad(one)(w, h[i], xs[i]) for i in range(4)])
    assert torch.allclose(per_sample, loop, atol=1e-6)
    expected = torch.stack([torch.outer(h[i], xs[i] - torch.sigmoid(h[i] @ w)) for i in range(4)])
    assert torch.allclose(per_sample, expected, atol=1e-5)


def test_reparameterize_is_mu_plus_eps_times_the_standard_deviation():
    """Ground truth: z = mu + eps * sigma with sigma = exp(logvar / 2), exactly (float64)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(6, 5, generator=g, dtype=torch.float64)
    logvar = torch.linspace(-4.0, 3.0, 30, dtype=torch.float64).view(6, 5)
    eps = torch.randn(6, 5, generator=g, dtype=torch.float64)
    assert torch.equal(VAE.reparameterize(mu, logvar, eps), mu + eps * torch.exp(logvar / 2))
    assert torch.equal(VAE.reparameterize(mu, logvar, torch.zeros_like(eps)), mu)
    # without eps: a fresh standard normal draw, so (z - mu) / sigma has mean 0 and variance 1
    big_mu, big_logvar = torch.full((200_000,), 3.0), torch.full((200_000,), -2.0)
    std_eps = (VAE.reparameterize(big_mu, big_logvar) - 3.0) / math.exp(-1.0)
    assert abs(std_eps.mean().item()) < 0.02 and abs(std_eps.var().item() - 1.0) < 0.02


def test_log_weights_average_to_the_analytic_elbo():
    """Ground truth: E_q[log w] = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) with the KL in closed form. The decoder's
    first layer is zeroed, so its logits do not depend on z and log p(x|z) is the Bernoulli log-probability of x
    under those constant logits, computed here in float64. The mean of many single-sample log weights
    VAE.log_weights(x, 1) must match within 4 standard errors. Encoder variances far from 1 (logvar near -2 and
    +1) make a wrong sampling scale (exp(logvar) for exp(logvar / 2)) miss by several nats."""
    torch.manual_seed(0)
    vae = VAE(hidden=(16,), latent_dim=4)
    x = (torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        vae.decoder.net[0].weight.zero_()  # decoder output independent of z
        vae.encoder.head.bias[4:] = torch.tensor([-2.0, -2.0, 1.0, 1.0])  # the logvar half of the head
    with torch.no_grad():
        logits = vae.decode(torch.zeros(1, 4))[0].double()
        mu, logvar = (t.double() for t in vae.encode(x))
    recon = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits.expand_as(x), x.double(), reduction="none").flatten(1).sum(1)
    assert (logvar[:, :2] < -1.0).all() and (logvar[:, 2:] > 0.0).all()  # the variances are far from 1
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
    elbo = recon - kl
    with torch.no_grad():
        lw = torch.cat([vae.log_weights(x, 1) for _ in range(2000)]).double()  # [draws, 2]
    assert lw.shape == (2000, 2)
    se = lw.std(0) / math.sqrt(lw.shape[0])
    assert ((lw.mean(0) - elbo).abs() < 4 * se).all(), (lw.mean(0), elbo, se)
