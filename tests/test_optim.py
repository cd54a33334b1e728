"""The package's Adam (training/optim.py): bitwise torch's fused Adam, through its short CPU path."""
import pytest
import torch

from lmvae_core.models import VAE
from lmvae_core.training import FusedAdam, TrainConfig, make_optimizer


def run(opt_factory, x, steps=5, freeze_first=False, closure=False):
    torch.manual_seed(0)
    model = VAE(hidden=(32,), latent_dim=4)
    if freeze_first:  # a parameter without a gradient is skipped, as torch's Adam skips it
        next(model.parameters()).requires_grad_(False)
    opt = opt_factory([p for p in model.parameters() if p.requires_grad])
    for s in range(steps):
        eps = torch.randn(x.shape[0], 4, generator=torch.Generator().manual_seed(s))

        def loss_fn():
            opt.zero_grad(set_to_none=True)
            loss = model.terms(x, eps=eps)["loss"].mean()
            loss.backward()
            return loss

        if closure:
            opt.step(loss_fn)
        else:
            loss_fn()
            opt.step()
    return model, opt


def same(a, b):
    (ma, oa), (mb, ob) = a, b
    for (n, p), q in zip(ma.named_parameters(), mb.parameters()):
        assert torch.equal(p, q), n
    for p, q in zip(ma.parameters(), mb.parameters()):
        for k in ("exp_avg", "exp_avg_sq", "step"):
            if p in oa.state:
                assert torch.equal(oa.state[p][k], ob.state[q][k]), k


@pytest.mark.parametrize("freeze_first", [False, True])
def test_fused_adam_is_bitwise_torch_fused_adam(mnist_sample, monkeypatch, freeze_first):
    x = torch.bernoulli(mnist_sample.x[:16])
    reference = run(lambda p: torch.optim.Adam(p, lr=3e-3, fused=True), x, freeze_first=freeze_first)
    # count the steps that go through torch's own step: only the first (it creates the state)
    slow = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: slow.append(1) or original(self, closure))
    ours = run(lambda p: FusedAdam(p, lr=3e-3), x, freeze_first=freeze_first)
    assert len(slow) == 1
    same(reference, ours)


def test_fused_adam_falls_back_to_torch_where_the_short_path_does_not_apply(mnist_sample, monkeypatch):
    x = torch.bernoulli(mnist_sample.x[:16])
    slow = []
    original = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, closure=None: slow.append(1) or original(self, closure))
    run(lambda p: FusedAdam(p), x, steps=3, closure=True)
    assert len(slow) == 3  # a closure: torch's step every time
    slow.clear()
    _, opt = run(lambda p: FusedAdam(p), x, steps=1)
    opt.param_groups[0]["weight_decay"] = 0.1  # weight decay: torch's step, which applies it
    opt.step()
    assert len(slow) == 2


def test_make_optimizer_gives_the_fused_adam_with_the_config():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer([p], TrainConfig(lr=2e-3, betas=(0.5, 0.9)))
    assert isinstance(opt, FusedAdam) and opt.defaults["fused"]
    assert opt.param_groups[0]["lr"] == 2e-3 and opt.param_groups[0]["betas"] == (0.5, 0.9)
