"""The seeds of an OCM method as one computation: S learners, each with its own memory and selection, whose
memory training (the paper's 100 passes over STM u LTM after every arriving batch) runs as one stacked step.

Why: at the paper's schedule OCM's memory training is most of the paper profile's cost, and its step is small
(784-200-200-50, minibatches of 64): on a GPU it is bound by kernel launches, so S seeds stacked along a leading
axis cost about what one does. The memory, the kernel selection, R and the expansion stay per learner (a
handful of operations per arriving batch): only the passes are stacked.

How a stacked round matches S separate runs:
- each member is an `OCMLearner(own_noise=True)`: its binarisations, reparameterisation noise and a new
  component's weights come from its own generators, so the order in which the stack draws for its members
  changes nothing;
- the members' weights (the shared first layers and the newest component: what the loss reads) are stacked,
  the loss is `models.ocm.member_log_weights` with the member axis in place of the component axis, and the
  members' losses are summed, so each member's gradient is its own;
- memories differ in size (the kernel rule admits a different number per round), so a pass runs as many steps
  as the largest memory needs: a member's short last minibatch is padded and masked (its loss is the mean over
  its own rows), and a member whose pass has ended sits the step out (no Adam update, no step count);
- Adam is torch's fused kernel called on each active member's slices of the stacks, with that member's own step
  counts and moments: the very update its own optimiser would make;
- before the passes the members' weights and Adam state are gathered into the stacks, after them written back,
  so everything else (selection, R, expansion, saving, resuming) is the learners' own code.

Members stack only where their shapes agree: the same component count (hence the same frozen layers). A member
alone in its shape trains through its own loop. The stacked values equal the separate runs' up to float rounding (a
batched product sums in another order): tests/test_ocm_stacked.py holds them within 1e-5.

On CUDA the stacked passes replay CUDA graphs, as a single learner's do (training/graphs.py): the steps in which
every member has a full minibatch run 8 at a time as one replay of a captured stacked step (forward, backward and
the per-member Adam); the padded steps at the end of a pass, where members' memories differ, run eagerly. The graphs
register the members' noise generators, so a replay advances each as the eager step would, and they are kept across
rounds while the stack's members keep their optimisers: the stacks are gathered into in place, so the captured
addresses stay valid. On the CPU the graphable path runs eagerly and is tested to train bitwise as the plain stacked
path (tests/test_ocm_stacked.py); the CUDA test holds the graphed stack to the eager one.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from contextlib import contextmanager
from typing import Sequence

import torch

from ..data.preprocess import binarize_dynamic
from ..data.streams import TaskFreeStream, take_rows
from ..models.ocm import OCM, OCMConfig, member_log_weights, training_bound
from ..training.graphs import CudaGraphStep, StepBlock
from ..training.loop import AUTOCAST, tf32_matmuls
from ..training.step import NonFiniteLossError
from .driver import Checkpointing
from .ocm import GRAPH_BLOCK, OCMLearner


# What members of one stack share: the step's shape and optimiser (OCMConfig fields). Everything else (the selection
# rule and its thresholds, the memory's sizes, expansion, the seed) may differ from member to member.
STEP_SHAPE = ("batch_size", "train_samples", "objective", "epochs_per_batch", "input_dim", "hidden", "latent_dim", "lr",
              "beta1")


@contextmanager
def _seeded(seed: int):
    """The process's random numbers seeded for one member's construction, and restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def own_noise_learners(config: OCMConfig, seeds: Sequence[int], device: torch.device | str = "cpu",
                       cuda_graph: bool | str = "auto") -> list[OCMLearner]:
    """One `OCMLearner(own_noise=True)` per seed, each initialised from torch.manual_seed(seed): the members of a
    `StackedOCM`, and (built again) the separate runs it is tested against."""
    learners = []
    for seed in seeds:
        with _seeded(seed):
            learners.append(OCMLearner(OCM(config), seed=seed, device=device, own_noise=True, cuda_graph=cuda_graph))
    return learners


