"""Save a model with its configuration, and rebuild it from the file alone."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models.base import MODEL_REGISTRY, build_model, register_model  # noqa: F401  (re-exported)


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
    try:
        model = build_model(payload["class"], payload["spec"])
    except KeyError as e:
        raise KeyError(f"checkpoint {path}: {e.args[0]}") from None
    model = model.to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model
