import torch

from lmvae_core.models import VAE, ExpertMixture
from lmvae_core.training import TrainConfig, load_checkpoint, make_optimizer, save_checkpoint, train


def small_mixture(k=4, seed=0):
    torch.manual_seed(seed)
    return ExpertMixture(lambda: VAE(hidden=(32,), latent_dim=4), k)


def test_batched_mixture_equals_loop_over_experts(mnist_sample):
    m = small_mixture()
    x = torch.bernoulli(mnist_sample.x[:16])
    eps = torch.randn(16, 4)
    batched = m.all_experts(x, eps=eps)
    looped = m.all_experts(x, eps=eps, batched=False)
    for key in ("loss", "recon", "kl", "elbo"):
        assert batched[key].shape == (4, 16)
        assert torch.allclose(batched[key], looped[key], rtol=1e-4, atol=1e-3)
    assert torch.allclose(m.all_experts(x, op="reconstruction_error"),
                          torch.stack([e.reconstruction_error(x) for e in m.experts]), rtol=1e-4, atol=1e-3)


def test_batched_gradients_equal_loop_gradients(mnist_sample):
    m = small_mixture()
    x = torch.bernoulli(mnist_sample.x[:8])
    eps = torch.randn(8, 4)
    m.all_experts(x, eps=eps)["loss"].sum().backward()
    g_batched = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.all_experts(x, eps=eps, batched=False)["loss"].sum().backward()
    for a, p in zip(g_batched, m.parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-3, atol=1e-4)


def test_frozen_expert_does_not_move_under_adam(mnist_sample):
    m = small_mixture()
    x = torch.bernoulli(mnist_sample.x[:256])
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False)
    loss = lambda b: (m.all_experts(b)["loss"].mean(), {})  # noqa: E731
    train(m, x, cfg, loss_fn=loss, optimizer=make_optimizer(m.parameters(), cfg))  # Adam now holds moments
    m.freeze(1)
    before = [p.clone() for p in m.experts[1].parameters()]
    other = [p.clone() for p in m.experts[0].parameters()]
    train(m, x, cfg, loss_fn=loss, optimizer=make_optimizer(m.trainable_parameters(), cfg))
    assert all(torch.equal(a, b) for a, b in zip(before, m.experts[1].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(other, m.experts[0].parameters()))
    assert m.trainable == [0, 2, 3]


def test_add_expert_and_select(mnist_sample):
    m = small_mixture(2)
    k = m.add_expert(copy_from=0)
    assert k == 2 and len(m) == 3
    x = mnist_sample.x[:10]
    assert torch.allclose(m.experts[2].reconstruct(x), m.experts[0].reconstruct(x))
    # an expert that reconstructs everything perfectly must be selected for every input
    choice = m.select(x)
    errs = m.all_experts(x, op="reconstruction_error")
    assert torch.equal(choice, errs.argmin(0))
    routed = m.per_input(x, choice, op="reconstruction_error")
    assert torch.allclose(routed, errs.min(0).values, rtol=1e-4, atol=1e-3)


def test_save_and_reload_gives_identical_outputs(tmp_path, mnist_sample):
    m = small_mixture(3)
    m.add_expert()
    m.freeze(0)
    path = save_checkpoint(m, tmp_path / "mix.pt")
    r = load_checkpoint(path)
    x = mnist_sample.x[:8]
    assert torch.equal(m.all_experts(x, op="reconstruct"), r.all_experts(x, op="reconstruct"))
    assert r.trainable == [1, 2, 3] and not any(p.requires_grad for p in r.experts[0].parameters())


def test_vmap_over_trainable_and_frozen_stacks_equals_loop(mnist_sample):
    """Experts 0 and 2 frozen: the batched path runs one vmap per stack and returns the requested order."""
    m = small_mixture(4)
    m.freeze(0)
    m.freeze(2)
    assert m.trainable == [1, 3]
    x = torch.bernoulli(mnist_sample.x[:12])
    eps = torch.randn(12, 4)
    for ids in (None, [3, 0, 1], [2, 0], [1, 3]):
        batched = m.all_experts(x, eps=eps, ids=ids)
        looped = {k: torch.stack([e.terms(x, eps=eps)[k] for e in
                                  [m.experts[i] for i in (ids or range(4))]]) for k in ("loss", "elbo")}
        for key in looped:
            assert torch.allclose(batched[key], looped[key], rtol=1e-4, atol=1e-3), (ids, key)


def test_weights_stay_stacked_and_experts_see_optimizer_steps(mnist_sample):
    m = small_mixture(3)
    stacks = m.trainable_parameters()
    assert all(p.shape[0] == 3 for p in stacks) and len(stacks) == len(list(m.experts[0].parameters()))
    opt = torch.optim.Adam(stacks, lr=1e-2)
    x = torch.bernoulli(mnist_sample.x[:32])
    before = [p.clone() for p in m.experts[2].parameters()]
    for _ in range(2):
        opt.zero_grad()
        m.all_experts(x)["loss"].mean().backward()
        opt.step()
    assert [id(p) for p in m.trainable_parameters()] == [id(p) for p in stacks]  # no re-stacking per step
    for stack, p, b in zip(stacks, m.experts[2].parameters(), before):
        row = stack[2] if p.dim() < 2 else stack[2].t()  # Linear weights are stored transposed (models/stacking.py)
        assert torch.equal(p, row) and not torch.equal(p, b)  # the expert is a view of the stack


def test_copy_and_dtype_change_keep_the_experts_linked(mnist_sample):
    import copy

    m = small_mixture(2)
    m.freeze(1)
    c = copy.deepcopy(m).double()
    with torch.no_grad():
        c.trainable_parameters()[0].add_(1.0)
    first = next(c.experts[0].parameters())
    assert first.dtype == torch.float64 and torch.equal(first, c.trainable_parameters()[0][0].t())  # stored transposed
    assert not torch.equal(next(m.experts[0].parameters()).double(), first)  # the copy has its own storage


def test_expert_of_another_mixture_is_copied_not_shared():
    m = small_mixture(2)
    other = ExpertMixture(experts=[m.experts[1]])
    with torch.no_grad():
        other.trainable_parameters()[0].zero_()
    assert next(m.experts[1].parameters()).abs().sum() > 0


def test_different_architectures_are_refused():
    import pytest

    with pytest.raises(ValueError, match="same architecture"):
        ExpertMixture(experts=[VAE(hidden=(32,), latent_dim=4), VAE(hidden=(16,), latent_dim=4)])
