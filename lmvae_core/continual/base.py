"""What every continual-learning method is to the driver: the `Learner` protocol, the real-data `Budget`,
the `TaskData` a learner trains from, and saving/loading a learner.

A learner is one of three kinds:
- 'task' (fine-tune, replay, LGM, L-MVAE): `fit_task(task)` once per task, in order;
- 'task_free' (OCM): `observe(x, y)` once per arriving batch, never told where a task ends;
- 'offline' (joint VAE, mixture of VAEs with a manager): one `fit_task` on the union of all tasks.

A task-based learner gets its real data only through `task.batches()`: the budget's passes over the task's
images, each batch binarised and sliced by the driver, handed out once. So no method can see more (or
less) real data than another; whatever else a method trains on (generated replay, stored images) it
counts in `replayed_rows`, and the driver reports both per task.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .. import models as _models
from ..models.base import MODEL_REGISTRY
from ..training.loop import TrainConfig, epoch_batches, fit_batches, steps_per_epoch

KINDS = ("task", "task_free", "offline")


@dataclass(frozen=True)
class Budget:
    """Real data a learner gets per task: `epochs` passes of `batch_size` rows (at most `max_steps` steps per
    task, for CPU profiles), binarised afresh each pass. `seed` orders the class-sorted task-free stream."""
    epochs: int = 1
    batch_size: int = 64
    binarize: str | None = "dynamic"
    max_steps: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or (self.max_steps is not None and self.max_steps < 1):
            raise ValueError(f"invalid budget: epochs={self.epochs}, batch_size={self.batch_size}, "
                             f"max_steps={self.max_steps}")
        if self.binarize not in (None, "dynamic", "static"):
            raise ValueError(f"binarize must be 'dynamic', 'static' or None, got {self.binarize!r}")


def from_train_config(cfg: TrainConfig) -> tuple[Budget, dict]:
    """A TrainConfig split into the real-data budget and a learner's optimiser arguments."""
    return (Budget(cfg.epochs, cfg.batch_size, cfg.binarize),
            {"lr": cfg.lr, "betas": cfg.betas, "grad_clip": cfg.grad_clip, "progress": cfg.progress,
             "check_every": cfg.check_every})


class TaskData:
    """One task as the driver hands it out: name, index, images x in [0,1] (labels y, for bookkeeping only) and
    `batches()`, the budget's (epoch, real batch) pairs, which can be drawn once. Rows and steps drawn are counted."""

    def __init__(self, index: int, name: str, x: torch.Tensor, budget: Budget, y: torch.Tensor | None = None):
        self.index, self.name, self.x, self.y, self.budget = index, name, x, y, budget
        self.real_rows = 0
        self.steps = 0
        self._drawn = False

    @property
    def per_epoch(self) -> int:
        b = self.budget
        return steps_per_epoch(self.x.shape[0], b.batch_size, b.epochs, b.max_steps)

    @property
    def total_steps(self) -> int:
        return self.budget.epochs * self.per_epoch

    def batches(self) -> Iterator[tuple[int, torch.Tensor]]:
        if self._drawn:
            raise RuntimeError(f"the real batches of task {self.index} ({self.name}) were already handed out; "
                               "a learner gets its budget once")
        self._drawn = True
        b = self.budget
        for epoch, batch in epoch_batches(self.x, b.epochs, b.batch_size, b.binarize, b.max_steps):
            self.real_rows += batch.shape[0]  # a shape, known on the host: no device sync
            self.steps += 1
            yield epoch, batch


