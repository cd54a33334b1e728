"""Typed settings (experiments/settings.py): named, checked, read as a mapping, hashed as the dict they replaced."""
import dataclasses
from dataclasses import dataclass

import pytest

from lmvae_core.experiments.common import paper_shape
from lmvae_core.experiments.registry import experiment_module, notebooks
from lmvae_core.experiments.settings import Settings
from lmvae_core.results.cache import config_key


@dataclass(frozen=True, eq=False)
class Toy(Settings):
    epochs: int
    seeds: tuple[int, ...]
    joint: dict
    budget: int | None = None


T = Toy(epochs=4, seeds=(0, 1), joint={"epochs": 4, "iwae_k": 5})


def test_reads_by_name_and_as_a_mapping():
    assert T.epochs == T["epochs"] == 4 and T.get("budget") is None and T.get("nothing", 7) == 7
    assert list(T) == ["epochs", "seeds", "joint", "budget"] and len(T) == 4
    assert dict(T) == T.as_dict() == {"epochs": 4, "seeds": (0, 1), "joint": {"epochs": 4, "iwae_k": 5}, "budget": None}
    with pytest.raises(KeyError, match="no setting 'epoch'"):
        T["epoch"]


def test_a_misspelt_setting_fails_and_a_change_is_a_typed_copy():
    with pytest.raises(TypeError, match=r"no setting\(s\) \['epoch'\]; known: epochs, seeds, joint, budget"):
        T.replace(epoch=2)
    with pytest.raises(TypeError, match="epoch"):
        T | {"epoch": 2}
    with pytest.raises(TypeError):
        Toy(epochs=1, seeds=(0,), joint={}, lamda1=0.5)  # construction checks the names too
    changed = T | {"epochs": 2}
    assert type(changed) is Toy and changed.epochs == 2 and T.epochs == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        T.epochs = 3


def test_equality_is_by_entries_also_against_a_dict():
    assert T == T.replace() and T == dict(T) and T != T | {"epochs": 5}


def test_paper_shape_keeps_the_type_and_checks_names():
    shaped = paper_shape(T, {"epochs": 1}, {"joint.iwae_k": (2, "why")})
    assert type(shaped) is Toy and shaped.epochs == 1 and shaped.joint == {"epochs": 4, "iwae_k": 2}
    assert T.joint["iwae_k"] == 5  # the paper's settings untouched
    with pytest.raises(KeyError, match="not paper settings"):
        paper_shape(T, {"epoch": 1})
    with pytest.raises(KeyError, match="'joint.k' is not a paper setting"):
        paper_shape(T, {}, {"joint.k": (2, "why")})


def test_a_cache_key_reads_settings_as_the_dict_they_replaced():
    assert config_key({"settings": T, "seed": 0}) == config_key({"settings": dict(T), "seed": 0})


def test_every_notebook_has_one_settings_class_for_every_profile():
    for nb in notebooks():
        settings = experiment_module(nb).SETTINGS
        kinds = {type(s) for s in settings.values()}
        assert len(kinds) == 1 and issubclass(kinds.pop(), Settings), nb  # paper-shape included
        assert {"smoke", "paper-shape", "quick", "paper"} <= set(settings), nb
