"""K VAE experts of one architecture, evaluated in one batched computation.

The experts' weights live permanently in stacked tensors with a leading expert axis: one stack
per parameter for the trainable experts (Parameters, what the optimiser steps) and one for the
frozen experts (Parameters with requires_grad=False, never handed to an optimiser). A forward pass
runs the shared expert code once under torch.func.vmap over a stack, so K small matrix products
become one batched product and nothing is re-stacked per step.

Each expert stays usable as an ordinary VAE (`mixture.experts[k].sample(...)`): its tensors are
re-pointed to row k of the stacks (they share storage), so an optimiser step on a stack is seen by
the expert at once, and an in-place change through the expert lands in the stack. The experts are
therefore not registered submodules: `mixture.parameters()` lists every weight once, as stacks.
Adding or freezing an expert rebuilds the stacks (rare); rebuild the optimiser afterwards.
The stacks of Linear weights are stored transposed, [K, in, out], the layout their gradients arrive in under
vmap (models/stacking.py: no copy of the gradient per step); the model reads them through a transposed view.
Checkpoints keep the per-expert layout (`experts.{k}.{name}`), independent of which are frozen.
"""
from __future__ import annotations

import copy
import weakref
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from . import fused_stack
from .base import MODEL_REGISTRY, register_model
from .stacking import as_stacks, linear_weights, stored
from .vae import VAE

GROUPS = ("trainable", "frozen")


def _slot(group: str, name: str, buffer: bool = False) -> str:
    """Attribute name of a stack: dots are not allowed in parameter names."""
    return f"{group}{'_buffer' if buffer else ''}__{name.replace('.', '__')}"


def _standalone_copy(expert: nn.Module) -> nn.Module:
    """A deep copy with storage of its own (not a view of any mixture's stacks)."""
    new = copy.deepcopy(expert)
    with torch.no_grad():
        for t in [*new.parameters(), *new.buffers()]:
            t.data = t.data.clone()
    new._mixture_owner = None
    return new


