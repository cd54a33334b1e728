"""The seeds of an OCM method trained as one stacked computation equal their separate runs (issue 38, item 2).

The reference is each seed's own `OCMLearner(own_noise=True)` run alone on its stream. The configurations are
chosen so that the stacked path meets everything that makes stacking hard: seeds that grow components at
different batches (members leave and rejoin a stack), memories of different sizes (padded, masked minibatches
and members sitting a step out), and both memory rules. The CUDA path (blocks of full stacked steps through a kept
step, the stacks kept across rounds) is run eagerly on the CPU against the plain stacked path, and, on a GPU,
graphed against the eager stack."""
from functools import partial

import pytest
import torch

from lmvae_core.continual import ocm_stacked
from lmvae_core.continual.ocm import OCMLearner
from lmvae_core.continual.ocm_stacked import StackedOCM, own_noise_learners
from lmvae_core.models.ocm import OCM, OCMConfig, member_log_weights
from lmvae_core.training.graphs import CudaGraphStep, StepBlock

SEEDS = [0, 1, 2]
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOL = 1e-5


def config(**overrides) -> OCMConfig:
    base = dict(input_dim=16, image_shape=(1, 4, 4), hidden=12, latent_dim=3, train_samples=3, stm_size=8,
                ltm_capacity=40, per_round=3, epochs_per_batch=3, batch_size=5, lambda1=0.5, alpha=1.0,
                dynamic=True, lambda2=0.05, max_components=3, r_samples=4, lr=1e-2)
    return OCMConfig(**(base | overrides))


def streams(n_batches: int = 15, batch: int = 4) -> list[list[torch.Tensor]]:
    data = torch.rand(n_batches * batch, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    out = []
    for s in SEEDS:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(100 + s))
        out.append([data[order[i:i + batch]] for i in range(0, len(data), batch)])
    return out


def run_separately(cfg: OCMConfig, data) -> list[OCMLearner]:
    learners = own_noise_learners(cfg, SEEDS)
    for learner, stream in zip(learners, data):
        for x in stream:
            learner.observe(x)
    return learners


def run_stacked(cfg: OCMConfig, data, device="cpu", cuda_graph="auto") -> StackedOCM:
    stacked = StackedOCM.from_config(cfg, SEEDS, device, cuda_graph)
    for t in range(len(data[0])):
        stacked.observe([stream[t] for stream in data])
    return stacked


def assert_same_runs(separate: list[OCMLearner], stacked: StackedOCM) -> None:
    for a, b in zip(separate, stacked.members):
        assert len(a.model) == len(b.model) and a.expansions == b.expansions
        assert (a.steps, a.replayed_rows, a.seen) == (b.steps, b.replayed_rows, b.seen)
        assert torch.equal(a.ltm_x, b.ltm_x) and torch.equal(a.stm_x, b.stm_x)
        for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
            assert torch.allclose(p, q, atol=TOL, rtol=0), name
        for ra, rb in zip(a.history, b.history):
            assert ra["loss"] == pytest.approx(rb["loss"], abs=TOL)
            assert (ra["ltm"], ra["components_after"]) == (rb["ltm"], rb["components_after"])
        assert [s["added"] for s in a.selections] == [s["added"] for s in b.selections]
        moments_a = [a.optimizer.state[p] for p in a.optimizer.param_groups[0]["params"]]
        moments_b = [b.optimizer.state[p] for p in b.optimizer.param_groups[0]["params"]]
        for sa, sb in zip(moments_a, moments_b):
            assert float(sa["step"]) == float(sb["step"])
            assert torch.allclose(sa["exp_avg"], sb["exp_avg"], atol=TOL, rtol=0)
            assert torch.allclose(sa["exp_avg_sq"], sb["exp_avg_sq"], atol=TOL, rtol=0)


def test_stacked_seeds_equal_separate_runs_through_expansions_and_unequal_memories(monkeypatch):
    # 'diverse' with a high lambda1 admits 0 to 3 images a round, differently per seed
    cfg, data = config(direction="diverse", lambda1=0.9), streams()
    stacks = []  # the memory sizes of each stacked round's members
    run = ocm_stacked._StackedPasses.run

    def recording_run(self):
        stacks.append([m.memory_data().shape[0] for m in self.members])
        return run(self)

    monkeypatch.setattr(ocm_stacked._StackedPasses, "run", recording_run)
    separate, stacked = run_separately(cfg, data), run_stacked(cfg, data)
    assert_same_runs(separate, stacked)
    # the run met what it is meant to: seeds that grew at different batches (members left a stack and trained
    # alone), and stacked memories of different sizes (padded, masked steps; members sitting steps out)
    assert len({tuple(m.expansions) for m in separate}) > 1
    assert any(len(sizes) < len(SEEDS) for sizes in stacks)
    assert any(len(set(sizes)) > 1 for sizes in stacks)


