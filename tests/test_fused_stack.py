"""Stacked VAE terms with a hand-written backward (models/fused_stack.py) against the vmap-and-autograd path they
replace, in the function itself, in the mixture (trainable and frozen stacks, subsets, a gate's gradient) and in
the ensemble."""
import pytest
import torch
from torch.func import functional_call, vmap

from lmvae_core.models import VAE, ExpertMixture, MoEVAE, fused_stack, fused_vae
from lmvae_core.models.stacking import as_stacks, linear_weights, stored
from lmvae_core.training import TrainConfig
from lmvae_core.training.ensemble import train_ensemble


def stack_of(k: int, **config):
    """k VAEs, their stacks in the stored layout (leaf tensors needing gradients) and a template."""
    models = [VAE(**config) for _ in range(k)]
    transposed = linear_weights(models[0])
    kept = {}
    for name, _ in models[0].named_parameters():
        t = torch.stack([m.get_parameter(name).detach() for m in models])
        kept[name] = (stored(t) if name in transposed else t).requires_grad_()
    return models[0], kept, transposed


def vmapped_terms(template, kept, transposed, x, eps):
    params = as_stacks(kept, transposed)
    buffers = {n: b.expand(eps.shape[0], *b.shape) for n, b in template.named_buffers()}
    in_x = None if x.dim() == 4 else 0

    def one(p, b, xi, e):
        return functional_call(template, (p, b), (xi,), {"op": "terms", "eps": e})

    return vmap(one, in_dims=(0, 0, in_x, 0))(params, buffers, x, eps)


def grads_of(kept, loss):
    for t in kept.values():
        t.grad = None
    loss.backward()
    return {n: t.grad.clone() for n, t in kept.items()}


@pytest.mark.parametrize("hidden,per_member", [((48,), False), ((40, 24), True)])
def test_terms_and_gradients_match_vmap_for_any_coefficients(hidden, per_member):
    """Any per-image weighting of recon and KL (a Dirichlet weight, a gate, a member's KL weight) backs through."""
    torch.manual_seed(0)
    k, b, latent = 3, 17, 5
    template, kept, transposed = stack_of(k, hidden=hidden, latent_dim=latent)
    x = (torch.rand(k, b, 1, 28, 28) if per_member else torch.rand(b, 1, 28, 28)).lt(0.3).float()
    eps = torch.randn(k, b, latent)
    c_recon, c_kl = torch.rand(k, b), torch.rand(k, b) * 3

    ref = vmapped_terms(template, kept, transposed, x, eps)
    g_ref = grads_of(kept, (c_recon * ref["recon"] + c_kl * ref["kl"]).sum())
    recon, kl, used = fused_stack.stacked_terms(template, kept, x, eps)
    g = grads_of(kept, (c_recon * recon + c_kl * kl).sum())

    assert used is eps
    assert torch.allclose(recon, ref["recon"], rtol=1e-5, atol=1e-3)
    assert torch.allclose(kl, ref["kl"], rtol=1e-5, atol=1e-5)
    for n in g_ref:
        assert g[n].shape == kept[n].shape  # the stored layout: no copy into another one
        scale = float(g_ref[n].abs().max())
        assert torch.allclose(g[n], g_ref[n], rtol=1e-4, atol=1e-5 * scale), n


def test_gradient_stops_where_logvar_is_clamped():
    torch.manual_seed(1)
    template, kept, transposed = stack_of(2, hidden=(16,), latent_dim=3)
    with torch.no_grad():
        kept["encoder.head.bias"][:, 3:5] += torch.tensor([30.0, -30.0])  # two logvars far outside [-12, 8]
    x, eps = torch.rand(9, 1, 28, 28), torch.randn(2, 9, 3)
    ref = vmapped_terms(template, kept, transposed, x, eps)
    g_ref = grads_of(kept, (ref["recon"] + ref["kl"]).sum())
    recon, kl, _ = fused_stack.stacked_terms(template, kept, x, eps)
    g = grads_of(kept, (recon + kl).sum())
    assert float(g["encoder.head.bias"][:, 3:5].abs().max()) == 0.0
    for n in g_ref:
        assert torch.allclose(g[n], g_ref[n], rtol=1e-4, atol=1e-5 * float(g_ref[n].abs().max())), n


