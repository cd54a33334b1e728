import torch

from lmvae_core.data import (TaskFreeStream, batch_indices, class_split_stream, domain_stream, load_split,
                             permuted_stream)


def test_split_mnist_5x2_and_10x1(sample_cfg):
    s = class_split_stream("mnist", 5, sample_cfg)
    assert len(s) == 5
    for t, task in enumerate(s):
        assert set(task.train.y.unique().tolist()) == {2 * t, 2 * t + 1} == set(task.test.y.unique().tolist())
    s10 = class_split_stream("mnist", 10, sample_cfg)
    assert [t.classes for t in s10] == [(c,) for c in range(10)]
    cum = s10.cumulative_test(2)
    assert set(cum.y.unique().tolist()) == {0, 1, 2}


def test_domain_stream_mnist_to_fashion(sample_cfg):
    s = domain_stream(("mnist", "fashion"), sample_cfg)
    assert s.names == ["mnist", "fashion"]
    assert s[0].train.x.shape[1:] == s[1].train.x.shape[1:] == (1, 28, 28)
    assert not torch.equal(s[0].test.x[:10], s[1].test.x[:10])


def test_permuted_stream_permutes_pixels(sample_cfg):
    s = permuted_stream(3, "mnist", seed=0, cfg=sample_cfg)
    base = s[0].test.x
    assert torch.equal(base, load_split("mnist", "test", sample_cfg).x)
    p1 = s[1].test.x
    assert not torch.equal(p1, base)
    # a permutation keeps every image's pixel multiset
    assert torch.equal(p1.flatten(1).sort(1).values, base.flatten(1).sort(1).values)


def test_task_free_stream_is_class_sorted_fixed_size(mnist_sample):
    stream = TaskFreeStream(mnist_sample, batch_size=64)
    labels = torch.cat([y for _, y in stream])
    assert len(labels) == len(mnist_sample)
    assert torch.all(labels[1:] >= labels[:-1])
    sizes = [x.shape[0] for x, _ in stream]
    assert all(n == 64 for n in sizes[:-1]) and len(sizes) == len(stream)


def test_batch_indices_cover_everything_once():
    g = torch.Generator().manual_seed(0)
    idx = torch.cat(list(batch_indices(1000, 128, generator=g)))
    assert torch.equal(idx.sort().values, torch.arange(1000))
    assert sum(1 for _ in batch_indices(1000, 128, drop_last=True)) == 7


def test_take_rows_is_indexing_by_rows():
    from lmvae_core.data.streams import take_rows

    x = torch.randn(50, 1, 4, 4)
    idx = torch.randperm(50)[:12]
    assert torch.equal(take_rows(x, idx), x[idx])
    assert torch.equal(take_rows(x, idx.view(3, 4)), x[idx.view(3, 4)])  # a block of batches
    y = torch.arange(50)
    assert torch.equal(take_rows(y, idx), y[idx])


def test_class_split_tasks_test_on_the_test_split_only(sample_cfg):
    """Ground truth: each task's test rows are exactly the test split's rows of the task's classes, in the split's
    order (selected here with numpy, not Split.where), and none of them is among the task's training rows (the
    committed sample's train and test images are disjoint, checked below)."""
    import numpy as np

    train, test = load_split("mnist", "train", sample_cfg), load_split("mnist", "test", sample_cfg)
    train_rows = {bytes(r) for r in train.x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in test.x.flatten(1).numpy())  # the premise
    s = class_split_stream("mnist", 5, sample_cfg)
    for task in s:
        rows = np.flatnonzero(np.isin(test.y.numpy(), task.classes))
        assert len(rows) == 200  # 100 test images per class in the sample
        assert torch.equal(task.test.x, test.x[rows]) and torch.equal(task.test.y, test.y[rows]), task.name
        task_train = {bytes(r) for r in task.train.x.flatten(1).numpy()}
        assert not any(bytes(r) in task_train for r in task.test.x.flatten(1).numpy()), task.name
        # and the training rows are the training split's rows of these classes
        rows = np.flatnonzero(np.isin(train.y.numpy(), task.classes))
        assert torch.equal(task.train.x, train.x[rows]), task.name
