"""Behaviour of the Lifelong Generative Modeling student-teacher VAE (lmvae_core.models.lgm)."""
import copy
import math

import pytest
import torch

from lmvae_core.data.streams import DataConfig, class_split_stream
from lmvae_core.metrics import iwae_log_likelihood
from lmvae_core.continual import Budget, LGMLearner, LifelongConfig, TaskData, run_stream
from lmvae_core.continual import lgm as lgm_learner
from lmvae_core.continual.driver import StreamTask
from lmvae_core.models import lgm
from lmvae_core.models.lgm import LGM, LGMConfig


@pytest.fixture(scope="module")
def stream():
    return class_split_stream("mnist", 10, DataConfig(source="sample"))


def small(k=1, **kw) -> LGM:
    torch.manual_seed(0)
    return LGM(LGMConfig(latent_dim=4, discrete_dim=k, hidden=(32,), **kw))


def fit(learner, x, epochs=1, batch_size=50):
    """One task through the learner, with the driver's real batches."""
    return learner.fit_task(TaskData(learner.tasks_done, f"task {learner.tasks_done}", x, Budget(epochs, batch_size)))


def test_full_real_batch_with_replay_on_top(stream, monkeypatch):
    """Every step takes the driver's full real batch and as many teacher rows on top, the replay carrying
    the official share t/(t+1) of the loss; the real data per task equal the naive baseline's."""
    seen = []
    real_loss = lgm.student_teacher_loss

    def spy(student, teacher, real, replay, gamma_c, replay_weight=None):
        seen.append((learner.tasks_done, real.shape[0], 0 if replay is None else replay.shape[0], replay_weight))
        return real_loss(student, teacher, real, replay, gamma_c, replay_weight)

    monkeypatch.setattr(lgm_learner, "student_teacher_loss", spy)
    tasks = [stream[t].train.x[:120] for t in range(4)]
    torch.manual_seed(0)
    learner = LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)), LifelongConfig("lgm"))
    result = run_stream(learner, [StreamTask(f"t{i}", x) for i, x in enumerate(tasks)], Budget(1, 40))
    assert result.real_rows == [120] * 4 and result.replay_rows == [0, 120, 120, 120]
    for t in range(4):
        steps = [s for s in seen if s[0] == t]
        assert len(steps) == 3 and all(r == 40 for _, r, _, _ in steps)
        assert all(rp == (40 if t else 0) for _, _, rp, _ in steps)
        assert all(w == (pytest.approx(t / (t + 1)) if t else None) for *_, w in steps)
    torch.manual_seed(0)
    naive = LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)), LifelongConfig("naive"))
    assert run_stream(naive, [StreamTask(f"t{i}", x) for i, x in enumerate(tasks)], Budget(1, 40)).real_rows == [120] * 4
    # the weighted loss is (1 - w) mean(real rows) + w mean(replayed rows + gamma consistency)
    teacher = small(2).eval()
    student = teacher.grown().eval()
    x = stream[0].test.x[:48]
    torch.manual_seed(3)
    loss, terms = lgm.student_teacher_loss(student, teacher, x[:32], x[32:], gamma_c=2.0, replay_weight=0.75)
    torch.manual_seed(3)
    rows = student.terms(x)["loss"]
    cons = lgm.consistency_kl(student.encode(x[32:])[2], teacher.encode(x[32:])[2], student.config.teacher_eps)
    want = 0.25 * rows[:32].mean() + 0.75 * (rows[32:] + 2.0 * cons).mean()
    assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-5)


def test_teacher_frozen_while_student_trains(stream):
    torch.manual_seed(0)
    learner = LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)), LifelongConfig("lgm"))
    fit(learner, stream[0].train.x[:100])
    after_0 = {k: v.clone() for k, v in learner.student.state_dict().items()}
    fit(learner, stream[1].train.x[:100], epochs=2)
    teacher, student = learner.teacher, learner.student
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(after_0[k], v) for k, v in teacher.state_dict().items())
    assert student.n_categories == teacher.n_categories + 1
    # the student did move (on the parameters whose shape did not grow)
    same = [k for k, v in student.state_dict().items() if k != "tau" and v.shape == after_0[k].shape]
    assert same and any(not torch.equal(after_0[k], student.state_dict()[k]) for k in same)


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
    torch.manual_seed(0)
    learner = LGMLearner(LGMConfig(latent_dim=4, discrete_dim=3, hidden=(32,)))
    x = torch.bernoulli(stream[0].test.x[:40], generator=torch.Generator().manual_seed(0))
    fit(learner, stream[0].train.x[:200], epochs=2)
    model = learner.student.eval()
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


