import pytest
import torch

from lmvae_core.data import (DataConfig, TaskFreeStream, batch_indices, class_split_stream, domain_stream, load_split,
                             permuted_stream)
from lmvae_core.data.streams import Split, Task, TaskStream, data_config, stream_from_tasks


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


# What mutation testing of data/streams.py found untested (benchmarks/mutants.py, issue 36).

def test_balanced_head_keeps_the_first_rows_of_each_class_in_dataset_order():
    """Ground truth written out by hand: a limit keeps, per class, the first limit // n_classes rows (at least
    one), returned as sorted row indices; no limit, or a limit of at least the rows, keeps every row. Called
    directly: load_split's lru_cache would hide the helper behind results cached earlier in the process."""
    from lmvae_core.data.streams import _balanced_head

    y = torch.tensor([2, 0, 2, 1, 0, 2, 0, 1, 2, 0])  # class 0 at 1, 4, 6, 9; 1 at 3, 7; 2 at 0, 2, 5, 8
    assert _balanced_head(y, None).tolist() == list(range(10))
    assert _balanced_head(y, 10).tolist() == list(range(10))  # equal to the rows: all, not 3 per class
    assert _balanced_head(y, 25).tolist() == list(range(10))
    assert _balanced_head(y, 6).tolist() == [0, 1, 2, 3, 4, 7]  # 2 per class
    assert _balanced_head(y, 7).tolist() == [0, 1, 2, 3, 4, 7]  # 7 // 3 = 2 per class
    assert _balanced_head(y, 9).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # 3 per class; class 1 has only 2
    assert _balanced_head(y, 2).tolist() == [0, 1, 3]  # fewer than the classes: still one per class


def test_batch_indices_order_blocks_and_errors():
    """batch_indices shuffles by default, with the given generator's permutation (the same as torch.randperm
    under that seed); shuffle=False is range order; block > 1 yields [block, batch_size] groups that are exactly
    the block=1 batches, then the rest one by one; a batch size below 1 is refused, 1 is accepted."""
    n, bs = 1000, 64
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat(list(batch_indices(n, bs, generator=torch.Generator().manual_seed(3)))), perm)
    assert torch.equal(torch.cat(list(batch_indices(n, bs, shuffle=False))), torch.arange(n))
    assert not torch.equal(torch.cat(list(batch_indices(n, bs))), torch.arange(n))  # shuffled by default
    plain = list(batch_indices(n, bs, generator=torch.Generator().manual_seed(3)))
    for block in (2, 3):
        got = list(batch_indices(n, bs, generator=torch.Generator().manual_seed(3), block=block))
        full = n // (block * bs)  # 7 blocks of 2, 5 blocks of 3
        assert [tuple(g.shape) for g in got[:full]] == [(block, bs)] * full, block
        assert [tuple(g.shape) for g in got[full:]] == [tuple(p.shape) for p in plain[full * block:]], block
        flat = [row for g in got[:full] for row in g] + got[full:]
        assert len(flat) == len(plain) and all(torch.equal(a, b) for a, b in zip(flat, plain)), block
    assert [len(i) for i in batch_indices(5, 1, shuffle=False)] == [1] * 5
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        next(batch_indices(10, 0))


def test_task_free_stream_order_is_the_seeded_class_order():
    """Ground truth rebuilt here: the order is, class by class in class_order (default: sorted labels), that
    class's rows permuted by one generator seeded with `seed` (default 0); batches of batch_size (default 64);
    batches_from(k) is the stream without its first k batches; a batch size of 0 is refused."""
    y = torch.tensor([0, 1, 2] * 50)
    data = Split(torch.arange(150.0).view(150, 1, 1, 1), y)

    def expected(order, seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([(y == c).nonzero().squeeze(1)[torch.randperm(50, generator=g)] for c in order])

    s = TaskFreeStream(data)
    assert torch.equal(s.order, expected([0, 1, 2], 0)) and len(s) == 3 and s.batch_size == 64
    s2 = TaskFreeStream(data, 16, class_order=[2, 0, 1], seed=7)
    assert torch.equal(s2.order, expected([2, 0, 1], 7)) and len(s2) == 10
    batches = list(s2)
    assert torch.equal(torch.cat([b[0] for b in batches]).flatten(), s2.order.float())
    assert torch.equal(torch.cat([b[1] for b in batches]), y[s2.order])
    later = list(s2.batches_from(4))
    assert len(later) == 6 and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                   for a, b in zip(later, batches[4:]))
    assert len(TaskFreeStream(data, 1)) == 150
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        TaskFreeStream(data, 0)


