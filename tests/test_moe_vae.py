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


def _tiny_mixture(n_experts=4, balance="kl"):
    torch.manual_seed(0)
    return MoEVAE(MoEVAEConfig(n_experts=n_experts, expert=VAEConfig(hidden=(16,), latent_dim=3),
                               manager_hidden=(16,), balance=balance))


def test_fidelity_mixture_likelihood_selected_expert_overstates(mnist_sample):
    """Item 12 of issue 11. With K identical experts the mixture's density IS each expert's density, so any
    per-image pick must not score above it. Picking the best expert with the draw that scores it does (selection
    noise, k=1 makes it large); re-scoring the pick with an independent draw does not."""
    m = _tiny_mixture()
    first = m.experts.experts[0].state_dict()
    for e in m.experts.experts[1:]:
        e.load_state_dict(first)  # in-place: lands in the stacks
    x = torch.bernoulli(mnist_sample.x[:300])
    ll = {k: v.mean().item() for k, v in m.likelihoods(x, k=1, seed=0).items()}
    torch.manual_seed(5)
    single = torch.stack([m.experts.experts[0].log_weights(x, 1)[0] for _ in range(8)]).mean().item()
    assert ll["best_same_draw"] > single + 2.0  # noise-selected upward by several nats per image
    assert abs(ll["best_redrawn"] - single) < 1.0  # an honest estimate of one expert's bound
    assert abs(ll["routed"] - single) < 1.0  # the gate does not see the draw
    assert ll["mixture"] > single  # log mean of K draws: a tighter bound on the same density


def test_fidelity_routing_diagnostics_find_the_lowest_loss_expert(mnist_sample):
    """The ceiling evidence of notebook 00 compares the manager's choice with argmin_k L_k. Ground truth: on black
    images the expert whose decoder predicts black (output bias -10) has the lowest loss; the others predict white."""
    m = _tiny_mixture()
    x = torch.zeros(50, 1, 28, 28)
    with torch.no_grad():
        for i, e in enumerate(m.experts.experts):
            bias = [p for n, p in e.decoder.named_parameters() if n.endswith("bias") and p.numel() == 784][0]
            bias.fill_(-10.0 if i == 2 else 10.0)
        last = m.manager[-1][-1]  # the output layer of the manager MLP
        last.bias.copy_(torch.tensor([0.0, 30.0, 0.0, 0.0]))  # the manager routes everything to expert 1
        last.weight.zero_()
    d = m.routing_diagnostics(x)
    assert (d["lowest_loss"] == 2).all()
    assert (d["routed"] == 1).all()
    assert torch.allclose(d["max_gate"], torch.ones(50), atol=1e-6)


# -- beyond the post: the mixture-of-Gaussians prior (VaDE style) and the latent k-means baseline -----------------
from lmvae_core.metrics.clustering import cluster_accuracy, many_to_one_accuracy  # noqa: E402
from lmvae_core.models.mog_vae import MoGVAE, MoGVAEConfig, fit_diag_gmm  # noqa: E402
from lmvae_core.models.vae import VAE, standard_normal_log_prob  # noqa: E402


def test_many_to_one_accuracy_lets_clusters_share_a_label():
    y = [0, 0, 0, 1, 1, 1]
    split = [0, 1, 1, 2, 2, 2]  # label 0 split over two pure clusters
    assert many_to_one_accuracy(y, split) == 1.0
    assert cluster_accuracy(y, split) == 5 / 6  # one-to-one: one of the two clusters of label 0 is unmatched
    assert many_to_one_accuracy(y, [0, 0, 0, 0, 0, 1]) == 4 / 6


def test_fidelity_gmm_fit_recovers_known_blobs():
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
    sizes = [600, 300, 100]
    z = torch.cat([means[i] + 0.5 * torch.randn(n, 2, generator=g) for i, n in enumerate(sizes)])
    w, m, v = fit_diag_gmm(z, 3, iters=50, seed=0)
    order = torch.tensor([int(((m - mu).norm(dim=1)).argmin()) for mu in means])
    assert torch.allclose(m[order], means, atol=0.1)
    assert torch.allclose(w[order], torch.tensor([0.6, 0.3, 0.1]), atol=0.02)
    assert torch.allclose(v[order], torch.full((3, 2), 0.25), atol=0.05)


