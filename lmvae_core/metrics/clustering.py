"""Clustering accuracy under the best one-to-one matching of clusters to labels (Hungarian algorithm)."""
from __future__ import annotations

import numpy as np


def contingency(y_true, y_pred, n_true: int | None = None, n_pred: int | None = None) -> np.ndarray:
    """counts[i, j] = number of items with label i assigned to cluster j."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    n_true = n_true or int(y_true.max()) + 1
    n_pred = n_pred or int(y_pred.max()) + 1
    counts = np.zeros((n_true, n_pred), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def cluster_accuracy(y_true, y_pred) -> float:
    """Fraction of items whose cluster maps to their label under the best matching.

    With more clusters than labels, the surplus clusters match nothing and count as errors."""
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs a second at every `lmvae` start-up

    counts = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def usage_entropy(assignments, n_clusters: int) -> float:
    """Entropy (nats) of how often each cluster is used; log(n_clusters) is uniform use, 0 total collapse."""
    freq = np.bincount(np.asarray(assignments, dtype=int), minlength=n_clusters) / max(1, len(assignments))
    nz = freq[freq > 0]
    return float(-(nz * np.log(nz)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def many_to_one_accuracy(y_true, y_pred) -> float:
    """Fraction of items whose cluster's majority label is their label (each cluster votes on its own).

    The scoring for more clusters than labels (several clusters may map to one label); with one cluster per item
    it is 1, so report the number of clusters with it. With as many clusters as labels it is >= the Hungarian
    accuracy (the one-to-one matching is one of the maps it maximises over)."""
    counts = contingency(y_true, y_pred)
    return float(counts.max(0).sum() / counts.sum())
