"""The per-task matrix of continual learning: R[t, j] = metric on task j after training task t."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TaskMatrix:
    task_names: list[str]
    higher_is_better: bool = True  # log-likelihood: True; reconstruction error, -ELBO: False
    values: np.ndarray = field(default=None)

    def __post_init__(self):
        n = len(self.task_names)
        if self.values is None:
            self.values = np.full((n, n), np.nan)
        self.values = np.asarray(self.values, dtype=float)
        if self.values.shape != (n, n):
            raise ValueError(f"values must be {n}x{n}, got {self.values.shape}")

    def record(self, after_task: int, on_task: int, value: float) -> None:
        self.values[after_task, on_task] = float(value)

    def average(self, after_task: int | None = None) -> float:
        """Mean over the tasks seen so far (0..t) after training task t (default: the last)."""
        t = len(self.task_names) - 1 if after_task is None else after_task
        return float(np.nanmean(self.values[t, : t + 1]))

    def forgetting(self) -> float:
        """Mean over tasks 0..T-2 of how much worse the final value is than the best earlier one.

        Positive means forgotten, in the metric's units, whichever direction the metric improves."""
        T = len(self.task_names)
        if T < 2:
            return 0.0
        drops = []
        for j in range(T - 1):
            history = self.values[j:T - 1, j]
            best = np.nanmax(history) if self.higher_is_better else np.nanmin(history)
            final = self.values[T - 1, j]
            drops.append(best - final if self.higher_is_better else final - best)
        return float(np.nanmean(drops))

    def as_frame(self):
        import pandas as pd

        return pd.DataFrame(self.values, index=[f"after {n}" for n in self.task_names], columns=self.task_names)

    def to_dict(self) -> dict:
        return {"task_names": list(self.task_names), "higher_is_better": self.higher_is_better,
                "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "TaskMatrix":
        return cls(d["task_names"], d["higher_is_better"], np.array(d["values"], dtype=float))
