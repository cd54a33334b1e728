"""The continual-learning engine: one driver gives every method the same real data, reports replayed rows,
calls on_boundary once per task, drives task-free learners batch by batch; every learner saves and loads."""
import pytest
import torch

from lmvae_core.continual import (BaseLearner, Budget, Learner, LGMLearner, LifelongConfig, OCMLearner,
                                  SequentialVAE, TaskData, run_stream)
from lmvae_core.data.benchmark_streams import build_stream
from lmvae_core.data.streams import TaskFreeStream
from lmvae_core.experiments import benchmark as B
from lmvae_core.models import LGMConfig, OCMConfig, VAEConfig
from lmvae_core.training import loop

S = dict(B.SETTINGS["smoke"], hidden=16, latent=4, train_per_task=60, test_per_task=10, moe_experts=2,
         ocm=dict(B.SETTINGS["smoke"]["ocm"], stm_size=32, ltm_capacity=32, per_round=8, batch_size=16))
TASK_BASED = ("Fine-tune VAE", "Replay VAE", "Replay BinarizedVAE", "LGM", "L-MVAE")
REPLAYS = ("Replay VAE", "Replay BinarizedVAE", "LGM")


@pytest.fixture(scope="module")
def stream():
    from lmvae_core.data import DataConfig

    return build_stream("split_mnist", S, DataConfig(source="sample"))


def learner(method: str, seed: int = 0):
    torch.manual_seed(seed)
    return B.LEARNERS[method](S, seed, "cpu")


