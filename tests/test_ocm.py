"""OCM (notebook 04): memory rules, expansion, freezing and the reservoir baseline, against ground truth."""
import math

import pytest
import torch
from scipy import stats

from lmvae_core.data.streams import DataConfig, TaskFreeStream, load_split
from lmvae_core.continual import OCMLearner
from lmvae_core.models.ocm import OCM, OCMConfig, kernel_scores, reservoir_update, select_indices
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = dict(hidden=16, latent_dim=4, train_samples=1, epochs_per_batch=1, lr=1e-3, r_samples=2)


@pytest.fixture(scope="module")
def mnist():
    s = load_split("mnist", "train", DataConfig(source="sample"))
    keep = torch.isin(s.y, torch.tensor([0, 1, 2]))
    return s.subset(keep.nonzero().squeeze(1)[:600])


def test_stm_clears_after_selection(mnist):
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(stm_size=96, per_round=5, **SMALL)), seed=0)
    stream = iter(TaskFreeStream(mnist, 32))
    sizes = [learner.observe(*next(stream))["stm"] for _ in range(6)]
    assert sizes == [32, 64, 96, 32, 64, 96]  # before selection, as trained on
    assert learner.stm_x.shape[0] == 0 and len(learner.selections) == 2
    assert learner.selections[0]["added"] == 5


@pytest.mark.parametrize("direction,lambda1", [("diverse", 1.01), ("similar", -0.01)])
def test_ltm_respects_capacity_and_round_cap(mnist, direction, lambda1):
    torch.manual_seed(0)
    cfg = OCMConfig(stm_size=32, per_round=7, ltm_capacity=30, direction=direction, lambda1=lambda1, **SMALL)
    learner = OCMLearner(OCM(cfg), seed=0)
    sizes = [0]
    for x, y in list(TaskFreeStream(mnist, 32))[:10]:
        learner.observe(x, y)
        sizes.append(learner.memory_size)
    steps = [b - a for a, b in zip(sizes[:-1], sizes[1:])]
    assert max(sizes) == 30 and all(n <= 30 for n in sizes)  # everything passes the threshold: capacity binds
    assert max(steps) <= 7 and steps[:4] == [7, 7, 7, 7] and steps[4] == 2


def test_criterion_direction_on_constructed_case():
    ltm = torch.zeros(20, 3) + 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    dist = torch.tensor([0.0, 1.0, 30.0, 5.0, 60.0, 0.5])
    stm = torch.zeros(6, 3)
    stm[:, 0] = dist
    scores = kernel_scores(stm, ltm, "poster", alpha=10.0)
    expected = torch.exp(-dist ** 2 / 200.0)
    assert torch.allclose(scores, expected, atol=2e-3)
    code = kernel_scores(stm, ltm, "code", alpha=10.0)
    assert torch.allclose(code, torch.exp(-dist / (math.sqrt(2) * 10)), atol=2e-3)
    # diversity: the far samples (60, 30, then 5) pass, farthest first; the near ones stay out
    div = select_indices(scores, lambda1=0.9, direction="diverse", per_round=10, room=10)
    assert div.tolist() == [4, 2, 3]
    # similarity: the near samples pass, nearest first
    sim = select_indices(scores, lambda1=0.9, direction="similar", per_round=10, room=10)
    assert sim.tolist() == [0, 5, 1]
    # caps: per round and room left
    assert select_indices(scores, 0.9, "diverse", per_round=2, room=10).tolist() == [4, 2]
    assert select_indices(scores, 0.9, "similar", per_round=10, room=1).tolist() == [0]


def test_expansion_triggers_exactly_on_threshold():
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(dynamic=True, lambda2=10.0, max_components=3, **SMALL)))
    learner.ltm_x = torch.rand(5, 1, 28, 28)
    assert not learner.maybe_expand(-100.0)  # first round: only records R
    assert not learner.maybe_expand(-110.0)  # |diff| == lambda2: no expansion
    assert len(learner.model) == 1 and learner.memory_size == 5
    assert learner.maybe_expand(-120.0 - 1e-3)  # just above the threshold
    assert len(learner.model) == 2 and learner.memory_size == 0 and learner.r_last is None
    assert not learner.maybe_expand(-50.0)  # R_last measured afresh after growth
    assert learner.maybe_expand(-61.0)
    assert len(learner.model) == 3
    assert not learner.maybe_expand(0.0) and not learner.maybe_expand(100.0)  # component cap
    assert len(learner.model) == 3


def test_frozen_components_do_not_change(mnist, tmp_path):
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(stm_size=64, dynamic=True, **SMALL)), seed=0)
    batches = list(TaskFreeStream(mnist, 32))
    for x, y in batches[:2]:
        learner.observe(x, y)
    learner.r_last = 1e9
    assert learner.maybe_expand(0.0)
    model = learner.model
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("components.1.")}
    opt_params = {id(p) for g in learner.optimizer.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in model.components[1].parameters()}
    new_before = [p.detach().clone() for p in model.components[1].parameters()]
    for x, y in batches[2:6]:
        learner.observe(x, y)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert any(not torch.equal(a, b) for a, b in zip(new_before, model.components[1].parameters()))
    # reload keeps the structure and the freezing
    path = save_checkpoint(model, tmp_path / "ocm.pt")
    again = load_checkpoint(path)
    assert len(again) == 2 and not again.enc1.weight.requires_grad
    assert [p.requires_grad for p in again.components[0].parameters()] == [False] * 8


def test_batched_components_match_one_at_a_time(mnist):
    torch.manual_seed(0)
    model = OCM(OCMConfig(**SMALL), n_components=3)
    x = torch.bernoulli(mnist.x[:20], generator=torch.Generator().manual_seed(0))
    rec = model.reconstruction_error(x)
    for k in range(3):
        assert torch.allclose(rec[k], model.reconstruction_error(x, ids=[k])[0], atol=1e-5)
    torch.manual_seed(1)
    ll = model.iwae_per_component(x, 1)
    torch.manual_seed(1)
    lw = model.log_weights(x, 1)[:, 0]
    assert torch.allclose(ll, lw, atol=1e-4)


def test_reservoir_sampling_is_uniform():
    """Algorithm R: after a stream of 200 items, each is in a memory of 20 with probability 0.1."""
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(200)
    trials = 500
    for _ in range(trials):
        slots = torch.empty(0, dtype=torch.long)
        seen = 0
        for chunk in (64, 64, 50, 22):
            slots, _ = reservoir_update(slots, seen, chunk, 20, g)
            seen += chunk
        assert len(slots) == 20 and len(set(slots.tolist())) == 20
        counts[slots] += 1
    expected = trials * 20 / 200
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p = stats.chi2.sf(chi2, df=199)
    assert p > 0.001, (chi2, p)
    # early and late items are equally likely (the classic bug keeps the first items)
    assert abs(counts[:100].mean() - counts[100:].mean()) < 0.15 * expected