# ---- issue 11: fidelity to the official code (jramapuram/LifelongVAE_pytorch) -----------------------------


def two_tasks(stream, cfg: LGMConfig, method="lgm", steps=60, n=300, seed=0):
    torch.manual_seed(seed)
    learner = LGMLearner(cfg, LifelongConfig(method), seed=seed)
    tasks = [StreamTask(f"t{i}", stream[i].train.x[:n]) for i in range(2)]
    run_stream(learner, tasks, Budget(epochs=20, batch_size=50, max_steps=steps))
    return learner


def test_fidelity_lgm_mutual_information_term(stream):
    """The loss adds discrete_mut_info * CE(q(z_d|x_hat), drawn z_d) + continuous_mut_info * KL(q(z_c|x_hat) ||
    q(z_c|x)) (clamped), x_hat the Bernoulli means of the reconstruction; the ELBO itself is unchanged."""
    x = torch.bernoulli(stream[0].test.x[:16], generator=torch.Generator().manual_seed(0))
    model = small(3, discrete_mut_info=0.7, continuous_mut_info=0.3).eval()  # eval: hard z_d, checkable draw
    torch.manual_seed(5)
    t = model.terms(x)
    torch.manual_seed(5)
    mu, logvar, logits = model.encode(x)
    zc = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    zd = lgm.gumbel_softmax(logits, 1.0, hard=True)
    out = model.decode(torch.cat([zc, zd], -1))
    mu_h, logvar_h, logits_h = model.encode(torch.sigmoid(out))
    ce = torch.nn.functional.cross_entropy(logits_h, zd.argmax(-1), reduction="none")
    kl_c = torch.distributions.kl_divergence(torch.distributions.Normal(mu_h, torch.exp(0.5 * logvar_h)),
                                             torch.distributions.Normal(mu, torch.exp(0.5 * logvar))).sum(-1)
    assert torch.allclose(t["mi"], 0.7 * ce + 0.3 * kl_c, atol=1e-4)
    assert torch.allclose(t["loss"], -t["elbo"] + t["mi"], atol=1e-4) and (t["mi"] > 0).all()
    off = small(3, discrete_mut_info=0.0).eval()
    assert torch.equal(off.terms(x)["mi"], torch.zeros(16))
    assert torch.equal(t["mi_p"], torch.zeros(16))  # the prior-code term (not official) is off by default
    prior = small(3, discrete_mut_info=0.0, prior_mut_info=2.0).eval()
    tp = prior.terms(x)
    assert (tp["mi_p"] > 0).all() and torch.allclose(tp["mi"], 2.0 * tp["mi_p"])
    huge = small(3, discrete_mut_info=1e6, mut_clamp=100.0).eval()
    assert float(huge.terms(x)["mi"].detach().max()) <= 100.0


def test_fidelity_lgm_old_task_keeps_its_category(stream):
    """After a second task, the first task's test images stay in the teacher's category. With the earlier start
    of a new category (zero weights, logit 5 above the old ones) every image, old task included, took the new
    category, against the consistency term."""
    def old_task_in_old_category(cfg):
        model = two_tasks(stream, cfg).student.eval()
        return float((model.assign(stream[0].test.x[:100]) == 0).float().mean())

    assert old_task_in_old_category(LGMConfig(latent_dim=4, hidden=(64,))) >= 0.9
    assert old_task_in_old_category(LGMConfig(latent_dim=4, hidden=(64,), new_bias=5.0)) <= 0.1


