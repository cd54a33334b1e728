"""Task streams: class splits, domain sequences, permuted MNIST and a task-free class-sorted stream.

A task holds its train and test images as device tensors; training draws batches as index slices.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ..runtime import uses_sample
from .datasets import canonical_name, load_images
from .preprocess import prepare


@dataclass
class Split:
    """Images (float [N, C, H, W] in [0,1], on the device) with their labels."""
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx: torch.Tensor) -> "Split":
        return Split(self.x[idx], self.y[idx])

    def where(self, classes: Sequence[int]) -> "Split":
        keep = torch.isin(self.y, torch.as_tensor(list(classes), device=self.y.device))
        return self.subset(keep.nonzero().squeeze(1))

    @staticmethod
    def concat(parts: Sequence["Split"]) -> "Split":
        return Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


@dataclass
class Task:
    name: str
    train: Split
    test: Split
    classes: tuple[int, ...] = ()
    domain: str = ""


@dataclass
class TaskStream:
    """An ordered sequence of tasks with the helpers every continual-learning notebook needs."""
    name: str
    tasks: list[Task] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, i: int) -> Task:
        return self.tasks[i]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def cumulative_test(self, t: int) -> Split:
        """The union of the test sets of tasks 0..t."""
        return Split.concat([task.test for task in self.tasks[: t + 1]])

    def joint_train(self) -> Split:
        return Split.concat([task.train for task in self.tasks])


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are shaped; shared by every stream builder."""
    source: str = "auto"  # 'auto' | 'torchvision' | 'npz' | 'sample'
    root: str | None = None
    device: str = "cpu"
    size: int | None = None  # resize to size x size (None keeps 28x28 / 32x32)
    rgb: bool = False  # replicate grey images to 3 channels (3x32x32 models)
    train_limit: int | None = None  # keep the first N (class-balanced) training images, for fast profiles
    test_limit: int | None = None
    download: bool | None = None  # None: on unless LMVAE_OFFLINE=1 or a notebook's offline=True


def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x's rows at idx, shaped [*idx.shape, *x.shape[1:]]: x[idx] through index_select, which copies whole rows
    (on 2 CPU threads, 23 against 56 us for a batch of 128 MNIST images out of 60,000)."""
    return x.index_select(0, idx.reshape(-1)).view(*idx.shape, *x.shape[1:])


def batch_indices(n: int, batch_size: int, *, shuffle: bool = True, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu", drop_last: bool = False, block: int = 1) -> Iterator[torch.Tensor]:
    """Index tensors over range(n), on the device, shuffled by the given generator.

    block > 1 yields `block` consecutive full batches at once as one [block, batch_size] tensor (views of the
    same permutation, so the batches are those of block=1), then the batches left over one by one."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = (torch.randperm(n, generator=generator, device="cpu").to(device) if shuffle
             else torch.arange(n, device=device))
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    start, span = 0, block * batch_size
    if block > 1:
        for start in range(0, n - n % span, span):
            yield order[start:start + span].view(block, batch_size)
        start = n - n % span
    for start in range(start, stop, batch_size):
        yield order[start:start + batch_size]


def _balanced_head(y: torch.Tensor, limit: int | None) -> torch.Tensor:
    if limit is None or limit >= len(y):
        return torch.arange(len(y))
    classes = torch.unique(y)
    per_class = max(1, limit // len(classes))
    keep = torch.cat([(y == c).nonzero().squeeze(1)[:per_class] for c in classes])
    return keep.sort().values


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, split: str, cfg: DataConfig) -> Split:
    images, labels = load_images(name, split, cfg.root, cfg.source, cfg.download)
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    keep = _balanced_head(labels, limit)
    device = torch.device(cfg.device)
    x = prepare(images[keep], device, size=cfg.size, rgb=cfg.rgb)
    return Split(x, labels[keep].to(device))


def load_split(name: str, split: str, cfg: DataConfig = DataConfig()) -> Split:
    """A dataset split on the device; loaded once per process and configuration."""
    return _load_cached(canonical_name(name), split, cfg)


