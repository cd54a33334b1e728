"""What a verdict needs beyond its rule (results/claims.py): the claim's kind, a value that has stopped moving at
half the budget, equal compute on both sides of a comparison; and that a packed model is a snapshot."""
import math

import pandas as pd
import pytest
import torch

from lmvae_core.continual.base import pack
from lmvae_core.results.claims import (NO_HALF, NOT_COMPARABLE, NOT_REPRODUCED, PARTLY, REPRODUCED, STILL_MOVING,
                                       AtLeast, AtMost, Claim, Compute, HalfBudget, Schedule, Within, claims_frame,
                                       with_half_budget)


def paper_claim(ours=12.0, half=None, **kw):
    return Claim("LGM beats naive (nats)", "qualitative", ours, AtLeast(5.0, partly=0.0), "quick", unit="nats",
                 half=None if half is None else HalfBudget(half), **kw)


def test_every_claim_says_its_kind_and_the_table_shows_it():
    with pytest.raises(ValueError, match="kind"):
        paper_claim(kind="reproduction")
    frame = claims_frame([paper_claim(half=11.0, where="Table 2"), paper_claim(kind="sanity")])
    assert frame["kind"].tolist() == ["paper", "sanity"] and frame["where"].tolist() == ["Table 2", ""]


def test_paper_claims_need_a_half_budget_value_other_kinds_do_not():
    assert paper_claim().verdict == NOT_COMPARABLE and NO_HALF in paper_claim().row()["why"]
    assert paper_claim(half=float("nan")).verdict == NOT_COMPARABLE
    for kind in ("derived", "sanity", "beyond"):
        assert paper_claim(kind=kind).verdict == REPRODUCED


def test_a_verdict_stands_only_where_the_half_budget_value_agrees_and_moved_less_than_the_margin():
    # 12 is 7 above the threshold 5: a half-budget value within 7 of it confirms
    assert paper_claim(half=10.0).verdict == REPRODUCED
    assert paper_claim(half=6.0).verdict == REPRODUCED  # moved 6 < 7
    moved = paper_claim(ours=12.0, half=5.5)  # same verdict, but moved 6.5 ... still < 7
    assert moved.verdict == REPRODUCED
    crossing = paper_claim(half=3.0)  # partly at half budget: still moving
    assert crossing.verdict == NOT_COMPARABLE
    why = crossing.row()["why"]
    assert why.startswith(STILL_MOVING) and "3 nats" in why and "12.0 nats" in why and "partly" in why
    # the same verdict at both budgets, but a move as large as the distance to the criterion: still moving
    far = Claim("c", "q", 30.0, AtLeast(5.0), "quick", half=HalfBudget(5.0))
    assert far.verdict == NOT_COMPARABLE and STILL_MOVING in far.row()["why"]
    # decreasing values count the same way (AtMost), and the Within rule's margin is to its band's edges
    assert Claim("c", "q", 0.3, AtMost(0.5, 0.8), "quick", half=HalfBudget(0.45)).verdict == REPRODUCED
    assert Claim("c", "q", 0.3, AtMost(0.5, 0.8), "quick", half=HalfBudget(0.55)).verdict == NOT_COMPARABLE
    assert Within(-132.0, 5.0, 15.0).margin(-130.0) == pytest.approx(3.0)
    assert Claim("c", "q", -130.0, Within(-132.0, 5.0, 15.0), "quick", half=HalfBudget(-126.0)).verdict \
        == NOT_COMPARABLE  # moved 4 >= 3
    assert Claim("c", "q", 0.7, AtLeast(0.8, 0.6), "quick", half=HalfBudget(0.69)).verdict == PARTLY
    # a count sitting on its criterion that did not move at all stands; one that moved onto it does not
    assert Claim("c", "q", 10.0, AtLeast(10.0), "quick", half=HalfBudget(10.0)).verdict == REPRODUCED
    assert Claim("c", "q", 10.0, AtLeast(10.0, 8.0), "quick", half=HalfBudget(9.0)).verdict == NOT_COMPARABLE


def test_the_half_budget_rule_runs_after_the_other_reasons():
    short = paper_claim(half=11.0, schedule=Schedule(1, 100, "epochs", min_fraction=0.5))
    assert "schedule too short" in short.row()["why"]
    assert paper_claim(half=11.0, ci=(4.0, 20.0)).row()["why"].startswith("95% interval")


