"""What generated samples cover, judged by a classifier whose confidence is calibrated on real images, and how
much a discrete code says about the task an image came from.

Counting "classes with >= 2% of the samples" by the classifier's argmax counts blurred look-alikes: a
sample that is no digit still gets an argmax. Here a sample counts for a class only when the classifier's
confidence (max softmax) reaches the threshold that a stated share of real test images reach
(`confidence_threshold`, pass rate 0.95 by default), so a sample is counted only when it is as clear as
real images of that class usually are.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .clustering import contingency


@torch.no_grad()
def confidences(classifier: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """(max softmax probability, argmax class) of `classifier` per image (empty tensors for no images)."""
    if x.shape[0] == 0:  # torch.cat of no batches would raise; sample_coverage reports an empty sample as zeros
        return torch.empty(0, device=x.device), torch.empty(0, dtype=torch.long, device=x.device)
    probs = torch.cat([torch.softmax(classifier(x[s:s + batch_size]), -1) for s in range(0, x.shape[0], batch_size)])
    return probs.max(-1)


def confidence_threshold(classifier: nn.Module, real: torch.Tensor, pass_rate: float = 0.95) -> float:
    """The confidence that a share `pass_rate` of the real images `real` reach (their (1 - pass_rate) quantile)."""
    if not 0 < pass_rate <= 1:
        raise ValueError(f"pass_rate must be in (0, 1], got {pass_rate}")
    conf, _ = confidences(classifier, real)
    return float(torch.quantile(conf.double().cpu(), 1.0 - pass_rate))


def sample_coverage(classifier: nn.Module, samples: torch.Tensor, threshold: float, n_classes: int = 10) -> dict:
    """Per class: the share of all samples labelled with it (`argmax_shares`) and the share labelled with it at
    a confidence >= threshold (`confident_shares`); `confident` is the share of samples that pass at all."""
    conf, pred = confidences(classifier, samples)
    pred, ok = pred.cpu().numpy(), (conf >= threshold).cpu().numpy()
    n = max(1, len(pred))
    return {"argmax_shares": np.bincount(pred, minlength=n_classes) / n,
            "confident_shares": np.bincount(pred[ok], minlength=n_classes) / n,
            "confident": float(ok.mean()) if len(ok) else 0.0, "threshold": float(threshold)}


def classes_covered(shares, min_share: float = 0.02) -> int:
    """Classes with at least `min_share` of the samples (pass `confident_shares` for the calibrated count)."""
    return int((np.asarray(shares) >= min_share).sum())


def share_of(shares, classes) -> float:
    """The share of samples labelled with any of `classes` (e.g. the last task's classes)."""
    return float(np.asarray(shares)[list(classes)].sum())


def mutual_information(labels, assigned) -> dict:
    """Plug-in mutual information between two discrete labelings (nats), and normalised by the entropy of
    `labels` (1: `assigned` determines the label, 0: independent). Used with labels = the task an image came
    from and assigned = the category of z_d the model puts it in."""
    counts = contingency(labels, assigned).astype(float)
    p = counts / counts.sum()
    pl, pa = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pl @ pa)[nz])).sum())
    h = float(-(pl[pl > 0] * np.log(pl[pl > 0])).sum())
    return {"nats": max(mi, 0.0), "normalised": max(mi, 0.0) / h if h > 0 else math.nan, "label_entropy": h}


__all__ = ["confidences", "confidence_threshold", "sample_coverage", "classes_covered", "share_of",
           "mutual_information"]
