"""Notebook 05's report: the per-run frame, the seed summary, the display table, rankings and the per-stream figure."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...data.benchmark_streams import STREAM_TITLES
from ...metrics.significance import rank_groups
from ...results.tables import seed_summary

# ---- tables and ranking -------------------------------------------------------------------------------------
METRICS = {  # column: (label, higher is better)
    "final_ll": ("log-lik. (nats)", True),
    "forgetting": ("forgetting (nats)", False),
    "fid": ("FID", False),
    "fitting_capacity": ("fitting capacity", True),
    "params": ("params", False),
    "memory_images": ("memory (images)", False),
    "train_seconds": ("train (s)", False),
    "infer_ms_per_image": ("inference (ms/img)", False),
}


def per_run_frame(rows: list[dict]) -> pd.DataFrame:
    """One row per run; run_seconds (training plus evaluation, not in the summary) shows what evaluation costs;
    steps (optimiser steps) and real_images (real training images handed to the learner, counted once per pass)
    are what the claims' Compute compares."""
    nan = float("nan")
    return pd.DataFrame([{k: r[k] for k in ("stream", "method", "seed", *METRICS)}
                         | {"run_seconds": r.get("run_seconds", nan), "steps": r.get("steps", nan),
                            "real_images": r.get("real_images", sum(r["real_rows"]) if "real_rows" in r else nan)}
                         | ({} if r.get("precision", "fp32") == "fp32" else {"precision": r["precision"]})
                         for r in rows])


def summarise(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; 0 for one seed) over seeds per (stream, method), in stream and
    method order of first appearance, with the number of seeds."""
    return seed_summary(per_run, list(METRICS))


def _pm(m: float, s: float, digits: int) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "n/a"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The main table: 'mean ± std' strings."""
    digits = {"final_ll": 1, "forgetting": 1, "fid": 1, "fitting_capacity": 3, "params": 0, "memory_images": 0,
              "train_seconds": 1, "infer_ms_per_image": 2}
    rows = []
    for _, r in summary.iterrows():
        row = {"stream": r["stream"], "method": r["method"]}
        for col, (label, _) in METRICS.items():
            if col in ("params", "memory_images"):
                row[label] = f"{r[col + '_mean']:.0f}"
            else:
                row[label] = _pm(r[col + "_mean"], r[col + "_std"], digits[col])
        row["seeds"] = int(r["seeds"])
        rows.append(row)
    return pd.DataFrame(rows)


def ranking(summary: pd.DataFrame, metric: str = "final_ll") -> pd.DataFrame:
    """Rank (1 = best) of every method within each stream by the mean of `metric`, plus the mean rank."""
    higher = METRICS[metric][1]
    piv = summary.pivot(index="method", columns="stream", values=metric + "_mean")
    piv = piv[list(dict.fromkeys(summary["stream"]))]
    ranks = piv.rank(ascending=not higher, method="min")
    ranks["mean rank"] = ranks.mean(axis=1)
    return ranks.sort_values("mean rank")


def ranking_sentence(summary: pd.DataFrame, metric: str = "final_ll", per_run: pd.DataFrame | None = None) -> str:
    """Per stream, the methods best first; with per_run, methods that cannot be told apart from the best of
    their tier (paired 95% interval over seeds contains 0) are grouped in braces."""
    ranks = ranking(summary, metric)
    label, higher = METRICS[metric]
    fmt = "{:.3f}" if metric == "fitting_capacity" else "{:.1f}"
    parts = []
    for stream in [c for c in ranks.columns if c != "mean rank"]:
        sub = summary[summary["stream"] == stream].sort_values(metric + "_mean", ascending=not higher)
        mean = dict(zip(sub["method"], sub[metric + "_mean"]))
        if per_run is None:
            order = ", ".join(f"{m} ({fmt.format(v)})" for m, v in mean.items())
        else:
            runs = per_run[per_run["stream"] == stream].sort_values("seed")
            seeds = {m: g[metric].to_numpy(float) for m, g in runs.groupby("method", sort=False)
                     if np.isfinite(g[metric].to_numpy(float)).all()}
            tiers = rank_groups(seeds, higher_is_better=higher)
            order = ", ".join(("{" + "; ".join(f"{m} ({fmt.format(mean[m])})" for m in t) + "}") if len(t) > 1
                              else f"{t[0]} ({fmt.format(mean[t[0]])})" for t in tiers)
        parts.append(f"On {STREAM_TITLES.get(stream, stream)}, by {label} (best first): {order}.")
    if per_run is not None:
        parts.append("Methods in braces cannot be told apart from the first of their group (paired 95% interval "
                     "over seeds contains 0).")
    best = ranks.index[0]
    worst = ranks.index[-1]
    parts.append(f"Averaged over the {len(ranks.columns) - 1} streams, {best} ranks best "
                 f"(mean rank {ranks.loc[best, 'mean rank']:.2f}) and {worst} worst "
                 f"(mean rank {ranks.loc[worst, 'mean rank']:.2f}).")
    return " ".join(parts)


# ---- figures ------------------------------------------------------------------------------------------------
def stream_figure(summary: pd.DataFrame, stream: str):
    import matplotlib.pyplot as plt

    sub = summary[summary["stream"] == stream]
    cols = ["final_ll", "forgetting", "fid", "fitting_capacity"]
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3.6))
    y = np.arange(len(sub))
    for ax, col in zip(axes, cols):
        m, sd = sub[col + "_mean"].to_numpy(float), sub[col + "_std"].to_numpy(float)
        ok = np.isfinite(m)
        ax.barh(y[ok], m[ok], xerr=sd[ok], color="tab:blue", alpha=0.75, capsize=3)
        ax.set_yticks(y, sub["method"] if ax is axes[0] else [""] * len(sub), fontsize=8)
        ax.invert_yaxis()
        arrow = "higher is better" if METRICS[col][1] else "lower is better"
        ax.set_title(f"{METRICS[col][0]}\n({arrow})", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        if col == "final_ll" and ok.any():
            lo, hi = np.nanmin(m - sd), np.nanmax(m + sd)
            ax.set_xlim(lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1))
    fig.suptitle(f"{STREAM_TITLES.get(stream, stream)}: mean ± std over seeds", fontsize=11)
    fig.tight_layout()
    return fig