def mixture_with_frozen():
    torch.manual_seed(2)
    mix = ExpertMixture(lambda: VAE(hidden=(32,), latent_dim=4), 4)
    mix.freeze(1)
    return mix


@pytest.mark.parametrize("ids", [None, [2, 1, 3], [0], [1]])
def test_mixture_terms_and_gradients_equal_the_vmap_path(mnist_sample, ids):
    """The same draws as vmap's (one standard normal per expert, image and latent), the same values to rounding, and
    the same gradients in the trainable stacks; a frozen stack gets none."""
    mix = mixture_with_frozen()
    x = torch.bernoulli(mnist_sample.x[:16])
    weights = torch.rand(len(ids or range(4)), 16)
    out = []
    for fused in (True, False):
        mix.zero_grad(set_to_none=True)
        torch.manual_seed(3)
        with (torch.enable_grad() if fused else fused_vae.disabled()):
            t = mix.all_experts(x, ids=ids)
        if t["loss"].requires_grad:
            (weights * t["loss"]).sum().backward()
        out.append((t, {n: None if p.grad is None else p.grad.clone() for n, p in mix.named_parameters()}))
    (tf, gf), (ta, ga) = out
    for key in ("loss", "recon", "kl", "elbo"):
        assert torch.allclose(tf[key], ta[key], rtol=1e-5, atol=1e-3), key
    for n in ga:
        assert (gf[n] is None) == (ga[n] is None), n
        if ga[n] is not None:
            assert torch.allclose(gf[n], ga[n], rtol=1e-4, atol=1e-5 * float(ga[n].abs().max())), n
    assert all(g is None for n, g in gf.items() if n.startswith("frozen"))


def test_mixture_takes_the_fused_path_only_where_it_applies(mnist_sample, monkeypatch):
    calls = []
    real = fused_stack.stacked_terms
    monkeypatch.setattr(fused_stack, "stacked_terms", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    x = torch.bernoulli(mnist_sample.x[:8])
    mix = mixture_with_frozen()
    mix.all_experts(x)
    assert len(calls) == 2  # one call per stack (trainable, frozen)
    mix.all_experts(x, op="reconstruction_error")
    mix.all_experts(x, eps=torch.randn(8, 4))  # a caller's own noise: the vmap path
    mix.all_experts(x, batched=False)
    with torch.no_grad():
        mix.all_experts(x)
    gaussian = ExpertMixture(lambda: VAE(hidden=(16,), latent_dim=2, likelihood="gaussian"), 2)
    gaussian.all_experts(x)
    assert len(calls) == 2


def test_gate_gradient_through_the_fused_mixture(mnist_sample):
    """MoE-VAE weights each expert's loss by a gate p(x) that itself learns: its gradient comes through the fused
    terms' values, and the experts' gradients through the gate's weights."""
    torch.manual_seed(4)
    model = MoEVAE(expert={"hidden": (32,), "latent_dim": 4}, n_experts=3)
    x = torch.bernoulli(mnist_sample.x[:12])
    grads = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        with (torch.enable_grad() if fused else fused_vae.disabled()):
            loss, _ = model.loss(x)
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and any(n.startswith("manager") for n in grads[0])
    for n in grads[1]:
        assert torch.allclose(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-5 * float(grads[1][n].abs().max())), n


def test_ensemble_through_the_fused_terms_equals_the_vmap_path(mnist_sample):
    x = mnist_sample.x[:150]
    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, binarize="dynamic")
    kw = {"seeds": [3, 4], "lrs": [1e-3, 3e-3], "kl_weights": [1.0, 0.5]}
    histories = [[], []]
    fused = train_ensemble(lambda: VAE(hidden=(32,), latent_dim=4), x, cfg, history=histories[0], **kw)
    with fused_vae.disabled():
        plain = train_ensemble(lambda: VAE(hidden=(32,), latent_dim=4), x, cfg, history=histories[1], **kw)
    for a, b in zip(fused, plain):
        for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(pa, pb, atol=1e-5, rtol=0), n
    for ha, hb in zip(*histories):
        for ea, eb in zip(ha, hb):
            assert ea.keys() == eb.keys() and all(abs(ea[k] - eb[k]) < 1e-3 for k in ea)
