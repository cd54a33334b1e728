import copy
import math

import numpy as np
import pytest
import torch

from lmvae_core.metrics import TaskMatrix, active_units, cluster_accuracy, frechet_distance, usage_entropy
from lmvae_core.models import VAE


def test_cluster_accuracy_is_invariant_to_relabelling():
    y = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    assert cluster_accuracy(y, perm[y]) == 1.0
    pred = perm[y].copy()
    pred[:10] = perm[1]  # half of class 0 sent to class 1's cluster
    assert cluster_accuracy(y, pred) == pytest.approx(0.9)


def test_usage_entropy_extremes():
    assert usage_entropy(np.arange(10), 10) == pytest.approx(math.log(10))
    assert usage_entropy(np.zeros(50, dtype=int), 10) == 0.0


def test_task_matrix_average_and_forgetting():
    m = TaskMatrix(["a", "b", "c"], higher_is_better=True)
    m.values = np.array([[-100, np.nan, np.nan], [-110, -90, np.nan], [-130, -95, -80]], dtype=float)
    assert m.average() == pytest.approx((-130 - 95 - 80) / 3)
    assert m.average(1) == pytest.approx(-100)
    # task a: best -100, final -130 -> 30; task b: best -90, final -95 -> 5
    assert m.forgetting() == pytest.approx(17.5)
    err = TaskMatrix(["a", "b"], higher_is_better=False, values=[[1.0, np.nan], [3.0, 2.0]])
    assert err.forgetting() == pytest.approx(2.0)
    assert TaskMatrix.from_dict(m.to_dict()).forgetting() == m.forgetting()


def test_frechet_distance_closed_form():
    g = np.random.default_rng(0)
    a = g.normal(size=(20000, 3))
    b = g.normal(size=(20000, 3)) * 2.0 + np.array([1.0, 0.0, 0.0])
    # N(m1, I) vs N(m2, 4I): |m1-m2|^2 + tr(I + 4I - 2*2I) = 1 + 3
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.15)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_without_pytorch_fid_handles_full_and_singular_covariances():
    from lmvae_core.metrics.fid import _trace_sqrt_product

    g = np.random.default_rng(1)
    m = g.normal(size=(4, 4))
    s = m @ m.T + np.eye(4)  # a full covariance: tr((S S)^(1/2)) = tr(S)
    assert _trace_sqrt_product(s, s) == pytest.approx(np.trace(s), rel=1e-8)
    # fewer samples than features: singular covariances, still a finite, non-negative distance
    few_a, few_b = g.normal(size=(5, 12)), g.normal(size=(5, 12)) + 3.0
    d = frechet_distance(few_a, few_b)
    assert np.isfinite(d) and d > 12 * 9 * 0.5


def test_active_units_counts_only_varying_dimensions(mnist_sample):
    vae = VAE(hidden=(32,), latent_dim=6)
    with torch.no_grad():
        # make units 0-2 ignore the input (constant mean): they must count as inactive
        vae.encoder.head.weight[:3].zero_()
        vae.encoder.head.weight[3:6].mul_(20)
    n, var = active_units(vae, mnist_sample.x[:300])
    assert n == 3 and torch.all(var[:3] < 1e-10)


def _under_threads(n: int, fn):
    from lmvae_core.runtime import cpu_threads

    with cpu_threads(n):
        return fn()


def test_classifier_fid_and_fitting_capacity_do_not_depend_on_the_callers_thread_count(sample_cfg):
    """torch's CPU convolutions and matrix products sum in another order with another thread count: the same
    classifier trained by a 2-thread notebook and by a 1-thread Dask worker came out up to 0.22 apart, and its FID
    moved from 23.5 to 21.4 (at 715b557, in what is now benchmarks/results/thread_invariance.json). The metrics fix
    their own thread count, so every bit is the same whoever calls them; without it the classifiers' weights differ on
    this data."""
    from lmvae_core.data import load_split
    from lmvae_core.metrics import fid
    from lmvae_core.nets.classifier import FeatureClassifier
    from lmvae_core.training.classifier import fit_classifier

    tr, te = load_split("mnist", "train", sample_cfg), load_split("mnist", "test", sample_cfg)

    def train():
        torch.manual_seed(0)
        clf = fit_classifier(FeatureClassifier(), tr.x, tr.y, epochs=1, batch_size=64, lr=1e-3)
        emb = clf.embed(te.x)
        return clf.state_dict(), emb, fid(clf, te.x[:300], tr.x[:300])

    (one, emb1, fid1), (two, emb2, fid2) = (_under_threads(n, train) for n in (1, 2))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert torch.equal(emb1, emb2) and fid1 == fid2


