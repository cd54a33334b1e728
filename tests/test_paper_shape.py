"""The paper-shape profile: the paper profile's settings with only sizes scaled down (issue 35). Each experiments
module defines PAPER_SHAPE (the scaled sizes) and PAPER_SHAPE_CHANGED (anything else that cannot stay the
paper's on the committed sample, each with why); SETTINGS['paper-shape'] is built from them by
`experiments.common.paper_shape`. The notebooks themselves run under this profile in CI (Makefile `test`)."""
from __future__ import annotations

import dataclasses
import importlib
import numbers

import pytest

from lmvae_core.experiments import registry
from lmvae_core.experiments.common import paper_shape

MODULES = sorted({registry.get(n).module for n in registry.notebooks()})
# What a paper-shape run may never scale: the architecture, the likelihood, the optimiser, the samples per step,
# the memory and component caps and the method's thresholds (a module lists an unavoidable change in
# PAPER_SHAPE_CHANGED instead).
NEVER_SCALED = {"hidden", "latent", "channels", "arch", "likelihood", "gaussian_std", "size", "batch", "batch_size",
                "lr", "beta1", "train_samples", "stm_size", "ltm_capacity", "per_round", "max_components",
                "max_components_other", "n_experts", "moe_experts", "lmvae_experts", "lambda1", "lambda2",
                "lambda2_cross", "kernel", "alpha", "direction", "objectives", "methods", "datasets", "sequence",
                "growth_sequence", "streams", "ewc_gamma", "gammas", "rs", "main_r", "threshold", "dynamic"}


def _smaller(paper, shaped, path: str, skip: frozenset = frozenset()) -> list[str]:
    """Where `shaped` is not `paper` scaled down: a number no larger (any number where the paper takes all, None),
    seeds or values a subset, a dict or dataclass scaled field by field (paths in `skip` are not checked)."""
    if path in skip:
        return []
    if dataclasses.is_dataclass(paper) and not isinstance(paper, type):
        if type(shaped) is not type(paper):
            return [f"{path}: {type(shaped).__name__} instead of {type(paper).__name__}"]
        return _smaller(dataclasses.asdict(paper), dataclasses.asdict(shaped), path)
    if isinstance(paper, dict) and isinstance(shaped, dict):
        out = [f"{path}.{k}: dropped" for k in paper if k not in shaped]
        return out + [e for k in shaped for e in (_smaller(paper[k], shaped[k], f"{path}.{k}", skip) if k in paper
                                                  else [f"{path}.{k}: added"])]
    if paper == shaped:
        return []
    key = path.rsplit(".", 1)[-1]
    if key in NEVER_SCALED:
        return [f"{path}: {paper!r} -> {shaped!r} is not a size"]
    if paper is None and (shaped is None or isinstance(shaped, numbers.Number)):
        return []
    if isinstance(paper, numbers.Number) and isinstance(shaped, numbers.Number) and not isinstance(paper, bool):
        return [] if shaped <= paper else [f"{path}: {shaped!r} > the paper's {paper!r}"]
    if isinstance(paper, (tuple, list)) and isinstance(shaped, (tuple, list)):
        return [] if set(shaped) <= set(paper) and shaped else [f"{path}: {shaped!r} is not a part of {paper!r}"]
    return [f"{path}: {paper!r} -> {shaped!r} is not a size"]


@pytest.mark.parametrize("module", MODULES)
def test_paper_shape_scales_only_sizes(module):
    m = importlib.import_module(module)
    changed = getattr(m, "PAPER_SHAPE_CHANGED", {})
    paper, shaped = m.SETTINGS["paper"], m.SETTINGS["paper-shape"]
    declared = set(m.PAPER_SHAPE) | {k.split(".")[0] for k in changed}
    assert {k for k in paper if k in shaped and paper[k] != shaped[k]} <= declared, "an undeclared difference"
    overridden = {k.split(".")[0] for k in changed if "." in k}  # a dotted change replaces one entry of a size
    assert all(shaped[k] == v for k, v in m.PAPER_SHAPE.items() if k not in overridden), "a declared size not applied"
    for key, (value, _why) in changed.items():
        outer, _, inner = key.partition(".")
        assert (shaped[outer][inner] if inner else shaped[outer]) == value, f"{key}: the change not applied"
    assert all(isinstance(why, str) and len(why) > 20 for _value, why in changed.values()), "each change says why"
    problems = [p for k in m.SETTINGS["paper"]
                for p in _smaller(m.SETTINGS["paper"][k], m.SETTINGS["paper-shape"][k], k, frozenset(changed))]
    assert not problems, problems


def test_the_check_itself_catches_what_is_not_a_size():
    """Ground truth for _smaller: architecture, a larger number and a new seed are caught; fewer epochs, fewer
    seeds and a limit where the paper takes every image pass."""
    assert _smaller({"hidden": (512, 512)}, {"hidden": (512,)}, "s")
    assert _smaller({"epochs": 10}, {"epochs": 11}, "s")
    assert _smaller({"seeds": (0, 1)}, {"seeds": (5,)}, "s")
    assert _smaller({"likelihood": "gaussian"}, {"likelihood": "bernoulli"}, "s")
    assert not _smaller({"epochs": 10, "seeds": (0, 1, 2), "train_limit": None},
                        {"epochs": 1, "seeds": (0,), "train_limit": 200}, "s")
    with pytest.raises(KeyError):
        paper_shape({"epochs": 1}, {"epoch": 1})
    # a change inside a dict setting changes that entry alone, and the check skips that entry alone
    paper = {"ocm": {"stm_size": 512, "passes": 100}}
    shaped = paper_shape(paper, {"ocm": {"stm_size": 512, "passes": 4}}, {"ocm.stm_size": (128, "why")})
    assert shaped == {"ocm": {"stm_size": 128, "passes": 4}} and paper["ocm"]["stm_size"] == 512
    assert not _smaller(paper["ocm"], shaped["ocm"], "ocm", frozenset({"ocm.stm_size"}))
    assert _smaller(paper["ocm"], dict(shaped["ocm"], passes=200), "ocm", frozenset({"ocm.stm_size"}))
    with pytest.raises(KeyError):
        paper_shape(paper, {}, {"ocm.stm": (1, "why")})


def test_readme_lists_what_paper_shape_scales_and_changes():
    """The paper-shape table (docs/profiles.md) is the one `lmvae readme` writes from the modules (never typed)."""
    from lmvae_core import paths
    from lmvae_core.readme import SHAPE_END, SHAPE_START, paper_shape_section

    text = (paths.repo_root() / "docs" / "profiles.md").read_text()
    assert text.split(SHAPE_START, 1)[1].split(SHAPE_END, 1)[0].strip() == paper_shape_section().strip()
