import math

import torch

from lmvae_core.models import MoEVAE, MoEVAEConfig, VAEConfig
from lmvae_core.models.moe_vae import balance_penalty


def test_balance_penalty_zero_when_uniform_and_log_k_when_collapsed():
    uniform = torch.full((8, 4), 0.25)
    collapsed = torch.zeros(8, 4)
    collapsed[:, 2] = 1
    assert balance_penalty(uniform, "kl").item() == 0.0
    assert abs(balance_penalty(collapsed, "kl").item() - math.log(4)) < 1e-5
    assert balance_penalty(uniform, "cv").item() == 0.0 < balance_penalty(collapsed, "cv").item()
    assert balance_penalty(collapsed, "none").item() == 0.0


def test_mixture_loss_is_gate_weighted_expert_loss(mnist_sample):
    torch.manual_seed(0)
    m = MoEVAE(MoEVAEConfig(n_experts=3, expert=VAEConfig(hidden=(16,), latent_dim=3), manager_hidden=(16,),
                            balance="none"))
    x = torch.bernoulli(mnist_sample.x[:20])
    # with equal noise in both computations the mixture loss is sum_k p_k L_k averaged over images
    torch.manual_seed(1)
    loss, terms = m.loss(x)
    torch.manual_seed(1)
    per_expert = m.experts.all_experts(x)["loss"].T
    expected = (m.gate(x) * per_expert).sum(1).mean()
    assert torch.allclose(loss, expected, rtol=1e-4)


def test_routed_log_weights_use_the_assigned_expert(mnist_sample):
    torch.manual_seed(0)
    m = MoEVAE(MoEVAEConfig(n_experts=3, expert=VAEConfig(hidden=(16,), latent_dim=3), manager_hidden=(16,)))
    x = torch.bernoulli(mnist_sample.x[:12])
    lw = m.log_weights(x, 5)
    assert lw.shape == (5, 12)
    choice = m.assign(x)
    e = choice[0].item()
    torch.manual_seed(2)
    own = m.experts.experts[e].log_weights(x[:1], 2000).logsumexp(0) - math.log(2000)
    torch.manual_seed(2)
    routed = m.log_weights(x, 2000)[:, 0].logsumexp(0) - math.log(2000)
    assert abs(own.item() - routed.item()) < 1.0
