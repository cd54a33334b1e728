"""L-MVAE: the Lifelong Mixture of VAEs (Ye and Bors, IEEE TNNLS 2021).

K VAE experts are trained on the current task with the MELBO, sum_i w_i ELBO_i(x), where the mixing
weights w are drawn afresh at every step from a Dirichlet over the experts that are still trainable
(the official code uses concentration c / sum(c), c the 0/1 mask of trainable experts; frozen experts
get weight exactly 0). After a task, the trainable expert that models the task best (lowest
reconstruction error on probe images of the task) is assigned to it and frozen: its parameters leave
the optimiser, which is rebuilt for the next task.

Growth (made explicit here; the code pre-allocates K experts):
- before training a task, every assigned expert i is scored on probe images of the new task; if
  err_i(new) <= (1 + reuse_threshold) * err_i(own task), the new task is "similar" and reuses expert
  i without any training (it is learned in zero steps) and no expert is added;
- otherwise the task is trained; if no trainable expert is left, a fresh one is added first.

The per-task procedure is split into `begin_task` (decide, grow) and `end_task` (assign, freeze); the
training in between is `lmvae_core.continual.lmvae.LMVAELearner`.

Inference picks one assigned expert per input (lowest reconstruction error, or highest ELBO) and runs
only that expert. The capacity-controlled variant (recon + gamma |KL - C|) grows C from
capacity_start by capacity_increase / epochs per epoch of every task (the 64x64 experiment of the paper).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .base import register_model
from .configured import Configured
from .mixture import ExpertMixture
from .vae import VAE, VAEConfig


@dataclass
class LMVAEConfig:
    expert: VAEConfig = field(default_factory=VAEConfig)
    n_experts: int = 2  # experts allocated at the start (the code: 4 or 10; growth adds more when needed)
    # relative: reuse expert i if err_i(new) <= (1 + threshold) * err_i(own); None: never reuse (the code)
    reuse_threshold: float | None = 0.5
    probe_size: int = 64  # probe images per task for assignment and similarity (the code: 64)
    selection: str = "recon"  # 'recon' (lowest reconstruction error) | 'elbo' (highest ELBO)
    dirichlet: float | None = None  # total concentration over trainable experts; None: the code's 1 (= sum c/sum c)
    capacity_start: float = 0.5  # capacity variant only (expert.capacity set)
    capacity_increase: float = 25.0  # C grows by capacity_increase / epochs per epoch of each task

    def __post_init__(self):
        if isinstance(self.expert, dict):
            self.expert = VAEConfig(**self.expert)
        if self.n_experts < 1:
            raise ValueError(f"n_experts must be >= 1, got {self.n_experts}")
        if self.reuse_threshold is not None and self.reuse_threshold < 0:
            raise ValueError(f"reuse_threshold must be >= 0, got {self.reuse_threshold}")
        if self.selection not in ("recon", "elbo"):
            raise ValueError(f"selection must be 'recon' or 'elbo', got {self.selection!r}")
        if self.probe_size < 1:
            raise ValueError("probe_size must be >= 1")
        if self.dirichlet is not None and self.dirichlet <= 0:
            raise ValueError("dirichlet concentration must be positive")


@register_model
class LMVAE(Configured):
    config_class = LMVAEConfig

    def build(self, config: LMVAEConfig) -> None:
        self.experts = ExpertMixture(lambda: VAE(self.config.expert), self.config.n_experts)
        k = self.config.n_experts
        # expert_task[i]: index of the task expert i was assigned to (-1: still trainable);
        # reference_error[i]: its reconstruction error on probe images of that task.
        self.register_buffer("expert_task", torch.full((k,), -1, dtype=torch.long))
        self.register_buffer("reference_error", torch.full((k,), float("nan")))
        self.task_names: list[str] = []
        self.task_expert: list[int] = []  # the expert that serves task t (assigned or reused)

    # -- bookkeeping ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.experts)

    @property
    def trainable(self) -> list[int]:
        return self.experts.trainable

    @property
    def assigned(self) -> list[int]:
        return [i for i in range(len(self)) if int(self.expert_task[i]) >= 0]

    def add_expert(self) -> int:
        k = self.experts.add_expert()
        self.expert_task = torch.cat([self.expert_task, self.expert_task.new_full((1,), -1)])
        self.reference_error = torch.cat([self.reference_error, self.reference_error.new_full((1,), float("nan"))])
        return k

    def assign(self, k: int, task: int, reference_error: float) -> None:
        """Give expert k to task `task` and freeze it (rebuild any optimiser afterwards)."""
        if self.experts.is_frozen(k):
            raise ValueError(f"expert {k} is already frozen")
        self.experts.freeze(k)
        self.expert_task[k] = task
        self.reference_error[k] = float(reference_error)

    # -- the MELBO ------------------------------------------------------------------------------
    def mixing_weights(self) -> torch.Tensor:
        """A fresh Dirichlet draw over all K experts: frozen experts get exactly 0."""
        ids = self.trainable
        w = torch.zeros(len(self), device=self.expert_task.device)
        if not ids:
            return w
        if len(ids) == 1:
            w[ids[0]] = 1.0
            return w
        total = 1.0 if self.config.dirichlet is None else self.config.dirichlet
        conc = torch.full((len(ids),), total / len(ids), device=w.device)
        draw = torch.distributions.Dirichlet(conc).sample()
        w[ids] = draw.clamp_min(0.0) / draw.sum().clamp_min(1e-30)
        return w

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative MELBO: sum_i w_i (loss_i), over the trainable experts, w ~ Dirichlet, per batch."""
        ids = self.trainable
        if not ids:
            raise RuntimeError("no trainable expert: add one before training")
        w = self.mixing_weights()[ids]
        t = self.experts.all_experts(x, ids=ids)  # [Kt, B]
        loss = (w[:, None] * t["loss"]).sum(0).mean()
        return loss, {"melbo_loss": loss.detach(), "mean_expert_nelbo": -t["elbo"].mean().detach()}

    # -- per-task procedure ---------------------------------------------------------------------
    @torch.no_grad()
    def expert_errors(self, x: torch.Tensor, ids: list[int] | None = None) -> torch.Tensor:
        """Mean reconstruction error of each expert in `ids` on images x: shape [len(ids)]."""
        ids = list(range(len(self))) if ids is None else list(ids)
        return self.experts.all_experts(x, op="reconstruction_error", ids=ids).mean(1)

    def probe(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(x.shape[0], generator=g)[: self.config.probe_size].to(x.device)
        return x[idx]

    @torch.no_grad()
    def similarity(self, probe: torch.Tensor) -> dict[int, float]:
        """For each assigned expert: its error on the probe divided by its error on its own task."""
        ids = self.assigned
        if not ids:
            return {}
        err = self.expert_errors(probe, ids)
        return {k: float(err[j] / self.reference_error[k]) for j, k in enumerate(ids)}

    def decide(self, probe: torch.Tensor) -> dict:
        """What the next task needs: reuse an assigned expert, train the pool, or grow and train."""
        ratios = self.similarity(probe)
        if ratios and self.config.reuse_threshold is not None:
            best = min(ratios, key=ratios.get)
            if ratios[best] <= 1.0 + self.config.reuse_threshold:
                return {"action": "reuse", "expert": best, "ratios": ratios}
        return {"action": "grow" if not self.trainable else "train", "expert": None, "ratios": ratios}

    def begin_task(self, x: torch.Tensor, name: str) -> tuple[dict, torch.Tensor]:
        """Decide what the next task (training images x in [0,1]) needs, before any training: a reused task
        is recorded here and needs no training; 'grow' adds the fresh expert. Returns (decision, probe)."""
        task = len(self.task_names)
        probe = self.probe(x, seed=1000 + task)
        decision = self.decide(probe)
        decision |= {"task": task, "name": name, "added": False, "history": [], "steps": 0}
        if decision["action"] == "reuse":
            self.task_names.append(name)
            self.task_expert.append(decision["expert"])
        elif decision["action"] == "grow":
            self.add_expert()
            decision["added"] = True
        decision["trained"] = self.trainable if decision["action"] != "reuse" else []
        decision["n_experts"] = len(self)
        return decision, probe

    def end_task(self, decision: dict, probe: torch.Tensor) -> dict:
        """After training: the trained expert that reconstructs the probe best is assigned to the task and frozen."""
        ids = decision["trained"]
        errors = self.expert_errors(probe, ids)
        best = ids[int(errors.argmin())]
        self.assign(best, decision["task"], float(errors.min()))
        decision["expert"] = best
        decision["assign_errors"] = {k: float(e) for k, e in zip(ids, errors)}
        self.task_names.append(decision["name"])
        self.task_expert.append(best)
        decision["n_experts"] = len(self)
        return decision

    def capacity_schedule(self, ids: list[int], epochs: int):
        """Capacity variant: set C to its start for the experts `ids`; returns on_epoch(epoch, _) that grows it
        by capacity_increase / epochs after every epoch (None without a capacity)."""
        if self.config.expert.capacity is None:
            return None
        step = self.config.capacity_increase / max(epochs, 1)
        self._set_capacity(ids, self.config.capacity_start)

        def on_epoch(epoch, _means):
            self._set_capacity(ids, self.config.capacity_start + step * (epoch + 1))
        return on_epoch

    def _set_capacity(self, ids: list[int], value: float) -> None:
        for k in ids:
            self.experts.experts[k].set_capacity(value)

    # -- inference: one expert per input ---------------------------------------------------------
    @torch.no_grad()
    def select(self, x: torch.Tensor, criterion: str | None = None, batch_size: int = 2000) -> torch.Tensor:
        """Index of the assigned expert chosen for each input (all experts if none is assigned yet)."""
        criterion = criterion or self.config.selection
        ids = self.assigned or list(range(len(self)))
        out = []
        for s in range(0, x.shape[0], batch_size):
            xb = x[s:s + batch_size]
            if criterion == "recon":
                score = -self.experts.all_experts(xb, op="reconstruction_error", ids=ids)
            elif criterion == "elbo":
                score = self.experts.all_experts(xb, op="terms", ids=ids)["elbo"]
            else:
                raise ValueError(f"criterion must be 'recon' or 'elbo', got {criterion!r}")
            out.append(torch.as_tensor(ids, device=x.device)[score.argmax(0)])
        return torch.cat(out)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, choice: torch.Tensor | None = None) -> torch.Tensor:
        choice = self.select(x) if choice is None else choice
        return self.experts.per_input(x, choice, op="reconstruct")

    @torch.no_grad()
    def reconstruction_error(self, x: torch.Tensor, choice: torch.Tensor | None = None) -> torch.Tensor:
        choice = self.select(x) if choice is None else choice
        return self.experts.per_input(x, choice, op="reconstruction_error")

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int, choice: torch.Tensor | None = None,
                       batch_size: int = 500) -> torch.Tensor:
        """IWAE estimate of log p(x) under the selected expert only, per image [N]."""
        from ..metrics.loglik import iwae_log_likelihood

        choice = self.select(x) if choice is None else choice
        out = torch.empty(x.shape[0], device=x.device)
        for e in choice.unique().tolist():
            rows = (choice == e).nonzero().squeeze(1)
            out[rows] = iwae_log_likelihood(self.experts.experts[e], x[rows], k=k, batch_size=batch_size)
        return out

    @torch.no_grad()
    def sample_per_expert(self, n: int, seed: int = 0, ids: list[int] | None = None) -> torch.Tensor:
        """n prior samples from each expert: [len(ids), n, C, H, W]."""
        ids = self.assigned if ids is None else ids
        g = torch.Generator(device=self.expert_task.device).manual_seed(seed)
        return torch.stack([self.experts.experts[k].sample(n, generator=g) for k in ids])

    # -- saving ---------------------------------------------------------------------------------
    def spec(self) -> dict:
        return {"config": asdict(self.config), "mixture": self.experts.spec(),
                "task_names": list(self.task_names), "task_expert": list(self.task_expert)}

    @classmethod
    def from_spec(cls, spec: dict) -> "LMVAE":
        model = cls(LMVAEConfig(**spec["config"]))
        while len(model) < len(spec["mixture"]["experts"]):
            model.add_expert()
        model.task_names = list(spec["task_names"])
        model.task_expert = list(spec["task_expert"])
        return model

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        for k in range(len(self)):  # frozen experts stay out of any optimiser built later
            for p in self.experts.experts[k].parameters():
                p.requires_grad_(not self.experts.is_frozen(k))
        return result


__all__ = ["LMVAE", "LMVAEConfig"]