def test_fitting_capacity_trains_its_classifier_on_the_result_thread_count(sample_cfg, monkeypatch):
    """Its MLP also trains to other bits with 2 threads (3,000 sample digits in batches of 1,000: one epoch gives
    other weights, but rarely another accuracy, so the test watches the thread count the training sees)."""
    from lmvae_core.data import load_split
    from lmvae_core.metrics import fitting_capacity as FC
    from lmvae_core.runtime import RESULT_THREADS

    seen, fit = [], FC.fit_early_stopped
    monkeypatch.setattr(FC, "fit_early_stopped", lambda *a, **k: (seen.append(torch.get_num_threads()), fit(*a, **k))[1])
    tr, te = load_split("mnist", "train", sample_cfg), load_split("mnist", "test", sample_cfg)
    _under_threads(2, lambda: FC.fitting_capacity(tr.x[:500], tr.y[:500], te.x, te.y, 10, max_epochs=1))
    assert seen == [RESULT_THREADS]


def test_one_thread_restores_the_callers_setting_also_on_an_error():
    from lmvae_core.runtime import RESULT_THREADS, cpu_threads, one_thread

    @one_thread
    def seen(fail=False):
        if fail:
            raise RuntimeError("planned")
        return torch.get_num_threads()

    with cpu_threads(2):
        assert seen() == RESULT_THREADS
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="planned"):
            seen(fail=True)
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_task_matrix_backward_transfer_is_negative_forgetting(higher_is_better):
    """Ground truth from the docstring: forgetting = mean over j < T-1 of (best of R[j:T-1, j]) - R[T-1, j]
    (sign flipped where lower is better). Later training that improves old tasks (backward transfer) must read
    as negative forgetting, not 0: the final row is not part of the 'earlier' history."""
    nan = np.nan
    # higher is better (log-likelihood): each old task ends better than it ever was before the last task
    ll = np.array([[-100, nan, nan, nan],
                   [-95, -90, nan, nan],
                   [-97, -88, -85, nan],
                   [-80, -86, -90, -70]], dtype=float)
    # by hand: task 0 best of (-100, -95, -97) = -95, final -80 -> -15
    #          task 1 best of (-90, -88) = -88, final -86 -> -2
    #          task 2 best of (-85,) = -85, final -90 -> +5 (forgotten)
    # mean (-15 - 2 + 5) / 3 = -4
    expected = -4.0
    values = ll if higher_is_better else -ll  # an error metric: the same history, lower is better
    m = TaskMatrix(["a", "b", "c", "d"], higher_is_better=higher_is_better, values=values)
    assert m.forgetting() == pytest.approx(expected)
    # pure backward transfer on two tasks: exactly the improvement, negative
    two = np.array([[1.0, nan], [3.0, 2.0]])
    if not higher_is_better:  # error 3 -> 1: improved by 2
        two = np.array([[3.0, nan], [1.0, 2.0]])
    assert TaskMatrix(["a", "b"], higher_is_better, two).forgetting() == pytest.approx(-2.0)


# What mutation testing of metrics/ found untested (benchmarks/results/mutants_report.md, section metrics): each test below
# checks one metric against a value known without the metric's code (a closed form, a fake model whose answer is
# known, or a distribution's known moments).

class _Linear:
    """A fake model: the posterior mean is 2x's first two pixels, decode maps z to an image of z's mean, and the
    ELBO and reconstruction error of an image are its pixel sum and its pixel count."""

    def encode(self, x):
        mu = 2 * x.flatten(1)[:, :2]
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        return z.mean(1).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)

    def terms(self, x):
        return {"elbo": x.flatten(1).sum(1)}

    def reconstruction_error(self, x):
        return torch.full((len(x),), float(x[0].numel()))


