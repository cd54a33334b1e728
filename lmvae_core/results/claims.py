"""Claims tables: the paper's claim, its value, ours, the profile, and a verdict computed by a rule.

Verdicts are never typed in: each claim carries a rule with a stated tolerance, and the verdict is
what the rule says of the measured value.
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
class Claim:
    claim: str
    paper: str  # the paper's number or statement, as the paper gives it
    ours: float
    rule: AtLeast | AtMost | Within
    profile: str
    unit: str = ""
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.ours is None or (isinstance(self.ours, float) and math.isnan(self.ours)):
            return NOT_COMPARABLE
        return self.rule.judge(float(self.ours))

    def row(self, notebook: str = "") -> dict:
        row = {"claim": self.claim, "paper": self.paper, "ours": _fmt(self.ours, self.unit),
               "criterion": self.rule.describe(), "verdict": self.verdict, "profile": self.profile,
               "note": self.note}
        return ({"notebook": notebook} if notebook else {}) | row


def _fmt(value, unit: str) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    text = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    if abs(v) >= 10:
        text = f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{text} {unit}".strip()


def claims_frame(claims: list[Claim], notebook: str = ""):
    import pandas as pd

    return pd.DataFrame([c.row(notebook) for c in claims])
