"""The constructor and spec every config-described model shares."""
from __future__ import annotations

from dataclasses import asdict

from torch import nn


class Configured(nn.Module):
    """A model described by one config dataclass: built as `Model(config)` or `Model(**config_fields)`, its
    layers made by `build(config)`. `spec()` is the config, from which `from_spec` rebuilds the model (models
    with more structure than their config, such as grown experts, extend both)."""
    config_class: type

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.config = config if config is not None else self.config_class(**kwargs)
        self.build(self.config)

    def build(self, config) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define build(config)")

    def spec(self) -> dict:
        return {"config": asdict(self.config)}

    @classmethod
    def from_spec(cls, spec: dict):
        return cls(cls.config_class(**spec["config"]))