def test_mog_prior_with_one_standard_component_is_the_plain_vae():
    torch.manual_seed(0)
    mog = MoGVAE(MoGVAEConfig(hidden=(16,), latent_dim=3, n_components=1))
    z = torch.randn(7, 3)
    assert torch.allclose(mog.log_prior(z), standard_normal_log_prob(z), atol=1e-5)
    plain = VAE(mog.config)
    plain.load_state_dict(mog.state_dict(), strict=False)
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    eps = torch.randn(5, 3)
    # the one-sample KL estimate averages to the closed form; with the same eps the reconstruction is identical
    a, b = mog.terms(x, eps), plain.terms(x, eps)
    assert torch.allclose(a["recon"], b["recon"])
    kl_mc = mog.terms(x.repeat(4000, 1, 1, 1))["kl"].view(4000, 5).mean(0)
    assert torch.allclose(kl_mc, b["kl"], atol=0.15 + 0.05 * b["kl"].abs().max().item())


def _toy_prototypes(n_per=100, k=4, flip=0.08, seed=0):
    """k random binary 28x28 prototypes, each seen n_per times with bit flips: well-separated clusters."""
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(k, 1, 28, 28, generator=g) < 0.3).float()
    y = torch.arange(k).repeat_interleave(n_per)
    noise = (torch.rand(k * n_per, 1, 28, 28, generator=g) < flip).float()
    return (protos[y] - noise).abs(), y


def test_fidelity_latent_kmeans_and_mog_variant_recover_toy_clusters():
    from lmvae_core.papers.mixture_of_vaes.prior import latent_kmeans, latent_means
    from lmvae_core.training.loop import TrainConfig, train

    x, y = _toy_prototypes()
    torch.manual_seed(0)
    vae = VAE(VAEConfig(hidden=(32,), latent_dim=2))
    train(vae, x, TrainConfig(epochs=10, batch_size=50, binarize=None, progress=False))
    assert latent_kmeans(vae, x, y, k=4)["accuracy"] == 1.0
    w, m, v = fit_diag_gmm(latent_means(vae, x), 4, seed=0)
    mog = MoGVAE(MoGVAEConfig(hidden=(32,), latent_dim=2, n_components=4))
    mog.load_state_dict(vae.state_dict(), strict=False)
    mog.init_prior(w, m, v)
    train(mog, x, TrainConfig(epochs=3, batch_size=50, binarize=None, progress=False))
    assign = mog.assign(x)
    assert cluster_accuracy(y.numpy(), assign.numpy()) == 1.0
    assert torch.isfinite(mog.log_weights(x[:10], 5)).all()


def test_fidelity_claims_judge_against_both_kmeans_baselines_with_schedules():
    """Notebook 00's claims: the classifier claim is judged against k-means on latent means (and on pixels for
    'partly'), never against GMVAE/VaDE; every claim states its schedule; the variant's bar is 0.85, labelled."""
    from lmvae_core.papers.mixture_of_vaes import experiments as exp
    from lmvae_core.papers.mixture_of_vaes.settings import SETTINGS
    from lmvae_core.experiments.common import setup

    run = setup("00_mixture_of_vaes", profile="smoke", settings=SETTINGS)
    metrics = {"accuracy": 0.60, "purity": 0.62, "kmeans_accuracy": 0.55, "latent_kmeans_accuracy": 0.59}
    results = {"mnist": {"metrics": metrics}}
    ablation = [{"balance": b, "seed": s, "usage_entropy": e, "steps": 8, "images": 1000}
                for b, e in (("kl", 2.3), ("none", 0.1)) for s in (0, 1)]
    score = {"accuracy": 0.2, "many_to_one": 0.9, "clusters_used": 50}
    beyond = [{"components": c, "latent k-means": score, "GMM initialisation": score, "mixture-prior VAE": score}
              for c in (10, 50)]
    claims = exp.claims(run, results, ablation, beyond, calibrated=True)
    assert all(c.schedule is not None for c in claims)
    classifier = claims[1]
    assert classifier.rule.threshold == 0.59 and classifier.rule.partly == 0.55
    assert classifier.rule.judge(0.60) == "reproduced" and classifier.rule.judge(0.57) == "partly"
    last = claims[-1]
    assert last.claim.startswith("Beyond the post") and last.rule.threshold == 0.9  # k-means's 0.9, above the bar
    assert last.ours == 0.9  # 50 components > 10 classes: many-to-one
    # the post's statements need a half-budget value before their verdict stands
    assert all(c.verdict == "not comparable" for c in claims if c.kind == "paper")
