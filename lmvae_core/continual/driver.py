"""One driver for every method: `run_stream(learner, stream, budget, on_boundary)`.

- Task-based learners get each task in order as a `TaskData` whose `batches()` are exactly the budget's
  real batches (epochs passes of batch_size rows, at most max_steps steps).
- Task-free learners (OCM) see the tasks' images as one class-sorted stream of batches of their own batch
  size (classes in task order, each image once) and are never told where a task ends; the driver calls
  on_boundary(t, learner) after the batch in which task t's last image arrives.
- Offline learners (joint VAE, mixture of VAEs) get the union of all tasks as one task with the same
  budget; on_boundary is called once, with the last task's index, when they have seen everything.

The result reports, per task, the real rows the learner was handed and the replayed rows it trained on
besides (generated or stored images), the optimisation steps on real batches and the training seconds
(on_boundary's time excluded).

Resuming mid-stream (task-free learners that implement `Resumable`, such as OCM): with `checkpoint=Checkpointing(
folder)` the driver saves, at least every `every_s` seconds (default 300; `every_batches` for tests), the
learner's whole state (`resume_state()`: model, optimiser, memory, counters, RNG states) and the stream position
(batches consumed, the per-task rows so far) to <folder>/state.pt, atomically (a temporary file in the folder,
then os.replace: a kill during the write leaves the previous checkpoint). A run that finds a checkpoint of the
same stream and learner class there restores it and continues from the next batch, so a killed run ends
bit-identical to an uninterrupted one on the CPU. Boundaries passed before the checkpoint are not replayed:
on_boundary's own effects are the caller's to keep. A run that wrote a checkpoint writes a last one when the
stream ends (the caller removes the folder once it has kept the result: `results.cache.cached` does).
"""
from __future__ import annotations

import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.streams import Split, TaskFreeStream, class_sorted_stream
from ..results.atomic import atomic_write
from .base import Budget, Learner, Resumable, TaskData

Boundary = Callable[[int, Learner], None]


@dataclass
class StreamTask:
    name: str
    x: torch.Tensor  # training images in [0,1]
    y: torch.Tensor | None = None  # labels (the task-free order and bookkeeping only)


@dataclass
class StreamResult:
    learner: Learner
    tasks: list[dict] = field(default_factory=list)  # per task: name, real_rows, replay_rows, steps, seconds

    @property
    def real_rows(self) -> list[int]:
        return [t["real_rows"] for t in self.tasks]

    @property
    def replay_rows(self) -> list[int]:
        return [t["replay_rows"] for t in self.tasks]

    @property
    def train_seconds(self) -> float:
        return float(sum(t["seconds"] for t in self.tasks))


def stream_tasks(stream) -> list[StreamTask]:
    """The tasks of a TaskStream (task.train.x), a benchmark stream (task.train_x) or a list of StreamTasks."""
    tasks = getattr(stream, "tasks", stream)
    out = []
    for i, t in enumerate(tasks):
        if isinstance(t, StreamTask):
            out.append(t)
            continue
        x, y = (t.train.x, t.train.y) if hasattr(t, "train") else (t.train_x, t.train_y)
        out.append(StreamTask(getattr(t, "name", f"task {i}"), x, y))
    if not out:
        raise ValueError("the stream has no tasks")
    return out