@pytest.mark.parametrize("overrides", [dict(memory="reservoir", dynamic=False, ltm_capacity=10),
                                       dict(order="code", objective="iwae", lambda1=0.7, lambda2=0.2)])
def test_stacked_seeds_equal_separate_runs_for_the_other_rules(overrides):
    cfg, data = config(**overrides), streams(n_batches=10)
    assert_same_runs(run_separately(cfg, data), run_stacked(cfg, data))


def test_member_log_weights_are_each_models_own_log_weights():
    """Ground truth: OCM.log_weights of each model's newest component, given the same noise."""
    cfg = config()
    models = []
    for s in SEEDS:
        torch.manual_seed(s)
        m = OCM(cfg)
        m.add_component()
        models.append(m)
    x = torch.rand(len(SEEDS), 6, 16, generator=torch.Generator().manual_seed(3)).bernoulli()
    params = [m.newest_parameters() for m in models]
    stack = {n: torch.stack([p[n] for p in params]) for n in params[0]}
    eps = torch.stack([torch.randn(1, 5, 6, 3, generator=torch.Generator().manual_seed(10 + s))[0] for s in SEEDS])
    got = member_log_weights(stack, x, eps)
    for s, m in enumerate(models):
        own = m.log_weights(x[s], 5, ids=[len(m) - 1], generator=torch.Generator().manual_seed(10 + s))[0]
        assert torch.allclose(got[s], own, atol=1e-5, rtol=0)


def test_an_own_noise_learner_ignores_the_process_random_numbers():
    """What makes stacking valid: a member's run does not depend on what else the process draws."""
    cfg, data = config(), streams(n_batches=8)
    runs = []
    for disturbance in (0, 1):
        (learner,) = own_noise_learners(cfg, [SEEDS[1]])
        for x in data[1]:
            torch.rand(disturbance * 17 + 1)  # something else drawing from the process between batches
            learner.observe(x)
        runs.append(learner)
    assert runs[0].expansions == runs[1].expansions
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(p, q)


def test_a_plain_learner_keeps_drawing_from_the_process():
    """own_noise is opt-in: the notebooks' committed runs draw from the process, and still do."""
    cfg = config(dynamic=False)
    torch.manual_seed(0)
    learner = OCMLearner(OCM(cfg), seed=0)
    assert learner.noise is None
    x = torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    results = []
    for seed in (5, 6):
        torch.manual_seed(0)
        twin = OCMLearner(OCM(cfg), seed=0)
        torch.manual_seed(seed)
        twin.observe(x)
        results.append(twin.model.components[0].out.weight.clone())
    assert not torch.equal(results[0], results[1])


def test_an_own_noise_learner_resumes_bit_for_bit():
    cfg, data = config(), streams(n_batches=10)
    (whole,) = own_noise_learners(cfg, [0])
    for x in data[0]:
        whole.observe(x)
    (first,) = own_noise_learners(cfg, [0])
    for x in data[0][:5]:
        first.observe(x)
    saved = first.resume_state()
    (second,) = own_noise_learners(cfg, [0])
    second.load_resume_state(saved)
    for x in data[0][5:]:
        second.observe(x)
    assert whole.expansions == second.expansions
    for p, q in zip(whole.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)


def test_stacking_refuses_what_it_cannot_stack():
    cfg = config()
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="own noise"):
        StackedOCM([OCMLearner(OCM(cfg), seed=0)])
    stacked = StackedOCM.from_config(cfg, SEEDS)
    with pytest.raises(ValueError, match="one batch per member"):
        stacked.observe([torch.rand(4, 1, 4, 4)])
    mixed = StackedOCM(own_noise_learners(cfg, [0]) + own_noise_learners(config(train_samples=2), [1]))
    with pytest.raises(ValueError, match="train_samples"):
        mixed.observe([torch.rand(4, 1, 4, 4)] * 2)


GRAPH_CFG = dict(batch_size=2, per_round=5)  # memories past 16 images (blocks of 8 full steps), of unequal sizes


