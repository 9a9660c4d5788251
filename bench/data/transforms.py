"""The transforms: a method's training augmentation, and evaluation's resize and crop."""

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from bench.data.split import Split
from core.method import INTERPOLATIONS, Augmentation

# torchvision's mode for each of core.method's interpolations
MODES = {name: v2.InterpolationMode[name.upper()] for name in INTERPOLATIONS}


def train_transform(data: Split, size: int, aug: Augmentation = Augmentation()) -> v2.Compose:
    ops = [v2.ToImage()]
    if aug.color_jitter and data.channels == 3:  # BEiT's order: jitter, flip, crop
        ops.append(v2.ColorJitter(aug.color_jitter, aug.color_jitter, aug.color_jitter))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    interpolation = MODES[aug.interpolation]
    ops.append(v2.RandomResizedCrop(size, scale=aug.crop_scale, interpolation=interpolation, antialias=True))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
    return v2.Compose(ops)


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

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.data.dataset[i]
        return self.transform(image), label
