"""Evaluation's transform: resize (and centre-crop decoded files), normalise. Training's views are
bench/data/views.py's (drawn per image as numbers, applied with torchvision's kernels)."""

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from bench.data.split import Split


def eval_transform(data: Split, size: int) -> v2.Compose:
    resize = [] if data.in_memory else [v2.Resize(int(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    ops = [v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
    if data.in_memory:
        ops.insert(1, v2.Resize(size, antialias=True))
    return v2.Compose(ops)


class Transformed(Dataset):
    def __init__(self, data: Split, transform: v2.Compose) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], int]:
        image, label = self.data.dataset[i]
        return self.transform(image), label
