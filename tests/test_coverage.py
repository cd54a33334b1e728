"""Sample coverage at a calibrated classifier confidence, and the mutual information of two labelings
(lmvae_core.metrics.coverage)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from lmvae_core.metrics.coverage import (classes_covered, confidence_threshold, mutual_information,
                                         sample_coverage, share_of)


class Template(nn.Module):
    """A classifier with known outputs: logits = sharpness * (correlation of the image with each class template)."""

    def __init__(self, templates: torch.Tensor, sharpness: float = 40.0):
        super().__init__()
        self.t, self.s = templates.flatten(1), sharpness

    def forward(self, x):
        return self.s * x.flatten(1) @ self.t.T / self.t.pow(2).sum(1)


def test_fidelity_lgm_coverage_ignores_blurred_lookalikes():
    """Blends of two classes get an argmax class but not the confidence real single-class images have: the
    argmax count (>= 2% of samples) counts them as covered classes, the calibrated count does not."""
    g = torch.Generator().manual_seed(0)
    templates = (torch.rand(10, 1, 8, 8, generator=g) > 0.5).float()
    real = templates.repeat_interleave(50, 0) * (0.9 + 0.1 * torch.rand(500, 1, 8, 8, generator=g))
    clf = Template(templates)
    threshold = confidence_threshold(clf, real, 0.95)
    # 70% clear images of class 9, 30% half-half blends of classes 0..5 with class 9
    clear = templates[9].expand(700, 1, 8, 8)
    blends = 0.5 * templates[torch.arange(300) % 6] + 0.5 * templates[9]
    cov = sample_coverage(clf, torch.cat([clear, blends]), threshold)
    assert classes_covered(cov["argmax_shares"]) >= 3  # the artefact: blends win some argmaxes
    assert classes_covered(cov["confident_shares"]) == 1
    assert share_of(cov["argmax_shares"], [9]) >= 0.7 and cov["confident"] == pytest.approx(0.7, abs=0.01)
    # real images pass at the stated rate
    assert sample_coverage(clf, real, threshold)["confident"] == pytest.approx(0.95, abs=0.01)
    with pytest.raises(ValueError):
        confidence_threshold(clf, real, 0.0)


def test_mutual_information_against_closed_forms():
    labels = np.repeat(np.arange(4), 250)
    same = mutual_information(labels, labels)
    assert same["nats"] == pytest.approx(math.log(4)) and same["normalised"] == pytest.approx(1.0)
    renamed = mutual_information(labels, (labels + 1) % 4)  # a relabelling carries the same information
    assert renamed["normalised"] == pytest.approx(1.0)
    assert mutual_information(labels, np.zeros_like(labels))["nats"] == pytest.approx(0.0, abs=1e-12)
    # two labels merged into one category: I = H(labels) - H(labels | category) = log 4 - 0.5 log 2
    merged = mutual_information(labels, np.minimum(labels, 2))
    assert merged["nats"] == pytest.approx(math.log(4) - 0.5 * math.log(2))
    rng = np.random.default_rng(0)
    indep = mutual_information(rng.integers(0, 4, 20000), rng.integers(0, 4, 20000))
    assert indep["normalised"] < 0.01