def test_latent_means_in_batches_equal_one_pass():
    from lmvae_core.metrics.latent import latent_means

    x = torch.rand(7, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(latent_means(_Linear(), x, batch_size=3), 2 * x.flatten(1)[:, :2])
    assert torch.equal(latent_means(_Linear(), x), 2 * x.flatten(1)[:, :2])


def test_bimodality_coefficient_of_known_distributions():
    """Sarle's coefficient: 5/9 for a uniform, 1/3 for a normal, 1 for two equal point masses (skew 0, excess
    kurtosis -2, in the large-sample limit)."""
    from lmvae_core.metrics.latent import bimodality_coefficient

    rng = np.random.default_rng(0)
    assert bimodality_coefficient(rng.uniform(size=200_000)) == pytest.approx(5 / 9, abs=0.01)
    assert bimodality_coefficient(rng.normal(size=200_000)) == pytest.approx(1 / 3, abs=0.01)
    assert bimodality_coefficient(np.repeat([0.0, 1.0], 100_000)) == pytest.approx(1.0, abs=1e-3)
    # small n: the finite-sample kurtosis term 3 (n-1)^2 / ((n-2)(n-3)), against a by-hand value
    v = np.array([0.0, 1.0, 1.0, 3.0, 7.0])
    n, m = len(v), v.mean()
    m2, m3, m4 = ((v - m) ** 2).mean(), ((v - m) ** 3).mean(), ((v - m) ** 4).mean()
    g = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
    k = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)
    assert bimodality_coefficient(v) == pytest.approx((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def test_linear_probe_separates_what_is_linear_and_is_the_ridge_closed_form():
    from lmvae_core.metrics.latent import linear_probe

    g = torch.Generator().manual_seed(0)
    f = torch.randn(600, 3, generator=g) * torch.tensor([1.0, 100.0, 0.01]) + torch.tensor([0.0, 1e3, -5.0])
    y = (f[:, 2] > -5.0).long() + 2 * (f[:, 0] > 0).long()  # four classes, linear in two scaled, shifted features
    assert linear_probe(f[:400], y[:400], f[400:], y[400:]) > 0.95
    # against the closed form written out in numpy, on noisy labels where the ridge changes the answer
    noisy = torch.where(torch.rand(600, generator=g) < 0.3, torch.randint(4, (600,), generator=g), y)
    for ridge in (1e-2, 30.0):
        a, b = f[:400].double().numpy(), f[400:].double().numpy()
        mean, std = a.mean(0), a.std(0, ddof=1) + 1e-6
        a1 = np.c_[(a - mean) / std, np.ones(400)]
        b1 = np.c_[(b - mean) / std, np.ones(200)]
        w = np.linalg.solve(a1.T @ a1 + ridge * 400 * np.eye(4), a1.T @ np.eye(4)[noisy[:400].numpy()])
        truth = float(((b1 @ w).argmax(1) == noisy[400:].numpy()).mean())
        assert linear_probe(f[:400], noisy[:400], f[400:], noisy[400:], ridge=ridge) == pytest.approx(truth)
    # labels unrelated to the features: chance
    noise = torch.randint(4, (600,), generator=g)
    assert linear_probe(f[:400], noise[:400], f[400:], noise[400:]) < 0.4


def test_traversal_sets_one_dimension_per_row_and_decodes_the_mean_image():
    from lmvae_core.metrics.latent import traversal

    x = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]], [[[0.9, 0.9], [0.9, 0.9]]]])
    values = torch.tensor([-1.0, 0.0, 3.0])
    out = traversal(_Linear(), x, dims=[1, 0], values=values)
    mu = torch.tensor([0.2, 0.4])  # 2 x the first image's first two pixels
    expect = [torch.stack([mu[0], v]).mean() for v in values] + [torch.stack([v, mu[1]]).mean() for v in values]
    assert out.shape == (6, 1, 2, 2)
    assert torch.allclose(out[:, 0, 0, 0], torch.sigmoid(torch.stack(expect)))