@runtime_checkable
class Learner(Protocol):
    """The interface of every method (see the module docstring for the three kinds)."""
    kind: str
    replayed_rows: int  # rows trained on that the driver did not hand out (generated or stored), so far

    def fit_task(self, task: TaskData) -> dict: ...

    def observe(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict: ...

    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor: ...  # per image, nats

    def sample(self, n: int, seed: int = 0) -> torch.Tensor: ...  # [n, C, H, W] in [0,1]

    @property
    def n_params(self) -> int: ...  # parameters used at inference

    @property
    def memory_images(self) -> int: ...  # real images stored

    def save(self, path: str | Path) -> Path: ...


@runtime_checkable
class Resumable(Protocol):
    """A learner whose whole training state can be saved mid-stream and restored (the driver's checkpoints):
    after `load_resume_state(resume_state())` in a fresh process, training goes on exactly as if never
    stopped. The state holds the model, the optimiser, the memory, the counters, the learner's own
    generators and the process-wide RNG states (`rng_state`). Taking it consumes no random numbers."""

    def resume_state(self) -> dict: ...

    def load_resume_state(self, state: dict) -> None: ...


def rng_state() -> dict:
    """Every process-wide random state a run may draw from: torch's CPU generator, each CUDA device's (once CUDA is
    initialised), numpy's and Python's."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


LEARNERS: dict[str, type] = {}


def pack(model: nn.Module) -> dict:
    """A model as plain data: its class, spec and a snapshot of its state (on the CPU).

    The state is cloned: on a CPU `.cpu()` returns the live parameter itself, so a model packed and then trained
    further (the mixture prior's GMM initialisation) would otherwise change its packed copy with it."""
    return {"class": type(model).__name__, "spec": model.spec(),
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def restore(cls: type, packed: dict, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model of class `cls` from {'spec', 'state'} (a cached result or `pack`) on `device`."""
    model = cls.from_spec(packed["spec"]).to(device)
    model.load_state_dict(packed["state"])
    return model.eval()


def unpack(packed: dict, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a packed model: its class is looked up among the registered models (`models.base.register_model`),
    so a model defined outside the package reloads once its module is imported."""
    cls = MODEL_REGISTRY.get(packed["class"]) or getattr(_models, packed["class"], None)
    if cls is None:
        raise KeyError(f"no registered model class {packed['class']!r} (register it with models.base.register_model)")
    return restore(cls, packed, device)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy that never trains (the previous model a replay method samples from)."""
    import copy

    old = copy.deepcopy(model).eval()
    for p in old.parameters():
        p.requires_grad_(False)
    return old


def count_params(*modules: nn.Module) -> int:
    return int(sum(p.numel() for m in modules for p in m.parameters()))


class BaseLearner:
    """What the learners share: the training loop over a task's batches, bookkeeping, save/load.

    Subclasses set `self.init_args` (their constructor's keyword arguments, `device` excluded), list the
    modules to save in `saved_modules`, and may extend `state`/`set_state` and `after_load`."""
    kind = "task"
    saved_modules: tuple[str, ...] = ("model",)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LEARNERS[cls.__name__] = cls

    def __init__(self, device: str | torch.device = "cpu", lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), grad_clip: float | None = None,
                 progress: bool = False, check_every: int = 50):
        self.device = torch.device(device)
        self.optim = TrainConfig(lr=lr, betas=tuple(betas), grad_clip=grad_clip, progress=progress,
                                 check_every=check_every)
        self.replayed_rows = 0
        self.tasks_done = 0
        self._memory_images = 0

    def common_args(self) -> dict:
        o = self.optim
        return {"lr": o.lr, "betas": o.betas, "grad_clip": o.grad_clip, "progress": o.progress,
                "check_every": o.check_every}

    # -- training ---------------------------------------------------------------------------------
    def fit(self, task: TaskData, loss_fn: Callable, optimizer: torch.optim.Optimizer, model: nn.Module,
            on_epoch: Callable[[int, dict], None] | None = None, desc: str = "") -> list[dict]:
        """One pass of the shared loop over the task's real batches."""
        o = self.optim
        return fit_batches(task.batches(), loss_fn, optimizer, model, o.grad_clip, o.check_every,
                           task.total_steps, task.per_epoch, o.progress,
                           desc or f"{type(self).__name__} task {task.index} ({task.name})", on_epoch=on_epoch)

    def fit_task(self, task: TaskData) -> dict:
        raise TypeError(f"{type(self).__name__} is a {self.kind} learner: it has no fit_task")

    def observe(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        raise TypeError(f"{type(self).__name__} is a {self.kind} learner: it has no observe")

    @property
    def memory_images(self) -> int:
        return self._memory_images

    @property
    def n_params(self) -> int:
        return count_params(*(getattr(self, m) for m in self.saved_modules))

    # -- saving -----------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"replayed_rows": self.replayed_rows, "tasks_done": self.tasks_done,
                "memory_images": self._memory_images}

    def set_state(self, state: dict) -> None:
        self.replayed_rows, self.tasks_done = state["replayed_rows"], state["tasks_done"]
        self._memory_images = state["memory_images"]

    def after_load(self) -> None:
        """Rebuild what depends on the loaded modules (frozen copies, optimisers)."""

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"learner": type(self).__name__, "init": self.init_args,
                   "modules": {m: pack(getattr(self, m)) for m in self.saved_modules}, "state": self.state()}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
        return path

    @staticmethod
    def load(path: str | Path, device: str | torch.device = "cpu") -> "BaseLearner":
        """Rebuild any saved learner (its class is in the file) on `device`."""
        payload = torch.load(Path(path), map_location="cpu", weights_only=False)
        cls = LEARNERS.get(payload["learner"])
        if cls is None:
            raise KeyError(f"{path} holds a {payload['learner']}, not a known learner ({', '.join(sorted(LEARNERS))})")
        learner = cls(**payload["init"], device=device)
        for name, packed in payload["modules"].items():
            setattr(learner, name, unpack(packed, device))
        learner.set_state(payload["state"])
        learner.after_load()
        return learner
