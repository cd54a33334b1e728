import numpy as np
import pytest
import torch

from lmvae_core.data import (DataConfig, DataMissingError, binarize_dynamic, binarize_static, load_images, load_split,
                             to_rgb32)
from lmvae_core.data.idx import write_idx, write_mnist_root


def test_sample_is_real_mnist():
    x, y = load_images("mnist", "train", source="sample")
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28)
    assert set(y.tolist()) == set(range(10))
    # MNIST's well-known pixel mean (0.1307) is a fingerprint of real digits, not noise
    assert abs(x.float().mean().item() / 255 - 0.1307) < 0.01


def test_torchvision_loader_reads_idx_files_a_test_writes(tmp_path):
    x, y = load_images("mnist", "test", source="sample")
    write_mnist_root(tmp_path, "MNIST", (x[:300, 0].numpy(), y[:300].numpy()), (x[:200, 0].numpy(), y[:200].numpy()))
    xt, yt = load_images("mnist", "test", root=tmp_path, source="torchvision")
    assert torch.equal(xt, x[:200]) and torch.equal(yt, y[:200])
    xtr, _ = load_images("mnist", "train", root=tmp_path)
    assert xtr.shape == (300, 1, 28, 28)


def test_gzipped_idx_files_are_read_too(tmp_path):
    x, y = load_images("kmnist", "test", source="sample")
    raw = tmp_path / "KMNIST" / "raw"
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:50, 0].numpy(), compress=True)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y[:50].numpy(), compress=True)
    xt, yt = load_images("kmnist", "train", root=tmp_path, source="torchvision")
    assert torch.equal(xt, x[:50]) and torch.equal(yt, y[:50])


def test_missing_data_offline_names_dataset_files_and_root(tmp_path):
    with pytest.raises(DataMissingError) as err:
        load_images("fashion", "train", root=tmp_path, source="torchvision", download=False)
    msg = str(err.value)
    assert "fashion" in msg and "FashionMNIST/raw/train-images-idx3-ubyte" in msg and str(tmp_path) in msg
    assert "LMVAE_DATA" in msg


def test_npz_source_and_data_root_from_environment(tmp_path, monkeypatch):
    x, y = load_images("cifar10", "test", source="sample")
    (tmp_path / "npz").mkdir()
    np.savez_compressed(tmp_path / "npz" / "cifar10-test.npz", images=x.permute(0, 2, 3, 1).numpy(), labels=y.numpy())
    monkeypatch.setenv("LMVAE_DATA", str(tmp_path))
    x2, y2 = load_images("cifar10", "test")  # auto: no torchvision files, falls back to npz
    assert x2.shape == (100, 3, 32, 32) and torch.equal(x2, x) and torch.equal(y2, y)


def test_unknown_dataset_and_bad_split():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_images("imagenet")
    with pytest.raises(ValueError, match="split"):
        load_images("mnist", "valid", source="sample")


def test_omniglot_sample_is_inverted_to_strokes_on():
    x, _ = load_images("omniglot", "train", source="sample")
    assert x.float().mean() < 60  # strokes are a minority of pixels once inverted


def test_binarisation(mnist_sample):
    x = mnist_sample.x[:200]
    g = torch.Generator().manual_seed(0)
    b = binarize_dynamic(x, g)
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert abs(b.mean().item() - x.mean().item()) < 0.01
    assert not torch.equal(binarize_dynamic(x, g), b)  # a fresh draw each call
    assert torch.equal(binarize_static(x, seed=3), binarize_static(x, seed=3))


def test_resize_and_rgb(mnist_sample):
    """Ground truth of a resize to 32x32: a constant image stays that constant, a digit keeps its mean intensity
    (ink is not lost or made up, to 2%) and its centre of mass (as a share of the side, to 1%), and the three
    channels are the grey image."""
    x = mnist_sample.x[:4]
    y = to_rgb32(x)
    assert y.shape == (4, 3, 32, 32) and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 0], y[:, 2])
    assert torch.allclose(to_rgb32(torch.full((2, 1, 28, 28), 0.7)), torch.full((2, 3, 32, 32), 0.7), atol=1e-6)
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), rtol=0.02)

    def centre(im):  # centre of mass of [N, H, W] images as a share of the side: rows, columns
        pos = (torch.arange(im.shape[-1]) + 0.5) / im.shape[-1]
        mass = im.sum((1, 2))
        return (im.sum(2) * pos).sum(1) / mass, (im.sum(1) * pos).sum(1) / mass

    for a, b in zip(centre(x[:, 0]), centre(y[:, 0])):
        assert torch.allclose(a, b, atol=0.01)


def test_limits_are_class_balanced():
    s = load_split("mnist", "train", DataConfig(source="sample", train_limit=100))
    assert len(s) == 100 and torch.bincount(s.y).tolist() == [10] * 10


def test_dynamic_binarisation_draws_each_pixel_with_its_intensity_as_probability():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    x = p.repeat(100_000, 1)
    b = binarize_dynamic(x, torch.Generator().manual_seed(1))
    assert b.dtype == x.dtype and set(b.unique().tolist()) <= {0.0, 1.0}
    freq = b.mean(0)
    assert freq[0] == 0 and freq[4] == 1  # never above an intensity of 0, always at 1
    sd = (p * (1 - p) / x.shape[0]).sqrt()
    assert ((freq - p).abs() <= 4 * sd + 1e-9).all(), freq
    # the same generator state gives the same draw
    assert torch.equal(binarize_dynamic(x[:10], torch.Generator().manual_seed(5)),
                       binarize_dynamic(x[:10], torch.Generator().manual_seed(5)))
