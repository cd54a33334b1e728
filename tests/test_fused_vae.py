"""The MLP VAE's fused loss (models/fused_vae.py) against the autograd path it replaces: same loss and terms,
gradients equal to rounding, the same random draw, and the autograd path wherever it does not apply."""
import pytest
import torch

from lmvae_core.models import VAE
from lmvae_core.models import fused_vae


def both(model: VAE, x: torch.Tensor, seed: int = 0):
    """(loss, terms, grads) of the fused path and of the autograd path (model.terms), from the same RNG state."""
    out = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        if fused:
            assert fused_vae.applies(model, x)
            loss, terms = model.loss(x)
        else:
            t = model.terms(x)
            loss, terms = t["loss"].mean(), {k: v.mean() for k, v in t.items()}
        loss.backward()
        out.append((loss.detach(), {k: v.detach() for k, v in terms.items()},
                    {n: p.grad.clone() for n, p in model.named_parameters()}))
    return out


@pytest.mark.parametrize("hidden,beta,batch", [((400,), 1.0, 128), ((64, 32), 0.5, 37)])
def test_fused_loss_and_gradients_match_autograd(hidden, beta, batch):
    torch.manual_seed(1)
    model = VAE(hidden=hidden, latent_dim=8, beta=beta)
    x = (torch.rand(batch, 1, 28, 28) < 0.3).float()
    (lf, tf, gf), (la, ta, ga) = both(model, x)
    assert torch.equal(lf, la)  # the same operations forward, and the same eps
    for k in ("loss", "recon", "kl", "elbo"):
        assert tf[k] == pytest.approx(float(ta[k]), rel=1e-6)
    for n in ga:
        scale = float(ga[n].abs().max())
        assert torch.allclose(gf[n], ga[n], rtol=1e-4, atol=1e-5 * scale), n


def test_fused_gradient_stops_where_logvar_is_clamped():
    """VAE.encode clamps logvar to [-12, 8]: no gradient flows into the head's logvar rows past the clamp."""
    torch.manual_seed(2)
    model = VAE(hidden=(32,), latent_dim=4)
    with torch.no_grad():
        model.encoder.head.bias[4:] += torch.tensor([30.0, -30.0, 0.0, 0.0])  # two logvars far outside the range
    x = torch.rand(16, 1, 28, 28)
    (_, _, gf), (_, _, ga) = both(model, x)
    assert float(gf["encoder.head.bias"][4:6].abs().max()) == 0.0
    for n in ga:
        assert torch.allclose(gf[n], ga[n], rtol=1e-4, atol=1e-6), n


def test_frozen_parameters_get_no_gradient():
    model = VAE(hidden=(32,), latent_dim=4)
    model.encoder.head.weight.requires_grad_(False)
    loss, _ = model.loss(torch.rand(8, 1, 28, 28))
    loss.backward()
    assert model.encoder.head.weight.grad is None and model.encoder.head.bias.grad is not None


def test_autograd_path_wherever_the_fused_loss_does_not_apply():
    x = torch.rand(4, 1, 28, 28)
    assert fused_vae.applies(VAE(hidden=(16,), latent_dim=2), x)
    for kwargs in ({"activation": "tanh"}, {"likelihood": "gaussian"}, {"capacity": 5.0}, {"arch": "conv"}):
        assert not fused_vae.applies(VAE(hidden=(16,), latent_dim=2, **kwargs), x), kwargs
    model = VAE(hidden=(16,), latent_dim=2)
    with torch.no_grad():
        assert not fused_vae.applies(model, x)
    assert not fused_vae.applies(model, x.double())
    assert not fused_vae.applies(model, x.clone().requires_grad_())  # its backward gives no input gradient
    other = VAE(hidden=(16,), latent_dim=2)
    other.encoder = torch.nn.Identity()  # a network swapped in: not the layers the fused loss reads
    assert not fused_vae.applies(other, x)

    class OtherPrior(VAE):
        def kl_per_dim(self, mu, logvar):
            return super().kl_per_dim(mu, logvar) * 2

    assert not fused_vae.applies(OtherPrior(hidden=(16,), latent_dim=2), x)
    # under torch.func (the ensemble and the mixture vmap the model), the autograd path runs
    seen = []
    torch.func.vmap(lambda xi: seen.append(fused_vae.applies(model, xi)) or xi.sum())(x)
    assert seen == [False]


def test_disabled_sends_every_vae_through_autograd_and_restores():
    x = torch.rand(4, 1, 28, 28)
    model = VAE(hidden=(16,), latent_dim=2)
    with fused_vae.disabled():
        assert not fused_vae.applies(model, x)
        with pytest.raises(RuntimeError, match="planned"), fused_vae.disabled():
            raise RuntimeError("planned")
        assert not fused_vae.applies(model, x)  # the inner block restored the outer one's setting
    assert fused_vae.applies(model, x)