@dataclass
class Checkpointing:
    """Where and how often the driver saves a resumable state of a task-free run (see the module docstring):
    after a batch once `every_s` seconds (wall clock) have passed since the run started or last saved (None:
    never by time; 0: after every batch), and after every `every_batches` batches (None: never by count)."""
    folder: str | Path
    every_s: float | None = 300.0
    every_batches: int | None = None

    @property
    def file(self) -> Path:
        return Path(self.folder) / "state.pt"

    def due(self, batches: int, since: float) -> bool:
        by_count = self.every_batches is not None and batches % self.every_batches == 0
        return by_count or (self.every_s is not None and time.monotonic() - since >= self.every_s)

    def save(self, payload: dict) -> None:
        atomic_write(self.file, lambda tmp: torch.save(payload, tmp))

    def load(self) -> dict | None:
        if not self.file.exists():
            return None
        try:
            return torch.load(self.file, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - an unreadable checkpoint costs the progress, not the run
            warnings.warn(f"checkpoint {self.file} could not be read ({type(err).__name__}: {err}); starting over",
                          RuntimeWarning, stacklevel=3)
            return None


def _stream_id(learner: Learner, batches: TaskFreeStream) -> str:
    """What a checkpoint must match to be resumed: the learner's class and the stream's batches (size and order)."""
    h = hashlib.sha1(f"{type(learner).__name__}|{batches.batch_size}|{len(batches.order)}|".encode())
    h.update(batches.order.cpu().numpy().tobytes())
    return h.hexdigest()


def _record(name: str, real: int, replay: int, steps: int, seconds: float) -> dict:
    return {"name": name, "real_rows": int(real), "replay_rows": int(replay), "steps": int(steps),
            "seconds": float(seconds)}


def _task_free(learner: Learner, stream, budget: Budget, on_boundary: Boundary | None,
               checkpoint: Checkpointing | None = None) -> list[dict]:
    if isinstance(stream, TaskFreeStream):
        batches, bounds, names = stream, [len(stream.order)], ["stream"]
    else:
        tasks = stream_tasks(stream)
        batches = class_sorted_stream([Split(t.x, t.y) for t in tasks],
                                      getattr(learner, "batch_size", budget.batch_size), budget.seed)
        bounds, names = np.cumsum([len(t.x) for t in tasks]).tolist(), [t.name for t in tasks]
    rows = [_record(n, 0, 0, 0, 0.0) for n in names]
    seen, b, done = 0, 0, 0  # b: the next boundary; replayed rows and time go to the task the batch starts in
    if checkpoint is not None:
        if not isinstance(learner, Resumable):
            raise TypeError(f"{type(learner).__name__} cannot be checkpointed: it has no resume_state and "
                            "load_resume_state")
        sid, saved, since = _stream_id(learner, batches), checkpoint.load(), time.monotonic()
        if saved is not None and saved.get("stream") != sid:
            warnings.warn(f"checkpoint {checkpoint.file} belongs to another stream or learner; starting over",
                          RuntimeWarning, stacklevel=3)
            saved = None
        if saved is not None:
            learner.load_resume_state(saved["learner"])
            p = saved["position"]
            rows, seen, b, done = p["rows"], p["seen"], p["b"], p["batches"]
        wrote = saved is not None

        def save() -> None:
            checkpoint.save({"stream": sid, "learner": learner.resume_state(),
                             "position": {"rows": rows, "seen": seen, "b": b, "batches": done}})
    for x, y in batches.batches_from(done):
        cur = min(b, len(bounds) - 1)
        before, t0 = learner.replayed_rows, time.time()
        learner.observe(x, y)
        rows[cur]["seconds"] += time.time() - t0
        rows[cur]["replay_rows"] += learner.replayed_rows - before
        rows[cur]["steps"] += 1
        for row, lo, hi in zip(rows, [0, *bounds[:-1]], bounds):  # real rows by stream position
            row["real_rows"] += max(0, min(hi, seen + x.shape[0]) - max(lo, seen))
        seen += x.shape[0]
        while b < len(bounds) and seen >= bounds[b]:
            if on_boundary:
                on_boundary(b, learner)
            b += 1
        done += 1
        if checkpoint is not None and done < len(batches) and checkpoint.due(done, since):
            save()
            wrote, since = True, time.monotonic()
    if checkpoint is not None and wrote:
        save()  # the whole stream: a kill before the caller keeps the result does not train it again
    return rows


def _fit(learner: Learner, task: TaskData) -> dict:
    before, t0 = learner.replayed_rows, time.time()
    info = learner.fit_task(task)
    row = _record(task.name, task.real_rows, learner.replayed_rows - before, task.steps, time.time() - t0)
    return row | {"info": info}


def run_stream(learner: Learner, stream, budget: Budget, on_boundary: Boundary | None = None,
               checkpoint: Checkpointing | None = None) -> StreamResult:
    """Train `learner` on `stream` (a TaskStream, a benchmark stream, or, for a task-free learner, a
    TaskFreeStream) under `budget`; on_boundary(t, learner) after task t. `checkpoint`: save and resume a
    task-free run mid-stream (task-free learners only, so far). See the module docstring."""
    kind = getattr(learner, "kind", None)
    result = StreamResult(learner)
    if kind == "task_free":
        result.tasks = _task_free(learner, stream, budget, on_boundary, checkpoint)
        return result
    if checkpoint is not None:
        raise NotImplementedError(f"checkpoints mid-stream are for task-free learners; {type(learner).__name__} "
                                  f"is a {kind!r} learner (its runs resume at whole experiments, from the cache)")
    tasks = stream_tasks(stream)
    if kind == "offline":
        ys = None if any(t.y is None for t in tasks) else torch.cat([t.y for t in tasks])
        joint = TaskData(0, "+".join(t.name for t in tasks), torch.cat([t.x for t in tasks]), budget, ys)
        result.tasks.append(_fit(learner, joint))
        if on_boundary:
            on_boundary(len(tasks) - 1, learner)
        return result
    if kind != "task":
        raise TypeError(f"{type(learner).__name__} has kind {kind!r}; expected 'task', 'task_free' or 'offline'")
    for i, t in enumerate(tasks):
        result.tasks.append(_fit(learner, TaskData(i, t.name, t.x, budget, t.y)))
        if on_boundary:
            on_boundary(i, learner)
    return result
