"""The feature classifier's training and cache (training/classifier.py); its use as FID features is in test_metrics."""
import torch

from lmvae_core.training.classifier import classifier_key, epochs_for, feature_classifier


def test_feature_classifier_learns_and_is_cached(sample_cfg):
    from lmvae_core.data import load_split

    tr, te = load_split("mnist", "train", sample_cfg), load_split("mnist", "test", sample_cfg)
    torch.manual_seed(0)
    clf = feature_classifier("mnist-sample", tr.x, tr.y, epochs=2)
    acc = (clf.predict(te.x) == te.y).float().mean().item()
    assert acc > 0.8
    again = feature_classifier("mnist-sample", tr.x, tr.y, epochs=2)
    assert torch.equal(again.embed(te.x[:5]), clf.embed(te.x[:5]))
    # real test digits sit closer to real training digits than to noise, in these features
    noise = torch.rand_like(te.x[:500])
    from lmvae_core.metrics import fid
    assert fid(clf, te.x[:500], tr.x[:500]) < fid(clf, noise, tr.x[:500])


def test_feature_classifier_key_does_not_depend_on_the_thread_count():
    """A notebook (2 threads) and its Dask workers (1 thread) must key one classifier the same way: a float32 sum
    as checksum did not (reduction order), and the workers retrained the MNIST classifier (issue 13's 05 run)."""
    from lmvae_core.training.classifier import classifier_key
    from lmvae_core.runtime import cpu_threads

    x = torch.rand(60000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    sample = x[:: 60000 // 97]
    with cpu_threads(1):
        one, float_one = classifier_key("mnist", x), float(sample.sum())
    with cpu_threads(2):
        two, float_two = classifier_key("mnist", x), float(sample.sum())
    assert one == two
    assert classifier_key("mnist", x + 1e-3) != one  # still a checksum of the data
    print("float32 sums under 1 and 2 threads:", float_one, float_two)


def test_epochs_for_reaches_the_image_passes_and_never_fewer_than_the_epochs():
    assert epochs_for(60_000, 3, 150_000) == 3  # 3 x 60,000 passes already exceed 150,000
    assert epochs_for(16_825, 3, 150_000) == 9  # ceil(150,000 / 16,825) = 9 (8.9)
    assert epochs_for(50_000, 3, 150_000) == 3  # exactly 150,000: no extra epoch
    assert epochs_for(1_000, 2) == 2 and epochs_for(0, 2, 10) == 10  # no passes asked; an empty set counts as 1


def test_classifier_key_names_the_data_and_the_training():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    key = classifier_key("mnist", x, epochs=5, seed=3)
    assert {k: key[k] for k in ("dataset", "n", "shape", "epochs", "seed")} == {
        "dataset": "mnist", "n": 2, "shape": [1, 4, 4], "epochs": 5, "seed": 3}
    assert len(key["checksum"]) == 16
    assert classifier_key("fashion", x, 5, 3) != key and classifier_key("mnist", x, 4, 3) != key
    assert classifier_key("mnist", x, 5, 2) != key
