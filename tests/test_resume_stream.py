"""Issue 38, item 4: a long OCM run resumes mid-stream. The driver checkpoints the learner's whole state (model,
optimiser, memory, counters, RNG) and the stream position atomically; a run killed (SIGKILL) anywhere and started
again ends bit-identical to an uninterrupted one on the CPU; a finished run leaves no checkpoint folder."""
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmvae_core.continual import Budget, OCMLearner, run_stream
from lmvae_core.continual.driver import Checkpointing
from lmvae_core.data.streams import DataConfig, Split, TaskFreeStream, load_split
from lmvae_core.models.ocm import OCM, OCMConfig

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# Dynamic-OCM with a low expansion threshold: components are added (and the optimiser remade) within the stream
CFG = OCMConfig(hidden=16, latent_dim=4, train_samples=1, epochs_per_batch=2, lr=1e-3, r_samples=2, stm_size=64,
                per_round=5, dynamic=True, lambda2=1.0, max_components=3)
BATCH, N, EVERY, KILL_AT = 32, 384, 3, 8  # 12 batches; checkpoints after batches 3, 6, 9; killed inside batch 8


def data():
    s = load_split("mnist", "train", DataConfig(source="sample"))
    keep = torch.isin(s.y, torch.tensor([0, 1, 2]))
    return s.subset(keep.nonzero().squeeze(1)[:N])


def stream_run(folder=None, init_seed: int = 0, kill_at: int | None = None):
    """The smoke stream through the driver; with `kill_at`, the process kills itself (SIGKILL) in the middle of
    that batch, after its training and before its selection round."""
    torch.manual_seed(init_seed)
    learner = OCMLearner(OCM(CFG), seed=0)
    if kill_at is not None:
        train = learner.train_memory

        def train_then_die(*a, **k):
            out = train(*a, **k)
            if learner.batches == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        learner.train_memory = train_then_die
    ckpt = None if folder is None else Checkpointing(folder, every_s=None, every_batches=EVERY)
    result = run_stream(learner, TaskFreeStream(data(), BATCH, seed=0), Budget(), checkpoint=ckpt)
    return learner, result


