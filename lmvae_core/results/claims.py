"""Claims tables: the paper's claim, its value, ours, the profile, and a verdict computed by a rule.

Verdicts are never typed in: each claim carries a rule with a stated tolerance, and the verdict is
what the rule says of the measured value, unless the run cannot decide the claim. Then the verdict is
`not comparable`, computed here from what the claim records, and the `why` column says which of these held:
- no measurement (ours is None or NaN);
- the run's schedule (`Schedule`: its budget against the paper's) is below the share the claim needs;
- the notebook's calibration (a jointly trained VAE against its reference) was missed;
- the 95% confidence interval over seeds (`ci`) spans two verdicts of the rule;
- the two sides of a comparison (`Compute`) had optimiser steps or real images more than 5% apart, unstated why;
- a `paper` claim has no half-budget measurement (`HalfBudget`), or its value is still moving: the same measure
  at about half the budget gives another verdict, or moved by at least its distance to the criterion.

Every claim says what kind of statement it tests (`kind`): `paper`, a statement the paper makes (`where` says
where); `derived`, a consequence the project derives from the paper; `sanity`, true by construction or the
objective's own target; `beyond`, past the paper. Only `paper` claims count as reproductions.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "partly", "not reproduced", "not comparable"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_COMPARABLE)
PAPER, DERIVED, SANITY, BEYOND = "paper", "derived", "sanity", "beyond"
KINDS = (PAPER, DERIVED, SANITY, BEYOND)
STILL_MOVING = "still moving"
NO_HALF = "no half-budget measurement"


class _Rule:
    """What the three rules share: the distance from a value to the nearest boundary between two verdicts."""

    def boundaries(self) -> list[float]:
        raise NotImplementedError

    def margin(self, ours: float) -> float:
        return min(abs(float(ours) - b) for b in self.boundaries())


def _check_partly(threshold: float, partly: float | None, below: bool) -> None:
    """A `partly` bound on the wrong side of the threshold would make `partly` unreachable and let a value that
    misses the weaker bound read `reproduced`; callers whose bounds come from measurements must order them."""
    if partly is not None and (partly > threshold if below else partly < threshold):
        side = "above" if below else "below"
        raise ValueError(f"partly={partly:g} lies {side} the threshold {threshold:g}: `partly` must be the weaker "
                         "bound (order measured bounds with min/max, or drop `partly`)")


@dataclass(frozen=True)
class AtLeast(_Rule):
    """ours >= threshold: reproduced; ours >= partly: partly."""
    threshold: float
    partly: float | None = None

    def __post_init__(self):
        _check_partly(self.threshold, self.partly, below=True)

    @classmethod
    def with_measured_partly(cls, threshold: float, partly: float) -> "AtLeast":
        """A `partly` bound that a run measured (r = 0's value, a baseline's gap), kept only where it is weaker
        than the threshold: a measured bound at or past the threshold gives no weaker tier."""
        return cls(threshold, partly=partly if partly < threshold else None)

    def boundaries(self) -> list[float]:
        return [self.threshold] + ([self.partly] if self.partly is not None else [])

    def judge(self, ours: float) -> str:
        if ours >= self.threshold:
            return REPRODUCED
        return PARTLY if self.partly is not None and ours >= self.partly else NOT_REPRODUCED

    def describe(self) -> str:
        return f">= {self.threshold:g}" + (f" (partly >= {self.partly:g})" if self.partly is not None else "")


@dataclass(frozen=True)
class AtMost(_Rule):
    """ours <= threshold: reproduced; ours <= partly: partly."""
    threshold: float
    partly: float | None = None

    def __post_init__(self):
        _check_partly(self.threshold, self.partly, below=False)

    def boundaries(self) -> list[float]:
        return [self.threshold] + ([self.partly] if self.partly is not None else [])

    def judge(self, ours: float) -> str:
        if ours <= self.threshold:
            return REPRODUCED
        return PARTLY if self.partly is not None and ours <= self.partly else NOT_REPRODUCED

    def describe(self) -> str:
        return f"<= {self.threshold:g}" + (f" (partly <= {self.partly:g})" if self.partly is not None else "")


@dataclass(frozen=True)
class Within(_Rule):
    """|ours - target| <= tol: reproduced; <= partly_tol: partly."""
    target: float
    tol: float
    partly_tol: float | None = None

    def __post_init__(self):
        if self.tol < 0 or (self.partly_tol is not None and self.partly_tol < self.tol):
            raise ValueError(f"Within: need 0 <= tol <= partly_tol, got tol={self.tol}, partly_tol={self.partly_tol}")

    def boundaries(self) -> list[float]:
        tols = [self.tol] + ([self.partly_tol] if self.partly_tol is not None else [])
        return [self.target + sign * t for t in tols for sign in (-1, 1)]

    def judge(self, ours: float) -> str:
        gap = abs(ours - self.target)
        if gap <= self.tol:
            return REPRODUCED
        return PARTLY if self.partly_tol is not None and gap <= self.partly_tol else NOT_REPRODUCED

    def describe(self) -> str:
        return f"within {self.tol:g} of {self.target:g}" + (
            f" (partly within {self.partly_tol:g})" if self.partly_tol is not None else "")


@dataclass(frozen=True)
class Schedule:
    """The budget of the run behind a claim against the paper's, in one unit (optimiser steps, real images
    seen, epochs...). Below `min_fraction` of the paper's budget the run cannot decide the claim: a method
    that wins or loses at 1/1000 of its schedule says little about the method."""
    ours: float
    paper: float
    unit: str = "steps"
    min_fraction: float = 0.1

    def __post_init__(self):
        if self.paper <= 0 or self.ours < 0 or not 0 <= self.min_fraction <= 1:
            raise ValueError(f"invalid schedule: ours={self.ours}, paper={self.paper}, min_fraction={self.min_fraction}")

    @property
    def fraction(self) -> float:
        return self.ours / self.paper

    @property
    def decides(self) -> bool:
        return self.fraction >= self.min_fraction

    def describe(self) -> str:
        return (f"{_count(self.ours)} of the paper's {_count(self.paper)} {self.unit} "
                f"({_percent(self.fraction)}; needs >= {_percent(self.min_fraction)})")


@dataclass(frozen=True)
class HalfBudget:
    """The claim's measure at about half its run's budget: a mid-run evaluation of the same run, or a second run
    with the budget halved. A verdict stands only where this value gives the same verdict and moved by less than
    the full-budget value's distance to the criterion: a value still moving that much may cross it with more."""
    ours: float
    schedule: Schedule | None = None
    how: str = "a second run at half the budget"

    def describe(self, unit: str = "") -> str:
        where = f" at {_count(self.schedule.ours)} {self.schedule.unit}" if self.schedule is not None else ""
        return f"{_fmt(self.ours, unit)}{where} ({self.how})"


