"""OCM's memory passes as CUDA graphs (issue 38, item 1), and under bf16 autocast (item 3).

On the CPU: the minibatches in blocks are those of the eager passes, a round through a kept step (graphs that
outlive one round, rebuilt at an expansion) trains exactly as the eager round, and the graph cache makes room for
a new shape by dropping the least recently replayed one; an own-noise learner's kept step names its generator. On
CUDA (skipped elsewhere): the graphed learner follows the eager learner's trajectory, through an expansion, with no
step run eagerly, with and without its own noise."""
import copy
from functools import partial

import pytest
import torch

from lmvae_core.continual import BaseLearner
from lmvae_core.continual import ocm as ocm_module
from lmvae_core.continual.ocm import GRAPH_BLOCK, OCMLearner
from lmvae_core.models.ocm import OCM, OCMConfig
from lmvae_core.training.graphs import CudaGraphStep, StepBlock

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def config(**overrides) -> OCMConfig:
    """An STM of 8 and an LTM growing by 5 a round, in minibatches of 2: over 16 arriving batches, passes with and
    without a block of 8, a short last minibatch in some rounds and not others, and two expansions."""
    base = dict(input_dim=16, image_shape=(1, 4, 4), hidden=12, latent_dim=3, train_samples=3, stm_size=8,
                ltm_capacity=40, per_round=5, epochs_per_batch=3, batch_size=2, lambda1=0.5, alpha=1.0,
                dynamic=True, lambda2=0.05, max_components=3, r_samples=4, lr=1e-2)
    return OCMConfig(**(base | overrides))