def same(a, b, where="") -> None:
    """Bit-identical, recursively (NaN equals NaN: a first selection round has no kernel scores)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, (where, a, b)


def same_learner(a: OCMLearner, b: OCMLearner) -> None:
    assert len(a.model) == len(b.model)
    same(a.model.state_dict(), b.model.state_dict(), "model")
    assert [p.requires_grad for p in a.model.parameters()] == [p.requires_grad for p in b.model.parameters()]
    same(a.optimizer.state_dict(), b.optimizer.state_dict(), "optimizer")
    same(a.state(), b.state(), "learner")  # STM, LTM, labels, slots, counters, history, selections, generator


def child(folder: str) -> None:
    torch.set_num_threads(1)
    stream_run(folder, kill_at=KILL_AT)
    raise SystemExit("not killed")


def spawn(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{HERE}") | (env or {})
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_a_killed_ocm_stream_resumes_bit_identical(tmp_path):
    ref, ref_result = stream_run()
    assert ref.expansions and len(ref.model) > 1, "the stream should expand: the optimiser is remade mid-stream"
    rng_after = torch.get_rng_state()

    folder = tmp_path / "partial"
    proc = spawn(f"import test_resume_stream as t; t.child({str(folder)!r})")
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    saved = torch.load(folder / "state.pt", weights_only=False)
    assert saved["position"]["batches"] == 6  # the last checkpoint before the kill, inside batch 8
    assert not [p for p in folder.iterdir() if p.name != "state.pt"], "no temporary file left behind"

    # a fresh call: another initial model, which the checkpoint replaces; batches 7 and 8 are trained again
    resumed, result = stream_run(folder, init_seed=123)
    same_learner(resumed, ref)
    assert torch.equal(torch.get_rng_state(), rng_after)
    for a, b in zip(result.tasks, ref_result.tasks):
        assert {k: a[k] for k in ("real_rows", "replay_rows", "steps")} == \
               {k: b[k] for k in ("real_rows", "replay_rows", "steps")}
    assert torch.load(folder / "state.pt", weights_only=False)["position"]["batches"] == N // BATCH

    # started again after the end: nothing is trained, the final state is loaded
    again, _ = stream_run(folder, init_seed=7)
    same_learner(again, ref)


def test_checkpointing_changes_nothing_and_a_foreign_checkpoint_is_ignored(tmp_path):
    ref, _ = stream_run()
    rng_ref = torch.get_rng_state()
    on, _ = stream_run(tmp_path / "a")
    same_learner(on, ref)
    assert torch.equal(torch.get_rng_state(), rng_ref)
    ckpt = Checkpointing(tmp_path / "a")
    payload = ckpt.load()
    payload["stream"] = "another stream"
    ckpt.save(payload)
    with pytest.warns(RuntimeWarning, match="another stream"):
        other, _ = stream_run(tmp_path / "a")
    same_learner(other, ref)


class Stop(Exception):
    pass


@pytest.mark.parametrize("learner_kind", ["reservoir", "step-matched reservoir"])
def test_reservoir_learners_resume_bit_identical(tmp_path, learner_kind):
    """The reservoir baselines (slots of stream positions; StepMatchedReservoir's draws of the reservoir), stopped
    inside batch 8 in this process and resumed from the checkpoint after batch 6."""
    from dataclasses import replace

    from lmvae_core.papers.ocm.experiments import StepMatchedReservoir

    cfg = replace(CFG, memory="reservoir", dynamic=False, ltm_capacity=40)

    def make(seed):
        torch.manual_seed(seed)
        if learner_kind == "reservoir":
            return OCMLearner(OCM(cfg), seed=0)
        return StepMatchedReservoir(OCM(cfg), seed=0, ltm_rows=[0, 5, 10, 10, 15, 20, 20, 25, 30, 30, 35, 40])

    def go(learner, ckpt=None, stop_at=None):
        if stop_at is not None:
            train = learner.train_memory

            def train_then_stop(*a, **k):
                out = train(*a, **k)
                if learner.batches == stop_at:
                    raise Stop
                return out
            learner.train_memory = train_then_stop
        run_stream(learner, TaskFreeStream(data(), BATCH, seed=0), Budget(), checkpoint=ckpt)
        return learner

    ref = go(make(0))
    assert ref.memory_size == 40
    ckpt = Checkpointing(tmp_path / "r", every_s=None, every_batches=EVERY)
    with pytest.raises(Stop):
        go(make(0), ckpt, stop_at=KILL_AT)
    same_learner(go(make(9), ckpt), ref)


def test_a_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    ckpt = Checkpointing(tmp_path / "run")
    ckpt.save({"position": 1, "x": torch.arange(5)})
    real_save = torch.save

    def crash(obj, f, *a, **k):  # half a file, then the process "dies"
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save({"position": 2, "x": torch.arange(7)})
    monkeypatch.setattr(torch, "save", real_save)
    assert [p.name for p in ckpt.file.parent.iterdir()] == ["state.pt"]
    got = ckpt.load()
    assert got["position"] == 1 and torch.equal(got["x"], torch.arange(5))
    # a SIGKILL during the write leaves its temporary file: the checkpoint still reads as before
    (ckpt.file.parent / ".state.pt.abc123.tmp.pt").write_bytes(b"PK\x03\x04 truncated")
    assert ckpt.load()["position"] == 1


def test_cached_gives_the_run_a_partial_folder_and_removes_it(tmp_path):
    from lmvae_core.results.cache import cache_file, cached, resume_dir

    config = {"run": 1}
    expected = cache_file("ocm", config, tmp_path).with_suffix(".partial")

    def compute():
        assert resume_dir() == expected
        Checkpointing(resume_dir()).save({"position": 0})
        return 42

    assert resume_dir() is None
    assert cached("ocm", config, compute, root=tmp_path) == 42
    assert resume_dir() is None and not expected.exists() and cache_file("ocm", config, tmp_path).exists()


SMOKE = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from lmvae_core.continual import OCMLearner
from lmvae_core.papers.ocm import experiments as exp
from lmvae_core.experiments.common import setup
train = OCMLearner.train_memory
def train_then_die(self, *a, **k):
    out = train(self, *a, **k)
    if self.batches == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
OCMLearner.train_memory = train_then_die
run = setup("04_ocm", "smoke", 0, "cpu", None, {out!r}, False, False, exp.SETTINGS, offline=True)
run = run.with_settings(run.settings.replace(stream_limit=640))
exp.run_stream(run, "mnist", "Dynamic-ELBO-OCM", 0)
sys.exit("not killed")
"""


def smoke_run(tmp_path, monkeypatch, cache: str, every: str):
    from lmvae_core.papers.ocm import experiments as exp
    from lmvae_core.experiments.common import setup

    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / cache))
    monkeypatch.setenv("LMVAE_CHECKPOINT_S", every)
    run = setup("04_ocm", "smoke", 0, "cpu", None, str(tmp_path / "out"), False, False, exp.SETTINGS, offline=True)
    run = run.with_settings(run.settings.replace(stream_limit=640))
    return exp.run_stream(run, "mnist", "Dynamic-ELBO-OCM", 0)


def test_a_killed_smoke_ocm_run_resumes_from_its_partial_folder(tmp_path, monkeypatch):
    """Notebook 04's run itself (fit_stream under the cache): killed inside batch 7 of 10 with a checkpoint after
    every batch, started again, it ends with the uninterrupted run's model, memory, logs and test metrics."""
    ref = smoke_run(tmp_path, monkeypatch, "ref", "off")
    proc = spawn(SMOKE.format(kill_at=7, out=str(tmp_path / "out")),
                 {"LMVAE_CACHE": str(tmp_path / "cache"), "LMVAE_CHECKPOINT_S": "0",
                  "LMVAE_WORK": str(tmp_path / "work")})
    assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
    partial = list((tmp_path / "cache" / "ocm").glob("*.partial"))
    assert len(partial) == 1 and not list((tmp_path / "cache" / "ocm").glob("*.pt"))
    assert torch.load(partial[0] / "state.pt", weights_only=False)["position"]["batches"] == 6

    resumed = smoke_run(tmp_path, monkeypatch, "cache", "0")
    assert not partial[0].exists(), "the finished run's checkpoints are removed once its result is cached"
    assert ref["components"] > 1 and ref["selections"]
    same({k: v for k, v in resumed.items() if k != "train_seconds"},
         {k: v for k, v in ref.items() if k != "train_seconds"})
    # uninterrupted with checkpoints after every batch: the same result, and no folder left
    on = smoke_run(tmp_path, monkeypatch, "on", "0")
    same({k: v for k, v in on.items() if k != "train_seconds"}, {k: v for k, v in ref.items() if k != "train_seconds"})
    assert not list((tmp_path / "on" / "ocm").glob("*.partial"))


