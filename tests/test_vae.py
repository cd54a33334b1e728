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


# What mutation testing of models/vae.py found untested (benchmarks/mutants.py, `make mutants MODULE=vae`).

def test_config_bounds_each_checked_on_its_own():
    """latent_dim must be at least 1 (1 is fine), hidden non-empty, beta and gamma non-negative (0 is fine): each
    bound rejects a config by itself, with a message naming it."""
    VAEConfig(latent_dim=1, beta=0.0, gamma=0.0)
    VAEConfig(gamma=0.5)
    for bad in ({"latent_dim": 0}, {"latent_dim": -2}, {"hidden": ()}):
        with pytest.raises(ValueError, match="^latent_dim must be positive and hidden non-empty$"):
            VAEConfig(**bad)
    for bad in ({"beta": -0.1}, {"gamma": -0.1}):
        with pytest.raises(ValueError, match="^beta and gamma must be non-negative$"):
            VAEConfig(**bad)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_the_configured_activation_is_used_by_both_networks(arch):
    """VAEConfig.activation reaches the encoder and the decoder of either architecture (not the nets' default)."""
    vae = VAE(VAEConfig(arch=arch, activation="tanh", hidden=(8,), channels=(4,), latent_dim=2))
    for net in (vae.encoder, vae.decoder):
        kinds = {type(m) for m in net.modules()}
        assert torch.nn.Tanh in kinds and torch.nn.ReLU not in kinds


def test_capacity_starts_at_the_configured_value_zero_included():
    """capacity_now starts at the configured capacity, 0 when it is 0 or None: with C = 0 the loss is recon +
    gamma * KL (recon 1, KL 3, gamma 2: 7)."""
    assert VAE(hidden=(8,), latent_dim=2).capacity_now.item() == 0.0
    zero = VAE(hidden=(8,), latent_dim=2, capacity=0.0, gamma=2.0)
    assert zero.capacity_now.item() == 0.0
    assert zero.objective(torch.tensor([1.0]), torch.tensor([3.0])).item() == 7.0
    assert VAE(hidden=(8,), latent_dim=2, capacity=4.5).capacity_now.item() == 4.5


def test_gaussian_likelihood_uses_the_configured_std():
    """log p(x|z) under the Gaussian likelihood is Normal(sigmoid(out), gaussian_std) summed over pixels, with the
    configured std (0.5 here, not the default 0.1)."""
    vae = VAE(hidden=(8,), latent_dim=2, likelihood="gaussian", gaussian_std=0.5)
    g = torch.Generator().manual_seed(0)
    x, out = torch.rand(3, 1, 28, 28, generator=g), torch.randn(3, 1, 28, 28, generator=g)
    ref = Normal(torch.sigmoid(out.double()), 0.5).log_prob(x.double()).flatten(1).sum(1)
    assert torch.allclose(vae.log_px_given_z(x, out).double(), ref, rtol=1e-5)


def test_autograd_loss_is_the_batch_mean_of_terms_and_forward_dispatches_by_name():
    """Where the fused loss does not apply (Gaussian likelihood), loss(x) is terms(x)'s loss averaged over the batch
    with every term averaged, from the same draw; forward(x) is terms(x), forward(x, op, **kw) calls that method."""
    vae = VAE(hidden=(8,), latent_dim=3, likelihood="gaussian")
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    loss, terms = vae.loss(x)
    torch.manual_seed(3)
    t = vae.terms(x)
    assert torch.equal(loss, t["loss"].mean()) and set(terms) == {"loss", "recon", "kl", "elbo"}
    assert all(torch.equal(terms[k], t[k].mean()) for k in t)
    eps = torch.randn(5, 3)
    assert all(torch.equal(vae(x, eps=eps)[k], vae.terms(x, eps)[k]) for k in t)
    assert torch.equal(vae(x, "reconstruct"), vae.reconstruct(x))
    assert vae(x, op="log_weights", k=4).shape == (4, 5)


def test_reconstruction_is_the_decoded_posterior_mean_and_its_error_the_summed_square():
    """reconstruct(x) = sigmoid(decode(mu(x))); reconstruction_error(x) = sum over pixels of (x - reconstruct(x))^2,
    one value per image."""
    vae = VAE(hidden=(8,), latent_dim=3)
    with torch.no_grad():
        vae.encoder.head.bias[3:] = 5.0  # logvar far from mu, so decoding the wrong half shows
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rec = torch.sigmoid(vae.decode(vae.encode(x)[0]))
        assert torch.equal(vae.reconstruct(x), rec)
        err = vae.reconstruction_error(x)
    assert err.shape == (4,)
    assert torch.allclose(err, torch.stack([((rec[i] - x[i]) ** 2).sum() for i in range(4)]))


def test_prior_samples_follow_the_generator_and_the_k_importance_samples_are_independent():
    """sample_prior(n, generator) is that generator's standard normal draw [n, latent_dim] on the model's device
    (so sample() is reproducible), and log_weights(x, k) draws k independent z per image (its k rows differ)."""
    vae = VAE(hidden=(8,), latent_dim=3)
    z = vae.sample_prior(5, torch.Generator().manual_seed(7))
    assert torch.equal(z, torch.randn(5, 3, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(vae.sample(2, torch.Generator().manual_seed(7)), vae.sample(2, torch.Generator().manual_seed(7)))
    assert VAE(hidden=(8,), latent_dim=3).to("meta").sample_prior(2).device.type == "meta"  # the model's device
    with torch.no_grad():
        lw = vae.log_weights(torch.rand(2, 1, 28, 28), 3)
    assert lw.shape == (3, 2) and (lw[0] != lw[1]).all() and (lw[1] != lw[2]).all()


def test_count_parameters_counts_every_weight():
    """count_parameters sums numel over the parameters: a Linear(3, 2) has 3 * 2 + 2 = 8."""
    from lmvae_core.models.vae import count_parameters

    assert count_parameters(torch.nn.Linear(3, 2)) == 8
    assert count_parameters(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))) == 11