def test_fidelity_lgm_temperature_schedule(stream):
    """tau = max(exp(-3e-5 * 2 * steps), 0.5) (the official GumbelSoftmax.anneal, two reparameterisations per
    step), whatever the task's length; the step count restarts with each new student (official: a fresh
    GumbelSoftmax), or runs over the stream with tau_scope='stream'. It used to fall to 0.5 within every task."""
    cfg = LGMConfig(latent_dim=4, hidden=(32,))
    assert lgm.anneal(cfg, 0) == 1.0 and lgm.anneal(cfg, 10**6) == 0.5
    assert lgm.anneal(cfg, 1000) == pytest.approx(math.exp(-0.06))
    fast = LGMConfig(latent_dim=4, hidden=(32,), anneal_rate=1e-3)
    tasks = [StreamTask(f"t{i}", stream[i].train.x[:100]) for i in range(2)]
    for scope, steps_at_end in (("student", 4), ("stream", 8)):
        torch.manual_seed(0)
        learner = LGMLearner(fast, LifelongConfig("lgm", tau_scope=scope))
        taus = []
        run_stream(learner, tasks, Budget(epochs=2, batch_size=50),
                   on_boundary=lambda t, lr: taus.append(float(lr.student.tau)))
        # tau is set before each step: after 4 steps per task the last step ran at count 3 (7 over the stream)
        assert taus[0] == pytest.approx(lgm.anneal(fast, 3))
        assert taus[1] == pytest.approx(lgm.anneal(fast, steps_at_end - 1))
        assert taus[0] > 0.99  # a short task no longer ends at tau_min


def test_fidelity_lgm_head_grows_only_for_student_teacher_methods(stream):
    """Official StudentTeacher.fork: the discrete head grows for the student-teacher model, not for EWC, and a
    model without the student-teacher architecture (naive) never forks. 'full' (our upper bound for LGM's
    model) grows like LGM."""
    tasks = [StreamTask(f"t{i}", stream[i].train.x[:60]) for i in range(3)]
    for method, k in (("naive", 1), ("ewc", 1), ("lgm", 3), ("replay", 3), ("full", 3)):
        torch.manual_seed(0)
        learner = LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)), LifelongConfig(method, fisher_samples=8))
        run_stream(learner, tasks, Budget(1, 30))
        assert learner.student.n_categories == k, method


def test_fidelity_lgm_new_category_not_biased(stream):
    """A new category starts from a fresh initialisation (the official code re-initialises the grown layer), not
    with zero weights and a logit 5 above the old ones, which made every input, old data included, prefer it."""
    teacher = small(2).eval()
    student = teacher.grown()
    row_w, row_b = student.encoder.head.weight[-1], student.encoder.head.bias[-1]
    bound = 1 / math.sqrt(student.encoder.head.in_features)  # nn.Linear's init range
    assert row_w.abs().max() > 0 and float(row_w.abs().max()) <= bound and abs(float(row_b)) <= bound
    x = stream[0].test.x[:64]
    p_new = torch.softmax(student.encode(x)[2], -1)[:, -1]
    assert float(p_new.mean()) < 0.9
    biased = LGM(LGMConfig(latent_dim=4, discrete_dim=2, hidden=(32,), new_bias=5.0))
    biased.load_state_dict(teacher.state_dict())
    assert float(torch.softmax(biased.grown().encode(x)[2], -1)[:, -1].mean()) > 0.9


def test_fidelity_lgm_budget(stream):
    """LGM's real data per task, as the driver reports it, equal every other method's under the same budget
    (fine-tuning, generative replay, the joint VAE's total); its teacher replay is counted on top."""
    from lmvae_core.continual import SequentialVAE
    from lmvae_core.models.vae import VAEConfig

    tasks = [StreamTask(f"t{i}", stream[i].train.x[:90]) for i in range(3)]
    budget = Budget(epochs=2, batch_size=40)
    rows = {}
    for name, learner in (("lgm", LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)), LifelongConfig("lgm"))),
                          ("ewc", LGMLearner(LGMConfig(latent_dim=4, hidden=(32,)),
                                             LifelongConfig("ewc", fisher_samples=8))),
                          ("fine-tune", SequentialVAE(VAEConfig(latent_dim=4, hidden=(32,)))),
                          ("replay VAE", SequentialVAE(VAEConfig(latent_dim=4, hidden=(32,)), replay=True))):
        result = run_stream(learner, tasks, budget)
        rows[name] = (result.real_rows, result.replay_rows)
    assert rows["lgm"][0] == [180, 180, 180]
    assert all(r[0] == rows["lgm"][0] for r in rows.values()), rows
    assert rows["lgm"][1] == [0, 180, 180] == rows["replay VAE"][1]
