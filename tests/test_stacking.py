"""Stacked Linear weights stored in the layout their gradients arrive in (models/stacking.py)."""
import torch
from torch.func import functional_call, stack_module_state, vmap

from lmvae_core.models import VAE, ExpertMixture
from lmvae_core.models.stacking import as_stack, as_stacks, linear_weights, stored


def make():
    return VAE(hidden=(32,), latent_dim=4)


def arrivals(params: dict) -> dict:
    """Hooks that record the storage address of the gradient autograd hands each parameter."""
    seen = {}
    for name, p in params.items():
        p.register_hook(lambda g, name=name: seen.__setitem__(name, g.data_ptr()))
    return seen


def batched_loss(models, params, buffers, x):
    template, eps = models[0], torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(1))
    return vmap(lambda p, b: functional_call(template, (p, b), (x,), {"eps": eps})["loss"].mean(),
                in_dims=(0, 0))(params, buffers).sum()


def test_linear_weights_are_named():
    assert linear_weights(make()) == {"encoder.body.1.0.weight", "encoder.head.weight", "decoder.net.0.weight",
                                      "decoder.net.2.weight"}


def test_stored_weight_stacks_get_their_gradient_without_a_copy(mnist_sample):
    torch.manual_seed(0)
    models = [make() for _ in range(3)]
    x = torch.bernoulli(mnist_sample.x[:16])
    params, buffers = stack_module_state(models)
    names = linear_weights(models[0])
    # the plain layout: the vmapped product hands each weight stack a transposed gradient, which autograd copies
    plain = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    seen = arrivals(plain)
    batched_loss(models, plain, buffers, x).backward()
    assert all(plain[n].grad.data_ptr() != seen[n] for n in names)
    # the stored layout: the same gradient lands as it arrives (autograd keeps it), contiguous like its stack
    kept = {k: (stored(v.detach()) if k in names else v.detach().clone()).requires_grad_() for k, v in params.items()}
    seen = arrivals(kept)
    batched_loss(models, {k: as_stack(v) if k in names else v for k, v in kept.items()}, buffers, x).backward()
    for n in names:
        assert kept[n].is_contiguous() and kept[n].grad.data_ptr() == seen[n]
        torch.testing.assert_close(as_stack(kept[n].grad), plain[n].grad, rtol=1e-5, atol=1e-6)


def test_mixture_keeps_linear_weights_transposed_and_the_experts_see_them(mnist_sample):
    torch.manual_seed(0)
    m = ExpertMixture(make, 3)
    names = linear_weights(m.experts[0])
    kept = dict(zip([n for n, _ in m.experts[0].named_parameters()], m.trainable_parameters()))
    seen = arrivals({n: kept[n] for n in names})
    m.all_experts(torch.bernoulli(mnist_sample.x[:16]))["loss"].mean(1).sum().backward()
    for n in names:
        w = m.experts[1].get_parameter(n)
        assert kept[n].shape == (3, w.shape[1], w.shape[0]) and kept[n].is_contiguous()
        assert w.data_ptr() == kept[n][1].data_ptr() and torch.equal(w, kept[n][1].t())  # a view of the stack
        assert kept[n].grad.data_ptr() == seen[n]  # no copy of the gradient
        assert torch.equal(m.expert_grads(1)[n], kept[n].grad[1].t())


def test_as_stacks_views_only_the_named_tensors_and_keeps_none():
    kept = {"w": torch.arange(24.0).view(2, 3, 4), "b": torch.zeros(2, 4), "g": None}
    out = as_stacks(kept, {"w", "g"})
    assert out["w"].shape == (2, 4, 3) and out["w"].data_ptr() == kept["w"].data_ptr()
    assert torch.equal(out["w"][1], kept["w"][1].t())
    assert out["b"] is kept["b"] and out["g"] is None