class StackedOCM:
    """S OCM learners that observe their streams in lockstep; `observe` takes one arriving batch per member.
    cuda_graph: 'auto' replays the stacked passes as CUDA graphs on a CUDA device, False keeps them eager (True is
    'auto': there is nothing to insist on off CUDA)."""

    def __init__(self, members: Sequence[OCMLearner], cuda_graph: bool | str = "auto"):
        if cuda_graph not in (True, False, "auto"):
            raise ValueError(f"cuda_graph must be 'auto', True or False, got {cuda_graph!r}")
        if not members:
            raise ValueError("StackedOCM needs at least one learner")
        if any(m.noise is None for m in members):
            raise ValueError("stacked learners must draw their own noise: build them with OCMLearner(own_noise=True) "
                             "(or own_noise_learners)")
        if len({m.device for m in members}) > 1:
            raise ValueError("stacked learners must live on one device")
        self.members = list(members)
        self.device = members[0].device
        self.cuda_graph = cuda_graph
        self.graph_failure: str | None = None  # why a capture failed, after which the stacks train eagerly
        self._passes: dict[tuple, _StackedPasses] = {}  # kept across rounds, by (member, its optimiser) of a stack

    @classmethod
    def from_config(cls, config: OCMConfig, seeds: Sequence[int], device: torch.device | str = "cpu",
                    cuda_graph: bool | str = "auto") -> "StackedOCM":
        """cuda_graph: for the stack and for its members (a member alone in its shape trains through its own loop)."""
        return cls(own_noise_learners(config, seeds, device, cuda_graph), cuda_graph)

    def graphs_on(self) -> bool:
        """Whether the stacked passes replay CUDA graphs."""
        return self.device.type == "cuda" and self.cuda_graph is not False and self.graph_failure is None

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_passes": {}}  # a copy or a pickle captures its own graphs

    def __len__(self) -> int:
        return len(self.members)

    def observe(self, batches: Sequence[torch.Tensor], labels: Sequence[torch.Tensor | None] | None = None
                ) -> list[dict]:
        """Each member's `OCMLearner.observe` on its own batch, with the training passes stacked."""
        if len(batches) != len(self.members):
            raise ValueError(f"one batch per member: got {len(batches)} for {len(self.members)} learners")
        labels = [None] * len(batches) if labels is None else labels
        for m, x, y in zip(self.members, batches, labels):
            m.arrive(x, y)
        losses = self.train_memory()
        return [m.after_training(loss) for m, loss in zip(self.members, losses)]

    def shape_groups(self) -> list[list[int]]:
        """Member indices grouped by what the stacked step needs to agree: the component count."""
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(self.members):
            groups.setdefault(len(m.model), []).append(i)
        return list(groups.values())

    def train_memory(self) -> list[float]:
        """Every member's passes over its STM u LTM; returns each member's mean loss over its steps."""
        losses = [float("nan")] * len(self.members)
        kept = {}
        for group in self.shape_groups():
            members = [self.members[i] for i in group]
            if len(members) == 1:
                values = [members[0].train_memory()]
            else:
                # a stack's tensors (and its graphs) live while its members keep their optimisers: an expansion
                # gives the expanding member a new optimiser, over other parameters, hence a new stack
                key = tuple((i, self.members[i].optimizer) for i in group)
                passes = self._passes.get(key) or _StackedPasses(members, graphs=self.graphs_on())
                kept[key] = passes
                values = passes.run()
                if passes.stepper is not None and passes.stepper.failed:
                    self.graph_failure = passes.stepper.failed  # warned once; the stacks go on eagerly
                    kept.pop(key)
            for i, v in zip(group, values):
                losses[i] = v
        self._passes = kept
        return losses