@dataclass(frozen=True)
class Compute:
    """A comparison's two sides: optimiser steps and real images each trained on. Equal compute means within
    `tolerance` (5%) of each other in both; otherwise the claim is not comparable unless `why_unequal` says why
    the difference is the method itself (for example replay rows on top of the same real batches)."""
    sides: tuple[str, str]
    steps: tuple[float, float]
    images: tuple[float, float]
    why_unequal: str = ""
    tolerance: float = 0.05

    @staticmethod
    def _apart(a: float, b: float) -> float:
        if math.isnan(float(a)) or math.isnan(float(b)):
            return math.inf  # a count not recorded cannot show equal compute
        return abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) > 0 else 0.0

    @property
    def equal(self) -> bool:
        return all(self._apart(*pair) <= self.tolerance for pair in (self.steps, self.images))

    def describe(self) -> str:
        (a, b), (sa, sb), (ia, ib) = self.sides, self.steps, self.images
        text = (f"{a}: {_count(sa)} steps, {_count(ia)} real images; {b}: {_count(sb)} steps, {_count(ib)} real images "
                f"({'equal' if self.equal else 'unequal'} within {_percent(self.tolerance)})")
        return text + (f"; unequal because {self.why_unequal}" if not self.equal and self.why_unequal else "")


