"""When can a run decide a claim? Schedules, calibration and confidence intervals (results/claims.py,
metrics/significance.py, experiments/calibration.py)."""
import math

import numpy as np
import pytest
from scipy import stats

from lmvae_core.experiments.calibration import Calibration, JointVAE, fit_joint_vae, reference
from lmvae_core.metrics.significance import mean_ci, median_ci, paired_difference, rank_groups, verdict_of_difference
from lmvae_core.results.claims import NOT_COMPARABLE, NOT_REPRODUCED, REPRODUCED, AtLeast, Claim, Schedule, claims_frame


def claim(**kw):
    # kind "sanity": these test the schedule, calibration and interval rules alone (no half-budget value needed)
    return Claim("A beats B (nats)", "+2", kw.pop("ours", 3.0), AtLeast(0.0), "quick", kind="sanity", **kw)


def test_fidelity_claims_know_their_schedule():
    short = Schedule(122, 1.7e6, "steps", min_fraction=0.01)
    long = Schedule(30_000, 1.7e6, "steps", min_fraction=0.01)
    assert claim(schedule=short).verdict == NOT_COMPARABLE
    assert "schedule too short" in claim(schedule=short).row()["why"]
    assert "122 of the paper's 1.7M steps" in claim(schedule=short).row()["schedule"]
    assert claim(schedule=long).verdict == REPRODUCED and claim(schedule=long).row()["why"] == ""
    assert claim(ours=-1.0, schedule=long).verdict == NOT_REPRODUCED
    assert claim().row()["schedule"] == "not stated"


def test_fidelity_missed_calibration_makes_claims_not_comparable():
    assert claim(calibrated=False).verdict == NOT_COMPARABLE
    assert "calibration" in claim(calibrated=False).row()["why"]
    assert claim(calibrated=True).verdict == REPRODUCED


def test_fidelity_interval_that_spans_the_criterion_cannot_decide():
    assert claim(ci=(-0.5, 6.5)).verdict == NOT_COMPARABLE
    assert claim(ci=(0.5, 6.5)).verdict == REPRODUCED
    assert claim(ours=-3.0, ci=(-6.0, -0.5)).verdict == NOT_REPRODUCED
    assert claim(ci=(-math.inf, math.inf)).verdict == NOT_COMPARABLE  # one seed
    assert "[0.5, 6.5]" in claim(ci=(0.5, 6.5)).row()["ours"]
    assert claim(ours=float("nan")).verdict == NOT_COMPARABLE
    frame = claims_frame([claim(), claim(ci=(-1, 1))], "05")
    assert list(frame["verdict"]) == [REPRODUCED, NOT_COMPARABLE] and "why" in frame


def test_schedule_rejects_nonsense():
    with pytest.raises(ValueError):
        Schedule(10, 0)


def test_mean_ci_is_the_student_t_interval():
    v = [1.0, 2.0, 4.0]
    iv = mean_ci(v)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert iv.mean == pytest.approx(7 / 3) and iv.lo == pytest.approx(lo) and iv.hi == pytest.approx(hi)
    assert mean_ci([5.0]).n == 1 and math.isinf(mean_ci([5.0]).hi)


def test_fidelity_paired_differences_and_tiers():
    a = [-100.0, -101.0, -99.5]
    b = [-103.0, -104.2, -102.4]  # 3 nats worse on every seed
    c = [-100.5, -100.2, -99.9]   # as good as a within the noise
    d = paired_difference(a, b)
    assert d.lo > 0 and verdict_of_difference(d, ("a", "b")) == "a better"
    assert verdict_of_difference(paired_difference(a, c), ("a", "c")) == "a and c cannot be told apart"
    assert rank_groups({"a": a, "b": b, "c": c}) == [["a", "c"], ["b"]]
    with pytest.raises(ValueError):
        paired_difference([1, 2], [1, 2, 3])


def test_fidelity_calibration_compares_with_its_reference():
    value, source = reference("iwae_table1_vae_mnist")
    assert value == -86.76 and "Burda" in source
    close = Calibration("m", "mnist", "quick", 500, -100.0, -99.1, "x")
    far = Calibration("m", "mnist", "quick", 500, -145.6, -99.1, "x")
    assert close.met and not far.met and set(close.row()) >= {"model", "reference_source", "met"}
    with pytest.raises(FileNotFoundError, match="python -m lmvae_core.experiments.calibration"):
        reference("never_measured")


def test_joint_vae_learns_on_the_committed_sample():
    spec = JointVAE("mnist", (32,), 4, epochs=25, iwae_k=5, train_limit=512, test_limit=128)
    trained = fit_joint_vae(spec, source="sample", progress=False)
    untrained = fit_joint_vae(JointVAE("mnist", (32,), 4, epochs=0, iwae_k=5, train_limit=512, test_limit=128),
                              source="sample", progress=False)
    # an untrained Bernoulli decoder sits near 784 * log 2 = 543 nats; training must move far from it
    assert untrained["log_likelihood"] < -400 and trained["log_likelihood"] > untrained["log_likelihood"] + 100


