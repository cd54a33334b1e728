"""Notebook 02's claims (lmvae_core.papers.lgm.claims) and its half-budget runs (settings.half_budget)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lmvae_core.continual import LGMLearner, run_stream
from lmvae_core.data.streams import DataConfig, class_split_stream
from lmvae_core.papers.lgm import claims as lgm_claims, experiments as exp
from lmvae_core.papers.lgm import settings as exp_settings
from lmvae_core.training.loop import steps_per_epoch
from lmvae_core.results.claims import (NOT_COMPARABLE, NOT_REPRODUCED, PAPER, REPRODUCED, SANITY, DERIVED, KINDS,
                                       with_half_budget)

EVAL_KEYS = ("iwae_k", "iwae_n", "fid_n", "fid_train", "fid_epochs", "clf_min_passes", "seeds", "hidden", "latent",
             "batch", "datasets", "methods", "gammas", "perm_train", "perm_test", "perm_tasks", "sample_n",
             "pass_rate", "lr")


@pytest.fixture(scope="module")
def stream():
    return class_split_stream("mnist", 10, DataConfig(source="sample"))


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper", "paper-shape"])
def test_half_budget_halves_the_real_data_per_task_and_nothing_else(profile, stream):
    s = exp_settings.SETTINGS[profile]
    h = exp_settings.half_budget(s)
    assert {k: v for k, v in h.items() if k in EVAL_KEYS} == {k: v for k, v in s.items() if k in EVAL_KEYS}
    changed = {k for k in set(s) | set(h) if s.get(k) != h.get(k)}
    assert changed <= {"epochs", "max_steps", "task_share"} and changed
    full, half = exp.budget(s, stream), exp.budget(h, stream)
    steps = [full.epochs * steps_per_epoch(len(t.train), full.batch_size, full.epochs, full.max_steps)
             for t in stream]
    half_steps = [half.epochs * steps_per_epoch(len(t.train), half.batch_size, half.epochs, half.max_steps)
                  for t in stream]
    # half of each task's steps, up to the rounding of a step count (the fixture's tasks are a few steps long)
    assert all(abs(h - f / 2) <= 1 for h, f in zip(half_steps, steps)), (half_steps, steps)


def test_full_budget_unchanged_by_the_stream(stream):
    """The full runs' budget (and so their cache key) does not depend on the stream: no task_share, no cap."""
    s = exp_settings.SETTINGS["quick"]
    assert exp.budget(s, stream) == exp.budget(s) and exp.budget(s).max_steps is None
    with pytest.raises(ValueError):
        exp.budget(exp_settings.half_budget(s))


def test_half_budget_run_sees_half_the_real_images_per_task(stream):
    """Through the driver, a one-epoch profile's half run gets about half of each task's real images, and
    the claims' schedule counts it so."""
    s = dict(exp_settings.SETTINGS["smoke"], max_steps=None, batch=20)
    tasks = [stream[i] for i in range(3)]
    rows = {}
    for name, settings in (("full", s), ("half", exp_settings.half_budget(s))):
        torch.manual_seed(0)
        learner = LGMLearner(exp.model_config(settings), exp.lifelong_config(settings, "lgm"))
        result = run_stream(learner, tasks, exp.budget(settings, tasks))
        rows[name] = {"real_rows": result.real_rows, "task_sizes": [len(t.train) for t in tasks],
                      "steps": [r["steps"] for r in result.tasks]}
    assert rows["full"]["real_rows"] == [300] * 3
    assert rows["half"]["real_rows"] == [160] * 3  # 8 of 15 steps of 20
    full, half = lgm_claims.schedule([rows["full"]]), lgm_claims.schedule([rows["half"]])
    assert full.fraction == pytest.approx(0.1) and half.fraction == pytest.approx(0.1 * 160 / 300)
    assert full.min_fraction == 0.0 and full.decides


# ---- claims from fake runs ---------------------------------------------------------------------------------


