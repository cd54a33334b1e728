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


class _Fixed(nn.Module):
    """A 'classifier' whose logits are the images themselves (flattened): an image [a, b, ...] has softmax
    confidence and argmax known in closed form."""

    def forward(self, x):
        return x.flatten(1)


def test_confidence_threshold_is_the_pass_rate_quantile_and_refuses_other_rates():
    x = torch.zeros(5, 2)
    x[:, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])  # confidences sigmoid(0..4)
    conf = torch.sigmoid(x[:, 0]).double()
    assert confidence_threshold(_Fixed(), x, pass_rate=1.0) == pytest.approx(float(conf.min()))
    assert confidence_threshold(_Fixed(), x) == pytest.approx(float(torch.quantile(conf, 0.05)))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"pass_rate must be in \(0, 1\]"):
            confidence_threshold(_Fixed(), x, pass_rate=bad)


def test_sample_coverage_shares_and_the_threshold_boundary():
    from lmvae_core.metrics.coverage import sample_coverage

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [1.0, 0.0]])  # classes 0, 1, 1, 0
    at = float(torch.sigmoid(torch.tensor(2.0)))  # the confidence of the first three
    out = sample_coverage(_Fixed(), logits, threshold=at, n_classes=3)
    assert out["argmax_shares"].tolist() == [0.5, 0.5, 0.0]
    assert out["confident_shares"].tolist() == [0.25, 0.5, 0.0]  # >= threshold passes
    assert out["confident"] == 0.75 and out["threshold"] == at
    assert len(sample_coverage(_Fixed(), logits, at)["argmax_shares"]) == 10  # ten classes by default
    none = sample_coverage(_Fixed(), torch.empty(0, 2), 0.5, n_classes=2)
    assert none["confident"] == 0.0 and none["argmax_shares"].tolist() == [0.0, 0.0]
    one = sample_coverage(_Fixed(), logits[:1], 0.0, n_classes=2)
    assert one["argmax_shares"].tolist() == [1.0, 0.0]  # a share of one sample, not of two


def test_classes_covered_counts_shares_at_the_minimum():
    assert classes_covered([0.02, 0.019, 0.5]) == 2
    assert classes_covered([0.1, 0.1], min_share=0.1) == 2


def test_mutual_information_with_an_unused_label_and_an_entropy_below_one_nat():
    out = mutual_information([0, 0, 2, 2], [1, 1, 0, 0])  # label 1 never occurs: a zero row in the table
    assert out["nats"] == pytest.approx(math.log(2)) and out["label_entropy"] == pytest.approx(math.log(2))
    assert out["normalised"] == pytest.approx(1.0)
    assert math.isnan(mutual_information([3, 3, 3], [0, 1, 2])["normalised"])  # one label: no entropy to explain
