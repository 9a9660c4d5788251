"""A method's training views as numbers: each image's augmentation parameters are drawn from a generator
seeded by (seed, step, image), in the order torchvision's transforms draw them, then applied — per image
on the CPU with torchvision's kernels (`apply`), or to a whole batch on the device
(bench/data/device_views.py). Both paths read the same parameters, so the crop boxes, flips and
colour draws of an image at a step are the same on either.

The draws equal those the transforms of bench/data/transforms.py make from the global generator under
`torch.manual_seed` of the same seed (tests/data/test_views.py checks it, pixels included), which is how
every published run was trained; drawing from a generator of its own spares the fork of the global
random state per image, which cost ~300 of ~450 us an image.

    views = Views.of(data, size, augmentation)
    params = views.draw(seed, (height, width))      # (V, PARAMS) per group
    images = views.apply(image, params)             # (C, S, S), or (global (Vg, C, S, S), local or None)
"""

import math
from dataclasses import dataclass

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from bench.data.split import Split
from core.method import INTERPOLATIONS, Augmentation, Crops, MultiCrop
from core.seeding import INDICES, STEPS, derive_seed

MODES = {name: v2.InterpolationMode[name.upper()] for name in INTERPOLATIONS}
RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect ratios

# one view's parameters, a row of floats: the crop box, the flip, the colour jitter (whether applied, the
# order of its four operations, their factors), grayscale, the blur's sigma (0: none) and solarisation
TOP, LEFT, HEIGHT, WIDTH, FLIP, JITTER = range(6)
ORDER = slice(6, 10)
FACTORS = slice(10, 14)  # brightness, contrast, saturation, hue (1, 1, 1, 0 where a range is unset)
GRAY, SIGMA, SOLARIZE = 14, 15, 16
PARAMS = 17
NEUTRAL = (1.0, 1.0, 1.0, 0.0)


@dataclass(frozen=True)
class Recipe:
    """How one kind of view is made. `crop_first`: a multi-crop view (crop, flip, jitter, grayscale,
    blur, solarise: LeJEPA's order); otherwise jitter, flip, crop (BEiT's order). A probability of None
    draws nothing (the transform is absent); `jitter_prob` None applies the jitter always."""

    size: int
    scale: tuple[float, float]
    interpolation: str
    crop_first: bool
    flip: float | None = None
    jitter: tuple[tuple[float, float] | None, ...] | None = None  # ColorJitter's four ranges
    jitter_prob: float | None = None
    grayscale: float | None = None
    blur: float | None = None
    kernel: int = 3
    solarize: float | None = None


def jitter_ranges(*values: float) -> tuple[tuple[float, float] | None, ...]:
    """ColorJitter's ranges for brightness, contrast, saturation (and hue): None where it draws nothing."""
    cj = v2.ColorJitter(*values)
    return tuple(getattr(cj, name) for name in ("brightness", "contrast", "saturation", "hue"))


def single_recipe(data: Split, size: int, aug: Augmentation) -> Recipe:
    jitter = jitter_ranges(aug.color_jitter, aug.color_jitter, aug.color_jitter) if aug.color_jitter else None
    return Recipe(
        size,
        aug.crop_scale,
        aug.interpolation,
        crop_first=False,
        flip=0.5 if aug.hflip else None,
        jitter=jitter if data.channels == 3 else None,
    )


def crops_recipe(data: Split, size: int, crops: Crops, mc: MultiCrop) -> Recipe:
    size = crops.size or size
    return Recipe(
        size,
        crops.scale,
        mc.interpolation,
        crop_first=True,
        flip=mc.hflip,
        jitter=jitter_ranges(*mc.jitter),
        jitter_prob=mc.jitter_prob,
        grayscale=mc.grayscale if data.channels == 3 else None,
        blur=mc.blur,
        kernel=max(3, 2 * round(size / 20) + 1),  # the odd size nearest a tenth of the view, at least 3
        solarize=mc.solarize,
    )


def image_generator(seed: int, step: int, index: int) -> torch.Generator:
    """The generator of one image's augmentation at one step of a run."""
    return torch.Generator().manual_seed(derive_seed(derive_seed(seed, step, STEPS), index, INDICES))


# one reusable scalar of each kind per process: a draw fills it (torch.rand and torch.randint are these
# fills of a new tensor), sparing an allocation per draw
_FLOAT, _EXP, _INT = torch.empty(1), torch.empty(1), torch.empty(1, dtype=torch.int64)


def happens(g: torch.Generator, p: float) -> bool:
    """A random transform with probability p applies: torchvision skips it when rand(1) >= p, compared in
    float32 (p rounded to float32, as a Python number meeting a float32 tensor is)."""
    return _FLOAT.uniform_(0, 1, generator=g).item() < float32(p)


def float32(x: float) -> float:
    return _EXP.fill_(x).item()


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return _FLOAT.uniform_(lo, hi, generator=g).item()


def randint(g: torch.Generator, high: int) -> int:
    return _INT.random_(0, high, generator=g).item()


LOG_RATIO = tuple(torch.log(torch.tensor(RATIO)).tolist())  # float32 values, as torchvision keeps them


