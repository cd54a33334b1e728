"""L-MVAE as a learner: per task, the model decides (reuse an expert, train the pool, or grow), the
trainable experts train on the task's real batches with the Dirichlet MELBO, and the best of them is
assigned to the task and frozen (see lmvae_core.models.lmvae). A reused task draws no batch from the driver;
the probe expert of the reuse test (rule 'probe') trains `probe_steps` steps on the task's images on top of
the budget (the decision records them as `probe_steps`).

As a density (`log_likelihood`) it is the mixture sum_i pi_i p_i(x) over the experts that serve a task,
pi_i the share of tasks expert i serves; `model.log_likelihood` is the per-input selection of the paper.
"""
from __future__ import annotations

import torch

from ..models.lmvae import LMVAE, LMVAEConfig
from ..training.loop import make_optimizer
from .base import BaseLearner, TaskData, count_params
from .vae import experts_log_likelihood, experts_sample


class LMVAELearner(BaseLearner):
    def __init__(self, config: LMVAEConfig | None = None, model: LMVAE | None = None, device="cpu", **common):
        super().__init__(device, **common)
        if model is None and config is None:
            raise ValueError("give an LMVAEConfig or an LMVAE")
        self.model = (model if model is not None else LMVAE(config)).to(self.device)
        self.init_args = {"config": self.model.config, **self.common_args()}

    def fit_task(self, task: TaskData) -> dict:
        model = self.model
        # the probe expert (reuse rule 'probe') trains on the task's images as the task would: same binarisation, lr
        decision, probe = model.begin_task(task.x, task.name, task.budget.binarize, self.optim.lr)
        if decision["action"] != "reuse":
            on_epoch = model.capacity_schedule(decision["trained"], task.budget.epochs)
            optimizer = make_optimizer(model.experts.trainable_parameters(), self.optim)
            decision["history"] = self.fit(task, model.loss, optimizer, model, on_epoch,
                                           desc=f"L-MVAE task {decision['task']} ({task.name})")
            decision["steps"] = task.steps
            model.end_task(decision, probe)
        self.tasks_done += 1
        return decision

    def _served(self) -> tuple[list[int], torch.Tensor]:
        """The experts that serve a task, and how many tasks each serves (the mixture weights)."""
        used = sorted(set(self.model.task_expert))
        return used, torch.tensor([self.model.task_expert.count(e) for e in used], dtype=torch.float)

    @property
    def n_params(self) -> int:
        return count_params(*(self.model.experts.experts[e] for e in self._served()[0]))

    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor:
        ids, weights = self._served()
        return experts_log_likelihood(self.model.experts, ids, weights, x, k)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        ids, weights = self._served()
        return experts_sample([self.model.experts.experts[e] for e in ids], weights, n, seed)
