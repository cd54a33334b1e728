"""Lifelong Generative Modeling (Ramapuram et al.) as a learner: the student-teacher procedure and its
baselines ('lgm', 'replay' = gamma_c 0, 'naive', 'ewc', 'full'), on the driver's real-data budget.

Budget and the official code. The official code (jramapuram/LifelongVAE_pytorch, StudentTeacher.
_augment_data) loads a real batch of B images and keeps only max(1, B - int(B t/(t+1))) of them,
filling the rest with teacher samples, so on task t it sees about 1/(t+1) of the task's real images per
epoch: E epochs of real data shrink to E/(t+1). Here every step takes the driver's full real batch B
(the same real budget as every other method) and, on top, B teacher samples; the loss weighs the real
rows' mean by 1/(t+1) and the replayed rows' mean by t/(t+1) (`student_teacher_loss(replay_weight=...)`),
so the objective keeps the official replay share while the real data per task equal the others'. This is
how the Replay VAE mixes too. 'full' (the upper bound) replays stored real images of the earlier tasks
instead of teacher samples, with the same weights; 'naive' and 'ewc' train on the real batch alone.

The temperature follows the official schedule (models.lgm.anneal): a fixed decay per step from tau0, counted
from the creation of the current student, as in both official codes (a new student's GumbelSoftmax starts
its iteration counter at 0), or over the whole stream with `LifelongConfig.tau_scope='stream'`. It no longer
depends on the task's length (it used to reach tau_min at the end of every task, however short).

As in the official code (StudentTeacher.fork), only the student-teacher methods ('lgm', 'replay', 'full')
grow the discrete head at a new task; 'naive' and 'ewc' keep the head they started with.

Replayed rows are counted in `replayed_rows`; the images 'full' stores are its `memory_images`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.preprocess import binarize_dynamic
from ..data.streams import take_rows
from ..metrics import iwae_log_likelihood
from ..models.lgm import (LGM, LGMConfig, add_fisher, anneal, diagonal_fisher, ewc_penalty, fork,
                          student_teacher_loss)
from ..training.loop import make_optimizer
from .base import BaseLearner, TaskData, frozen_copy, pack, restore

METHODS = ("lgm", "replay", "naive", "ewc", "full")
GROWING = ("lgm", "replay", "full")  # the methods that add categories to z_d at each new task


@dataclass
class LifelongConfig:
    method: str = "lgm"  # 'lgm' | 'replay' (gamma_c = 0) | 'naive' | 'ewc' | 'full'
    ewc_gamma: float = 10.0
    fisher_samples: int = 256
    tau_scope: str = "student"  # temperature step counter: 'student' (restarts at each fork, official) | 'stream'

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.tau_scope not in ("student", "stream"):
            raise ValueError(f"tau_scope must be 'student' or 'stream', got {self.tau_scope!r}")
        if self.ewc_gamma < 0 or self.fisher_samples < 1:
            raise ValueError("ewc_gamma must be >= 0 and fisher_samples >= 1")

    @property
    def replays(self) -> bool:
        return self.method in ("lgm", "replay")

    @property
    def grows(self) -> bool:
        return self.method in GROWING


class LGMLearner(BaseLearner):
    """`student` is the current model, `teacher` the frozen model after the previous task (None before)."""
    saved_modules = ("student",)

    def __init__(self, config: LGMConfig, lifelong: LifelongConfig | None = None, gamma_c: float | None = None,
                 seed: int = 0, device="cpu", **common):
        super().__init__(device, **common)
        self.config, self.lifelong, self.seed = config, lifelong or LifelongConfig(), seed
        self.gamma_c = 0.0 if self.lifelong.method == "replay" else (config.gamma_c if gamma_c is None else gamma_c)
        self.init_args = {"config": config, "lifelong": self.lifelong, "gamma_c": gamma_c, "seed": seed,
                          **self.common_args()}
        self.student = LGM(config).to(self.device)
        self.teacher: LGM | None = None
        self.fisher = None
        self.pool: list[torch.Tensor] = []  # 'full': the real images of the finished tasks
        self.steps = 0  # training steps of the current student ('student' scope) or of the stream

    def fit_task(self, task: TaskData) -> dict:
        t, method = self.tasks_done, self.lifelong.method
        if t > 0:
            self.teacher, self.student = fork(self.student, grow=self.lifelong.grows)
            if self.lifelong.tau_scope == "student":
                self.steps = 0
        student, teacher = self.student, self.teacher
        gd = torch.Generator(device=self.device).manual_seed(self.seed * 1000 + t)
        pool = torch.cat(self.pool) if method == "full" and self.pool else None
        ewc = ({k: v.detach() for k, v in teacher.named_parameters()}, self.fisher) \
            if method == "ewc" and teacher is not None and self.fisher is not None else None
        weight = t / (t + 1)

        def loss_fn(real):
            student.tau.fill_(anneal(student.config, self.steps))
            self.steps += 1
            replay = None
            if self.lifelong.replays and teacher is not None:
                replay = teacher.sample(real.shape[0], generator=gd)
            elif pool is not None:
                idx = torch.randint(0, pool.shape[0], (real.shape[0],), device=self.device, generator=gd)
                replay = binarize_dynamic(take_rows(pool, idx), gd)
            if replay is not None:
                self.replayed_rows += replay.shape[0]
            loss, terms = student_teacher_loss(student, teacher, real, replay, self.gamma_c,
                                               replay_weight=weight if replay is not None else None)
            if ewc is not None:
                pen = ewc_penalty(student, ewc[0], ewc[1], self.lifelong.ewc_gamma)
                loss = loss + pen
                terms |= {"ewc": pen.detach(), "total": loss.detach()}
            return loss, terms

        history = self.fit(task, loss_fn, make_optimizer(student.parameters(), self.optim), student,
                           on_epoch=lambda _e, means: means.update(tau=float(student.tau)), desc=f"{method} task {t}")
        if method == "ewc":
            g = torch.Generator().manual_seed(self.seed + t)
            self.fisher = add_fisher(self.fisher, diagonal_fisher(student, task.x, self.lifelong.fisher_samples,
                                                                  generator=g))
        if method == "full":
            self.pool.append(task.x)
            self._memory_images += task.x.shape[0]
        self.tasks_done += 1
        return {"history": history}

    def state(self) -> dict:
        teacher = None if self.teacher is None else pack(self.teacher)
        return super().state() | {"teacher": teacher, "fisher": self.fisher, "pool": [x.cpu() for x in self.pool],
                                  "steps": self.steps}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.fisher = state["fisher"]
        self.pool = [x.to(self.device) for x in state["pool"]]
        self.steps = state.get("steps", 0)
        if state["teacher"] is not None:
            self.teacher = frozen_copy(restore(LGM, state["teacher"], self.device))

    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return iwae_log_likelihood(self.student, x, k=k)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.student.sample(n, generator=torch.Generator(device=self.device).manual_seed(seed))