class _StackedAdam(torch.optim.Optimizer):
    """The stacks' Adam as a torch optimiser (what `CudaGraphStep` snapshots, restores and steps): its state per
    stacked parameter is the stacked moments and the members' step counts ([S]), and `step()` is the stack's Adam
    with every member active (the graphed steps are those where every member has a full minibatch)."""

    def __init__(self, passes: "_StackedPasses"):
        group = passes.members[0].optimizer.param_groups[0]
        super().__init__([passes.stack[n] for n in passes.trains],
                         {"lr": group["lr"], "betas": group["betas"], "eps": group["eps"]})
        self.passes = passes
        for i, n in enumerate(passes.trains):
            self.state[passes.stack[n]] = {"exp_avg": passes.exp_avg[i], "exp_avg_sq": passes.exp_avg_sq[i],
                                           "step": passes.steps[i]}

    @torch.no_grad()
    def step(self, closure=None):
        self.passes.adam(range(len(self.passes.members)))


class _StackedPasses:
    """The stacked memory training of members of one shape: stacks of their weights and Adam state, gathered into in
    place before each round's passes and written back after, so a graph captured on them replays in later rounds."""

    def __init__(self, members: list[OCMLearner], graphs: bool = False):
        self.members = members
        self.config = members[0].config
        differ = [f for f in STEP_SHAPE if len({getattr(m.config, f) for m in members}) > 1]
        differ += [f for f in ("autocast", "tf32") if len({getattr(m, f) for m in members}) > 1]
        if differ:
            raise ValueError(f"stacked learners must share the step's shape and optimiser; they differ in {differ}")
        self.autocast, self.tf32 = AUTOCAST[members[0].autocast], members[0].tf32
        self.params = [m.model.newest_parameters() for m in members]
        self.names = list(self.params[0])
        self.trains = [n for n in self.names if self.params[0][n].requires_grad]
        with torch.no_grad():
            self.stack = {n: torch.stack([p[n] for p in self.params]).requires_grad_(n in self.trains)
                          for n in self.names}
        # Adam's state per trainable stack: moments [S, ...] and the members' step counts [S] (float32 on the
        # device, as torch's fused Adam keeps them)
        self.exp_avg = [torch.zeros_like(self.stack[n]) for n in self.trains]
        self.exp_avg_sq = [torch.zeros_like(self.stack[n]) for n in self.trains]
        self.steps = [torch.zeros(len(members), device=self.stack[n].device) for n in self.trains]
        self.stepper = None
        if graphs:
            self.stepper = CudaGraphStep(self.loss, _StackedAdam(self), autocast=self.autocast, evict=True,
                                         generators=[m.noise for m in members])

    # -- gathering and writing back -------------------------------------------------------------------------------
    @torch.no_grad()
    def _gather(self) -> None:
        """The members' current weights and Adam state into the stacks, in place (a member's fresh optimiser has no
        state yet: zero moments at step 0)."""
        for n in self.names:
            torch.stack([p[n] for p in self.params], out=self.stack[n])
        for i, n in enumerate(self.trains):
            states = [m.optimizer.state.get(p[n], {}) for m, p in zip(self.members, self.params)]
            for stacked, key in ((self.exp_avg[i], "exp_avg"), (self.exp_avg_sq[i], "exp_avg_sq"),
                                 (self.steps[i], "step")):
                if all(key in s for s in states):
                    torch.stack([s[key] for s in states], out=stacked)
                else:  # some member's optimiser is fresh
                    zero = torch.zeros_like(stacked[0])
                    torch.stack([s.get(key, zero) for s in states], out=stacked)

    @torch.no_grad()
    def _write_back(self) -> None:
        for s, (m, p) in enumerate(zip(self.members, self.params)):
            for i, n in enumerate(self.trains):
                p[n].copy_(self.stack[n][s])
                state = m.optimizer.state[p[n]]
                state["step"] = self.steps[i][s].clone()
                state["exp_avg"] = self.exp_avg[i][s].clone()
                state["exp_avg_sq"] = self.exp_avg_sq[i][s].clone()

    @torch.no_grad()
    def adam(self, active) -> None:
        """torch's fused Adam on each active member's slices of the stacks, with that member's own step count and
        moments: the very update its own optimiser would make."""
        group = self.members[0].optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        lists = [[], [], [], [], []]
        for i, n in enumerate(self.trains):
            grad = self.stack[n].grad
            for s in active:
                for target, t in zip(lists, (self.stack[n][s], grad[s].contiguous(), self.exp_avg[i][s],
                                             self.exp_avg_sq[i][s], self.steps[i][s])):
                    target.append(t)
        params, grads, exp_avgs, exp_avg_sqs, steps = lists
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"], beta1=beta1, beta2=beta2,
                           weight_decay=0.0, eps=group["eps"], amsgrad=False, maximize=False)

    # -- the passes ---------------------------------------------------------------------------------------------------
    def run(self) -> list[float]:
        with tf32_matmuls(self.tf32):
            return self._passes()

    def _passes(self) -> list[float]:
        c, members, device = self.config, self.members, self.members[0].device
        self._gather()
        data = [m.memory_data().flatten(1) for m in members]
        sizes = [d.shape[0] for d in data]
        bs = c.batch_size
        full = min(sizes) // bs  # steps of a pass in which every member has a full minibatch
        in_blocks = full // GRAPH_BLOCK * GRAPH_BLOCK if self.stepper is not None else 0
        loss_sums = torch.zeros(len(members), device=device)
        steps = [0] * len(members)
        for _ in range(c.epochs_per_batch):
            # per member, as its own loop draws them: the pass's binarisation, then its batch order
            binary, orders = [], []
            for m, d, n in zip(members, data, sizes):
                binary.append(binarize_dynamic(d, m.noise))
                orders.append(torch.randperm(n, generator=m.generator).to(device, non_blocking=True))
            for start in range(0, in_blocks * bs, GRAPH_BLOCK * bs):
                block = torch.stack([take_rows(b, o[start:start + GRAPH_BLOCK * bs].view(GRAPH_BLOCK, bs))
                                     for b, o in zip(binary, orders)], dim=1)  # [steps, S, B, D]
                _, terms = self.stepper(StepBlock(block))
                loss_sums += terms["member_loss"].sum(0)
                self._count(steps, range(len(members)), sizes, start, GRAPH_BLOCK)
            for start in range(in_blocks * bs, max(sizes), bs):
                active = [s for s, n in enumerate(sizes) if start < n]
                if self.stepper is not None and start + bs <= min(sizes):  # a full step outside a block
                    x = torch.stack([take_rows(b, o[start:start + bs]) for b, o in zip(binary, orders)])
                    loss = self.stepper(x)[1]["member_loss"]
                else:
                    loss = self._step(binary, orders, sizes, start, active)
                loss_sums += loss.detach()
                self._count(steps, active, sizes, start, 1)
        self._write_back()
        means = (loss_sums.cpu() / torch.tensor([max(n, 1) for n in steps])).tolist()
        for m, v in zip(members, means):
            if not math.isfinite(v):
                raise NonFiniteLossError(f"stacked OCM training (seed {m.seed}): mean loss {v} over an arriving "
                                         f"batch's passes")
        return [v if n else float("nan") for v, n in zip(means, steps)]

    def _count(self, steps: list[int], active, sizes: list[int], start: int, n_steps: int) -> None:
        bs = self.config.batch_size
        for s in active:
            rows = sum(max(0, min(bs, sizes[s] - start - j * bs)) for j in range(n_steps))
            steps[s] += n_steps
            self.members[s].steps += n_steps
            self.members[s].replayed_rows += rows

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The step every member takes with a full minibatch (x [S, B, D]): what the graphs capture. The summed
        loss, whose gradient is each member's own, and each member's loss."""
        c = self.config
        eps = torch.stack([torch.randn(1, c.train_samples, x.shape[1], c.latent_dim, device=x.device,
                                       generator=m.noise)[0] for m in self.members])
        per_member = -training_bound(member_log_weights(self.stack, x, eps).transpose(0, 1), c.objective).mean(1)
        return per_member.sum(), {"member_loss": per_member}

    def _step(self, binary, orders, sizes, start, active) -> torch.Tensor:
        """One stacked minibatch step, run eagerly; returns each member's loss (0 for a member sitting it out)."""
        c, device = self.config, self.members[0].device
        bs, k, latent = c.batch_size, c.train_samples, c.latent_dim
        counts = [max(0, min(bs, n - start)) for n in sizes]
        width = max(counts)
        if all(b == width for b in counts):
            x = torch.stack([take_rows(binary[s], orders[s][start:start + width]) for s in range(len(sizes))])
            with torch.autocast(device.type, self.autocast, enabled=self.autocast is not None):
                loss, terms = self.loss(x)
            loss = terms["member_loss"].float()
        else:
            x = torch.zeros(len(sizes), width, binary[0].shape[1], device=device)
            eps = torch.zeros(len(sizes), k, width, latent, device=device)
            mask = torch.zeros(len(sizes), width, device=device)
            for s in active:
                b = counts[s]
                x[s, :b] = take_rows(binary[s], orders[s][start:start + b])
                # the same call as the member's own loss makes, so its generator gives the same numbers
                eps[s, :, :b] = torch.randn(1, k, b, latent, device=device, generator=self.members[s].noise)[0]
                mask[s, :b] = 1.0
            with torch.autocast(device.type, self.autocast, enabled=self.autocast is not None):
                bound = training_bound(member_log_weights(self.stack, x, eps).transpose(0, 1), c.objective)  # [S, B]
                loss = (-(bound * mask).sum(1) / mask.sum(1).clamp(min=1.0)).float()
        for n in self.trains:
            self.stack[n].grad = None
        loss.sum().backward()
        self.adam(active)
        return loss