def test_the_cuda_path_of_a_stack_trains_bitwise_as_the_plain_stack(monkeypatch):
    """The graphable path run eagerly (every shape beyond max_graphs=0): blocks of 8 full stacked steps and single
    full steps through one kept step per stack, padded steps eagerly, the stacks kept across rounds while their
    members keep their optimisers. It computes exactly what the plain stacked path computes."""
    cfg, data = config(**GRAPH_CFG), streams(n_batches=20)
    plain = run_stacked(cfg, data)
    monkeypatch.setattr(ocm_stacked, "CudaGraphStep", partial(CudaGraphStep, max_graphs=0))
    monkeypatch.setattr(StackedOCM, "graphs_on", lambda self: True)
    seen = []  # per stacked round: the kept passes object and the kinds of batches its step took
    call = CudaGraphStep.__call__

    def recording_call(self, batch):
        seen[-1][1].append(len(batch) if isinstance(batch, StepBlock) else 1)
        return call(self, batch)

    run = ocm_stacked._StackedPasses.run

    def recording_run(self):
        seen.append((self, []))
        return run(self)

    monkeypatch.setattr(CudaGraphStep, "__call__", recording_call)
    monkeypatch.setattr(ocm_stacked._StackedPasses, "run", recording_run)
    cuda_path = run_stacked(cfg, data)
    for a, b in zip(plain.members, cuda_path.members):
        assert a.expansions == b.expansions and (a.steps, a.replayed_rows) == (b.steps, b.replayed_rows)
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.equal(p, q)
        assert [h["loss"] for h in b.history] == pytest.approx([h["loss"] for h in a.history], rel=1e-6)
    kinds = [k for _, ks in seen for k in ks]
    assert 8 in kinds and 1 in kinds  # blocks and single full steps went through the kept step
    objects = [id(p) for p, _ in seen]
    assert len(set(objects)) < len(objects)  # a stack outlived its round
    assert len({tuple(m.expansions) for m in plain.members}) > 1  # members left and rejoined stacks


@cuda_only
def test_a_graphed_stack_follows_the_eager_stack():
    """On a GPU: the stacked passes replayed as graphs (each member's own generator registered) end where the eager
    stack ends, within float noise, and where the separate runs end."""
    cfg, data = config(**GRAPH_CFG), streams(n_batches=20)
    eager = run_stacked(cfg, data, "cuda", cuda_graph=False)
    graphed = run_stacked(cfg, data, "cuda", cuda_graph=True)
    assert graphed.graph_failure is None
    for a, b in zip(eager.members, graphed.members):
        assert a.expansions == b.expansions and a.steps == b.steps
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
        assert [h["loss"] for h in b.history] == pytest.approx([h["loss"] for h in a.history], rel=1e-4)


def labelled_streams(n_batches: int = 12, batch: int = 4):
    from lmvae_core.data.streams import Split, TaskFreeStream

    g = torch.Generator().manual_seed(11)
    data = Split(torch.rand(n_batches * batch, 1, 4, 4, generator=g), torch.arange(n_batches * batch) % 3)
    return [TaskFreeStream(data, batch, seed=s) for s in SEEDS]


def test_a_killed_stacked_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    """The lockstep driver checkpoints every member's resume state (here after every round); a run killed in round 7
    and started again from a fresh stack ends exactly where an uninterrupted run ends."""
    from lmvae_core.continual.driver import Checkpointing
    from lmvae_core.continual.ocm_stacked import run_stacked_streams

    cfg = config()
    whole = StackedOCM.from_config(cfg, SEEDS)
    run_stacked_streams(whole, labelled_streams())
    observe, rounds = StackedOCM.observe, [0]

    def dies_in_round_7(self, batches, labels=None):
        rounds[0] += 1
        if rounds[0] == 7:
            raise KeyboardInterrupt("killed")
        return observe(self, batches, labels)

    ckpt = Checkpointing(tmp_path, every_s=None, every_batches=1)
    monkeypatch.setattr(StackedOCM, "observe", dies_in_round_7)
    with pytest.raises(KeyboardInterrupt):
        run_stacked_streams(StackedOCM.from_config(cfg, SEEDS), labelled_streams(), ckpt)
    rounds[0] = 0

    def counts(self, batches, labels=None):
        rounds[0] += 1
        return observe(self, batches, labels)

    monkeypatch.setattr(StackedOCM, "observe", counts)
    resumed = StackedOCM.from_config(cfg, SEEDS)
    run_stacked_streams(resumed, labelled_streams(), ckpt)
    assert rounds[0] == 6  # rounds 7 to 12: the first 6 came from the checkpoint
    assert torch.load(ckpt.file, weights_only=False)["rounds"] == 12
    for a, b in zip(whole.members, resumed.members):
        assert a.expansions == b.expansions and a.steps == b.steps and len(b.history) == 12
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.equal(p, q)
    with pytest.raises(ValueError, match="equal length"):
        run_stacked_streams(StackedOCM.from_config(cfg, SEEDS), labelled_streams()[:2] + labelled_streams(5)[:1])
