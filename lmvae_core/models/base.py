"""The interface every model shares, and the registry that rebuilds a model from a checkpoint.

A model is an `nn.Module` that describes itself with `spec()`, a JSON-able dict, and is rebuilt
from it with `cls.from_spec(spec)`; `register_model` records the class under its name, so that
`training.load_checkpoint` can rebuild any saved model from the file alone. The registry lives
here, with the models, so that no model imports the training package.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

MODEL_REGISTRY: dict[str, type] = {}


@runtime_checkable
class SpecModel(Protocol):
    """What `save_checkpoint` / `load_checkpoint` need from a model."""

    def spec(self) -> dict: ...

    @classmethod
    def from_spec(cls, spec: dict) -> "SpecModel": ...

    def state_dict(self, *args, **kwargs) -> dict: ...

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False): ...


def register_model(cls):
    """Class decorator: the class can be rebuilt by `load_checkpoint` from its `spec()`."""
    for method in ("spec", "from_spec"):
        if not callable(getattr(cls, method, None)):
            raise TypeError(f"{cls.__name__} cannot be registered: it has no {method}()")
    MODEL_REGISTRY[cls.__name__] = cls
    return cls


def build_model(name: str, spec: dict) -> nn.Module:
    """A registered model of class `name`, rebuilt from its spec (weights not loaded)."""
    if name not in MODEL_REGISTRY:
        raise KeyError(f"{name} is not a registered model (known: {', '.join(sorted(MODEL_REGISTRY))}); "
                       "import its module first")
    return MODEL_REGISTRY[name].from_spec(spec)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for a model without tensors)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


__all__ = ["MODEL_REGISTRY", "SpecModel", "build_model", "model_device", "register_model"]