def test_negative_elbo_and_reconstruction_error_average_over_every_image_in_any_batching():
    from lmvae_core.metrics.elbo import negative_elbo, reconstruction_error

    x = torch.rand(7, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    truth = float(-x.flatten(1).sum(1).mean())
    for batch in (1, 3, 7, 1000):
        assert negative_elbo(_Linear(), x, batch_size=batch) == pytest.approx(truth)
        assert reconstruction_error(_Linear(), x, batch_size=batch) == pytest.approx(4.0)
    assert negative_elbo(_Linear(), x) == pytest.approx(truth)


def test_contingency_counts_and_its_sizes():
    from lmvae_core.metrics.clustering import contingency, many_to_one_accuracy

    counts = contingency([0, 0, 1, 2, 2, 2], [1, 1, 0, 1, 2, 2])
    assert counts.tolist() == [[0, 2, 0], [1, 0, 0], [0, 1, 2]]
    assert contingency([0, 1], [0, 0], n_true=3, n_pred=2).tolist() == [[1, 0], [1, 0], [0, 0]]
    # many-to-one: each cluster votes its majority label (cluster 1 holds labels 0, 0, 2: majority 0)
    assert many_to_one_accuracy([0, 0, 1, 2, 2, 2], [1, 1, 0, 1, 2, 2]) == pytest.approx(5 / 6)
    assert many_to_one_accuracy([0, 1, 2], [0, 1, 2]) == 1.0
    # three clusters of label 0: each votes 0 (3 of 4), where a vote per label would count 2 of 4
    assert many_to_one_accuracy([0, 0, 0, 1], [0, 1, 2, 2]) == 0.75


def test_cluster_accuracy_counts_surplus_clusters_as_errors():
    y = [0, 0, 0, 1, 1, 1]
    assert cluster_accuracy(y, [0, 0, 2, 1, 1, 3]) == pytest.approx(4 / 6)  # clusters 2 and 3 match no label


def test_usage_entropy_of_a_known_split():
    assert usage_entropy([0, 0, 1, 1], 4) == pytest.approx(math.log(2))
    assert usage_entropy([0, 0, 0, 1], 2) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert usage_entropy([], 3) == 0.0


def test_active_units_threshold_and_batches():
    x = torch.rand(9, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    var = (2 * x.flatten(1)[:, :2]).var(0)
    for batch in (2, 1000):
        n, got = active_units(_Linear(), x, batch_size=batch)
        assert torch.allclose(got, var) and n == int((var > 0.01).sum())
    assert active_units(_Linear(), x, threshold=float(var.max()))[0] == 0  # strictly above the threshold
    assert active_units(_Linear(), x, threshold=float(var.min()) - 1e-6)[0] == 2


def test_fitting_capacity_pieces():
    from lmvae_core.metrics import fitting_capacity as FC

    assert FC.fitting_set_size(60_000) == 60_000 and FC.fitting_set_size(60_000, 5_000) == 5_000
    assert FC.fitting_set_size(3_000, 5_000) == 3_000
    clf = FC.MLPClassifier(3, in_dim=4, hidden=5)
    assert [m.__class__.__name__ for m in clf.net] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert (clf.net[1].in_features, clf.net[1].out_features, clf.net[3].out_features) == (4, 5, 3)
    assert math.isnan(FC.accuracy(clf, torch.empty(0, 4), torch.empty(0, dtype=torch.long)))

    class Sign(torch.nn.Module):  # class 1 where the first input is positive
        def forward(self, x):
            return torch.stack([-x[:, 0], x[:, 0]], 1)

    x = torch.tensor([[1.0], [-1.0], [2.0], [-3.0], [0.5]])
    assert FC.accuracy(Sign(), x, torch.tensor([1, 0, 1, 1, 1]), batch_size=2) == pytest.approx(0.8)


def test_fit_early_stopped_keeps_its_best_state_and_stops_after_patience():
    from lmvae_core.metrics.fitting_capacity import MLPClassifier, fit_early_stopped

    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(0)
    clf, log = fit_early_stopped(MLPClassifier(2, 2, 8), x, y, max_epochs=40, patience=2, lr=1e-2)
    assert log["val_accuracy"] >= 0.95 and 1 <= log["epochs"] < 40  # separable: it stops well before 40 epochs
    # the returned state is the best one: its validation accuracy is the logged one (same split: same seed)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    val = perm[:20]
    assert (clf(x[val]).argmax(1) == y[val]).float().mean().item() == pytest.approx(log["val_accuracy"])
    assert not clf.training
    # lr 0: the accuracy of epoch 1 never improves, so with patience 2 it stops after exactly 3 epochs
    _, log = fit_early_stopped(MLPClassifier(2, 2, 8), x, y, max_epochs=10, patience=2, lr=0.0)
    assert log["epochs"] == 3
    _, log = fit_early_stopped(MLPClassifier(2, 2, 8), x, y, max_epochs=3, patience=10)
    assert log["epochs"] == 3  # every epoch counted, none more
    # no epoch: the classifier comes back as it was
    untouched = MLPClassifier(2, 2, 8)
    before = copy.deepcopy(untouched.state_dict())
    clf, log = fit_early_stopped(untouched, x, y, max_epochs=0)
    assert log["epochs"] == 0 and all(torch.equal(before[k], v) for k, v in clf.state_dict().items())


def test_fit_early_stopped_draws_only_from_its_seed_and_uses_lesorts_learning_rate():
    """The split and the batch order come from the seed alone (not from torch's global generator), seed 0 and
    lr 1e-3 (as fitting_capacity, which passes no lr, relies on) by default."""
    from lmvae_core.metrics.fitting_capacity import MLPClassifier, fit_early_stopped

    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 2, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    start = MLPClassifier(2, 2, 8)

    def fit(global_seed, **kw):
        torch.manual_seed(global_seed)
        clf, _ = fit_early_stopped(copy.deepcopy(start), x, y, max_epochs=2, **kw)
        return clf.state_dict()

    reference = fit(0, seed=0, lr=1e-3)
    for other in (fit(1), fit(2, seed=0), fit(3, lr=1e-3)):
        assert all(torch.equal(reference[k], other[k]) for k in reference)


def test_fitting_capacity_on_separable_images_and_its_real_ceiling():
    from lmvae_core.metrics.fitting_capacity import fitting_capacity, real_fitting_capacity

    g = torch.Generator().manual_seed(3)
    y = torch.randint(3, (300,), generator=g)
    x = torch.rand(300, 1, 2, 2, generator=g) * 0.1
    x.view(300, 4)[torch.arange(300), y] += 3.0  # the class is written as a bright pixel
    acc = fitting_capacity(x[:200], y[:200], x[200:], y[200:], 3, max_epochs=30, patience=10)
    assert acc > 0.9
    assert real_fitting_capacity(x[:200], y[:200], x[200:], y[200:], 3, max_epochs=30, patience=10) == acc  # same procedure
    # and its keyword arguments reach the procedure: no epoch leaves the classifier untrained
    untrained = real_fitting_capacity(x[:200], y[:200], x[200:], y[200:], 3, max_epochs=0)
    assert untrained == fitting_capacity(x[:200], y[:200], x[200:], y[200:], 3, max_epochs=0) < 0.9


def test_accuracy_floors_and_the_classifier_check():
    from lmvae_core.metrics.fid import accuracy_floor, classifier_check

    assert accuracy_floor("MNIST") == 0.98 and accuracy_floor("fashion-mnist") == 0.88
    assert accuracy_floor("kmnist") is None

    class Fixed:
        def predict(self, x):
            return torch.zeros(len(x), dtype=torch.long)

    y = torch.tensor([0, 0, 0, 1])
    check = classifier_check(Fixed(), "mnist", torch.zeros(4, 1), y)
    assert check == {"dataset": "mnist", "n_test": 4, "accuracy": 0.75, "floor": 0.98, "met": False}
    assert classifier_check(Fixed(), "mnist", torch.zeros(3, 1), y[:3])["met"] is True  # 1.0 >= 0.98
    assert classifier_check(Fixed(), "kmnist", torch.zeros(4, 1), y)["met"] is None


def test_real_fid_draws_n_images_with_its_seed():
    from lmvae_core.metrics.fid import real_fid

    class Identity:
        def embed(self, x):
            return x.flatten(1)

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 3.0
    one = real_fid(Identity(), a, b, n=100, seed=1)
    idx = torch.randperm(500, generator=torch.Generator().manual_seed(1))[:100]
    assert one == pytest.approx(frechet_distance(a[idx], b))
    assert one == real_fid(Identity(), a, b, n=100, seed=1) != real_fid(Identity(), a, b, n=100, seed=2)
    assert real_fid(Identity(), a, b, n=100) == real_fid(Identity(), a, b, n=100, seed=0)  # seed 0 by default
    assert one == pytest.approx(18.0, rel=0.2)  # |mean shift|^2 = 2 x 3^2, equal unit covariances


def test_contingency_takes_float_labels_and_counts_in_integers():
    from lmvae_core.metrics.clustering import contingency

    counts = contingency(np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]))
    assert counts.dtype == np.int64 and counts.tolist() == [[0, 1], [1, 1]]