def test_half_budget_values_are_matched_to_their_claims_by_text():
    full = [paper_claim(), Claim("other", "q", 0.9, AtLeast(0.8), "quick")]
    half = [paper_claim(ours=10.0, schedule=Schedule(5, 10, "epochs", 0.0))]
    joined = with_half_budget(full, half, how="a mid-run evaluation")
    assert joined[0].half.ours == 10.0 and joined[0].half.how == "a mid-run evaluation"
    assert joined[0].verdict == REPRODUCED and joined[1].half is None and joined[1].verdict == NOT_COMPARABLE
    assert "10.0 nats at 5 epochs (a mid-run evaluation)" == joined[0].row()["half budget"]
    with pytest.raises(ValueError, match="distinct"):
        with_half_budget(full, half + half)
    # a claim without a half-budget value does not stop the matching of the claims after it
    later = with_half_budget([Claim("other", "q", 0.9, AtLeast(0.8), "quick"), paper_claim()], half, how="x")
    assert later[0].half is None and later[1].half.ours == 10.0


def test_half_budget_wording_can_depend_on_the_claim_and_its_half_budget_claim():
    """`how` as a function of (claim, half-budget claim): claims halved in different ways say how, each its own."""
    full = [paper_claim(), Claim("LGM forgets less", "q", 3.0, AtLeast(1.0), "quick")]
    half = [paper_claim(ours=10.0, schedule=Schedule(5, 10, "epochs", 0.0)),
            Claim("LGM forgets less", "q", 2.5, AtLeast(1.0), "quick", schedule=Schedule(3, 10, "epochs", 0.0))]
    seen = []

    def how(claim, half_claim):
        seen.append((claim.claim, half_claim.ours))
        return f"{claim.claim[:3]} halved to {half_claim.schedule.ours:g} {half_claim.schedule.unit}"

    joined = with_half_budget(full, half, how=how)
    assert seen == [("LGM beats naive (nats)", 10.0), ("LGM forgets less", 2.5)]
    assert [c.half.how for c in joined] == ["LGM halved to 5 epochs", "LGM halved to 3 epochs"]


def test_a_comparison_at_unequal_compute_cannot_decide_unless_it_says_why():
    equal = Compute(("OCM", "reservoir"), steps=(2862, 2929), images=(60000, 60000))
    assert equal.equal and paper_claim(half=11.0, compute=equal).verdict == REPRODUCED
    unequal = Compute(("OCM", "reservoir"), steps=(2862, 4142), images=(60000, 60000))
    c = paper_claim(half=11.0, compute=unequal)
    assert not unequal.equal and c.verdict == NOT_COMPARABLE
    assert c.row()["why"].startswith("unequal compute") and "4.14k steps" in c.row()["compute"]
    fewer_images = Compute(("a", "b"), steps=(100, 100), images=(1000, 1100))
    assert not fewer_images.equal  # 9% apart
    assert not Compute(("a", "b"), steps=(100, float("nan")), images=(1000, 1000)).equal  # a count not recorded
    said = Compute(("LGM", "naive"), steps=(100, 100), images=(1000, 2000), why_unequal="replay rows on top")
    assert paper_claim(half=11.0, compute=said).verdict == REPRODUCED
    assert "unequal because replay rows on top" in paper_claim(half=11.0, compute=said).row()["compute"]


