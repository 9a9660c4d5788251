"""The transforms: a method's training augmentation, and evaluation's resize and crop."""

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from bench.data.split import Split
from core.method import INTERPOLATIONS, Augmentation, Crops, MultiCrop

# torchvision's mode for each of core.method's interpolations
MODES = {name: v2.InterpolationMode[name.upper()] for name in INTERPOLATIONS}


def train_transform(data: Split, size: int, aug: Augmentation = Augmentation()):
    """One view per image (a tensor), or a multi-crop's views (`MultiView`)."""
    if aug.multi_crop is not None:
        return MultiView(data, size, aug.multi_crop)
    ops = [v2.ToImage()]
    if aug.color_jitter and data.channels == 3:  # BEiT's order: jitter, flip, crop
        ops.append(v2.ColorJitter(aug.color_jitter, aug.color_jitter, aug.color_jitter))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    interpolation = MODES[aug.interpolation]
    ops.append(v2.RandomResizedCrop(size, scale=aug.crop_scale, interpolation=interpolation, antialias=True))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
    return v2.Compose(ops)


def view_transform(data: Split, size: int, crops: Crops, mc: MultiCrop) -> v2.Compose:
    """One view of a multi-crop: crop, flip, colour jitter, grayscale, blur, solarise, normalise (the
    order of LeJEPA's README); the blur kernel is the odd size nearest a tenth of the view (at least 3)."""
    kernel = max(3, 2 * round(size / 20) + 1)
    ops = [
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=crops.scale, interpolation=MODES[mc.interpolation], antialias=True),
        v2.RandomHorizontalFlip(mc.hflip),
        v2.RandomApply([v2.ColorJitter(*mc.jitter)], p=mc.jitter_prob),
    ]
    if data.channels == 3:
        ops.append(v2.RandomGrayscale(mc.grayscale))
    ops += [
        v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=mc.blur),
        v2.RandomSolarize(128, p=mc.solarize),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(data.mean, data.std),
    ]
    return v2.Compose(ops)


class MultiView:
    """A multi-crop's views of one image: (global (Vg, C, H, W), local (Vl, C, h, w) or None), drawn in
    that order from the global generator (seeded per (seed, step, image) by the loader)."""

    def __init__(self, data: Split, size: int, mc: MultiCrop) -> None:
        self.groups = [
            None if not crops or not crops.count else (crops.count, view_transform(data, crops.size or size, crops, mc))
            for crops in (mc.global_crops, mc.local_crops)
        ]

    def __call__(self, image) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(image, torch.Tensor):  # decoded once, cropped many times
            image = v2.functional.pil_to_tensor(image)
        views = [None if g is None else torch.stack([g[1](image) for _ in range(g[0])]) for g in self.groups]
        return views[0], views[1]


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
