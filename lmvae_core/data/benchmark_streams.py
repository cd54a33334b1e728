"""The four streams of the benchmark (notebook 05), with fixed evaluation sets.

A `BenchStream` holds the tasks of one stream (training images in [0,1], a test subset per task binarised
once with a fixed seed, and global labels) and whether it is online (task-free: one pass over the
stream, tasks = equal consecutive chunks of the class-sorted order).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .preprocess import binarize_fixed
from .streams import DataConfig, Split, TaskFreeStream, class_sorted_stream, class_split_stream, domain_stream

# the datasets each stream is cut from (build_stream below)
STREAM_DATASETS = {"split_mnist": ("mnist",), "taskfree_mnist": ("mnist",), "split_fashion": ("fashion",),
                   "mnist_fashion": ("mnist", "fashion")}
STREAM_TITLES = {"split_mnist": "Split MNIST (5x2)", "mnist_fashion": "MNIST -> Fashion-MNIST",
                 "split_fashion": "Split Fashion-MNIST (5x2)", "taskfree_mnist": "Task-free class-sorted MNIST"}


@dataclass
class BenchTask:
    name: str
    train_x: torch.Tensor  # [N, 1, 28, 28] in [0,1]
    train_y: torch.Tensor  # global labels
    test_x: torch.Tensor  # binarised once (fixed seed): the log-likelihood test set
    test_grey: torch.Tensor  # the same images in [0,1] (FID, fitting capacity)
    test_y: torch.Tensor


@dataclass
class BenchStream:
    name: str
    tasks: list[BenchTask]
    n_classes: int
    online: bool = False  # task-free: one pass over the stream, tasks = equal consecutive chunks
    batch_size: int = 64
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def joint_train(self) -> Split:
        return Split(torch.cat([t.train_x for t in self.tasks]), torch.cat([t.train_y for t in self.tasks]))

    def union_test(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.cat([t.test_x for t in self.tasks]), torch.cat([t.test_grey for t in self.tasks]),
                torch.cat([t.test_y for t in self.tasks]))

    def task_free(self) -> TaskFreeStream:
        """The same images as a class-sorted stream of batches, classes in task order."""
        return class_sorted_stream([Split(t.train_x, t.train_y) for t in self.tasks], self.batch_size, self.seed)

    def boundaries(self) -> list[int]:
        return np.cumsum([len(t.train_x) for t in self.tasks]).tolist()


def _task(name, train: Split, test: Split, offset: int = 0) -> BenchTask:
    return BenchTask(name, train.x, train.y + offset, binarize_fixed(test.x), test.x, test.y + offset)


def _chunked(stream: BenchStream) -> BenchStream:
    """No task labels: the class-sorted stream cut into 5 equal consecutive chunks (position only), every
    image seen once. Each class's test images belong to the chunk that holds most of its training images, so
    the union of the chunks' test sets is the stream's test set, each image once. On a class-balanced subset
    the chunks are exactly the 2-class stages; on full MNIST (unequal class counts) a chunk's training images
    straddle up to 3 classes while its test set keeps the 2 classes it holds most of."""
    order, joint = stream.task_free().order, stream.joint_train()
    tests = Split.concat([Split(task.test_grey, task.test_y) for task in stream.tasks])
    parts = torch.tensor_split(order, 5)
    classes = torch.unique(joint.y)
    counts = torch.stack([torch.bincount(joint.y[idx], minlength=int(classes.max()) + 1)[classes] for idx in parts])
    owner = counts.argmax(0)  # per class: the chunk with most of its training images
    new = []
    for i, idx in enumerate(parts):
        seen = torch.unique(joint.y[idx]).tolist()
        owned = classes[owner == i].tolist() or [int(classes[counts[i].argmax()])]  # a chunk owns >= 1 class
        te = tests.where(owned)
        label = "-".join(map(str, seen)) + ("" if owned == seen else f"; test {'-'.join(map(str, owned))}")
        new.append(BenchTask(f"chunk {i} ({label})", joint.x[idx], joint.y[idx], binarize_fixed(te.x), te.x, te.y))
    return BenchStream(stream.name, new, stream.n_classes, online=True, batch_size=stream.batch_size,
                       seed=stream.seed)


def build_stream(name: str, s: dict, data: DataConfig, batch_size: int = 64, seed: int = 0) -> BenchStream:
    """One of the four benchmark streams, with s['train_per_task'] / s['test_per_task'] images per task
    (class-balanced heads of the datasets)."""
    per_tr, per_te = s["train_per_task"], s["test_per_task"]
    if name in ("split_mnist", "split_fashion", "taskfree_mnist"):
        dataset = "fashion" if name == "split_fashion" else "mnist"
        cfg = DataConfig(**(asdict(data) | {"train_limit": per_tr and per_tr * 5, "test_limit": per_te * 5}))
        tasks = [_task(t.name, t.train, t.test) for t in class_split_stream(dataset, 5, cfg)]
        stream = BenchStream(name, tasks, 10, batch_size=batch_size, seed=seed)
        return _chunked(stream) if name == "taskfree_mnist" else stream
    if name == "mnist_fashion":
        cfg = DataConfig(**(asdict(data) | {"train_limit": per_tr, "test_limit": per_te}))
        ds = domain_stream(("mnist", "fashion"), cfg)
        tasks = [_task(t.name, t.train, t.test, offset=10 * i) for i, t in enumerate(ds)]
        return BenchStream(name, tasks, 20, batch_size=batch_size, seed=seed)
    raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAM_TITLES)}")
