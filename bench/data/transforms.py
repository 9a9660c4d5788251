"""The transforms: a method's training augmentation, and evaluation's resize and crop."""

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from bench.data.split import Split
from bench.errors import BenchError

INTERPOLATIONS = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


@dataclass(frozen=True)
class Augmentation:
    """A method's training augmentation: a random resized crop (I-JEPA's only augmentation), a
    horizontal flip and colour jitter (brightness, contrast, saturation; 3-channel data only) for
    the methods whose official code uses them."""

    crop_scale: tuple[float, float] = (0.3, 1.0)
    hflip: bool = False
    interpolation: str = "bilinear"
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise BenchError(f"interpolation {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise BenchError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if self.color_jitter < 0:
            raise BenchError(f"color_jitter must be >= 0, got {self.color_jitter}")


def train_transform(data: Split, size: int, aug: Augmentation = Augmentation()) -> v2.Compose:
    ops = [v2.ToImage()]
    if aug.color_jitter and data.channels == 3:  # BEiT's order: jitter, flip, crop
        ops.append(v2.ColorJitter(aug.color_jitter, aug.color_jitter, aug.color_jitter))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    interpolation = INTERPOLATIONS[aug.interpolation]
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