def test_usage_entropy_takes_float_assignments_and_is_never_minus_zero():
    assert usage_entropy(np.array([0.0, 1.0]), 2) == pytest.approx(math.log(2))
    assert usage_entropy([2], 3) == 0.0  # one assignment: one cluster used, entropy 0 (not a share of 1/2)
    assert math.copysign(1.0, usage_entropy([0, 0], 2)) == 1.0


def test_frechet_distance_reads_tensors_that_need_grad_in_double_precision():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(50, 3, generator=g, requires_grad=True)
    b = (torch.randn(60, 3, generator=g) + 1.0).requires_grad_()
    as_double = frechet_distance(a.detach().double().numpy(), b.detach().double().numpy())
    assert frechet_distance(a, b) == as_double  # cast to float64 before any arithmetic, bit for bit
    assert frechet_distance(a.detach().numpy(), b) == as_double


def test_trace_sqrt_product_falls_back_to_a_regularised_product_and_drops_round_off(monkeypatch):
    """When sqrtm cannot root the product (non-finite result), both covariances get eps on the diagonal and it is
    rooted again; a complex root with a negligible imaginary diagonal is taken as real; a large one is an error."""
    from scipy import linalg

    from lmvae_core.metrics.fid import _trace_sqrt_product

    s_a, s_b = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    seen = []

    def failing_first(m):
        seen.append(m.copy())
        return np.full_like(m, np.nan) if len(seen) == 1 else np.sqrt(m)  # diagonal: the elementwise root

    monkeypatch.setattr(linalg, "sqrtm", failing_first)
    got = _trace_sqrt_product(s_a, s_b, eps=0.5)
    assert np.allclose(seen[1], (s_a + 0.5 * np.eye(2)) @ (s_b + 0.5 * np.eye(2)))
    assert got == pytest.approx(math.sqrt(1.5 * 9.5) + math.sqrt(4.5 * 1.5))
    seen.clear()
    _trace_sqrt_product(s_a, s_b)  # the default eps
    assert np.allclose(seen[1], (s_a + 1e-6 * np.eye(2)) @ (s_b + 1e-6 * np.eye(2)), rtol=0, atol=1e-12)

    monkeypatch.setattr(linalg, "sqrtm", lambda m: np.diag([3.0 + 1e-5j, 2.0 - 1e-5j]))
    assert _trace_sqrt_product(s_a, s_b) == 5.0
    monkeypatch.setattr(linalg, "sqrtm", lambda m: np.diag([3.0 + 0.5j, 2.0]))
    with pytest.raises(ValueError, match="imaginary part 0.5"):
        _trace_sqrt_product(s_a, s_b)


