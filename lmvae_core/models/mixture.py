"""K VAE experts evaluated in one batched computation.

The experts are ordinary modules of one architecture. For a forward pass their parameters are
stacked along a new leading axis and the shared forward runs once under torch.func.vmap, which
turns K small matrix products into one batched product instead of a Python loop over experts.
Gradients flow back through the stack to each expert's own tensors, so an expert can be frozen
(requires_grad=False, and left out of the optimiser) or added without touching the others.
"""
from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from .base import MODEL_REGISTRY, register_model
from .vae import VAE


@register_model
class ExpertMixture(nn.Module):
    def __init__(self, make_expert: Callable[[], VAE] | None = None, n_experts: int = 1,
                 experts: Sequence[VAE] | None = None):
        super().__init__()
        if experts is None:
            if make_expert is None or n_experts < 1:
                raise ValueError("give make_expert and n_experts >= 1, or a list of experts")
            experts = [make_expert() for _ in range(n_experts)]
        self.experts = nn.ModuleList(experts)
        self.register_buffer("frozen_mask", torch.zeros(len(self.experts), dtype=torch.bool))

    def __len__(self) -> int:
        return len(self.experts)

    def spec(self) -> dict:
        return {"experts": [{"class": type(e).__name__, "spec": e.spec()} for e in self.experts]}

    @classmethod
    def from_spec(cls, spec: dict) -> "ExpertMixture":
        return cls(experts=[MODEL_REGISTRY[e["class"]].from_spec(e["spec"]) for e in spec["experts"]])

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        for k in range(len(self)):
            for p in self.experts[k].parameters():
                p.requires_grad_(not bool(self.frozen_mask[k]))
        return result

    # -- growth and freezing ------------------------------------------------------------------
    def add_expert(self, expert: VAE | None = None, copy_from: int | None = None) -> int:
        """Append an expert (a fresh one like the first, a given one, or a copy of expert `copy_from`)."""
        if expert is None:
            template = self.experts[copy_from if copy_from is not None else 0]
            expert = copy.deepcopy(template)
            if copy_from is None:
                for m in expert.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        device = next(self.experts[0].parameters()).device
        expert = expert.to(device)
        for p in expert.parameters():
            p.requires_grad_(True)
        self.experts.append(expert)
        self.frozen_mask = torch.cat([self.frozen_mask, self.frozen_mask.new_zeros(1)])
        return len(self.experts) - 1

    def freeze(self, k: int) -> None:
        """Freeze expert k. Rebuild the optimiser afterwards (see `trainable_parameters`): Adam would
        otherwise keep moving a parameter through its moment estimates after its gradient stops."""
        for p in self.experts[k].parameters():
            p.requires_grad_(False)
        self.frozen_mask[k] = True

    def is_frozen(self, k: int) -> bool:
        return bool(self.frozen_mask[k])

    @property
    def trainable(self) -> list[int]:
        return [k for k in range(len(self)) if not self.frozen_mask[k]]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- batched evaluation ---------------------------------------------------------------------
    def _stacked_state(self, ids: Sequence[int]):
        named = [dict(self.experts[k].named_parameters()) for k in ids]
        named_buffers = [dict(self.experts[k].named_buffers()) for k in ids]
        params = {n: torch.stack([p[n] for p in named]) for n in named[0]}
        buffers = {n: torch.stack([b[n] for b in named_buffers]) for n in named_buffers[0]}
        return params, buffers

    def all_experts(self, x: torch.Tensor, op: str = "terms", ids: Sequence[int] | None = None,
                    batched: bool = True, **kwargs):
        """Run method `op` of every expert (or of `ids`) on the same inputs: outputs stacked as [K, ...].

        batched=False runs the plain Python loop over experts (the reference the batched path is
        tested and benchmarked against)."""
        ids = list(range(len(self))) if ids is None else list(ids)
        if not batched or len(ids) == 1:
            outs = [self.experts[k](x, op=op, **kwargs) for k in ids]
            return _stack_outputs(outs)
        params, buffers = self._stacked_state(ids)
        template = self.experts[ids[0]]

        def one(p, b, inp):
            return functional_call(template, (p, b), (inp,), {"op": op, **kwargs})

        return vmap(one, in_dims=(0, 0, None), randomness="different")(params, buffers, x)

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
            y = self.experts[k](x[rows], op=op, **kwargs)
            parts = y if isinstance(y, dict) else {"": y}
            if out is None:
                out = {name: v.new_empty((x.shape[0], *v.shape[1:])) for name, v in parts.items()}
            for name, v in parts.items():
                out[name][rows] = v
        return out if isinstance(y, dict) else out[""]

def _stack_outputs(outs):
    if isinstance(outs[0], dict):
        return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*outs))
    return torch.stack(outs)
