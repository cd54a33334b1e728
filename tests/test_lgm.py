"""Behaviour of the Lifelong Generative Modeling student-teacher VAE (lmvae_core.models.lgm)."""
import copy

import pytest
import torch

from lmvae_core.data.streams import DataConfig, class_split_stream
from lmvae_core.metrics import iwae_log_likelihood
from lmvae_core.models import lgm
from lmvae_core.models.lgm import LGM, LGMConfig, LifelongConfig


@pytest.fixture(scope="module")
def stream():
    return class_split_stream("mnist", 10, DataConfig(source="sample"))


def small(k=1, **kw) -> LGM:
    torch.manual_seed(0)
    return LGM(LGMConfig(latent_dim=4, discrete_dim=k, hidden=(32,), **kw))


def test_replay_fraction_is_t_over_t_plus_1(stream, monkeypatch):
    for t in range(10):
        for b in (10, 64, 100, 128):
            real, replay = lgm.replay_counts(t, b)
            assert real >= 1 and real + replay <= b
            assert replay * (t + 1) == t * (real + replay)  # exactly t/(t+1)
    # and the training loop really builds its batches that way
    seen = []
    real_loss = lgm.student_teacher_loss

    def spy(student, teacher, real, replay, gamma_c):
        seen.append((real.shape[0], 0 if replay is None else replay.shape[0]))
        return real_loss(student, teacher, real, replay, gamma_c)

    monkeypatch.setattr(lgm, "student_teacher_loss", spy)
    teacher = small(3)
    teacher.eval()
    student = teacher.grown()
    x = stream[3].train.x[:120]
    lgm.train_task(student, 3, x, LifelongConfig(method="lgm", epochs=1, batch_size=40), teacher=teacher)
    assert seen and all(rp == 3 * r and rp / (r + rp) == 3 / 4 for r, rp in seen)


def test_teacher_frozen_while_student_trains(stream):
    model = small(1)
    x0, x1 = stream[0].train.x[:100], stream[1].train.x[:100]
    lgm.train_task(model, 0, x0, LifelongConfig(epochs=1, batch_size=50))
    teacher, student = lgm.fork(model)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert all(not p.requires_grad for p in teacher.parameters())
    s_before = {k: v.clone() for k, v in student.state_dict().items()}
    lgm.train_task(student, 1, x1, LifelongConfig(method="lgm", epochs=2, batch_size=50), teacher=teacher)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    # the student did move
    assert any(not torch.equal(s_before[k], v) for k, v in student.state_dict().items() if k != "tau")


def test_consistency_zero_iff_student_equals_teacher(stream):
    x = stream[0].test.x[:64]
    teacher = small(3).eval()
    student = copy.deepcopy(teacher)
    _, t_logits = teacher.encode(x)[0], teacher.encode(x)[2]
    kl_same = lgm.consistency_kl(student.encode(x)[2], t_logits)
    assert torch.allclose(kl_same, torch.zeros_like(kl_same), atol=1e-6)
    with torch.no_grad():
        student.encoder.head.weight[-3:] += 0.3 * torch.randn_like(student.encoder.head.weight[-3:])
    kl_diff = lgm.consistency_kl(student.encode(x)[2], t_logits)
    assert (kl_diff > 0).all() and kl_diff.mean() > 1e-3
    # against torch.distributions for equal category counts
    ref = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=student.encode(x)[2]),
                                            torch.distributions.Categorical(logits=t_logits))
    assert torch.allclose(kl_diff, ref, atol=1e-5)
    # a grown student: positive, and it grows with the mass put on the new category
    grown = teacher.grown()
    low = lgm.consistency_kl(grown.encode(x)[2], t_logits)
    assert (low >= 0).all()
    with torch.no_grad():
        grown.encoder.head.bias[-1] += 5.0
    assert (lgm.consistency_kl(grown.encode(x)[2], t_logits) > low).all()
    # and the loss adds it on replayed rows only: real rows with a teacher equal to the student add nothing
    torch.manual_seed(1)
    loss_a, terms_a = lgm.student_teacher_loss(student.eval(), teacher, x[:32], x[32:], gamma_c=1.0)
    assert terms_a["consistency"] > 0


def test_gumbel_softmax_one_hot_at_evaluation(stream):
    model = small(5)
    logits = torch.randn(200, 5)
    model.eval()
    hard = model.sample_discrete(logits)
    assert set(hard.unique().tolist()) <= {0.0, 1.0} and torch.equal(hard.sum(-1), torch.ones(200))
    model.train()
    soft = model.sample_discrete(logits)
    assert torch.allclose(soft.sum(-1), torch.ones(200)) and ((soft > 0) & (soft < 1)).any()
    # the hard sample is an exact categorical draw: frequencies match softmax(logits)
    probs = torch.softmax(torch.tensor([2.0, 0.0, -1.0, 1.0, 0.5]), -1)
    draws = lgm.gumbel_softmax(torch.log(probs).expand(20000, 5), 0.5, hard=True).mean(0)
    assert torch.allclose(draws, probs, atol=0.015)