def test_mlp_classifier_defaults_are_lesorts_784_256():
    from lmvae_core.metrics.fitting_capacity import MLPClassifier

    net = MLPClassifier(10).net
    assert (net[1].in_features, net[1].out_features, net[3].out_features) == (784, 256, 10)


def test_interval_bounds_are_inclusive_and_its_text():
    from lmvae_core.metrics.significance import Interval

    i = Interval(1.0, 0.5, 1.5, 3)
    assert i.contains(0.5) and i.contains(1.5) and not i.contains(1.5000001)
    assert str(i) == "1 [0.5, 1.5]" and str(Interval(2.0, 1.0, 3.0, 2)) == "2 [1, 3]"
    assert str(Interval(1.25, -math.inf, math.inf, 1)) == "1.25 (1 seed)"


def test_mean_ci_skips_missing_values_and_says_when_it_cannot_bound():
    from lmvae_core.metrics.significance import Interval, mean_ci

    empty = mean_ci([None, float("nan")])
    assert math.isnan(empty.mean) and (empty.lo, empty.hi, empty.n) == (-math.inf, math.inf, 0)
    assert mean_ci([None, 2.5]) == Interval(2.5, -math.inf, math.inf, 1)
    two = mean_ci([1, None, 3])
    assert (two.mean, two.n) == (2.0, 2)
    assert two.hi - two.mean == pytest.approx(12.706204736 * math.sqrt(2) / math.sqrt(2))  # t(0.975, 1) * s / sqrt(n)