def test_class_sorted_stream_takes_classes_in_the_order_tasks_bring_them():
    """Two task splits, {7, 5} then {7, 2}: the classes come as 5, 7, 2 (sorted within the first task, then the
    second's new one; not all sorted), each image exactly once, with the batch size and seed given (defaults 64
    and 0)."""
    from lmvae_core.data.streams import class_sorted_stream

    a = Split(torch.arange(0.0, 40).view(40, 1, 1, 1), torch.tensor([7, 5] * 20))
    b = Split(torch.arange(40.0, 70).view(30, 1, 1, 1), torch.tensor([2, 7, 2] * 10))
    s = class_sorted_stream([a, b], batch_size=8, seed=4)
    joint = Split.concat([a, b])
    assert torch.equal(s.order, TaskFreeStream(joint, 8, class_order=[5, 7, 2], seed=4).order)
    labels = torch.cat([yb for _, yb in s])
    assert labels.tolist() == [5] * 20 + [7] * 30 + [2] * 20 and len(s) == 9
    assert sorted(torch.cat([xb for xb, _ in s]).flatten().tolist()) == list(range(70))
    d = class_sorted_stream([a, b])
    assert d.batch_size == 64 and torch.equal(d.order, TaskFreeStream(joint, class_order=[5, 7, 2], seed=0).order)


def test_stream_from_tasks_and_joint_train():
    """Concatenated streams keep every task in order under the name 'a+b'; joint_train is every task's train
    split, images and labels, one after the other."""
    def task(name, lo):
        tr = Split(torch.full((3, 1, 2, 2), float(lo)), torch.tensor([lo] * 3))
        return Task(name, tr, Split(tr.x[:1], tr.y[:1]))

    sa, sb = TaskStream("a", [task("t0", 0), task("t1", 1)]), TaskStream("b", [task("t2", 2)])
    out = stream_from_tasks([sa, sb])
    assert out.name == "a+b" and out.names == ["t0", "t1", "t2"] and len(sa) == 2
    joint = out.joint_train()
    assert joint.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(joint.x[:, 0, 0, 0], joint.y.float())


def test_data_config_of_a_profile():
    """smoke reads the committed sample, other profiles 'auto'; root and device become strings (no root: None)
    and overrides pass through."""
    from pathlib import Path

    assert data_config("smoke", torch.device("cpu")) == DataConfig(source="sample", root=None, device="cpu")
    cfg = data_config("quick", "cpu", root=Path("/data/x"), train_limit=5)
    assert cfg == DataConfig(source="auto", root="/data/x", device="cpu", train_limit=5)
    assert data_config("paper", torch.device("cpu"), root="").root is None
    assert data_config("quick", "cuda:1").device == "cuda:1"  # the run's device, not DataConfig's default


def test_stream_names_classes_and_defaults(sample_cfg):
    """The names, classes and domains every notebook prints, and the builders' defaults (MNIST; 5 groups;
    5 permutations drawn from seed 0, the first the identity); groups must divide the 10 classes."""
    s = class_split_stream(cfg=sample_cfg)
    assert s.name == "split-mnist-5" and s.names == ["mnist:0-1", "mnist:2-3", "mnist:4-5", "mnist:6-7", "mnist:8-9"]
    assert {t.domain for t in s} == {"mnist"}
    one = class_split_stream("mnist", 1, sample_cfg)
    assert one[0].classes == tuple(range(10)) and one.names == ["mnist:0-1-2-3-4-5-6-7-8-9"]
    with pytest.raises(ValueError, match="groups=3 does not divide 10"):
        class_split_stream("mnist", 3, sample_cfg)
    d = domain_stream(("mnist", "fashion"), sample_cfg)
    assert d.name == "mnist->fashion" and [(t.classes, t.domain) for t in d] == [(tuple(range(10)), "mnist"),
                                                                               (tuple(range(10)), "fashion")]
    p = permuted_stream(cfg=sample_cfg)
    assert p.name == "permuted-mnist-5" and p.names == [f"perm-{t}" for t in range(5)]
    assert [(t.classes, t.domain) for t in p] == [(tuple(range(10)), f"perm-{t}") for t in range(5)]
    base = load_split("mnist", "train", sample_cfg)
    g = torch.Generator().manual_seed(0)
    for t in range(1, 5):
        perm = torch.randperm(28 * 28, generator=g)
        assert torch.equal(p[t].train.x, base.x.flatten(1)[:, perm].view(-1, 1, 28, 28)), t
        assert torch.equal(p[t].train.y, base.y) and torch.equal(p[t].test.y, p[0].test.y), t


def test_domain_stream_refuses_shapes_that_differ_only_in_channels():
    """MNIST and CIFAR-10 both resized to 28x28 are [1, 28, 28] against [3, 28, 28]: not one shape."""
    with pytest.raises(ValueError, match=r"datasets \['mnist', 'cifar10'\] have different image shapes"):
        domain_stream(("mnist", "cifar10"), DataConfig(source="sample", size=28, test_limit=20, train_limit=20))
