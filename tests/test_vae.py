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
