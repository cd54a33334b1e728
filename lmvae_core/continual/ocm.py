"""OCM as a task-free learner (Ye & Bors 2022; the model and the memory rules are lmvae_core.models.ocm).

`observe(x, y)` takes one arriving batch: STM append, training on STM u LTM (`epochs_per_batch` passes),
then, when the STM is full, selection into the LTM (kernel rule or reservoir), the expansion check
(Dynamic-OCM) and clearing of the STM. Labels y are only recorded. Every arriving image is real data
seen once; every training row comes from the memory (STM u LTM) and is counted in `replayed_rows`.
`memory_images` is the LTM plus the STM's capacity. As a density, OCM is the uniform mixture of its
components (`log_likelihood`); notebook 04 also reports the paper's best-component-per-image value.

On CUDA the memory passes replay CUDA graphs (training/graphs.py): the paper profile's cost is these passes
(100 per arriving batch, 316M optimiser steps in notebook 04), and an eager step of the small OCM component is
bound by the host launching its ~100 kernels. Their shapes are fixed within a round (the memory changes only
between rounds, the component count only at an expansion), so the graphs are captured once per optimiser (one
per component count) and kept across rounds: full minibatches replay 8 steps at a time, the short last
minibatch of a pass gets its own graph, recaptured when the memory's size changes it. The graphed passes draw
the same random numbers as the eager ones (the warm-up's draws are undone); the CPU runs eagerly, unchanged.
"""
from __future__ import annotations

import copy
from functools import partial

import torch

from ..data.preprocess import binarize_dynamic
from ..data.streams import take_rows
from ..metrics import mixture_log_likelihood
from ..models.ocm import OCM, OCMConfig, kernel_scores, reservoir_update, select_indices
from ..training.graphs import CudaGraphStep, StepBlock
from ..training.loop import AUTOCAST, fit_batches, make_optimizer, tf32_matmuls
from .base import BaseLearner, pack, restore, rng_state, set_rng_state
from .vae import draw_counts


NOISE_SEED_OFFSET = 0x5EED  # an own-noise learner's Bernoulli and Gaussian draws: a stream apart from its batch order
GRAPH_BLOCK = 8  # full minibatches per graph replay on CUDA, as train() replays them