def test_paired_difference_needs_the_same_seeds_and_passes_its_level():
    from lmvae_core.metrics.significance import mean_ci, paired_difference

    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([1.0, 2.0], [1.0])
    a, b = [1.0, 2.0, 4.0], [0.0, 0.5, 1.0]
    assert paired_difference(a, b, level=0.5) == mean_ci([1.0, 1.5, 3.0], level=0.5)
    assert paired_difference(a, b, level=0.5).hi < paired_difference(a, b).hi
    # a seed missing on one side (None) is left out of the pairs, not an error
    assert paired_difference([1.0, None, 3.0], [0.0, 1.0, 1.0]) == mean_ci([1.0, 2.0])
    assert paired_difference([1.0, 2.0, 3.0], [0.0, None, 1.0]) == mean_ci([1.0, 2.0])


def test_verdict_of_difference_at_its_boundaries():
    from lmvae_core.metrics.significance import Interval, verdict_of_difference

    names = ("X", "Y")
    assert verdict_of_difference(Interval(0.7, 0.5, 0.9, 2), names) == "X better"  # two seeds decide
    assert verdict_of_difference(Interval(0.7, 0.5, 1.2, 3), names) == "X better"  # 1 inside, 0 outside
    assert verdict_of_difference(Interval(-0.7, -0.9, -0.5, 3), names) == "Y better"
    assert verdict_of_difference(Interval(0.7, 0.5, 0.9, 1), names) == "X and Y cannot be told apart"
    assert verdict_of_difference(Interval(0.1, -0.1, 0.3, 3), names) == "X and Y cannot be told apart"


def test_rank_groups_decides_with_two_seeds_compares_common_seeds_and_passes_its_level():
    from lmvae_core.metrics.significance import rank_groups

    # two seeds, clearly apart: two tiers
    assert rank_groups({"a": [10.0, 10.2], "b": [0.0, 0.1]}) == [["a"], ["b"]]
    # a has a third seed: only the seeds both have are paired
    assert rank_groups({"a": [10.0, 10.2, 10.1], "b": [0.0, 0.1]}) == [["a"], ["b"]]
    # differences 1, 2, 3: the 95% interval of the mean difference (2 +- 2.48) contains 0, the 50% one does not
    per_seed = {"a": [2.0, 3.0, 4.0], "b": [1.0, 1.0, 1.0]}
    assert rank_groups(per_seed) == [["a", "b"]]
    assert rank_groups(per_seed, level=0.5) == [["a"], ["b"]]
    # a difference whose interval excludes 0 but contains 1 (1 +- 0.25) still splits
    assert rank_groups({"a": [1.9, 2.0, 2.1], "b": [1.0, 1.0, 1.0]}) == [["a"], ["b"]]


def test_task_matrix_keeps_fractions_records_and_reads_as_a_frame():
    m = TaskMatrix(["t0", "t1"], True, [[0, 0], [0, 0]])  # integer values given: still a float matrix
    m.record(1, 0, 0.25)
    assert m.values[1, 0] == 0.25 and m.values.dtype == float
    fresh = TaskMatrix(["t0", "t1"])
    assert np.isnan(fresh.values).all() and fresh.values.shape == (2, 2)
    with pytest.raises(ValueError, match="values must be 2x2"):
        TaskMatrix(["t0", "t1"], True, np.zeros((2, 3)))
    frame = m.as_frame()
    assert list(frame.index) == ["after t0", "after t1"] and list(frame.columns) == ["t0", "t1"]
    assert frame.loc["after t1", "t0"] == 0.25
    again = TaskMatrix.from_dict({"task_names": ["t0", "t1"], "higher_is_better": False, "values": [[1, 2], [3, 4]]})
    again.record(0, 1, 0.5)
    assert again.values[0, 1] == 0.5 and not again.higher_is_better


def test_task_matrix_average_reads_only_the_tasks_seen_and_one_task_forgets_nothing():
    m = TaskMatrix(["t0", "t1", "t2"], True, [[1.0, 100.0, 100.0], [2.0, 4.0, 100.0], [3.0, 5.0, 7.0]])
    assert m.average(0) == 1.0 and m.average(1) == 3.0 and m.average() == 5.0  # upper triangle never read
    one = TaskMatrix(["t0"], True, [[-5.0]])
    assert one.forgetting() == 0.0
