"""The continual-learning engine: one driver gives every method the same real data, reports replayed rows,
calls on_boundary once per task, drives task-free learners batch by batch; every learner saves and loads."""
import pytest
import torch

from lmvae_core.continual import (BaseLearner, Budget, Learner, LGMLearner, LifelongConfig, OCMLearner,
                                  SequentialVAE, TaskData, run_stream)
from lmvae_core.data.benchmark_streams import build_stream
from lmvae_core.data.streams import TaskFreeStream
from lmvae_core.papers.benchmark import experiments as B
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
    return B.METHODS[method](S, seed, "cpu")


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
    for method in ("Fine-tune VAE", "VAE-ELBO-OCM", "Joint VAE"):
        calls = []
        run_stream(learner(method), stream, Budget(1, 32), lambda t, lr: calls.append(t))
        assert calls == ([len(stream.tasks) - 1] if method == "Joint VAE" else list(range(len(stream.tasks)))), method


def test_task_free_observe_path(stream):
    """OCM sees every image once, in class-sorted batches of its own size, and is never told a boundary;
    the driver reports the real rows by stream position and the memory rows it trained on as replayed."""
    ocm = learner("VAE-ELBO-OCM")
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
    again, calls = learner("VAE-ELBO-OCM"), []
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


@pytest.mark.parametrize("method", [*B.METHODS])
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


# What mutation testing of continual/driver.py found untested (benchmarks/mutants.py, issue 36): the driver's
# bookkeeping, checked against fake learners whose every call is recorded.

class _Fake:
    """A learner of a given kind that records what the driver hands it; 2 replayed rows per call, 2 ms each."""

    def __init__(self, kind):
        self.kind, self.replayed_rows, self.calls = kind, 0, []

    def fit_task(self, task):
        import time

        rows = sum(b.shape[0] for _, b in task.batches())
        self.calls.append((task.index, task.name, task.x, task.y, rows))
        self.replayed_rows += 2
        time.sleep(0.002)
        return {"fitted": task.index}

    def observe(self, x, y=None):
        import time

        self.calls.append((x, y))
        self.replayed_rows += 2
        time.sleep(0.002)
        return {}


def _three_tasks():
    from types import SimpleNamespace

    from lmvae_core.continual.driver import StreamTask

    a = StreamTask("A", torch.arange(0.0, 10).view(10, 1, 1, 1), torch.tensor([0, 1] * 5))
    b = StreamTask("B", torch.arange(10.0, 17).view(7, 1, 1, 1), torch.full((7,), 2))
    c = SimpleNamespace(train_x=torch.arange(17.0, 25).view(8, 1, 1, 1), train_y=torch.full((8,), 3))  # no name
    return [a, b, c]


def test_stream_tasks_reads_every_stream_form():
    """StreamTasks pass through as they are, a benchmark task gives train_x/train_y (unnamed: 'task i'), a
    TaskStream's task gives train.x/train.y and its name; nothing after a StreamTask is dropped; no tasks is an
    error."""
    from lmvae_core.continual.driver import stream_tasks
    from lmvae_core.data.streams import Split, Task, TaskStream

    tasks = _three_tasks()
    out = stream_tasks(tasks)
    assert out[0] is tasks[0] and out[1] is tasks[1] and len(out) == 3
    assert out[2].name == "task 2" and out[2].x is tasks[2].train_x and out[2].y is tasks[2].train_y
    tr = Split(torch.zeros(4, 1, 2, 2), torch.tensor([1, 1, 2, 2]))
    ts = TaskStream("s", [Task("first", tr, tr), Task("second", tr, tr)])
    got = stream_tasks(ts)
    assert [t.name for t in got] == ["first", "second"] and got[1].x is tr.x and got[1].y is tr.y
    with pytest.raises(ValueError, match="^the stream has no tasks$"):
        stream_tasks([])