def fake_run(final_nelbo: float, forget: float, share: float = 0.5, consistency: float = 0.8, steps: int = 94,
             rows: int = 6000, seed: int = 0) -> dict:
    """A run's result as fit_method returns it: 10 tasks, -ELBO 100 on a task when learnt, growing by `forget`
    per later task; the cumulative -ELBO ends at `final_nelbo`."""
    rng = np.random.default_rng(seed)
    log = []
    for t in range(10):
        per_task = [100.0 + forget * (t - j) + rng.normal(0, 0.1) for j in range(t + 1)]
        log.append({"task": t, "per_task_nelbo": per_task, "cum_nelbo": final_nelbo + (9 - t) + rng.normal(0, 0.3),
                    "consistency": float("nan") if t == 0 else consistency + rng.normal(0, 0.01),
                    "task_nmi": 0.2, "task_mi": 0.4, "code_effect": 0.01})
    shares = np.full(10, (1 - share) / 9)
    shares[9] = share
    return {"log": log, "real_rows": [rows] * 10, "task_sizes": [6000] * 10,
            "steps": [steps] * 10, "replay_rows": [0] + [rows] * 9, "sample_classes": shares.tolist(),
            "coverage": {"confident_shares": shares.tolist()}, "last_classes": [9]}


def fake_split(nelbo: dict, forget: dict, **kw) -> dict:
    names = [f"task {i}" for i in range(10)]
    runs = {m: [fake_run(nelbo[m], forget[m], seed=s, **kw) for s in range(3)] for m in nelbo}
    return {"stream": SimpleNamespace(names=names), "runs": runs}


def split_and_study(split: dict) -> list:
    """The claims of one dataset when the study's runs are the overview's (as in `paper`)."""
    return (lgm_claims.split_claims("mnist", split, "quick", True)
            + lgm_claims.regulariser_claims("mnist", split, "quick", True))


def test_claims_have_kinds_and_comparisons_record_equal_compute():
    split = fake_split({"lgm": 160, "replay": 162, "naive": 175, "ewc": 140},
                       {"lgm": 2.0, "replay": 2.5, "naive": 6.0, "ewc": 1.0})
    claims = split_and_study(split)
    # the regulariser's claims come from the study, the others from the overview
    assert {c.claim for c in lgm_claims.regulariser_claims("mnist", split, "quick", True)} == \
        {c.claim for c in claims if "plain replay" in c.claim or "beats EWC" in c.claim}
    assert all(c.kind in KINDS for c in claims) and all(c.where for c in claims)
    assert sum(c.kind == SANITY for c in claims) == 1 and sum(c.kind == DERIVED for c in claims) == 1
    assert [c.kind for c in claims if "keeps the teacher's codes" in c.claim] == [SANITY]
    assert [c.kind for c in claims if "identifies the task" in c.claim] == [DERIVED]
    comparisons = [c for c in claims if " beats " in c.claim or "ratio" in c.claim or "LGM - replay" in c.claim]
    assert len(comparisons) == 5 and all(c.compute is not None and c.compute.equal for c in comparisons)
    # EWC ahead of LGM shows as a claim of its own, judged by the rule, not left out
    ewc = [c for c in claims if "beats EWC" in c.claim]
    assert len(ewc) == 1 and ewc[0].ours == pytest.approx(-20, abs=1) and ewc[0].kind == PAPER
    assert ewc[0].rule.judge(ewc[0].ours) == NOT_REPRODUCED
    # the paper claims have no verdict until a half-budget value is attached
    assert all(c.verdict == NOT_COMPARABLE for c in claims if c.kind == PAPER)


def test_unequal_steps_make_a_comparison_not_comparable():
    split = fake_split({"lgm": 160, "replay": 170, "naive": 175}, {"lgm": 2.0, "replay": 2.5, "naive": 6.0})
    split["runs"]["replay"] = [dict(r, steps=[120] * 10) for r in split["runs"]["replay"]]
    claim = next(c for c in lgm_claims.regulariser_claims("mnist", split, "quick", True) if "plain replay" in c.claim)
    assert not claim.compute.equal and "unequal compute" in claim.row()["why"]


