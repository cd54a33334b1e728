"""L-MVAE: Dirichlet MELBO weights, freezing, assignment, growth, selection, save/load."""
import copy

import pytest
import torch

from lmvae_core.continual import Budget, LMVAELearner, TaskData
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.models.lmvae import LMVAE, LMVAEConfig
from lmvae_core.models.vae import VAE, VAEConfig
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint
from lmvae_core.training.loop import TrainConfig, train

SAMPLE = DataConfig(source="sample")
EXPERT = VAEConfig(latent_dim=8, hidden=(64,))
FAST = TrainConfig(epochs=3, batch_size=64, progress=False)


def images(name, split="train", n=600):
    return load_split(name, split, SAMPLE).x[:n]


@pytest.fixture(scope="module")
def domain_experts():
    """One small VAE trained on MNIST and one on Fashion-MNIST (real sample images)."""
    torch.manual_seed(0)
    out = {}
    for name in ("mnist", "fashion"):
        vae = VAE(EXPERT)
        train(vae, images(name, n=1000), FAST)
        out[name] = vae
    return out


def fit_task(model: LMVAE, x, name, cfg: TrainConfig) -> dict:
    """One task through the L-MVAE learner, with the driver's real batches."""
    task = TaskData(len(model.task_names), name, x, Budget(cfg.epochs, cfg.batch_size, cfg.binarize))
    return LMVAELearner(model=model, lr=cfg.lr).fit_task(task)


def model_with(experts, **cfg):
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=len(experts), **cfg))
    for k, e in enumerate(experts):
        model.experts.experts[k].load_state_dict(e.state_dict())
    return model


def test_dirichlet_weights_zero_for_frozen_experts():
    torch.manual_seed(0)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=4))
    model.assign(1, task=0, reference_error=1.0)
    model.assign(3, task=1, reference_error=1.0)
    draws = torch.stack([model.mixing_weights() for _ in range(500)])
    assert torch.all(draws[:, [1, 3]] == 0)
    assert torch.allclose(draws.sum(1), torch.ones(500))
    # fresh draws every step, symmetric over the trainable experts
    assert draws[:, 0].std() > 0.1
    assert abs(float(draws[:, 0].mean()) - 0.5) < 0.1
    # the MELBO sends no gradient to frozen experts
    loss, _ = model.loss(images("mnist", n=32))
    loss.backward()
    assert all(g is None for k in (1, 3) for g in model.experts.expert_grads(k).values())
    assert any(g is not None and g.abs().sum() > 0 for g in model.experts.expert_grads(0).values())


def test_frozen_expert_unchanged_while_later_tasks_train():
    torch.manual_seed(1)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=2, reuse_threshold=None, probe_size=128))
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False)
    d0 = fit_task(model, images("mnist", n=256), "mnist", cfg)
    frozen = d0["expert"]
    before = copy.deepcopy(model.experts.experts[frozen].state_dict())
    other = 1 - frozen
    other_before = copy.deepcopy(model.experts.experts[other].state_dict())
    d1 = fit_task(model, images("fashion", n=256), "fashion", cfg)
    assert d1["action"] == "train" and d1["expert"] == other
    after = model.experts.experts[frozen].state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert any(not torch.equal(other_before[n], model.experts.experts[other].state_dict()[n]) for n in other_before)
    assert not any(p.requires_grad for p in model.experts.experts[frozen].parameters())


def test_assignment_picks_best_fitting_trainable_expert(domain_experts):
    torch.manual_seed(2)
    fresh = VAE(EXPERT)
    # expert 1 knows MNIST, experts 0 and 2 do not: training zero steps on MNIST must assign expert 1
    model = model_with([fresh, domain_experts["mnist"], domain_experts["fashion"]], probe_size=128)
    x = images("mnist")
    d = fit_task(model, x, "mnist", TrainConfig(epochs=0, progress=False))
    probe = model.probe(x, seed=1000)
    with torch.no_grad():
        errors = [float(model.experts.experts[k].reconstruction_error(probe).mean()) for k in range(3)]
    assert d["expert"] == 1 == min(range(3), key=errors.__getitem__)
    assert model.experts.is_frozen(1) and not model.experts.is_frozen(0) and not model.experts.is_frozen(2)
    assert float(model.reference_error[1]) == pytest.approx(errors[1], rel=1e-5)
    # an already-frozen expert is never assigned again, even if it fits best
    model.config.reuse_threshold = None  # no reuse: the task must be trained
    d2 = fit_task(model, x, "mnist-again", TrainConfig(epochs=0, progress=False))
    assert d2["action"] == "train" and d2["expert"] in (0, 2)


