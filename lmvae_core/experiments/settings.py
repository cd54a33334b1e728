"""A notebook's settings for one profile, as a typed, frozen dataclass.

Each experiments module declares its settings class (one field per setting, with its type; the comment beside a
field says what it is) and builds SETTINGS = {profile: instance}. Why not dicts: a misspelt override ("lamda1")
added a key no code read and the run went on with the old value; here it fails, naming the known settings. A
setting a profile does not use is None (or its field's default), not absent.

Reading: `s.epochs`, or `s["epochs"]`: a Settings is a read-only Mapping, so code that iterates settings (the
paper-shape check, cache keys, `dict(s)`) and the notebooks' cells read it as they read the dicts before it.
A changed copy: `s.replace(epochs=2)`, or `s | {"epochs": 2}`; both check the names.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Iterator, TypeVar

S = TypeVar("S", bound="Settings")


@dataclasses.dataclass(frozen=True, eq=False)
class Settings(Mapping):
    """Base class of the notebooks' settings; subclasses are `@dataclass(frozen=True, eq=False)` with typed fields.
    Equality is the Mapping's: the same names and values (also against a plain dict)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def __getitem__(self, key: str) -> Any:
        if key not in self.names():
            raise KeyError(f"{type(self).__name__} has no setting {key!r}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def replace(self: S, **changes: Any) -> S:
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting(s) {unknown}; known: {', '.join(self.names())}")
        return dataclasses.replace(self, **changes)

    def __or__(self: S, changes: Mapping) -> S:
        return self.replace(**dict(changes))

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (nested values as they are)."""
        return {name: getattr(self, name) for name in self.names()}


__all__ = ["Settings"]
