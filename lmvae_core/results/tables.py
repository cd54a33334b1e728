"""Tables over seeds: one row per (stream, method) with the mean and standard deviation of each metric."""
from __future__ import annotations

from typing import Sequence

import pandas as pd


def seed_summary(per_run: pd.DataFrame, metrics: Sequence[str], keys: Sequence[str] = ("stream", "method"),
                 single_seed_std: float | None = 0.0) -> pd.DataFrame:
    """`<metric>_mean` and `<metric>_std` (ddof=1) over the runs of each key group, plus `seeds` (the number of
    runs), in the order the groups first appear. single_seed_std fills the std of a one-run group (None: NaN)."""
    keys, metrics = list(keys), list(metrics)
    order = {k: i for i, k in enumerate(dict.fromkeys(zip(*(per_run[k] for k in keys))))}
    g = per_run.groupby(keys, sort=False)
    std = g[metrics].std(ddof=1)
    if single_seed_std is not None:
        std = std.fillna(single_seed_std)
    out = g[metrics].mean().add_suffix("_mean").join(std.add_suffix("_std"))
    out["seeds"] = g.size()
    out = out.reset_index()
    out["_o"] = [order[k] for k in zip(*(out[k] for k in keys))]
    return out.sort_values("_o").drop(columns="_o").reset_index(drop=True)
