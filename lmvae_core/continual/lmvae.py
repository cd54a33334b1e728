"""L-MVAE as a learner: its per-task procedure. Before a task, `begin_task` decides (reuse an expert, train the
pool, or grow: the rules are in lmvae_core.models.lmvae's docstring), the trainable experts then train on the
task's real batches with the Dirichlet MELBO, and `end_task` assigns the best of them to the task and freezes it.
A reused task draws no batch from the driver; the probe expert of the reuse test (rule 'probe') trains
`probe_steps` steps on the task's images on top of the budget (the decision records them as `probe_steps`).

As a density (`log_likelihood`) it is the mixture sum_i pi_i p_i(x) over the experts that serve a task,
pi_i the share of tasks expert i serves; `model.log_likelihood` is the per-input selection of the paper.
"""
from __future__ import annotations

import math

import torch

from ..models.lmvae import LMVAE, LMVAEConfig
from ..models.vae import VAE
from ..training.loop import binarized, fit_batches, make_optimizer
from .base import BaseLearner, TaskData, count_params
from .vae import experts_log_likelihood, experts_sample


def split_probe(model: LMVAE, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probe images, the rest): probe_size held-out images of the task, the rest for the probe expert."""
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    n = min(model.config.probe_size, x.shape[0])
    return x[perm[:n]], x[perm[n:]] if x.shape[0] > n else x[perm[:n]]


def probe_images(model: LMVAE, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The held-out probe images of a task (split_probe's first part)."""
    return split_probe(model, x, seed)[0]


def probe_error(model: LMVAE, probe: torch.Tensor, rest: torch.Tensor, binarize: str | None = "dynamic",
                lr: float = 1e-3, seed: int = 0) -> tuple[float, int]:
    """The new data's own error scale: a fresh expert trained probe_epochs passes' worth of Adam steps on
    `rest` (random batches of probe_batch, binarised per draw like the task's batches), scored on the
    held-out probe. Returns (error, steps)."""
    # under its own seed, leaving the global random state as it was: a run's later draws do not depend on
    # whether a probe was trained
    cfg = model.config
    cuda = [probe.device] if probe.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        expert = VAE(cfg.expert).to(probe.device)
        steps = max(1, math.ceil(cfg.probe_epochs * rest.shape[0] / cfg.probe_batch))
        idx = torch.randint(rest.shape[0], (steps, cfg.probe_batch), device=rest.device)
        batches = ((0, binarized(rest[i], binarize)) for i in idx)
        fit_batches(batches, expert.loss, torch.optim.Adam(expert.parameters(), lr=lr), expert)
    with torch.no_grad():
        return float(expert.reconstruction_error(probe).mean()), steps


@torch.no_grad()
def similarity(model: LMVAE, probe: torch.Tensor, reference: float | None = None) -> dict[int, float]:
    """For each assigned expert: its error on the probe divided by the reference error: `reference` (the
    probe expert's error, rule 'probe'), or the expert's own-task error (rule 'ratio', reference None)."""
    ids = model.assigned
    if not ids:
        return {}
    err = model.expert_errors(probe, ids)
    return {k: float(err[j] / (model.reference_error[k] if reference is None else reference))
            for j, k in enumerate(ids)}


def decide(model: LMVAE, probe: torch.Tensor, rest: torch.Tensor | None = None, binarize: str | None = "dynamic",
           lr: float = 1e-3, seed: int = 0) -> dict:
    """What the next task needs: reuse an assigned expert, train the pool, or grow and train."""
    cfg = model.config
    decision = {"rule": cfg.reuse_rule, "probe_error": None, "probe_steps": 0}
    reference = None
    if model.assigned and cfg.reuse_threshold is not None and cfg.reuse_rule == "probe":
        reference, steps = probe_error(model, probe, probe if rest is None else rest, binarize, lr, seed)
        decision |= {"probe_error": reference, "probe_steps": steps}
    ratios = similarity(model, probe, reference) if cfg.reuse_threshold is not None else {}
    if ratios:
        best = min(ratios, key=ratios.get)
        if ratios[best] <= 1.0 + cfg.reuse_threshold:
            return decision | {"action": "reuse", "expert": best, "ratios": ratios}
    return decision | {"action": "grow" if not model.trainable else "train", "expert": None, "ratios": ratios}


def begin_task(model: LMVAE, x: torch.Tensor, name: str, binarize: str | None = "dynamic",
               lr: float = 1e-3) -> tuple[dict, torch.Tensor]:
    """Decide what the next task (training images x in [0,1]) needs, before any training: a reused task
    is recorded here and needs no training; 'grow' adds the fresh expert. Returns (decision, probe).
    binarize and lr are those of the task's training (for the probe expert)."""
    task = len(model.task_names)
    probe, rest = split_probe(model, x, seed=1000 + task)
    decision = decide(model, probe, rest, binarize, lr, seed=2000 + task)
    decision |= {"task": task, "name": name, "added": False, "history": [], "steps": 0}
    if decision["action"] == "reuse":
        model.task_names.append(name)
        model.task_expert.append(decision["expert"])
    elif decision["action"] == "grow":
        model.add_expert()
        decision["added"] = True
    decision["trained"] = model.trainable if decision["action"] != "reuse" else []
    decision["n_experts"] = len(model)
    return decision, probe


def end_task(model: LMVAE, decision: dict, probe: torch.Tensor) -> dict:
    """After training: the trained expert that reconstructs the probe best is assigned to the task and frozen."""
    ids = decision["trained"]
    errors = model.expert_errors(probe, ids)
    best = ids[int(errors.argmin())]
    model.assign(best, decision["task"], float(errors.min()))
    decision["expert"] = best
    decision["assign_errors"] = {k: float(e) for k, e in zip(ids, errors)}
    model.task_names.append(decision["name"])
    model.task_expert.append(best)
    decision["n_experts"] = len(model)
    return decision


def capacity_schedule(model: LMVAE, ids: list[int], epochs: int):
    """Capacity variant: set C to its start for the experts `ids`; returns on_epoch(epoch, _) that grows it
    by capacity_increase / epochs after every epoch (None without a capacity)."""
    if model.config.expert.capacity is None:
        return None
    step = model.config.capacity_increase / max(epochs, 1)
    model.set_capacity(ids, model.config.capacity_start)

    def on_epoch(epoch, _means):
        model.set_capacity(ids, model.config.capacity_start + step * (epoch + 1))
    return on_epoch


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
        decision, probe = begin_task(model, task.x, task.name, task.budget.binarize, self.optim.lr)
        if decision["action"] != "reuse":
            on_epoch = capacity_schedule(model, decision["trained"], task.budget.epochs)
            optimizer = make_optimizer(model.experts.trainable_parameters(), self.optim)
            decision["history"] = self.fit(task, model.loss, optimizer, model, on_epoch,
                                           desc=f"L-MVAE task {decision['task']} ({task.name})")
            decision["steps"] = task.steps
            end_task(model, decision, probe)
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
