"""The IWAE estimator against the exact log-likelihood of a linear Gaussian model.

p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I), and the exact posterior
is Gaussian, so every quantity has a closed form to test against.
"""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from lmvae_core.metrics import iwae_log_likelihood, negative_elbo
from lmvae_core.models import VAE


class LinearGaussian:
    def __init__(self, d_x=6, d_z=3, s=0.5, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(d_x, d_z, generator=g, dtype=torch.float64)
        self.b = torch.randn(d_x, generator=g, dtype=torch.float64)
        self.s, self.d_z = s, d_z

    def exact_log_px(self, x):
        cov = self.W @ self.W.T + self.s ** 2 * torch.eye(len(self.b), dtype=torch.float64)
        return MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        prec = torch.eye(self.d_z, dtype=torch.float64) + self.W.T @ self.W / self.s ** 2
        cov = torch.linalg.inv(prec)
        mean = (x - self.b) @ self.W @ cov.T / self.s ** 2
        return mean, cov

    def log_joint(self, x, z):
        log_pz = MultivariateNormal(torch.zeros(self.d_z, dtype=torch.float64),
                                    torch.eye(self.d_z, dtype=torch.float64)).log_prob(z)
        mean = z @ self.W.T + self.b
        log_px_z = (-0.5 * ((x - mean) / self.s) ** 2 - math.log(self.s) - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_pz + log_px_z

    def make_log_weights(self, q_scale=1.0, q_shift=0.0):
        """Importance weights under a proposal: the exact posterior, widened and shifted."""
        def log_weights(x, k):
            mean, cov = self.posterior(x)
            q = MultivariateNormal(mean + q_shift, cov * q_scale ** 2)
            z = q.sample((k,))
            return self.log_joint(x, z) - q.log_prob(z)
        return log_weights


@pytest.fixture
def model_and_data():
    m = LinearGaussian()
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, m.d_z, generator=g, dtype=torch.float64)
    x = z @ m.W.T + m.b + m.s * torch.randn(64, len(m.b), generator=g, dtype=torch.float64)
    return m, x


def test_exact_posterior_gives_exact_loglik_with_one_sample(model_and_data):
    m, x = model_and_data
    est = iwae_log_likelihood(m.make_log_weights(), x, k=1)
    assert torch.allclose(est, m.exact_log_px(x), atol=1e-8)


def test_iwae_converges_to_exact_loglik_and_bounds_are_ordered(model_and_data):
    m, x = model_and_data
    torch.manual_seed(0)
    fn = m.make_log_weights(q_scale=1.6, q_shift=0.3)
    exact = m.exact_log_px(x).mean().item()
    elbo = iwae_log_likelihood(fn, x, k=1).mean().item()  # k=1: a one-sample ELBO estimate
    elbo = sum(iwae_log_likelihood(fn, x, k=1).mean().item() for _ in range(50)) / 50
    iw10 = iwae_log_likelihood(fn, x, k=10).mean().item()
    iw5000 = iwae_log_likelihood(fn, x, k=5000, chunk=700).mean().item()
    assert elbo < iw10 < iw5000 <= exact + 0.01
    assert abs(iw5000 - exact) < 0.02
    assert exact - elbo > 0.1  # the proposal is poor enough for the test to mean something


def test_chunking_and_batching_do_not_change_the_estimate(model_and_data):
    m, x = model_and_data
    fn = m.make_log_weights(q_scale=1.2)
    torch.manual_seed(3)
    a = iwae_log_likelihood(fn, x, k=2000, chunk=2000, batch_size=64)
    torch.manual_seed(3)
    b = iwae_log_likelihood(fn, x, k=2000, chunk=2000, batch_size=64)
    c = iwae_log_likelihood(fn, x, k=2000, chunk=137, batch_size=10)
    assert torch.equal(a, b)
    assert (a - c).abs().max() < 0.05


def test_vae_elbo_below_iwae_on_real_digits(mnist_sample):
    torch.manual_seed(0)
    vae = VAE(hidden=(64,), latent_dim=8)
    x = torch.bernoulli(mnist_sample.x[:100])
    neg_elbo = negative_elbo(vae, x)
    iw = iwae_log_likelihood(vae, x, k=200).mean().item()
    assert -neg_elbo < iw
    with pytest.raises(ValueError):
        iwae_log_likelihood(vae, x, k=0)


def test_stacked_models_along_a_sample_axis(model_and_data):
    """K models at once (log weights [K, k, B], as ExpertMixture returns them) give each model's own estimate."""
    m, x = model_and_data
    other = LinearGaussian(seed=5)
    fns = (m.make_log_weights(), other.make_log_weights())
    stacked = iwae_log_likelihood(lambda xb, k: torch.stack([f(xb, k) for f in fns]), x, k=3, batch_size=20,
                                  sample_dim=1)
    assert stacked.shape == (2, len(x))
    assert torch.allclose(stacked[0], m.exact_log_px(x), atol=1e-8)
    assert torch.allclose(stacked[1], other.exact_log_px(x), atol=1e-8)


def test_mixture_log_likelihood_is_the_weighted_log_sum_and_zero_weights_drop_out():
    """log sum_i w_i p_i(x), weights normalised; a component of weight 0 drops out even where its log-likelihood is
    -inf (0 * p would be nan in log space)."""
    from lmvae_core.metrics import mixture_log_likelihood

    per = torch.tensor([[-1.0, -2.0, -3.0], [-4.0, -0.5, -6.0]], dtype=torch.float64)
    w = torch.tensor([3.0, 1.0])
    truth = torch.log(0.75 * per[0].exp() + 0.25 * per[1].exp())
    assert torch.allclose(mixture_log_likelihood(per, w), truth)
    assert mixture_log_likelihood(per, w).dtype == torch.float64
    dead = torch.cat([per, torch.full((1, 3), -math.inf, dtype=torch.float64)])
    got = mixture_log_likelihood(dead, torch.tensor([3.0, 1.0, 0.0]))
    assert torch.allclose(got, truth)
    nan = torch.cat([per, torch.full((1, 3), math.nan, dtype=torch.float64)])  # e.g. an unused, diverged expert
    assert torch.allclose(mixture_log_likelihood(nan, torch.tensor([3.0, 1.0, 0.0])), truth)
    # one component of weight 1: its own log-likelihood
    assert torch.equal(mixture_log_likelihood(per, torch.tensor([0.0, 2.0])), per[1])
