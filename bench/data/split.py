"""What every dataset is: a `Split` of (image, label) pairs, found by name in `DATASETS`, with a scan in
`SCANS` (the checks made before anything is launched). The datasets register themselves in
bench/data/fashion_mnist.py, imagefolder.py and synthetic.py; bench/data/datasets.py loads them."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch.utils.data import Dataset

from core.registry import Registry


class DataSpec(Protocol):
    """What a dataset reads of a run's `data` section (bench.config's DataSpec)."""

    name: str
    root: str | None
    subset: str | None
    image_size: int


DATASETS: Registry = Registry("dataset")
SCANS: Registry[Callable[[DataSpec], int]] = Registry("dataset scan")  # name -> checks, train split size


@dataclass
class Split:
    """One split: a dataset of (image, label) pairs and what a model needs to know about it."""

    dataset: Dataset
    num_classes: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_memory: bool  # images already a uint8 tensor (N, C, H, W): no decoding needed

    def __len__(self) -> int:
        return len(self.dataset)


class TensorImages(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels  # (N, C, H, W) uint8, (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def take(split: Split, idx: list[int]) -> Split:
    """`split` restricted to the images at `idx`, in that order."""
    if split.in_memory:
        ds = TensorImages(split.dataset.images[idx], split.dataset.labels[idx])
    else:
        ds = torch.utils.data.Subset(split.dataset, list(idx))
    return replace(split, dataset=ds)