def class_split_stream(dataset: str = "mnist", groups: Sequence[Sequence[int]] | int = 5,
                       cfg: DataConfig = DataConfig()) -> TaskStream:
    """Split MNIST-style stream. groups=5 gives 5 tasks of 2 classes, 10 gives 10 tasks of one class."""
    if isinstance(groups, int):
        if 10 % groups:
            raise ValueError(f"groups={groups} does not divide 10 classes evenly; pass explicit class groups")
        size = 10 // groups
        groups = [tuple(range(i * size, (i + 1) * size)) for i in range(groups)]
    train, test = load_split(dataset, "train", cfg), load_split(dataset, "test", cfg)
    key = canonical_name(dataset)
    tasks = [Task(f"{key}:{'-'.join(map(str, g))}", train.where(g), test.where(g), tuple(g), key) for g in groups]
    return TaskStream(f"split-{key}-{len(tasks)}", tasks)


def domain_stream(datasets: Sequence[str] = ("mnist", "fashion"), cfg: DataConfig = DataConfig()) -> TaskStream:
    """One task per dataset (MNIST -> Fashion-MNIST -> ...); images must share one shape (use size/rgb)."""
    tasks = []
    for name in datasets:
        key = canonical_name(name)
        train, test = load_split(key, "train", cfg), load_split(key, "test", cfg)
        tasks.append(Task(key, train, test, tuple(torch.unique(train.y).tolist()), key))
    shapes = {t.train.x.shape[1:] for t in tasks}
    if len(shapes) > 1:
        raise ValueError(f"datasets {list(datasets)} have different image shapes {shapes}; set DataConfig(size=32, rgb=True)")
    return TaskStream("->".join(t.name for t in tasks), tasks)


def permuted_stream(n_tasks: int = 5, dataset: str = "mnist", seed: int = 0,
                    cfg: DataConfig = DataConfig()) -> TaskStream:
    """Permuted MNIST: task 0 is the original, task t applies a fixed pixel permutation."""
    train, test = load_split(dataset, "train", cfg), load_split(dataset, "test", cfg)
    shape = train.x.shape[1:]
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for t in range(n_tasks):
        perm = torch.arange(shape.numel()) if t == 0 else torch.randperm(shape.numel(), generator=g)
        perm = perm.to(train.x.device)

        def permute(s: Split) -> Split:
            return Split(s.x.flatten(1)[:, perm].view(-1, *shape), s.y)

        tasks.append(Task(f"perm-{t}", permute(train), permute(test), tuple(range(10)), f"perm-{t}"))
    return TaskStream(f"permuted-{canonical_name(dataset)}-{n_tasks}", tasks)


class TaskFreeStream:
    """A task-free stream: fixed-size batches in class-sorted order, no task labels, no boundaries.

    Iterating yields (x, y) batches; y is for evaluation only.
    """

    def __init__(self, data: Split, batch_size: int = 64, class_order: Sequence[int] | None = None,
                 seed: int = 0):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data, self.batch_size = data, batch_size
        order = list(class_order) if class_order is not None else torch.unique(data.y).tolist()
        g = torch.Generator().manual_seed(seed)
        chunks = []
        for c in order:
            idx = (data.y == c).nonzero().squeeze(1).cpu()
            chunks.append(idx[torch.randperm(len(idx), generator=g)])
        self.order = torch.cat(chunks).to(data.x.device)

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches_from(0)

    def batches_from(self, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches from batch `first` on (0-based), the earlier ones skipped without being gathered: the
        order is fixed by the seed, so a resumed run continues exactly where it stopped."""
        for start in range(first * self.batch_size, len(self.order), self.batch_size):
            idx = self.order[start:start + self.batch_size]
            yield take_rows(self.data.x, idx), take_rows(self.data.y, idx)


def class_sorted_stream(parts: Sequence[Split], batch_size: int = 64, seed: int = 0) -> TaskFreeStream:
    """The images of several task splits as one class-sorted stream of batches, classes in the order the
    tasks bring them (each image once)."""
    classes: list[int] = []
    for p in parts:
        classes += [c for c in torch.unique(p.y).tolist() if c not in classes]
    return TaskFreeStream(Split.concat(parts), batch_size, class_order=classes, seed=seed)


def stream_from_tasks(tasks: Sequence[TaskStream]) -> TaskStream:
    """Concatenate streams (e.g. split MNIST then split Fashion-MNIST)."""
    out = TaskStream("+".join(s.name for s in tasks))
    for s in tasks:
        out.tasks.extend(s.tasks)
    return out


def data_config(profile: str, device: torch.device | str, root: str | Path | None = None, **overrides) -> DataConfig:
    """The smoke and paper-shape profiles read the committed sample; quick and paper read full data from the
    data root."""
    source = "sample" if uses_sample(profile) else "auto"
    return DataConfig(source=source, root=str(root) if root else None, device=str(device), **overrides)
