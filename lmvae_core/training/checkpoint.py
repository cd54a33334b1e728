"""Save a model with its configuration, and rebuild it from the file alone."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

MODEL_REGISTRY: dict[str, type] = {}


def register_model(cls):
    """Class decorator: the class can be rebuilt by `load_checkpoint` from its `spec()`."""
    MODEL_REGISTRY[cls.__name__] = cls
    return cls


def save_checkpoint(model: nn.Module, path: str | Path, **extra) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"class": type(model).__name__, "spec": model.spec(), "state_dict": model.state_dict(), "extra": extra}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    payload = torch.load(Path(path), map_location=device, weights_only=False)
    name = payload["class"]
    if name not in MODEL_REGISTRY:
        raise KeyError(f"checkpoint {path} holds a {name}, which is not a registered model "
                       f"(known: {', '.join(sorted(MODEL_REGISTRY))}); import its module first")
    model = MODEL_REGISTRY[name].from_spec(payload["spec"]).to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model
