"""Confidence intervals over seeds and paired comparisons: when can two methods be told apart?

With 3 seeds a t-interval is wide (t_{0.975, 2} = 4.30), which is the honest answer: a difference of 1 nat
between two methods whose seeds spread by 1 nat is not a ranking. Differences are paired by seed where both
methods ran the same seeds (same stream order, same initialisation seed), which removes the shared noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int

    def contains(self, value: float) -> bool:
        return self.lo <= value <= self.hi

    def __str__(self) -> str:
        return f"{self.mean:.3g} [{self.lo:.3g}, {self.hi:.3g}]" if self.n > 1 else f"{self.mean:.3g} (1 seed)"


def mean_ci(values, level: float = 0.95) -> Interval:
    """Student-t interval of the mean. One value gives an infinitely wide interval (it cannot decide)."""
    v = np.asarray([x for x in np.ravel(values) if x is not None and not math.isnan(float(x))], dtype=float)
    if v.size == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    m = float(v.mean())
    if v.size == 1:
        return Interval(m, -math.inf, math.inf, 1)
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return Interval(m, m - half, m + half, int(v.size))


def median_ci(values, level: float = 0.95) -> Interval:
    """Distribution-free interval of the median from order statistics: (x_(k), x_(n+1-k)), k the largest rank with
    P(Binomial(n, 1/2) < k) <= (1 - level) / 2, so it covers the median with at least `level` whatever the shape
    (timings are skewed: a few slow blocks). Too few values for any such k (n <= 5 at 95%) give an infinitely wide
    interval: they cannot decide. `mean` holds the median."""
    v = np.sort(np.asarray([x for x in np.ravel(values) if x is not None and not math.isnan(float(x))], dtype=float))
    if v.size == 0:
        return Interval(math.nan, -math.inf, math.inf, 0)
    median = float(np.median(v))
    tail = (1 - level) / 2
    j = int(stats.binom.ppf(tail, v.size, 0.5))  # the smallest j with P(X <= j) >= tail
    if stats.binom.cdf(j, v.size, 0.5) > tail:
        j -= 1  # now the largest j with P(X <= j) <= tail
    k = j + 1  # ranks k..n+1-k (1-based) hold the median with probability >= level
    if k < 1:
        return Interval(median, -math.inf, math.inf, int(v.size))
    return Interval(median, float(v[k - 1]), float(v[v.size - k]), int(v.size))


def paired_difference(a, b, level: float = 0.95) -> Interval:
    """Interval of mean(a - b) over paired seeds (a[i] and b[i] share seed i)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: {a.shape} vs {b.shape}")
    return mean_ci(a - b, level)


def verdict_of_difference(d: Interval, names: tuple[str, str] = ("A", "B")) -> str:
    """'A better', 'B better' or 'A and B cannot be told apart' (95% interval of A - B contains 0)."""
    a, b = names
    if d.n < 2 or d.contains(0.0):
        return f"{a} and {b} cannot be told apart"
    return f"{a} better" if d.mean > 0 else f"{b} better"


def rank_groups(per_seed: dict[str, list[float]], higher_is_better: bool = True, level: float = 0.95) -> list[list[str]]:
    """Rank methods by mean, then merge neighbours that cannot be told apart (paired interval contains 0).

    Returns tiers, best first; methods in one tier are statistically tied with the tier's first member."""
    order = sorted(per_seed, key=lambda m: np.mean(per_seed[m]), reverse=higher_is_better)
    tiers: list[list[str]] = []
    for m in order:
        if tiers:
            head = tiers[-1][0]
            n = min(len(per_seed[head]), len(per_seed[m]))
            d = paired_difference(per_seed[head][:n], per_seed[m][:n], level)
            if d.n < 2 or d.contains(0.0):
                tiers[-1].append(m)
                continue
        tiers.append([m])
    return tiers