def _count(v: float) -> str:
    v = float(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _percent(f: float) -> str:
    return f"{100 * f:.3g}%"


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str  # the paper's number or statement, as the paper gives it
    ours: float
    rule: AtLeast | AtMost | Within
    profile: str
    unit: str = ""
    note: str = ""
    schedule: Schedule | None = None  # the run's budget against the paper's (None: not stated)
    calibrated: bool | None = None  # the notebook's calibration met its reference (None: not checked)
    ci: tuple[float, float] | None = None  # 95% interval of `ours` over seeds (None: a single value)
    kind: str = PAPER  # paper | derived | sanity | beyond (module docstring)
    where: str = ""  # where the paper says it (table, figure, section), for `paper` claims
    half: HalfBudget | None = None  # the same measure at about half the budget (required of `paper` claims)
    compute: Compute | None = None  # both sides' steps and real images, for a comparison

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim kind must be one of {KINDS}, got {self.kind!r} ({self.claim})")

    def _undecided(self) -> str:
        """Why this run cannot decide the claim ('' when it can)."""
        if self.ours is None or math.isnan(float(self.ours)):
            return "no measurement"
        if self.schedule is not None and not self.schedule.decides:
            return f"schedule too short: {self.schedule.describe()}"
        if self.calibrated is False:
            return "calibration missed: the jointly trained VAE lands below its reference (calibration.csv)"
        if self.ci is not None:
            lo, hi = self.ci
            if math.isinf(lo) or math.isinf(hi) or math.isnan(lo) or math.isnan(hi):
                return "one seed: no confidence interval"
            if self.rule.judge(lo) != self.rule.judge(hi):
                return f"95% interval [{lo:.3g}, {hi:.3g}] spans the criterion"
        if self.compute is not None and not self.compute.equal and not self.compute.why_unequal:
            return f"unequal compute: {self.compute.describe()}"
        return self._still_moving()

    def _still_moving(self) -> str:
        """'' when the half-budget value confirms the verdict; else why not (required of `paper` claims only)."""
        if self.half is None or self.half.ours is None or math.isnan(float(self.half.ours)):
            return f"{NO_HALF}: a verdict needs the value at about half the budget" if self.kind == PAPER else ""
        full, half = float(self.ours), float(self.half.ours)
        moved, margin = abs(full - half), self.rule.margin(full)
        # a value that did not move at all stands even on a boundary (a count equal to its criterion)
        if self.rule.judge(half) != self.rule.judge(full) or 0 < margin <= moved:
            return (f"{STILL_MOVING}: {_fmt(half, self.unit)} at about half the budget ({self.rule.judge(half)}), "
                    f"{_fmt(full, self.unit)} at the full budget; moved {moved:.3g}, distance to the criterion "
                    f"{margin:.3g}")
        return ""

    @property
    def verdict(self) -> str:
        return NOT_COMPARABLE if self._undecided() else self.rule.judge(float(self.ours))

    def row(self, notebook: str = "") -> dict:
        ours = _fmt(self.ours, self.unit)
        if self.ci is not None and not any(math.isinf(v) or math.isnan(v) for v in self.ci):
            ours += f" [{self.ci[0]:.3g}, {self.ci[1]:.3g}]"
        row = {"kind": self.kind, "claim": self.claim, "paper": self.paper, "where": self.where, "ours": ours,
               "criterion": self.rule.describe(), "verdict": self.verdict, "profile": self.profile,
               "schedule": self.schedule.describe() if self.schedule else "not stated",
               "half budget": self.half.describe(self.unit) if self.half is not None else "not measured",
               "compute": self.compute.describe() if self.compute is not None else "",
               "why": self._undecided(), "note": self.note}
        return ({"notebook": notebook} if notebook else {}) | row


def _fmt(value, unit: str) -> str:
    if value is None or math.isnan(float(value)):
        return "n/a"
    v = float(value)
    text = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    if abs(v) >= 10:
        text = f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{text} {unit}".strip()


def with_half_budget(claims: list[Claim], half: list[Claim],
                     how: str | Callable[[Claim, Claim], str] = "a second run at half the budget") -> list[Claim]:
    """Each claim with its half-budget value: `half` holds the same claims computed from runs at about half the
    budget, matched by the claim's text (a claim the half run could not make keeps no half value). `how` says
    how the budget was halved: one text for all, or a function of (claim, its half-budget claim) where claims
    come from runs halved in different ways."""
    by_text = {c.claim: c for c in half}
    if len(by_text) != len(half):
        raise ValueError("claims must have distinct texts to be matched with their half-budget values")
    out = []
    for c in claims:
        h = by_text.get(c.claim)
        if h is None:
            out.append(c)
            continue
        out.append(replace(c, half=HalfBudget(float(h.ours), h.schedule, how(c, h) if callable(how) else how)))
    return out


def claims_frame(claims: list[Claim], notebook: str = ""):
    import pandas as pd

    return pd.DataFrame([c.row(notebook) for c in claims])