def run_stacked_streams(stacked: StackedOCM, streams: Sequence[TaskFreeStream],
                        checkpoint: Checkpointing | None = None) -> float:
    """Each member observes its own task-free stream, one arriving batch per member per round, in lockstep (the
    streams of a method's seeds: the same images in each seed's order, so the same number of batches); returns the
    stack's training seconds. `checkpoint`, as the driver's (continual/driver.py): at least every `every_s` seconds
    every member's `resume_state()` and the round are saved atomically; a run that finds a checkpoint of the same
    learners and streams continues from the next round, bit-identical to an uninterrupted run on the CPU."""
    if len(streams) != len(stacked):
        raise ValueError(f"one stream per member: got {len(streams)} for {len(stacked)} learners")
    if len({len(st) for st in streams}) > 1:
        raise ValueError(f"lockstep needs streams of equal length, got {[len(st) for st in streams]} batches")
    done, seconds, rounds = 0, 0.0, len(streams[0])
    if checkpoint is not None:
        h = hashlib.sha1("|".join(f"{type(m).__name__}:{st.batch_size}:{len(st.order)}"
                                  for m, st in zip(stacked.members, streams)).encode())
        for st in streams:
            h.update(st.order.cpu().numpy().tobytes())
        sid, saved, since = h.hexdigest(), checkpoint.load(), time.monotonic()
        if saved is not None and saved.get("stream") != sid:
            warnings.warn(f"checkpoint {checkpoint.file} belongs to other streams or learners; starting over",
                          RuntimeWarning, stacklevel=2)
            saved = None
        if saved is not None:
            for m, state in zip(stacked.members, saved["members"]):
                m.load_resume_state(state)
            done, seconds = saved["rounds"], saved["seconds"]
        wrote = saved is not None

        def save() -> None:
            checkpoint.save({"stream": sid, "members": [m.resume_state() for m in stacked.members],
                             "rounds": done, "seconds": seconds})
    for batches in zip(*(st.batches_from(done) for st in streams)):
        t0 = time.time()
        stacked.observe([x for x, _ in batches], [y for _, y in batches])
        seconds += time.time() - t0
        done += 1
        if checkpoint is not None and done < rounds and checkpoint.due(done, since):
            save()
            wrote, since = True, time.monotonic()
    if checkpoint is not None and wrote:
        save()  # the whole stream: a kill before the caller keeps the results does not train it again
    return seconds


__all__ = ["STEP_SHAPE", "StackedOCM", "own_noise_learners", "run_stacked_streams"]