def crop_box(g: torch.Generator, height: int, width: int, scale: tuple[float, float]) -> tuple[int, int, int, int]:
    """RandomResizedCrop's (top, left, height, width): ten tries at an area and aspect, then the centre."""
    area = height * width
    for _ in range(10):
        target_area = area * uniform(g, scale[0], scale[1])
        aspect = torch.exp(_FLOAT.uniform_(*LOG_RATIO, generator=g), out=_EXP).item()
        w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top, left = randint(g, height - h + 1), randint(g, width - w + 1)
            return top, left, h, w
    ratio = width / height
    if ratio < min(RATIO):
        w, h = width, int(round(width / min(RATIO)))
    elif ratio > max(RATIO):
        h, w = height, int(round(height * max(RATIO)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def draw_jitter(g: torch.Generator, ranges, row: list[float]) -> None:
    """ColorJitter's draws: the order of its four operations, then a factor per set range."""
    row[JITTER] = 1.0
    row[ORDER] = torch.randperm(4, generator=g).tolist()
    row[FACTORS] = [NEUTRAL[k] if r is None else uniform(g, r[0], r[1]) for k, r in enumerate(ranges)]


def draw_view(g: torch.Generator, recipe: Recipe, height: int, width: int) -> list[float]:
    """One view's parameters, drawn in the order its torchvision transforms draw them."""
    row = [0.0] * PARAMS
    row[ORDER], row[FACTORS] = [0.0, 1.0, 2.0, 3.0], list(NEUTRAL)
    if not recipe.crop_first:
        if recipe.jitter is not None:
            draw_jitter(g, recipe.jitter, row)
        if recipe.flip is not None:
            row[FLIP] = float(happens(g, recipe.flip))
    row[TOP:FLIP] = crop_box(g, height, width, recipe.scale)
    if recipe.crop_first:
        row[FLIP] = float(happens(g, recipe.flip))
        if happens(g, recipe.jitter_prob):
            draw_jitter(g, recipe.jitter, row)
        if recipe.grayscale is not None:
            row[GRAY] = float(happens(g, recipe.grayscale))
        if happens(g, recipe.blur):
            row[SIGMA] = uniform(g, 0.1, 2.0)
        row[SOLARIZE] = float(happens(g, recipe.solarize))
    return row


def jitter(image: torch.Tensor, row: torch.Tensor, ranges) -> torch.Tensor:
    """ColorJitter's kernels in the drawn order, each whose range is set (saturation and hue leave
    1-channel images alone)."""
    kernels = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
    factors = row[FACTORS].tolist()
    for op in (int(v) for v in row[ORDER]):
        if ranges[op] is not None:
            image = kernels[op](image, factors[op])
    return image


@dataclass(frozen=True)
class Views:
    """The groups of views a method takes of each image: one group of one view (I-JEPA, MAE, the
    data2vecs), or a multi-crop's global and local groups (LeJEPA). `mean`, `std`: the normalisation."""

    groups: tuple[tuple[int, Recipe], ...]
    multi: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, data: Split, size: int, aug: Augmentation) -> "Views":
        mc = aug.multi_crop
        if mc is None:
            groups = ((1, single_recipe(data, size, aug)),)
        else:
            kinds = (mc.global_crops, mc.local_crops)
            groups = tuple((c.count, crops_recipe(data, size, c, mc)) for c in kinds if c and c.count)
        return cls(groups, mc is not None, data.mean, data.std)

    def draw(self, g: torch.Generator, height: int, width: int) -> list[torch.Tensor]:
        """Each group's (V, PARAMS) parameters of one image, from its generator."""
        return [
            torch.tensor([draw_view(g, recipe, height, width) for _ in range(count)], dtype=torch.float64)
            for count, recipe in self.groups
        ]

    def apply(self, image: torch.Tensor, params: list[torch.Tensor]):
        """One image's views with torchvision's kernels: (C, S, S) for one view; a multi-crop's
        (global (Vg, C, S, S), local (Vl, C, s, s) or None)."""
        pairs = zip(self.groups, params, strict=True)
        views = [torch.stack([self.view(image, recipe, row) for row in rows]) for (_, recipe), rows in pairs]
        if not self.multi:
            return views[0][0]
        return views[0], views[1] if len(views) > 1 else None

    def view(self, image: torch.Tensor, recipe: Recipe, row: torch.Tensor) -> torch.Tensor:
        top, left, h, w = (int(v) for v in row[TOP:FLIP])
        crop = dict(size=[recipe.size, recipe.size], interpolation=MODES[recipe.interpolation], antialias=True)
        if not recipe.crop_first:
            if row[JITTER]:
                image = jitter(image, row, recipe.jitter)
            if row[FLIP]:
                image = F.horizontal_flip(image)
            image = F.resized_crop(image, top, left, h, w, **crop)
        else:
            image = F.resized_crop(image, top, left, h, w, **crop)
            if row[FLIP]:
                image = F.horizontal_flip(image)
            if row[JITTER]:
                image = jitter(image, row, recipe.jitter)
            if row[GRAY]:
                image = F.rgb_to_grayscale(image, num_output_channels=image.shape[-3])
            if row[SIGMA]:
                sigma = float(row[SIGMA])
                image = F.gaussian_blur(image, [recipe.kernel, recipe.kernel], [sigma, sigma])
            if row[SOLARIZE]:
                image = F.solarize(image, threshold=128.0)
        return F.normalize(F.to_dtype(image, torch.float32, scale=True), self.mean, self.std)