def test_grown_student_keeps_teacher_outputs(stream):
    teacher = small(2).eval()
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    student = teacher.grown().eval()
    assert student.n_categories == 3
    x = stream[0].test.x[:32]
    mu_t, lv_t, lg_t = teacher.encode(x)
    mu_s, lv_s, lg_s = student.encode(x)
    assert torch.allclose(mu_t, mu_s) and torch.allclose(lv_t, lv_s) and torch.allclose(lg_t, lg_s[:, :2])
    cats = torch.tensor([0, 1] * 8)
    z_t = teacher.prior_codes(16, cats, torch.Generator().manual_seed(0))
    z_s = student.prior_codes(16, cats, torch.Generator().manual_seed(0))
    assert torch.allclose(teacher.decode(z_t), student.decode(z_s), atol=1e-6)
    # parameters of unchanged shape are equal copies; the new category is a fresh, different head row
    ts, ss = teacher.state_dict(), student.state_dict()
    for k in ts:
        if ts[k].shape == ss[k].shape and k != "tau":
            assert torch.equal(ts[k], ss[k]), k
    assert not torch.allclose(student.decode(student.prior_codes(4, torch.full((4,), 2))),
                              student.decode(student.prior_codes(4, torch.full((4,), 0))))


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(50, 7) * 2, torch.randn(50, 7) * 1.5
    ours = lgm.gaussian_kl(mu, logvar)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)),
                                            torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(ours, ref, atol=1e-5)
    # the official code's defect (logvar used as the scale) would give something else
    buggy = torch.distributions.kl_divergence(torch.distributions.Normal(mu, logvar.abs() + 1e-3),
                                              torch.distributions.Normal(0.0, 1.0))
    assert not torch.allclose(ours, buggy, atol=1e-2)
    # categorical KL to uniform
    logits = torch.randn(10, 4)
    ref_c = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logits),
                                              torch.distributions.Categorical(probs=torch.full((10, 4), 0.25)))
    assert torch.allclose(lgm.categorical_kl_uniform(logits), ref_c, atol=1e-6)


def test_iwae_bound_is_valid_and_tightens(stream):
    """k=1 log weights average to the evaluation ELBO; the bound rises with k and is finite."""
    model = small(3)
    x = torch.bernoulli(stream[0].test.x[:40], generator=torch.Generator().manual_seed(0))
    lgm.train_task(model, 0, stream[0].train.x[:200], LifelongConfig(epochs=2, batch_size=50))
    model.eval()
    torch.manual_seed(0)
    lw = model.log_weights(x, 200)
    elbo_k1 = lw.mean(0)
    torch.manual_seed(1)
    with torch.no_grad():
        elbo_eval = model.terms(x.repeat(200, 1, 1, 1))["elbo"].view(200, -1).mean(0)
    assert torch.allclose(elbo_k1.mean(), elbo_eval.mean(), rtol=0.01)
    ll = iwae_log_likelihood(model, x, k=200)
    assert torch.isfinite(ll).all() and (ll > elbo_k1 - 1e-3).all()


def test_ewc_penalty_zero_at_anchor_and_quadratic():
    model = small(2)
    x = torch.rand(32, 1, 28, 28)
    fisher = lgm.diagonal_fisher(model, x.round(), n=16, chunk=8)
    assert all((f >= 0).all() for f in fisher.values()) and sum(f.sum() for f in fisher.values()) > 0
    anchor = {k: v.detach().clone() for k, v in model.named_parameters()}
    grown = model.grown()
    assert float(lgm.ewc_penalty(grown, anchor, fisher, 1.0)) == pytest.approx(0.0, abs=1e-8)
    with torch.no_grad():
        for p in grown.parameters():
            p.add_(0.01)
    p1 = float(lgm.ewc_penalty(grown, anchor, fisher, 1.0))
    with torch.no_grad():
        for p in grown.parameters():
            p.add_(0.01)
    assert float(lgm.ewc_penalty(grown, anchor, fisher, 1.0)) == pytest.approx(4 * p1, rel=1e-3)


def test_spec_roundtrip(tmp_path):
    from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint

    model = small(4).eval()
    path = save_checkpoint(model, tmp_path / "m.pt")
    again = load_checkpoint(path)
    x = torch.rand(3, 1, 28, 28)
    assert all(torch.equal(a, b) for a, b in zip(model.encode(x), again.encode(x)))