def stream(n_batches: int = 16, batch: int = 4, device="cpu") -> list[torch.Tensor]:
    data = torch.rand(n_batches * batch, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    return [data[i:i + batch].to(device) for i in range(0, len(data), batch)]


def learner(device="cpu", cfg: OCMConfig | None = None, **kwargs) -> OCMLearner:
    torch.manual_seed(0)
    return OCMLearner(OCM(cfg or config()), seed=0, device=device, **kwargs)


def flat(batches) -> list[torch.Tensor]:
    return [r for _, b in batches for r in (b.batches.unbind(0) if isinstance(b, StepBlock) else [b])]


def test_blocks_hold_the_eager_minibatches_in_order():
    """48 memory images in minibatches of 5: per pass one block of 8, then 5 and the last 3; the same
    images, the same order and the same random numbers as the eager pass, and the same step and row counts."""
    a, b = learner(cfg=config(batch_size=5)), learner(cfg=config(batch_size=5))
    for x in stream(6):  # 24 STM images (arrive() does not select) and 24 LTM images
        a.arrive(x), b.arrive(x)
    a.ltm_x = b.ltm_x = torch.rand(24, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(1)
    eager = list(a._memory_batches(2))
    torch.manual_seed(1)
    blocked = list(b._memory_batches(2, block=GRAPH_BLOCK))
    assert [len(x) if isinstance(x, StepBlock) else x.shape[0] for _, x in blocked] == [8, 5, 3] * 2
    assert all(torch.equal(p, q) for p, q in zip(flat(eager), flat(blocked))) and len(flat(eager)) == 20
    assert (a.steps, a.replayed_rows) == (b.steps, b.replayed_rows) == (20, 96)


def test_a_kept_step_trains_as_the_eager_rounds(monkeypatch):
    """The CUDA path on the CPU, with every shape run eagerly (no graph captured): blocks of minibatches through
    one step kept across rounds give bitwise the eager learner's parameters. At the expansion the step is rebuilt for the
    new optimiser, and a copy of the learner leaves the graphs behind."""
    monkeypatch.setattr(ocm_module, "CudaGraphStep", partial(CudaGraphStep, max_graphs=0))
    eager, kept = learner(), learner()
    monkeypatch.setattr(kept, "graphs_on", lambda: True)
    torch.manual_seed(1)
    for x in stream():
        eager.observe(x)
    torch.manual_seed(1)
    steps_seen = []
    for x in stream():
        kept.observe(x)
        steps_seen.append(kept._graphs)
    assert kept.expansions and kept.expansions == eager.expansions
    assert len({id(s) for s in steps_seen}) == len(kept.expansions) + 1  # one step per optimiser
    assert kept._graphs.optimizer is kept.optimizer and kept._graphs.eager_steps > 0
    assert sum(s.eager_steps for s in set(steps_seen)) == kept.steps  # every step went through the kept steps
    assert (kept.steps, kept.replayed_rows) == (eager.steps, eager.replayed_rows)
    for p, q in zip(eager.model.parameters(), kept.model.parameters()):
        assert torch.equal(p, q)
    # the round's mean loss sums a block's 8 losses at once, so it agrees to float rounding, not bit for bit
    assert [h["loss"] for h in kept.history] == pytest.approx([h["loss"] for h in eager.history], rel=1e-6)
    assert copy.deepcopy(kept)._graphs is None


def test_graphs_only_on_cuda_and_an_own_noise_learner_registers_its_generator(monkeypatch):
    assert not learner().graphs_on() and not learner(cuda_graph=True).graphs_on()
    assert learner().graph_step() is None
    with pytest.raises(ValueError, match="cuda_graph must be"):
        learner(cuda_graph="sometimes")
    plain, own = learner(), learner(own_noise=True, cuda_graph=True)
    for one in (plain, own):
        monkeypatch.setattr(one, "graphs_on", lambda: True)
    assert plain.graph_step().generators == [] and own.graph_step().generators == [own.noise]


def test_an_own_noise_learner_through_a_kept_step_trains_as_its_eager_rounds(monkeypatch):
    """As above for a learner that draws from its own generators (the members of a StackedOCM): bitwise."""
    monkeypatch.setattr(ocm_module, "CudaGraphStep", partial(CudaGraphStep, max_graphs=0))
    eager, kept = learner(own_noise=True), learner(own_noise=True)
    monkeypatch.setattr(kept, "graphs_on", lambda: True)
    for x in stream():
        eager.observe(x)
        kept.observe(x)
    assert kept.expansions == eager.expansions and kept._graphs.eager_steps > 0
    for p, q in zip(eager.model.parameters(), kept.model.parameters()):
        assert torch.equal(p, q)


class FakeGraphStep(CudaGraphStep):
    """Captures record the shape instead of a graph; a replay counts."""

    def _capture(self, batch):
        record = {"shape": tuple(batch.shape), "replays": 0}

        class Graph:
            def replay(self):
                record["replays"] += 1
        return Graph(), (batch.clone(),), torch.zeros(()), {"shape": record}


def test_a_full_graph_cache_drops_the_least_recently_replayed_shape():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters())
    loss = (lambda b: (model(b).sum(), {}))
    shapes = [(4, 2), (3, 2), (4, 2), (1, 2), (3, 2)]
    keep = FakeGraphStep(loss, opt, max_graphs=2, evict=True)
    for s in shapes:
        keep(torch.zeros(s))
    # (4,2) and (3,2) captured; (4,2) replayed again; (1,2) drops (3,2), the least recent; (3,2) drops (4,2)
    assert [sig[1][0] for sig in keep.graphs] == [(1, 2), (3, 2)]
    assert keep.captures == 4 and keep.eager_steps == 0
    fixed = FakeGraphStep(loss, opt, max_graphs=2)  # without eviction, later shapes run eagerly
    for s in shapes:
        fixed(torch.zeros(s))
    assert fixed.captures == 2 and fixed.eager_steps == 1  # (1, 2) alone


@cuda_only
def test_graphed_memory_passes_follow_the_eager_run():
    """16 arriving batches through two expansions: the graphed learner replays every step (blocks of 8, full and
    short minibatches, recaptured as the memory grows and after the expansion) and ends where the eager learner
    ends, within float noise: the graphs draw the eager run's random numbers."""
    data = stream(device="cuda")
    eager, graphed = learner("cuda", cuda_graph=False), learner("cuda", cuda_graph=True)
    torch.manual_seed(1)
    for x in data:
        eager.observe(x)
    torch.manual_seed(1)
    steps = []
    for x in data:
        graphed.observe(x)
        steps.append(graphed._graphs)
    assert graphed.graph_failure is None and eager._graphs is None
    assert graphed.expansions == eager.expansions and graphed.expansions
    assert all(s.eager_steps == 0 for s in steps) and graphed._graphs.captures >= 3
    for p, q in zip(eager.model.parameters(), graphed.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in graphed.history] == pytest.approx([h["loss"] for h in eager.history], rel=1e-4)


@cuda_only
def test_an_own_noise_learner_graphed_follows_its_eager_run():
    """The graphs register the learner's own generator: without that, every replay would repeat the captured noise
    and the run would part from the eager one within a round."""
    data = stream(device="cuda")
    eager = learner("cuda", own_noise=True, cuda_graph=False)
    graphed = learner("cuda", own_noise=True, cuda_graph=True)
    for x in data:
        eager.observe(x)
        graphed.observe(x)
    assert graphed.graph_failure is None and graphed._graphs.captures >= 1
    assert graphed.expansions == eager.expansions
    for p, q in zip(eager.model.parameters(), graphed.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in graphed.history] == pytest.approx([h["loss"] for h in eager.history], rel=1e-4)


def run(learner_: OCMLearner, batches: int = 6) -> OCMLearner:
    torch.manual_seed(1)
    for x in stream(batches):
        learner_.observe(x)
    return learner_


def test_bf16_memory_passes_stay_close_to_fp32_and_reload_as_bf16(tmp_path, monkeypatch):
    """bf16 autocast changes the weights, by little; the kept step (the CUDA path, run eagerly here) trains the bf16
    learner exactly as the eager bf16 passes do; a saved bf16 learner reloads as one."""
    fp32, bf16 = run(learner()), run(learner(autocast="bf16"))
    gap = max(float((p - q).detach().abs().max()) for p, q in zip(fp32.model.parameters(), bf16.model.parameters()))
    assert 0 < gap < 0.1  # 102 steps at lr 1e-2 apart: 0.05 here
    assert [h["loss"] for h in bf16.history] == pytest.approx([h["loss"] for h in fp32.history], rel=0.02)
    monkeypatch.setattr(ocm_module, "CudaGraphStep", partial(CudaGraphStep, max_graphs=0))
    kept = learner(autocast="bf16")
    monkeypatch.setattr(kept, "graphs_on", lambda: True)
    run(kept)
    assert kept._graphs.autocast is torch.bfloat16
    assert all(torch.equal(p, q) for p, q in zip(bf16.model.parameters(), kept.model.parameters()))
    assert BaseLearner.load(bf16.save(tmp_path / "bf16.pt")).autocast == "bf16"
    assert "autocast" not in learner().init_args  # an fp32 learner saves what it saved before
    with pytest.raises(ValueError, match="autocast must be one of"):
        learner(autocast="fp16")