def test_interval_end_past_the_criterion_cannot_decide_even_where_the_point_and_other_end_agree():
    """Ground truth (module docstring): a 95% interval whose two ends get different verdicts spans the criterion,
    so the claim is not comparable, whatever the point value says. Here the point value and the near end agree
    and only the far end crosses; the same interval moved clear of the criterion decides."""
    from lmvae_core.results.claims import AtMost, Within

    def c(ours, rule, ci):
        return Claim("x", "y", ours, rule, "quick", kind="sanity", ci=ci)

    # point passes (<= 0), lower end passes, upper end fails
    assert c(-1.0, AtMost(0.0), (-3.0, 0.5)).verdict == NOT_COMPARABLE
    assert c(-1.0, AtMost(0.0), (-3.0, -0.5)).verdict == REPRODUCED
    # point passes (within 1 of 0), lower end passes, upper end fails
    assert c(0.5, Within(0.0, 1.0), (0.0, 2.0)).verdict == NOT_COMPARABLE
    assert c(0.5, Within(0.0, 1.0), (0.0, 0.9)).verdict == REPRODUCED
    # point fails (>= 0), lower end fails, upper end passes
    assert c(-1.0, AtLeast(0.0), (-3.0, 2.0)).verdict == NOT_COMPARABLE
    assert c(-1.0, AtLeast(0.0), (-3.0, -0.5)).verdict == NOT_REPRODUCED
    # point passes, upper end passes, lower end fails
    assert c(3.0, AtLeast(0.0), (-0.5, 6.5)).verdict == NOT_COMPARABLE
    # an interval across the `partly` boundary only (both ends short of the threshold) spans two verdicts too
    assert c(-1.0, AtLeast(0.0, partly=-2.0), (-3.0, -0.5)).verdict == NOT_COMPARABLE


def test_schedule_exactly_at_its_share_decides():
    """Ground truth (Schedule docstring): below `min_fraction` of the paper's budget the run cannot decide; at
    exactly that share it can (ours / paper >= min_fraction)."""
    at = Schedule(170_000, 1.7e6, "steps", min_fraction=0.1)
    assert at.fraction == 0.1 and at.decides
    assert claim(schedule=at).verdict == REPRODUCED
    assert Schedule(10, 100, min_fraction=0.1).decides and Schedule(17_000, 1.7e6, min_fraction=0.01).decides
    below = Schedule(169_999, 1.7e6, "steps", min_fraction=0.1)
    assert not below.decides and claim(schedule=below).verdict == NOT_COMPARABLE
    assert Schedule(0, 5, min_fraction=0.0).decides  # no share required: any schedule decides


def test_tie_chain_starts_a_new_tier_where_the_head_can_be_told_apart():
    """Ground truth (rank_groups docstring): a tier's members are tied with the tier's FIRST member. Here a ~ b and
    b ~ c, but a and c can be told apart, so c starts a new tier: [[a, b], [c]]. By hand, with t = t_{0.975,2}:
    a - b = [1, 0, 2]: mean 1, sd 1, half-width t/sqrt(3) = 2.48 -> contains 0 (tied);
    b - c = [1, 2.1, -0.1]: mean 1, sd 1.1, half-width 2.73 -> contains 0 (tied);
    a - c = [2, 2.1, 1.9]: mean 2, sd 0.1, half-width 0.25 -> [1.75, 2.25], excludes 0 (a better)."""
    a, b, c = [10.0, 10.1, 9.9], [9.0, 10.1, 7.9], [8.0, 8.0, 8.0]
    t = stats.t.ppf(0.975, 2)
    for x, y, mean, sd in ((a, b, 1.0, 1.0), (b, c, 1.0, 1.1), (a, c, 2.0, 0.1)):
        d = paired_difference(x, y)
        assert d.mean == pytest.approx(mean) and d.hi - d.mean == pytest.approx(t * sd / math.sqrt(3))
    assert rank_groups({"c": c, "a": a, "b": b}) == [["a", "b"], ["c"]]
    # lower is better: the same chain read from the other end (c best, then b tied with it, a apart from c)
    assert rank_groups({"a": a, "b": b, "c": c}, higher_is_better=False) == [["c", "b"], ["a"]]


def test_median_ci_is_the_order_statistic_interval_with_its_binomial_coverage():
    """Ground truth from the binomial: with n = 10 the 95% interval of the median is (x_(2), x_(9)), covering
    1 - 2 P(X <= 1) = 97.9%; n = 100 gives the textbook ranks (40, 61); n = 5 cannot reach 95% (2/32 > 5%)."""
    x = np.random.default_rng(0).permutation(np.arange(1.0, 11.0))  # order of the values does not matter
    i = median_ci(x)
    assert (i.lo, i.hi, i.mean, i.n) == (2.0, 9.0, 5.5, 10)
    assert 1 - 2 * stats.binom.cdf(1, 10, 0.5) >= 0.95 > 1 - 2 * stats.binom.cdf(2, 10, 0.5)  # (x_(3), x_(8)) too short
    assert (median_ci(np.arange(1.0, 101.0)).lo, median_ci(np.arange(1.0, 101.0)).hi) == (40.0, 61.0)
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0]).lo == -math.inf and median_ci([1.0] * 6).lo == 1.0
    assert median_ci([]).n == 0 and math.isnan(median_ci([]).mean)
