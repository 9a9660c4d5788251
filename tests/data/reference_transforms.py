"""The written-out reference of the training views: the torchvision v2 transforms every published run
was trained with, drawing from the global random generator (under torch.manual_seed of the image's
seed). bench/data/views.py must make exactly their views (tests/data/test_views.py)."""

import torch
from torchvision.transforms import v2

from bench.data.split import Split
from core.method import Augmentation, Crops, MultiCrop

MODES = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


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