@register_model
class ExpertMixture(nn.Module):
    def __init__(self, make_expert: Callable[[], VAE] | None = None, n_experts: int = 1,
                 experts: Sequence[VAE] | None = None):
        """K experts made by make_expert(), or the given experts. A given expert that already belongs to
        another live mixture is copied (a module's tensors can be views of one mixture's stacks only)."""
        super().__init__()
        if experts is None:
            if make_expert is None or n_experts < 1:
                raise ValueError("give make_expert and n_experts >= 1, or a list of experts")
            experts = [make_expert() for _ in range(n_experts)]
        if len(experts) == 0:
            raise ValueError("a mixture needs at least one expert")
        first = experts[0]
        self._param_names = [n for n, _ in first.named_parameters()]
        self._buffer_names = [n for n, _ in first.named_buffers()]
        self._transposed = linear_weights(first)  # stored as [K, in, out] (models/stacking.py)
        self._experts: list[nn.Module] = []
        for e in experts:
            self._experts.append(self._adopt(e))
        self.register_buffer("frozen_mask", torch.zeros(len(self._experts), dtype=torch.bool))
        self._restack()

    def __len__(self) -> int:
        return len(self._experts)

    @property
    def experts(self) -> tuple[nn.Module, ...]:
        """The experts as ordinary modules (their tensors are views of the stacks)."""
        return tuple(self._experts)

    # -- the stacks ------------------------------------------------------------------------------
    def _adopt(self, expert: nn.Module) -> nn.Module:
        owner = getattr(expert, "_mixture_owner", None)
        if owner is not None and owner() is not None and owner() is not self:
            expert = _standalone_copy(expert)
        shapes = {n: p.shape for n, p in expert.named_parameters()}
        want = {n: self._experts[0].get_parameter(n).shape for n in self._param_names} if self._experts else shapes
        if list(shapes) != self._param_names or shapes != want:
            raise ValueError("every expert of a mixture must have the same architecture (parameter names and shapes); "
                             f"got {sorted(shapes.items())} against {sorted(want.items())}")
        return expert

    def _restack(self) -> None:
        """(Re)build the trainable and frozen stacks from the experts' current values."""
        for name in [n for n in self._parameters if n.split("__")[0] in GROUPS]:
            del self._parameters[name]
        for name in [n for n in self._buffers if n.split("__")[0] in ("trainable_buffer", "frozen_buffer")]:
            del self._buffers[name]
        mask = self.frozen_mask.tolist()
        self._ids = {"trainable": [k for k, f in enumerate(mask) if not f],
                     "frozen": [k for k, f in enumerate(mask) if f]}
        for group, ids in self._ids.items():
            if not ids:
                continue
            with torch.no_grad():
                for n in self._param_names:
                    data = torch.stack([self._experts[k].get_parameter(n).detach() for k in ids])
                    data = stored(data) if n in self._transposed else data
                    self.register_parameter(_slot(group, n), nn.Parameter(data, requires_grad=group == "trainable"))
                for n in self._buffer_names:
                    data = torch.stack([self._experts[k].get_buffer(n).detach() for k in ids])
                    self.register_buffer(_slot(group, n, True), data, persistent=False)
        self._link()

    def _link(self) -> None:
        """Point every expert's tensors at its rows of the stacks (after a restack, .to(), a copy)."""
        for group, ids in self._ids.items():
            stacks = as_stacks(self._kept(group), self._transposed) if ids else {}
            for i, k in enumerate(ids):
                e = self._experts[k]
                for n in self._param_names:
                    p = e.get_parameter(n)
                    p.data = stacks[n].data[i]
                    p.requires_grad_(group == "trainable")
                    p.grad = None
                for n in self._buffer_names:
                    e.get_buffer(n).data = self._buffers[_slot(group, n, True)][i]
                e._mixture_owner = weakref.ref(self)

    def _kept(self, group: str, attr: str | None = None) -> dict[str, torch.Tensor | None]:
        """The group's stored stacks by parameter name (attr='grad': their gradients), in the stored layout."""
        kept = {n: self._parameters[_slot(group, n)] for n in self._param_names}
        return kept if attr is None else {n: getattr(t, attr) for n, t in kept.items()}

    def _rows(self, group: str, stacks: dict, rows: list[int] | None) -> dict:
        """The stacks' rows `rows` (all of them: the stacks themselves)."""
        if rows is None or rows == list(range(len(self._ids[group]))):
            return stacks
        index = torch.as_tensor(rows, device=self.frozen_mask.device)
        return {n: t.index_select(0, index) for n, t in stacks.items()}

    def _stacks(self, group: str, rows: list[int] | None = None):
        """The group's stacks [K, ...] in the experts' own layout (a view for a Linear weight), and its buffers."""
        params = as_stacks(self._rows(group, self._kept(group), rows), self._transposed)
        buffers = self._rows(group, {n: self._buffers[_slot(group, n, True)] for n in self._buffer_names}, rows)
        return params, buffers

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        self._link()
        return self

    def __setstate__(self, state):  # deepcopy and pickling: re-establish the views into the stacks
        super().__setstate__(state)
        self._link()

    def train(self, mode: bool = True):
        super().train(mode)
        for e in self._experts:
            e.train(mode)
        return self

    # -- checkpoints: the per-expert layout --------------------------------------------------------
    def spec(self) -> dict:
        return {"experts": [{"class": type(e).__name__, "spec": e.spec()} for e in self._experts]}

    @classmethod
    def from_spec(cls, spec: dict) -> "ExpertMixture":
        return cls(experts=[MODEL_REGISTRY[e["class"]].from_spec(e["spec"]) for e in spec["experts"]])

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "frozen_mask"] = self.frozen_mask if keep_vars else self.frozen_mask.detach()
        for k, e in enumerate(self._experts):
            for key, value in e.state_dict(keep_vars=keep_vars).items():
                destination[f"{prefix}experts.{k}.{key}"] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "frozen_mask"
        if key not in state_dict:
            missing_keys.append(key)
        else:
            mask = state_dict[key].to(self.frozen_mask.device, torch.bool)
            if mask.shape != self.frozen_mask.shape:
                error_msgs.append(f"{key}: the checkpoint has {mask.numel()} experts, this mixture {len(self)}")
                return
            if not torch.equal(mask, self.frozen_mask):
                self.frozen_mask.copy_(mask)
                self._restack()
        expected = {key}
        for k, e in enumerate(self._experts):
            for name, t in e.state_dict(keep_vars=True).items():
                full = f"{prefix}experts.{k}.{name}"
                expected.add(full)
                if full not in state_dict:
                    missing_keys.append(full)
                elif state_dict[full].shape != t.shape:
                    error_msgs.append(f"size mismatch for {full}: {tuple(state_dict[full].shape)} in the checkpoint, "
                                      f"{tuple(t.shape)} here")
                else:
                    with torch.no_grad():
                        t.copy_(state_dict[full])  # writes through the view into the stack
        if strict:
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in expected)

    # -- growth and freezing ------------------------------------------------------------------
    def add_expert(self, expert: VAE | None = None, copy_from: int | None = None) -> int:
        """Append an expert (a fresh one like the first, a given one, or a copy of expert `copy_from`).
        The stacks are rebuilt: rebuild the optimiser afterwards."""
        if expert is None:
            expert = _standalone_copy(self._experts[copy_from if copy_from is not None else 0])
            if copy_from is None:
                for m in expert.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        expert = self._adopt(expert).to(self.frozen_mask.device)
        self._experts.append(expert)
        self.frozen_mask = torch.cat([self.frozen_mask, self.frozen_mask.new_zeros(1)])
        self._restack()
        return len(self._experts) - 1

    def freeze(self, k: int) -> None:
        """Move expert k to the frozen stack. Rebuild the optimiser afterwards (see
        `trainable_parameters`): the old one holds the previous trainable stacks."""
        self.frozen_mask[k] = True
        self._restack()

    def is_frozen(self, k: int) -> bool:
        return bool(self.frozen_mask[k])

    @property
    def trainable(self) -> list[int]:
        return list(self._ids["trainable"])

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def expert_grads(self, k: int) -> dict[str, torch.Tensor | None]:
        """Expert k's gradients: its rows of the stacks' .grad (None for a frozen expert or before backward)."""
        group, i = self._where(k)
        grads = as_stacks(self._kept(group, "grad"), self._transposed)
        return {n: None if g is None else g[i] for n, g in grads.items()}

    # -- evaluation -------------------------------------------------------------------------------
    def _where(self, k: int) -> tuple[str, int]:
        for group, ids in self._ids.items():
            if k in ids:
                return group, ids.index(k)
        raise IndexError(f"expert {k} out of range for a mixture of {len(self)}")

    def _call_one(self, k: int, x: torch.Tensor, op: str, kwargs: dict):
        """Expert k's method `op` with its rows of the stacks, so that gradients reach the stacks."""
        group, i = self._where(k)
        params, buffers = self._stacks(group)
        state = ({n: t[i] for n, t in params.items()}, {n: t[i] for n, t in buffers.items()})
        return functional_call(self._experts[k], state, (x,), {"op": op, **kwargs})

    def all_experts(self, x: torch.Tensor, op: str = "terms", ids: Sequence[int] | None = None,
                    batched: bool = True, **kwargs):
        """Run method `op` of every expert (or of `ids`) on the same inputs: outputs stacked as [K, ...].

        batched=False runs the plain Python loop over experts (the reference the batched path is
        tested against). The batched path runs one vmap per stack that holds a requested expert; for the
        training terms of MLP VAEs on the CPU, one `fused_stack.terms` per stack instead (the same
        values with a hand-written backward; models/fused_stack.py), also for a single expert."""
        ids = list(range(len(self))) if ids is None else [int(k) for k in ids]
        def fused(k: int) -> bool:  # expert k's stack, like the vmap below, runs with expert k as the template
            return batched and op == "terms" and not kwargs and fused_stack.applies(self._experts[k], x)

        if not batched or (len(ids) == 1 and not fused(ids[0])):
            return _stack_outputs([self._call_one(k, x, op, kwargs) for k in ids])
        parts, order = [], []
        for group in GROUPS:
            members = self._ids[group]
            mine = [k for k in ids if k in members]
            if not mine:
                continue
            rows = [members.index(k) for k in mine]
            template = self._experts[mine[0]]
            if fused(mine[0]):  # the same terms with a hand-written backward (CPU speed; models/fused_stack.py)
                parts.append(fused_stack.terms(template, self._rows(group, self._kept(group), rows), x))
                order += mine
                continue
            params, buffers = self._stacks(group, rows)

            def one(p, b, inp):
                return functional_call(template, (p, b), (inp,), {"op": op, **kwargs})

            parts.append(vmap(one, in_dims=(0, 0, None), randomness="different")(params, buffers, x))
            order += mine
        out = parts[0] if len(parts) == 1 else _map_outputs(lambda *t: torch.cat(t), *parts)
        if order != ids:
            index = torch.as_tensor([order.index(k) for k in ids], device=x.device)
            out = _map_outputs(lambda t: t.index_select(0, index), out)
        return out

    def select(self, x: torch.Tensor, criterion: str = "recon", batched: bool = True) -> torch.Tensor:
        """The expert chosen for each input: lowest reconstruction error ('recon') or highest ELBO ('elbo')."""
        with torch.no_grad():
            if criterion == "recon":
                score = -self.all_experts(x, op="reconstruction_error", batched=batched)
            elif criterion == "elbo":
                score = self.all_experts(x, op="terms", batched=batched)["elbo"]
            else:
                raise ValueError(f"criterion must be 'recon' or 'elbo', got {criterion!r}")
        return score.argmax(0)

    def per_input(self, x: torch.Tensor, choice: torch.Tensor, op: str = "reconstruct", **kwargs):
        """Run only the chosen expert for each input (one call per expert that was chosen at all).
        Outputs (a tensor or a dict of tensors) keep the input order along their first axis."""
        out = None
        for k in choice.unique().tolist():
            rows = (choice == k).nonzero().squeeze(1)
            y = self._call_one(k, x[rows], op, kwargs)
            parts = y if isinstance(y, dict) else {"": y}
            if out is None:
                out = {name: v.new_empty((x.shape[0], *v.shape[1:])) for name, v in parts.items()}
            for name, v in parts.items():
                out[name][rows] = v
        return out if isinstance(y, dict) else out[""]


def _map_outputs(fn, *outs):
    """Apply fn leaf-wise to outputs that are tensors, dicts of tensors or tuples of tensors."""
    if isinstance(outs[0], dict):
        return {k: fn(*(o[k] for o in outs)) for k in outs[0]}
    if isinstance(outs[0], tuple):
        return tuple(fn(*parts) for parts in zip(*outs))
    return fn(*outs)


def _stack_outputs(outs):
    return _map_outputs(lambda *t: torch.stack(t), *outs)