def test_half_budget_values_decide_or_mark_still_moving():
    full = fake_split({"lgm": 160, "replay": 170, "naive": 200}, {"lgm": 2.0, "replay": 2.5, "naive": 6.0})
    steady = fake_split({"lgm": 165, "replay": 175, "naive": 205}, {"lgm": 2.0, "replay": 2.5, "naive": 6.0},
                        rows=3000, steps=47)
    moving = fake_split({"lgm": 165, "replay": 164, "naive": 205}, {"lgm": 2.0, "replay": 2.5, "naive": 6.0},
                        rows=3000, steps=47)
    claims = split_and_study(full)
    for half, want in ((steady, REPRODUCED), (moving, NOT_COMPARABLE)):
        judged = with_half_budget(claims, split_and_study(half))
        reg = next(c for c in judged if "plain replay" in c.claim)
        assert reg.verdict == want, reg.row()["why"]
        assert reg.half.schedule.fraction == pytest.approx(reg.schedule.fraction / 2)
        beats_naive = next(c for c in judged if "beats naive" in c.claim)
        assert beats_naive.verdict == REPRODUCED


def test_ablation_and_permuted_claims_record_compute():
    split = fake_split({"lgm": 160, "replay": 170, "naive": 200}, {"lgm": 2.0, "replay": 2.5, "naive": 6.0})
    ablation = {0.0: split["runs"]["replay"], 1.0: split["runs"]["lgm"],
                10.0: [fake_run(165, 2.0, seed=s) for s in range(3)]}
    perm = {"runs": {"lgm": split["runs"]["lgm"], "naive": split["runs"]["naive"]}}
    claims = lgm_claims.claims({}, perm, {}, ablation, "quick", True)
    assert [c.claim.split(":")[0] for c in claims] == ["gamma_c ablation", "permuted MNIST"]
    assert all(c.kind == PAPER and c.where and c.compute.equal for c in claims)
    assert claims[0].ours == pytest.approx(10, abs=1) and "gamma_c = 1" in claims[0].note


# ---- the regulariser study ---------------------------------------------------------------------------------


def test_quick_study_runs_longer_with_more_seeds_and_paper_study_is_its_main_runs(stream):
    quick = exp_settings.study_settings(exp_settings.SETTINGS["quick"])
    assert quick["epochs"] >= 5 and len(quick["seeds"]) >= 8 and not quick["eval_every_task"]
    assert {"lgm", "replay", "ewc"} <= set(quick["methods"]) and 0.0 in quick["gammas"]
    # the study's half budget halves its epochs (5 -> 2) and keeps its seeds
    half = exp_settings.half_budget(quick)
    assert half["epochs"] == quick["epochs"] // 2 and half["seeds"] == quick["seeds"]
    paper, study = exp_settings.SETTINGS["paper"], exp_settings.study_settings(exp_settings.SETTINGS["paper"])
    same = ("epochs", "seeds", "max_steps", "hidden", "latent", "batch", "iwae_k", "fid_n", "sample_n")
    assert {k: study.get(k) for k in same} == {k: paper.get(k) for k in same}
    assert study["eval_every_task"] is True  # so its cache keys are the main runs'


def test_final_only_evaluation_has_its_own_cache_key_and_leaves_the_others_alone(stream):
    run = SimpleNamespace(settings=dict(exp_settings.SETTINGS["smoke"]), data=lambda **kw: DataConfig(source="sample"))
    every = exp.method_call(run, "mnist", "lgm", 0, stream=stream)
    assert "every_task" not in every.config["eval"]  # keys of runs evaluated after every task are unchanged
    run.settings = run.settings | {"eval_every_task": False}
    final = exp.method_call(run, "mnist", "lgm", 0, stream=stream)
    assert final.config["eval"]["every_task"] is False and final.config != every.config


def test_the_naive_last_class_claim_reports_its_measured_ceiling():
    """The share of the naive VAE's samples in the last task's classes beside the share the classifier gives the last
    task's own test images (a generator of those alone would score it): recorded per run, averaged in the note."""
    split = fake_split({"lgm": 160, "replay": 162, "naive": 175, "ewc": 140},
                       {"lgm": 2.0, "replay": 2.5, "naive": 6.0, "ewc": 1.0}, share=0.9)
    for i, r in enumerate(split["runs"]["naive"]):
        r["real_last_share"] = 0.98 + 0.01 * i
    c = next(c for c in split_and_study(split) if "naive VAE draws" in c.claim)
    assert c.ours == pytest.approx(0.9) and "the last task's real test images: 0.990" in c.note
    for r in split["runs"]["naive"]:
        del r["real_last_share"]  # a result cached before the ceiling was recorded: no ceiling, no error
    assert "real test images" not in next(c for c in split_and_study(split) if "naive VAE draws" in c.claim).note