# What mutation testing of continual/driver.py found untested in Checkpointing (benchmarks/results/mutants_report.md)
class _Counter:
    """A resumable task-free learner that only counts what it observes (its state: the count)."""
    kind = "task_free"
    batch_size = 4

    def __init__(self):
        self.replayed_rows, self.seen = 0, 0

    def observe(self, x, y=None):
        self.seen += len(x)

    def resume_state(self):
        return {"seen": self.seen}

    def load_resume_state(self, state):
        self.seen = state["seen"]


class _OtherCounter(_Counter):
    pass


def _free_stream(n=24):
    return TaskFreeStream(Split(torch.rand(n, 1, 2, 2), torch.arange(n) % 2), batch_size=4, seed=0)


def test_checkpoint_due_by_count_and_by_time_at_its_boundary(monkeypatch):
    from lmvae_core.continual import driver

    monkeypatch.setattr(driver.time, "monotonic", lambda: 1000.0)
    ckpt = Checkpointing("unused", every_s=100.0, every_batches=None)
    assert ckpt.due(1, since=900.0) and not ckpt.due(1, since=900.5)  # exactly every_s later is due
    assert not ckpt.due(1, since=950.0)  # half of it: not yet (time passed, not time now plus since)
    assert Checkpointing("unused", every_s=None, every_batches=3).due(6, 1000.0)
    assert not Checkpointing("unused", every_s=None, every_batches=3).due(7, 1000.0)


def test_a_checkpoint_of_another_learner_class_is_not_resumed(tmp_path):
    from lmvae_core.continual.driver import _stream_id

    stream = _free_stream()
    assert _stream_id(_Counter(), stream) != _stream_id(_OtherCounter(), stream)
    ckpt = Checkpointing(tmp_path, every_s=None, every_batches=2)
    first = _Counter()
    run_stream(first, stream, Budget(1, 4), checkpoint=ckpt)
    assert ckpt.load()["position"]["batches"] == 6 and first.seen == 24
    with pytest.warns(RuntimeWarning, match="another stream or learner"):
        other = _OtherCounter()
        run_stream(other, stream, Budget(1, 4), checkpoint=ckpt)
    assert other.seen == 24  # trained from the start, not resumed at the end


def test_the_final_checkpoint_is_written_after_a_resume_or_a_save_and_only_then(tmp_path):
    stream = _free_stream()
    never = Checkpointing(tmp_path / "never", every_s=None, every_batches=None)
    run_stream(_Counter(), stream, Budget(1, 4), checkpoint=never)
    assert not never.file.exists()  # nothing was ever due: no file
    resumed = Checkpointing(tmp_path / "resumed", every_s=None, every_batches=None)
    resumed.save({"stream": __import__("lmvae_core.continual.driver", fromlist=["_stream_id"])._stream_id(
        _Counter(), stream), "learner": {"seen": 8},
        "position": {"rows": [{"name": "stream", "real_rows": 8, "replay_rows": 0, "steps": 2, "seconds": 0.0}],
                     "seen": 8, "b": 0, "batches": 2}})
    learner = _Counter()
    run_stream(learner, stream, Budget(1, 4), checkpoint=resumed)
    assert learner.seen == 24 and resumed.load()["position"]["batches"] == 6  # resumed at 2, saved at the end


def test_checkpointing_errors_name_the_learner(tmp_path):
    class NotResumable:
        kind = "task_free"
        replayed_rows = 0

        def observe(self, x, y=None):
            pass

    with pytest.raises(TypeError, match="NotResumable cannot be checkpointed: it has no resume_state and "
                                        "load_resume_state"):
        run_stream(NotResumable(), _free_stream(), Budget(1, 4), checkpoint=Checkpointing(tmp_path))

    class TaskLearner:
        kind = "task"

    with pytest.raises(NotImplementedError, match="task-free learners; TaskLearner is a 'task' learner"):
        run_stream(TaskLearner(), [], Budget(1, 4), checkpoint=Checkpointing(tmp_path))


def test_an_unreadable_checkpoint_warns_and_starts_over(tmp_path):
    ckpt = Checkpointing(tmp_path)
    ckpt.file.parent.mkdir(parents=True, exist_ok=True)
    ckpt.file.write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match=r"state.pt could not be read \(\w+Error: .*\); starting over"):
        assert ckpt.load() is None