class OCMLearner(BaseLearner):
    """own_noise: draw the Bernoulli binarisations, the reparameterisation noise and a new component's weights from
    the learner's own generators instead of the process's random numbers, so that the run is the same whatever else
    the process draws: what lets the seeds of a method train as one stacked computation (continual/ocm_stacked.py)
    and match their separate runs. Off by default: the notebooks' committed runs draw from the process.
    cuda_graph: 'auto' and True replay the memory passes as CUDA graphs on a CUDA device (an own-noise learner's
    graphs register its noise generator, so that each replay advances it as the eager step would); False keeps
    them eager. autocast: 'bf16' trains the memory passes under
    bfloat16 autocast (the matmuls in bf16; parameters, optimiser and evaluation in fp32), graphed or not; tf32:
    the memory passes' CUDA matmuls in TF32. benchmarks/ocm_precision.py measures what each costs in nats, and
    papers/ocm/precision.py picks one for paper runs from that measurement."""
    kind = "task_free"

    def __init__(self, model: OCM | None = None, seed: int = 0, device: torch.device | str | None = None,
                 config: OCMConfig | None = None, progress: bool = False, own_noise: bool = False,
                 cuda_graph: bool | str = "auto", autocast: str | None = None, tf32: bool = False):
        if autocast not in AUTOCAST:
            raise ValueError(f"autocast must be one of {sorted(map(str, AUTOCAST))}, got {autocast!r}")
        if cuda_graph not in (True, False, "auto"):
            raise ValueError(f"cuda_graph must be 'auto', True or False, got {cuda_graph!r}")
        if model is None:
            if config is None:
                raise ValueError("give an OCM model or an OCMConfig")
            model = OCM(config)
        c = model.config
        device = torch.device(device) if device is not None else model.enc1.weight.device
        super().__init__(device, lr=c.lr, betas=(c.beta1, 0.999), progress=progress)
        self.model, self.config, self.seed = model.to(device), c, seed
        self.init_args = {"config": c, "seed": seed, "progress": progress, "own_noise": own_noise} | (
            {"autocast": autocast} if autocast else {}) | (
            {"tf32": True} if tf32 else {})  # absent when off: earlier saved learners keep their keys
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.noise = torch.Generator(device=self.device).manual_seed(seed + NOISE_SEED_OFFSET) if own_noise else None
        d = c.image_shape
        self.stm_x = torch.empty(0, *d, device=self.device)
        self.stm_y = torch.empty(0, dtype=torch.long, device=self.device)
        self.ltm_x = torch.empty(0, *d, device=self.device)
        self.ltm_y = torch.empty(0, dtype=torch.long, device=self.device)
        self.ltm_pos = torch.empty(0, dtype=torch.long)  # stream positions (reservoir bookkeeping)
        self.seen = 0
        self.batches = 0
        self.r_last: float | None = None
        self.optimizer = self._optimizer()
        self.history: list[dict] = []  # one row per arriving batch
        self.selections: list[dict] = []  # one row per selection round
        self.expansions: list[int] = []  # batch index at which a component was added
        self.steps = 0
        self.cuda_graph, self.autocast, self.tf32 = cuda_graph, autocast, tf32
        self._graphs: CudaGraphStep | None = None  # the memory passes' graphs, for the current optimiser
        self.graph_failure: str | None = None  # why capturing failed, after which the passes run eagerly

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    def _optimizer(self):
        return make_optimizer(self.model.trainable_parameters(), self.optim)

    # -- training ---------------------------------------------------------------------------------
    def memory_data(self) -> torch.Tensor:
        """What an arriving batch trains on: STM u LTM (a baseline may train on part of its memory)."""
        return torch.cat([self.stm_x, self.ltm_x])

    def _memory_batches(self, epochs: int, block: int = 1):
        """(0, minibatch) pairs of `epochs` passes over the memory. block > 1: the pass's first full minibatches
        come `block` at a time as one `StepBlock` (the same minibatches in the same order), the rest one by one."""
        data = self.memory_data()
        n, bs = data.shape[0], self.config.batch_size
        in_blocks = (n // bs) // block * block * bs if block > 1 else 0  # rows trained in whole blocks
        for _ in range(epochs):
            xb_all = binarize_dynamic(data, self.noise)
            order = torch.randperm(n, generator=self.generator).to(self.device, non_blocking=True)
            for s in range(0, in_blocks, block * bs):
                self.steps += block
                self.replayed_rows += block * bs
                yield 0, StepBlock(take_rows(xb_all, order[s:s + block * bs].view(block, bs)))
            for s in range(in_blocks, n, bs):
                self.steps += 1
                self.replayed_rows += min(bs, n - s)
                # one "epoch" for the loop: the mean loss over all passes is read once per arriving batch
                yield 0, take_rows(xb_all, order[s:s + bs])

    def train_memory(self, epochs: int | None = None) -> float:
        """`epochs` (default epochs_per_batch) passes over STM u LTM. The loss terms stay on the device and
        the NaN/Inf guard checks once per arriving batch: no host sync per step, so a GPU queues the whole
        schedule (the paper's 100 passes per batch) without stalling. On CUDA the steps replay CUDA graphs."""
        graphs = self.graph_step()
        batches = self._memory_batches(self.config.epochs_per_batch if epochs is None else epochs,
                                       block=GRAPH_BLOCK if graphs is not None else 1)
        dtype = AUTOCAST[self.autocast]
        with tf32_matmuls(self.tf32):
            history = fit_batches(batches, self.loss_fn(), self.optimizer, self.model, check_every=1 << 30,
                                  progress=False, stepper=graphs, step_options={"autocast": dtype} if dtype else None)
        if graphs is not None and graphs.failed:
            self.graph_failure, self._graphs = graphs.failed, None  # warned once; the run goes on eagerly
        return history[0]["loss"] if history else float("nan")

    def graphs_on(self) -> bool:
        """Whether the memory passes replay CUDA graphs (see the class's `cuda_graph`)."""
        return self.device.type == "cuda" and self.cuda_graph is not False and self.graph_failure is None

    def graph_step(self) -> CudaGraphStep | None:
        """The step the memory passes take on CUDA: graphs kept across rounds while the optimiser is the same. A
        new optimiser (an expansion, a reload) trains other tensors, so its graphs are captured afresh."""
        if not self.graphs_on():
            return None
        if self._graphs is None or self._graphs.optimizer is not self.optimizer:
            self._graphs = CudaGraphStep(self.loss_fn(), self.optimizer, autocast=AUTOCAST[self.autocast],
                                         buffers=list(self.model.buffers()), evict=True,
                                         generators=[] if self.noise is None else [self.noise])
        return self._graphs

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_graphs": None}  # a copy or a pickle captures its own graphs

    def loss_fn(self):
        return self.model.loss if self.noise is None else partial(self.model.loss, generator=self.noise)

    # -- memory -------------------------------------------------------------------------------------
    def _reservoir(self) -> dict:
        c, n_stm = self.config, self.stm_x.shape[0]
        slots, moves = reservoir_update(self.ltm_pos, self.seen - n_stm, n_stm, c.ltm_capacity, self.generator)
        for slot, i in moves:
            if slot >= self.ltm_x.shape[0]:
                self.ltm_x = torch.cat([self.ltm_x, self.stm_x[i:i + 1]])
                self.ltm_y = torch.cat([self.ltm_y, self.stm_y[i:i + 1]])
            else:
                self.ltm_x[slot] = self.stm_x[i]
                self.ltm_y[slot] = self.stm_y[i]
        self.ltm_pos = slots
        return {"scores_mean": float("nan"), "added": len(moves)}

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.embed(binarize_dynamic(x, self.noise) if self.config.embed_binarized else x)

    def choose(self) -> tuple[torch.Tensor, dict]:
        """The STM samples that pass the kernel rule against the current LTM, best first (caps not applied)."""
        c = self.config
        n_stm = self.stm_x.shape[0]
        info = {"scores_mean": float("nan")}
        if self.ltm_x.shape[0] == 0:
            # Nothing to compare with yet: the first round takes per_round STM samples at random.
            return torch.randperm(n_stm, generator=self.generator)[: c.per_round].to(self.device), info
        scores = kernel_scores(self._embed(self.stm_x), self._embed(self.ltm_x), c.kernel, c.alpha)
        chosen = select_indices(scores, c.lambda1, c.direction, n_stm, n_stm)
        info |= {"scores_mean": float(scores.mean()), "scores_min": float(scores.min()),
                 "scores_max": float(scores.max()), "passing": int(chosen.numel())}
        return chosen, info

    def admit(self, chosen: torch.Tensor) -> int:
        """Append the first min(per_round, room) of `chosen` (STM indices, best first) to the LTM."""
        c = self.config
        chosen = chosen[: max(0, min(c.per_round, c.ltm_capacity - self.ltm_x.shape[0]))]
        self.ltm_x = torch.cat([self.ltm_x, self.stm_x[chosen]])
        self.ltm_y = torch.cat([self.ltm_y, self.stm_y[chosen]])
        return int(chosen.numel())

    def select(self) -> dict:
        """Move STM samples into the LTM by the configured rule; returns what happened (STM not yet cleared)."""
        if self.config.memory == "reservoir":
            return self._reservoir()
        if self.ltm_x.shape[0] >= self.config.ltm_capacity:
            return {"scores_mean": float("nan"), "added": 0}
        chosen, info = self.choose()
        return info | {"added": self.admit(chosen)}

    def memory_loglik(self) -> float:
        """R: mean IWAE log-likelihood of STM u LTM, averaged over components."""
        data = binarize_dynamic(torch.cat([self.stm_x, self.ltm_x]), self.noise)
        return float(self.model.iwae_per_component(data, self.config.r_samples, generator=self.noise).mean())

    def maybe_expand(self, r: float) -> bool:
        """|R - R_last| > lambda2 (strictly) adds a component, freezes the rest and clears the LTM."""
        c = self.config
        grow = (self.r_last is not None and abs(r - self.r_last) > c.lambda2 and len(self.model) < c.max_components)
        self.r_last = None if (grow and c.r_reset_on_expand) else r
        if grow:
            self.model.add_component(self.generator if self.noise is not None else None)
            self.optimizer = self._optimizer()  # frozen parameters leave the optimiser
            self.ltm_x, self.ltm_y = self.ltm_x[:0], self.ltm_y[:0]
            self.ltm_pos = self.ltm_pos[:0]
            self.expansions.append(self.batches)
        return grow

    def _expansion_check(self, info: dict) -> None:
        if self.config.dynamic:
            info["R"] = self.memory_loglik()
            info["expanded"] = self.maybe_expand(info["R"])

    def selection_round(self) -> dict:
        """One round when the STM is full. order='paper' (Algorithm 2): select, then R and the expansion (which
        clears the LTM, this round's selections included). order='code': score against the current LTM, then R
        and the expansion, then admit this round's selections into the (possibly emptied) LTM."""
        c = self.config
        if c.order == "paper" or c.memory == "reservoir":
            info = self.select()
            self._expansion_check(info)
            return info
        full = self.ltm_x.shape[0] >= c.ltm_capacity
        chosen, info = (torch.empty(0, dtype=torch.long, device=self.device), {}) if full else self.choose()
        self._expansion_check(info)
        return info | {"added": self.admit(chosen)}

    def stm_full(self) -> bool:
        n = self.stm_x.shape[0]
        return n > self.config.stm_size if self.config.order == "code" else n >= self.config.stm_size

    def observe(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        self.arrive(x, y)
        return self.after_training(self.train_memory())

    def arrive(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """An arriving batch joins the STM (before this batch's training)."""
        y = torch.full((x.shape[0],), -1, dtype=torch.long, device=self.device) if y is None else y
        self.stm_x = torch.cat([self.stm_x, x.to(self.device)])
        self.stm_y = torch.cat([self.stm_y, y.to(self.device)])
        self.seen += x.shape[0]
        self.batches += 1

    def after_training(self, loss: float) -> dict:
        """After the batch's training on STM u LTM: the selection round if the STM is full; the history row."""
        row = {"batch": self.batches, "seen": self.seen, "loss": loss, "stm": int(self.stm_x.shape[0]),
               "components": len(self.model)}
        if self.stm_full():
            info = self.selection_round()
            self.stm_x, self.stm_y = self.stm_x[:0], self.stm_y[:0]
            info |= {"batch": self.batches, "ltm": int(self.ltm_x.shape[0]), "components": len(self.model),
                     "ltm_labels": self.ltm_y.cpu()}
            self.selections.append(info)
        row |= {"ltm": int(self.ltm_x.shape[0]), "components_after": len(self.model)}
        self.history.append(row)
        return row

    @property
    def memory_size(self) -> int:
        return int(self.ltm_x.shape[0])

    @property
    def memory_images(self) -> int:
        return self.memory_size + self.config.stm_size

    # -- as a density ---------------------------------------------------------------------------------
    def log_likelihood(self, x: torch.Tensor, k: int) -> torch.Tensor:
        per = self.model.iwae_per_component(x, k)
        return mixture_log_likelihood(per, torch.ones(len(self.model)))

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        counts = draw_counts(torch.ones(len(self.model)), n, seed)
        g = torch.Generator().manual_seed(seed)
        out = []
        for c, m in enumerate(counts):
            if m:
                z = torch.randn(1, m, self.config.latent_dim, generator=g).to(self.device)
                out.append(torch.sigmoid(self.model.decode_logits(z, ids=[c]))[0].view(m, *self.config.image_shape))
        return torch.cat(out)

    # -- saving ---------------------------------------------------------------------------------------
    _MEMORY = ("stm_x", "stm_y", "ltm_x", "ltm_y", "ltm_pos", "seen", "batches", "r_last", "history",
               "selections", "expansions", "steps")

    def state(self) -> dict:
        return super().state() | {k: getattr(self, k) for k in self._MEMORY} | {
            "generator": self.generator.get_state()} | ({} if self.noise is None else {"noise": self.noise.get_state()})

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for k in self._MEMORY:
            v = state[k]
            setattr(self, k, v.to(self.device) if isinstance(v, torch.Tensor) and k != "ltm_pos" else v)
        self.generator.set_state(state["generator"])
        if self.noise is not None:
            self.noise.set_state(state["noise"])

    def after_load(self) -> None:
        self.config = self.model.config
        self.optimizer = self._optimizer()  # Adam's moments are not saved: training resumes with a fresh optimiser

    # -- resuming mid-stream (the driver's checkpoints) ---------------------------------------------------
    def resume_state(self) -> dict:
        """Everything the rest of the stream depends on: the model (with its component count), Adam's moments and
        step counts, STM and LTM with labels and reservoir slots, the counters and logs, the learner's generator
        and the process-wide RNG states. A copy: training on does not change it. Draws no random numbers."""
        return {"model": pack(self.model), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "state": copy.deepcopy(self.state()), "rng": rng_state()}

    def load_resume_state(self, state: dict) -> None:
        """Continue from `resume_state()`'s state: the model is rebuilt (its components and their freezing as
        saved), the optimiser made over its trainable parameters as `maybe_expand` makes it and given the saved
        moments, and every random state set, so training goes on bit for bit as before (on the CPU)."""
        self.model = restore(type(self.model), state["model"], self.device)
        self.config = self.model.config
        self.set_state(copy.deepcopy(state["state"]))
        self.optimizer = self._optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