def test_growth_exactly_when_criterion_says(domain_experts):
    x_new = images("fashion")
    base = model_with([domain_experts["mnist"]], probe_size=128)
    base.assign(0, task=0, reference_error=float(base.expert_errors(base.probe(images("mnist"), 7))[0]))
    base.task_names.append("mnist")
    base.task_expert.append(0)
    probe = base.probe(x_new, seed=1000 + 1)
    ratio = float(base.experts.experts[0].reconstruction_error(probe).mean() / base.reference_error[0])
    assert ratio > 1.2  # Fashion is not MNIST to an MNIST expert
    zero = TrainConfig(epochs=0, progress=False)
    for threshold, expect_reuse in ((ratio - 1 - 0.05, False), (ratio - 1 + 0.05, True)):
        m = copy.deepcopy(base)
        m.config.reuse_threshold = threshold
        d = fit_task(m, x_new, "fashion", zero)
        assert d["ratios"][0] == pytest.approx(ratio, rel=1e-5)
        if expect_reuse:
            assert d["action"] == "reuse" and len(m) == 1 and d["expert"] == 0 and d["steps"] == 0
        else:
            assert d["action"] == "grow" and d["added"] and len(m) == 2 and d["expert"] == 1
    # a new task with a trainable expert left trains it and adds nothing
    m = copy.deepcopy(base)
    m.add_expert()
    m.config.reuse_threshold = None
    d = fit_task(m, x_new, "fashion", zero)
    assert d["action"] == "train" and not d["added"] and len(m) == 2


def test_selection_picks_the_domain_expert(domain_experts):
    model = model_with([domain_experts["fashion"], domain_experts["mnist"]])
    model.assign(0, 0, 1.0)
    model.assign(1, 1, 1.0)
    # constructed case: expert 1 was trained on MNIST only, expert 0 on Fashion-MNIST only; the test images
    # of each domain must go to the expert that learned it (mostly: the experts are small and briefly trained)
    for criterion, floor in (("recon", 0.6), ("elbo", 0.65)):
        on_mnist = model.select(images("mnist", "test", 300), criterion)
        on_fashion = model.select(images("fashion", "test", 300), criterion)
        assert (on_mnist == 1).float().mean() > 0.9
        assert (on_fashion == 0).float().mean() > floor
    # inference runs only the chosen expert: outputs equal that expert's own
    x = torch.cat([images("mnist", "test", 20), images("fashion", "test", 20)])
    choice = model.select(x)
    rec = model.reconstruct(x, choice)
    for i in range(len(x)):
        own = model.experts.experts[int(choice[i])].reconstruct(x[i:i + 1])
        assert torch.allclose(rec[i:i + 1], own, atol=1e-6)


def test_save_and_reload_grown_mixture(tmp_path):
    torch.manual_seed(3)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=1, reuse_threshold=None, probe_size=64))
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False)
    fit_task(model, images("mnist", n=200), "mnist", cfg)
    d = fit_task(model, images("fashion", n=200), "fashion", cfg)
    assert d["added"] and len(model) == 2
    model.add_expert()  # one still trainable
    path = save_checkpoint(model, tmp_path / "lmvae.pt")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LMVAE) and len(loaded) == 3
    assert loaded.task_names == model.task_names and loaded.task_expert == model.task_expert
    assert torch.equal(loaded.expert_task, model.expert_task)
    assert loaded.trainable == model.trainable == [2]
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in model.parameters()]
    model.eval()
    x = torch.cat([images("mnist", "test", 50), images("fashion", "test", 50)])
    assert torch.equal(loaded.select(x), model.select(x))
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    eps = torch.randn(len(x), EXPERT.latent_dim)
    for k in range(3):
        a = loaded.experts.experts[k].terms(x, eps)
        b = model.experts.experts[k].terms(x, eps)
        assert torch.equal(a["elbo"], b["elbo"])
    assert torch.equal(loaded.sample_per_expert(4, seed=5), model.sample_per_expert(4, seed=5))