def test_pack_is_a_snapshot_that_later_training_leaves_unchanged():
    net = torch.nn.Linear(3, 2)
    net.spec = lambda: {}
    packed = pack(net)
    before = {k: v.clone() for k, v in packed["state"].items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(net.weight.detach(), before["weight"])  # the model did train
    for k, v in packed["state"].items():
        assert torch.equal(v, before[k])


def test_readme_headline_counts_paper_claims_only_and_the_paper_profile_apart(tmp_path):
    from lmvae_core.readme import results_section
    from lmvae_core.results import Outputs

    figs, logs = tmp_path / "figures", tmp_path / "logs"
    Outputs(figs / "00_mixture_of_vaes").claims([
        paper_claim(half=11.0),  # decided by quick: reproduced
        Claim("manager clusters", "q", 0.5, AtLeast(0.6, 0.55), "quick", half=HalfBudget(0.5)),  # quick: not repr.
        Claim("usage near uniform", "q", 0.99, AtLeast(0.9), "quick", kind="sanity"),
        Claim("fashion", "q", 0.4, AtLeast(0.6), "quick")], "00_mixture_of_vaes")  # no half value
    logs.joinpath("paper_00_mixture_of_vaes").mkdir(parents=True)
    pd.DataFrame({"claim": ["manager clusters", "fashion"], "verdict": ["reproduced", "reproduced"],
                  "half budget": ["0.7 at ...", "not measured"]}).to_csv(
        logs / "paper_00_mixture_of_vaes" / "claims.csv", index=False)
    text = results_section(figs, logs)
    assert ("**3 claims the papers make** (kind `paper`): decided by quick (CPU): reproduced 1; decided by paper "
            "(GPU): reproduced 2; not comparable in either: 0. Not counted as reproductions: sanity 1 "
            "(reproduced 1).") in text
    # a paper run that predates the half-budget rule cannot decide under it
    pd.DataFrame({"claim": ["manager clusters"], "verdict": ["reproduced"]}).to_csv(
        logs / "paper_00_mixture_of_vaes" / "claims.csv", index=False)
    text = results_section(figs, logs)
    assert "not comparable (no half-budget measurement; was reproduced)" in text
    assert "decided by quick (CPU): reproduced 1, not reproduced 1; decided by paper (GPU): none; " \
           "not comparable in either: 1." in text


def test_readme_reads_a_paper_run_unpacked_under_figures_paper_before_the_old_logs(tmp_path):
    """benchmarks/gpu_run.sh's notebooks unpack to figures/paper/<nb>/; the script-run logs are the fallback."""
    from lmvae_core.readme import results_section
    from lmvae_core.results import Outputs

    figs, logs = tmp_path / "figures", tmp_path / "logs"
    Outputs(figs / "00_mixture_of_vaes").claims([paper_claim(half=11.0)], "00_mixture_of_vaes")
    claim = paper_claim(half=11.0).claim
    for folder, verdict in ((logs / "paper_00_mixture_of_vaes", "partly"),
                            (figs / "paper" / "00_mixture_of_vaes", "not reproduced")):
        folder.mkdir(parents=True)
        pd.DataFrame({"claim": [claim], "verdict": [verdict], "half budget": ["x"]}).to_csv(
            folder / "claims.csv", index=False)
    text = results_section(figs, logs)
    assert "decided by paper (GPU): not reproduced 1" in text


# What mutation testing of results/claims.py found untested (`make mutants MODULE=claims`, benchmarks/results/mutants_report.md)

def test_each_rule_judges_its_boundaries_as_its_docstring_says():
    assert AtLeast(0.9, partly=0.5).judge(0.5) == PARTLY and AtLeast(0.9, partly=0.5).judge(0.49) == NOT_REPRODUCED
    assert AtMost(1.0).judge(1.0) == REPRODUCED and AtMost(1.0).judge(5.0) == NOT_REPRODUCED
    assert AtMost(1.0, partly=2.0).judge(2.0) == PARTLY and AtMost(1.0, partly=2.0).judge(2.5) == NOT_REPRODUCED
    assert Within(10.0, 1.0).judge(11.0) == REPRODUCED and Within(10.0, 1.0).judge(20.0) == NOT_REPRODUCED
    assert Within(10.0, 1.0, partly_tol=3.0).judge(13.0) == PARTLY
    assert Within(10.0, 1.0, partly_tol=3.0).judge(6.5) == NOT_REPRODUCED


def test_the_margin_is_the_distance_to_the_nearest_verdict_boundary_partly_included():
    assert AtLeast(0.9, partly=0.5).margin(0.55) == pytest.approx(0.05)
    assert AtMost(1.0).margin(1.5) == pytest.approx(0.5)
    assert AtMost(1.0, partly=2.0).margin(1.9) == pytest.approx(0.1)
    assert sorted(Within(10.0, 1.0, partly_tol=3.0).boundaries()) == [7.0, 9.0, 11.0, 13.0]
    assert Within(10.0, 1.0).margin(10.2) == pytest.approx(0.8)


def test_a_move_smaller_than_one_but_past_the_margin_is_still_moving():
    # same verdict at both budgets (reproduced); moved 0.15 >= its distance 0.1 to the criterion
    assert Claim("c", "q", 0.6, AtLeast(0.5), "quick", half=HalfBudget(0.75)).verdict == NOT_COMPARABLE


def test_an_unmeasured_half_budget_value_is_no_half_value():
    assert NO_HALF in paper_claim(half=float("nan")).row()["why"]
    assert paper_claim(half=float("nan"), kind="derived").verdict == REPRODUCED


def test_an_interval_with_any_infinite_or_missing_end_is_one_seed():
    for ci in [(float("nan"), 1.0), (13.0, math.inf), (-math.inf, 1.0)]:
        c = paper_claim(half=11.0, ci=ci)
        assert c.verdict == NOT_COMPARABLE and c.row()["why"] == "one seed: no confidence interval"
        assert c.row()["ours"] == "12.0 nats"
    assert paper_claim(half=11.0, ci=(11.0, 13.0)).row()["ours"] == "12.0 nats [11, 13]"


def test_schedule_validation_and_its_boundaries():
    for bad in [dict(ours=-1, paper=10), dict(ours=1, paper=10, min_fraction=1.5)]:
        with pytest.raises(ValueError, match="invalid schedule"):
            Schedule(**bad)
    assert Schedule(1, 1, "epochs", min_fraction=1.0).decides
    assert Schedule(5e5, 1e6).describe() == "500k of the paper's 1M steps (50%; needs >= 10%)"


def test_compute_with_zero_counts_or_a_count_not_recorded():
    assert Compute(("a", "b"), steps=(0, 0), images=(100, 100)).equal
    assert not Compute(("a", "b"), steps=(0, 1), images=(100, 100)).equal
    assert not Compute(("a", "b"), steps=(float("nan"), 100), images=(100, 100)).equal
    equal = Compute(("a", "b"), steps=(1e9, 1e9), images=(1000, 1000), why_unequal="said anyway")
    assert equal.describe() == "a: 1G steps, 1k real images; b: 1G steps, 1k real images (equal within 5%)"
    unequal = Compute(("a", "b"), steps=(100, 200), images=(1000, 1000))
    assert unequal.describe() == "a: 100 steps, 1k real images; b: 200 steps, 1k real images (unequal within 5%)"


def test_rules_and_half_budgets_describe_themselves():
    assert AtLeast(0.9, partly=0.5).describe() == ">= 0.9 (partly >= 0.5)" and AtLeast(0.9).describe() == ">= 0.9"
    assert AtMost(1.0, partly=2.0).describe() == "<= 1 (partly <= 2)" and AtMost(1.0).describe() == "<= 1"
    assert Within(10.0, 1.0, 3.0).describe() == "within 1 of 10 (partly within 3)"
    assert Within(10.0, 1.0).describe() == "within 1 of 10"
    assert HalfBudget(0.5).describe() == "0.5 (a second run at half the budget)"
    joined = with_half_budget([paper_claim()], [paper_claim(ours=10.0)])
    assert joined[0].half.how == "a second run at half the budget"


def test_a_claims_row_shows_its_value_and_fields():
    from lmvae_core.results.claims import _fmt

    row = paper_claim(half=11.0).row()
    assert list(row) == ["kind", "claim", "paper", "where", "ours", "criterion", "verdict", "profile", "schedule",
                         "half budget", "compute", "why", "note"]
    assert row["ours"] == "12.0 nats" and row["profile"] == "quick" and row["compute"] == ""
    assert paper_claim().row()["half budget"] == "not measured"
    assert paper_claim(ours=None).row()["ours"] == "n/a" and paper_claim(ours=float("nan")).row()["ours"] == "n/a"
    assert paper_claim(ours=float("nan")).row()["why"] == "no measurement"
    why = paper_claim(half=11.0, calibrated=False).row()["why"]
    assert why.startswith("calibration missed: the jointly trained VAE ")
    assert paper_claim(half=11.0).row("03")["notebook"] == "03"
    assert [_fmt(v, "") for v in (0.5, 12.34, 1000.0, 1000.6, 1234.5)] == ["0.5", "12.3", "1000", "1001", "1234"]
    assert list(claims_frame([paper_claim()], "03").columns)[0] == "notebook"
    assert "notebook" not in claims_frame([paper_claim()]).columns


def test_a_partly_bound_on_the_wrong_side_of_the_threshold_is_refused():
    """Inverted, `partly` could never be reached and a value missing the weaker bound would read reproduced (the
    Fashion-MNIST k-means claim's measured bounds came in that order)."""
    for bad in (lambda: AtLeast(0.48, partly=0.55), lambda: AtMost(1.0, partly=0.9),
                lambda: Within(10.0, 3.0, partly_tol=1.0), lambda: Within(10.0, -1.0)):
        with pytest.raises(ValueError):
            bad()
    assert AtLeast(0.5, partly=0.5).judge(0.5) == REPRODUCED and AtMost(1.0, partly=1.0).judge(1.0) == REPRODUCED
    assert AtLeast(float("nan"), partly=0.5).judge(0.6) == PARTLY  # an unmeasured threshold is not refused here


def test_a_measured_partly_bound_is_kept_only_where_it_is_weaker():
    assert AtLeast.with_measured_partly(5 / 9, 0.35).partly == 0.35
    assert AtLeast.with_measured_partly(5 / 9, 0.7).partly is None and AtLeast.with_measured_partly(1.0, 1.0).partly is None