def test_task_free_rows_steps_and_time_go_to_the_task_a_batch_starts_in():
    """Tasks of 10, 7 and 8 rows in batches of 4 (the budget's: the learner has no batch_size), ordered by the
    budget's seed: batches start at rows 0, 4, ..., 24, so tasks A, B, C get 3, 2 and 2 steps, 10, 7 and 8 real
    rows, 2 replayed rows a step, and time that adds up over their batches; each batch comes with its labels and
    on_boundary gets the learner after the batch that completes a task."""
    from lmvae_core.continual.driver import StreamResult
    from lmvae_core.data.streams import Split, class_sorted_stream

    tasks, fake, calls = _three_tasks(), _Fake("task_free"), []
    budget = Budget(batch_size=4, seed=5)
    res = run_stream(fake, tasks, budget, lambda t, lr: calls.append((t, lr, len(lr.calls))))
    assert isinstance(res, StreamResult) and res.learner is fake
    assert [t["name"] for t in res.tasks] == ["A", "B", "task 2"]
    assert [t["steps"] for t in res.tasks] == [3, 2, 2] and res.real_rows == [10, 7, 8]
    assert res.replay_rows == [6, 4, 4]
    for t in res.tasks:
        assert 0.002 * t["steps"] <= t["seconds"] < 1.0, t
    assert calls == [(0, fake, 3), (1, fake, 5), (2, fake, 7)]
    xs = [tasks[0].x, tasks[1].x, tasks[2].train_x]
    ys = [tasks[0].y, tasks[1].y, tasks[2].train_y]
    expected = list(class_sorted_stream([Split(x, y) for x, y in zip(xs, ys)], 4, 5))
    assert len(fake.calls) == len(expected) == 7
    for (x, y), (ex, ey) in zip(fake.calls, expected):
        assert torch.equal(x, ex) and y is not None and torch.equal(y, ey)
    # a TaskFreeStream is one task named "stream"
    one = run_stream(_Fake("task_free"), TaskFreeStream(Split(xs[0], ys[0]), 4), budget)
    assert [t["name"] for t in one.tasks] == ["stream"] and one.real_rows == [10]


def test_offline_and_task_learners_get_the_tasks_as_the_driver_promises():
    """Offline: one task, index 0, named 'A+B+task 2', all images and labels (no labels if a task has none),
    on_boundary(last index, learner) once. Task-based: TaskData(i, name, x, labels) per task, on_boundary(i,
    learner) after each. Each record names its task, carries fit_task's info and the time fit_task took."""
    tasks = _three_tasks()
    off, calls = _Fake("offline"), []
    res = run_stream(off, tasks, Budget(batch_size=4), lambda t, lr: calls.append((t, lr)))
    (index, name, x, y, rows), = off.calls
    assert (index, name, rows) == (0, "A+B+task 2", 25) and calls == [(2, off)] and res.learner is off
    assert torch.equal(x, torch.arange(25.0).view(25, 1, 1, 1)) and y.tolist() == [0, 1] * 5 + [2] * 7 + [3] * 8
    rec, = res.tasks
    assert rec["name"] == "A+B+task 2" and rec["info"] == {"fitted": 0} and rec["replay_rows"] == 2
    assert 0.002 <= rec["seconds"] < 1.0 and rec["real_rows"] == 25
    tasks[1].y = None
    off = _Fake("offline")
    run_stream(off, tasks, Budget(batch_size=4))
    assert off.calls[0][3] is None
    task, calls = _Fake("task"), []
    res = run_stream(task, _three_tasks(), Budget(batch_size=4), lambda t, lr: calls.append((t, lr)))
    assert [(c[0], c[1], c[4]) for c in task.calls] == [(0, "A", 10), (1, "B", 7), (2, "task 2", 8)]
    assert [c[3].tolist() for c in task.calls] == [[0, 1] * 5, [2] * 7, [3] * 8]
    assert calls == [(0, task), (1, task), (2, task)] and res.learner is task
    assert [t["name"] for t in res.tasks] == ["A", "B", "task 2"]
    assert [t["info"] for t in res.tasks] == [{"fitted": i} for i in range(3)]


def test_a_learner_of_no_known_kind_is_refused():
    """A learner whose kind is not 'task', 'task_free' or 'offline', or that has no kind, is a TypeError that
    names its class and kind."""
    class Odd:
        kind = "other"

    with pytest.raises(TypeError, match="^Odd has kind 'other'; expected"):
        run_stream(Odd(), _three_tasks(), Budget())
    with pytest.raises(TypeError, match="^object has kind None"):
        run_stream(object(), _three_tasks(), Budget())