def test_equal_real_budget_across_methods(stream, monkeypatch):
    """Count the rows every optimisation step of every method really trains on as its real batch: each
    task-based method gets exactly epochs * N_t real rows per task; replay comes on top and is reported."""
    rows = []
    step = loop.train_step

    def spy(loss_fn, batch, *a, **k):
        rows.append(batch.shape[0])
        return step(loss_fn, batch, *a, **k)

    monkeypatch.setattr(loop, "train_step", spy)
    sizes = [len(t.train_x) for t in stream.tasks]
    budget = Budget(epochs=2, batch_size=16)
    for method in TASK_BASED:
        rows.clear()
        bounds = []
        res = run_stream(learner(method), stream, budget, lambda t, _l: bounds.append(len(rows)))
        assert res.real_rows == [2 * n for n in sizes], method
        per_task = [sum(rows[a:b]) for a, b in zip([0, *bounds[:-1]], bounds)]
        assert per_task == res.real_rows, method  # what the loop trained on is what the driver handed out
        expected_replay = [0] + [2 * n for n in sizes[1:]] if method in REPLAYS else [0] * len(sizes)
        assert res.replay_rows == expected_replay, method
        assert [t["steps"] for t in res.tasks] == [2 * -(-n // 16) for n in sizes], method
    for method in B.OFFLINE:
        res = run_stream(learner(method), stream, budget)
        assert res.real_rows == [2 * sum(sizes)] and res.replay_rows == [0], method


def test_on_boundary_once_per_task(stream):
    for method in ("Fine-tune VAE", "VAE-OCM", "Joint VAE"):
        calls = []
        run_stream(learner(method), stream, Budget(1, 32), lambda t, lr: calls.append(t))
        assert calls == ([len(stream.tasks) - 1] if method == "Joint VAE" else list(range(len(stream.tasks)))), method


def test_task_free_observe_path(stream):
    """OCM sees every image once, in class-sorted batches of its own size, and is never told a boundary;
    the driver reports the real rows by stream position and the memory rows it trained on as replayed."""
    ocm = learner("VAE-OCM")
    seen_at_boundary = []
    res = run_stream(ocm, stream, Budget(seed=0), lambda t, lr: seen_at_boundary.append(lr.seen))
    sizes = [len(t.train_x) for t in stream.tasks]
    assert res.real_rows == sizes and ocm.seen == sum(sizes)
    assert sum(res.replay_rows) == sum(h["stm"] + h["ltm"] for h in ocm.history) - sum(
        s["added"] for s in ocm.selections)  # STM u LTM before each selection, one pass per arriving batch
    ends = torch.tensor(sizes).cumsum(0).tolist()
    bs = S["ocm"]["batch_size"]
    assert seen_at_boundary == [min(-(-e // bs) * bs, sum(sizes)) for e in ends]
    assert [t["steps"] for t in res.tasks] and sum(t["steps"] for t in res.tasks) == ocm.batches
    # a TaskFreeStream itself: one "task", one boundary at its end
    again, calls = learner("VAE-OCM"), []
    joint = stream.joint_train()
    res = run_stream(again, TaskFreeStream(joint, 16), Budget(), lambda t, lr: calls.append((t, lr.seen)))
    assert calls == [(0, len(joint))] and res.real_rows == [len(joint)]
    with pytest.raises(TypeError, match="task_free learner"):
        again.fit_task(TaskData(0, "x", joint.x, Budget()))


def test_a_task_hands_out_its_budget_once(stream):
    task = TaskData(0, "t", stream.tasks[0].train_x, Budget(epochs=3, batch_size=16, max_steps=6))
    assert task.total_steps == 6 and len(list(task.batches())) == 6 and task.real_rows == 6 * 16
    with pytest.raises(RuntimeError, match="already handed out"):
        next(task.batches())
    with pytest.raises(ValueError, match="invalid budget"):
        Budget(epochs=1, batch_size=0)


@pytest.mark.parametrize("method", [*B.LEARNERS])
def test_save_load_round_trip(stream, method, tmp_path):
    lr = learner(method)
    assert isinstance(lr, Learner)
    run_stream(lr, stream, Budget(1, 32))
    path = lr.save(tmp_path / "learner.pt")
    again = BaseLearner.load(path)
    assert type(again) is type(lr) and again.kind == lr.kind
    assert (again.n_params, again.memory_images, again.replayed_rows, again.tasks_done) == \
        (lr.n_params, lr.memory_images, lr.replayed_rows, lr.tasks_done)
    x = stream.tasks[0].test_x[:8]
    torch.manual_seed(5)
    a = lr.log_likelihood(x, 3)
    torch.manual_seed(5)
    assert torch.equal(a, again.log_likelihood(x, 3))
    assert torch.equal(lr.sample(6, seed=2), again.sample(6, seed=2))


def test_loaded_learners_keep_training(stream, tmp_path):
    """What a learner needs to go on (the teacher, the memory, the frozen copy) survives a save/load."""
    torch.manual_seed(0)
    lgm = LGMLearner(LGMConfig(latent_dim=4, hidden=(16,)), LifelongConfig("lgm"))
    ocm = OCMLearner(config=OCMConfig(hidden=16, latent_dim=4, train_samples=1, epochs_per_batch=1, stm_size=32,
                                      batch_size=16), seed=0)
    rep = SequentialVAE(VAEConfig(latent_dim=4, hidden=(16,)), replay=True)
    for lr in (lgm, ocm, rep):
        run_stream(lr, stream.tasks[:2], Budget(1, 32))
        again = BaseLearner.load(lr.save(tmp_path / f"{type(lr).__name__}.pt"))
        res = run_stream(again, stream.tasks[2:3], Budget(1, 32))
        assert res.real_rows == [len(stream.tasks[2].train_x)]
    assert again.old is not None and res.replay_rows == [len(stream.tasks[2].train_x)]
    loaded_lgm = BaseLearner.load(lgm.save(tmp_path / "lgm.pt"))
    assert loaded_lgm.teacher is not None and all(not p.requires_grad for p in loaded_lgm.teacher.parameters())
    loaded_ocm = BaseLearner.load(ocm.save(tmp_path / "ocm.pt"))
    assert torch.equal(loaded_ocm.ltm_x, ocm.ltm_x) and loaded_ocm.seen == ocm.seen
