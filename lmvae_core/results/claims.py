"""Claims tables: the paper's claim, its value, ours, the profile, and a verdict computed by a rule.

Verdicts are never typed in: each claim carries a rule with a stated tolerance, and the verdict is
what the rule says of the measured value, unless the run cannot decide the claim. Then the verdict is
`not comparable`, computed here from what the claim records, and the `why` column says which of these held:
- no measurement (ours is None or NaN);
- the run's schedule (`Schedule`: its budget against the paper's) is below the share the claim needs;
- the notebook's calibration (a jointly trained VAE against its reference) was missed;
- the 95% confidence interval over seeds (`ci`) spans two verdicts of the rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "partly", "not reproduced", "not comparable"
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_COMPARABLE)


@dataclass(frozen=True)
class AtLeast:
    """ours >= threshold: reproduced; ours >= partly: partly."""
    threshold: float
    partly: float | None = None

    def judge(self, ours: float) -> str:
        if ours >= self.threshold:
            return REPRODUCED
        return PARTLY if self.partly is not None and ours >= self.partly else NOT_REPRODUCED

    def describe(self) -> str:
        return f">= {self.threshold:g}" + (f" (partly >= {self.partly:g})" if self.partly is not None else "")


@dataclass(frozen=True)
class AtMost:
    """ours <= threshold: reproduced; ours <= partly: partly."""
    threshold: float
    partly: float | None = None

    def judge(self, ours: float) -> str:
        if ours <= self.threshold:
            return REPRODUCED
        return PARTLY if self.partly is not None and ours <= self.partly else NOT_REPRODUCED

    def describe(self) -> str:
        return f"<= {self.threshold:g}" + (f" (partly <= {self.partly:g})" if self.partly is not None else "")


@dataclass(frozen=True)
class Within:
    """|ours - target| <= tol: reproduced; <= partly_tol: partly."""
    target: float
    tol: float
    partly_tol: float | None = None

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
        return ""

    @property
    def verdict(self) -> str:
        return NOT_COMPARABLE if self._undecided() else self.rule.judge(float(self.ours))

    def row(self, notebook: str = "") -> dict:
        ours = _fmt(self.ours, self.unit)
        if self.ci is not None and not any(math.isinf(v) or math.isnan(v) for v in self.ci):
            ours += f" [{self.ci[0]:.3g}, {self.ci[1]:.3g}]"
        row = {"claim": self.claim, "paper": self.paper, "ours": ours,
               "criterion": self.rule.describe(), "verdict": self.verdict, "profile": self.profile,
               "schedule": self.schedule.describe() if self.schedule else "not stated",
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


def claims_frame(claims: list[Claim], notebook: str = ""):
    import pandas as pd

    return pd.DataFrame([c.row(notebook) for c in claims])
