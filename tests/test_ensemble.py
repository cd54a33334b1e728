"""Ensembles: S members trained as one stacked computation give the results of S separate runs."""
import pytest
import torch

from lmvae_core.models import VAE
from lmvae_core.training import TrainConfig
from lmvae_core.training.ensemble import train_ensemble

# Tolerance: the stacked path runs batched matrix products (on the CPU with the hand-written backward of
# models/fused_stack.py, else vmap) where the separate runs run plain ones through autograd, so sums may be
# accumulated in another order (float32 rounding). Measured on CPU after the runs below: largest weight
# difference 6.6e-8 (one learning rate), 9.1e-8 (the lr/KL grid) and 1.4e-7 (clipped, static binarisation)
# through the fused stack (5e-8 and 1.2e-7 through vmap), against ~0.08 between members of different seeds.
ATOL = 1e-5


def make():
    return VAE(hidden=(32,), latent_dim=4)


def run(x, stacked, **kw):
    history = []
    cfg = TrainConfig(epochs=2, batch_size=64, progress=False, **kw.pop("cfg", {}))
    models = train_ensemble(make, x, cfg, seeds=[3, 4, 5], stacked=stacked, history=history, **kw)
    return models, history


@pytest.mark.parametrize("kw", [{}, {"lrs": [1e-3, 3e-3, 1e-2], "kl_weights": [1.0, 0.5, 2.0]},
                                {"cfg": {"grad_clip": 5.0, "binarize": "static"}}])
def test_stacked_ensemble_equals_separate_runs(mnist_sample, kw):
    x = mnist_sample.x[:200]  # 200 = 3 full batches and a short one
    a, ha = run(x, True, **dict(kw))
    b, hb = run(x, False, **dict(kw))
    for ma, mb in zip(a, b):
        for (n, pa), pb in zip(ma.named_parameters(), mb.parameters()):
            assert torch.allclose(pa, pb, atol=ATOL, rtol=0), n
    for ra, rb in zip(ha, hb):
        for ea, eb in zip(ra, rb):
            assert ea.keys() == eb.keys() and all(abs(ea[k] - eb[k]) < 1e-2 for k in ea)
    # the members really differ (seeds, and the grid), and they learn
    assert not torch.allclose(next(a[0].parameters()), next(a[1].parameters()))
    assert all(h[1]["loss"] < h[0]["loss"] for h in ha)


def test_member_equals_a_plain_run_with_its_seed(mnist_sample):
    """Member s of an ensemble does not depend on the other members."""
    x = mnist_sample.x[:128]
    cfg = TrainConfig(epochs=1, batch_size=32, progress=False)
    together = train_ensemble(make, x, cfg, seeds=[1, 2])
    alone = train_ensemble(make, x, cfg, seeds=[2])
    for pa, pb in zip(together[1].parameters(), alone[0].parameters()):
        assert torch.allclose(pa, pb, atol=ATOL, rtol=0)


def test_bad_grid_is_refused(mnist_sample):
    with pytest.raises(ValueError, match="2 seeds but 3 learning rates"):
        train_ensemble(make, mnist_sample.x[:8], TrainConfig(progress=False), seeds=[0, 1], lrs=[1e-3] * 3)
