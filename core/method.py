"""The method contract as code: what every pre-training method is (`Method`), how it draws its
per-batch inputs (`InputSampler`), and what it registers so the harness can configure, build, train
and evaluate it (`MethodSpec` in `METHODS`).

A method lives in its own module(s) and registers itself there, beside its code (timm's
`@register_model`); the harness (bench/) imports the method modules and reads everything from
the registry — the method's config section, its optimizer recipe, its paper run, its augmentation:

    register_method(MethodSpec(
        name="mae", build=build_mae, section=MAEConfig, augmentation=mae_augmentation,
        paper_run=PaperRun(249_600, 4096, "ViT-L: 800 epochs x 312 updates"),
        recipe={"lr": 1.5e-4, ...}, ranges={"mask_ratio": FRACTION, ...}, cls_token=True,
    ))

One training loop trains every method (bench/train/loop.py `step`), per optimizer step:

    batch = {"images": (B, C, H, W), "labels": (B,), "step": int, **sampler.process_share(B, step, rank, world)}
    # a multi-crop (LeJEPA): "images" (B, V_global, C, H, W) and "local_images" (B, V_local, C, h, w)
    out = method(batch)                 # {"loss": scalar tensor, **parts}
    out["loss"].backward(); optimizer.step()
    method.after_step(clock)            # EMA update; returns the momentum (or None)
"""

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from core.clock import Clock
from core.errors import BenchError
from core.ranges import Range
from core.registry import Registry
from core.vit import VisionTransformer

INTERPOLATIONS = ("bilinear", "bicubic")


def check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise BenchError(f"interpolation {interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")


def check_crop_scale(name: str, scale: tuple[float, float]) -> None:
    """A random resized crop's (min, max) share of the image's area."""
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise BenchError(f"{name} must satisfy 0 < min <= max <= 1, got {scale}")


@dataclass(frozen=True)
class Augmentation:
    """A method's training augmentation: a random resized crop (I-JEPA's only augmentation), a
    horizontal flip and colour jitter (brightness, contrast, saturation; 3-channel data only) for
    the methods whose official code uses them; or a multi-crop (`MultiCrop`: LeJEPA's views)."""

    crop_scale: tuple[float, float] = (0.3, 1.0)
    hflip: bool = False
    interpolation: str = "bilinear"
    color_jitter: float = 0.0
    multi_crop: "MultiCrop | None" = None  # several views per image (then the fields above are unused)

    def __post_init__(self) -> None:
        check_interpolation(self.interpolation)
        check_crop_scale("crop_scale", self.crop_scale)
        if self.color_jitter < 0:
            raise BenchError(f"color_jitter must be >= 0, got {self.color_jitter}")


@dataclass(frozen=True)
class Crops:
    """`count` random resized crops of `scale` (a share of the image's area), each resized to `size`
    pixels (None: the run's `data.image_size`)."""

    count: int
    scale: tuple[float, float]
    size: int | None = None

    def __post_init__(self) -> None:
        check_crop_scale("crop scale", self.scale)
        if self.count < 0 or (self.size is not None and self.size < 1):
            raise BenchError(f"crops need count >= 0 and size >= 1, got {self.count} of {self.size} px")


@dataclass(frozen=True)
class MultiCrop:
    """DINO-style multi-crop, as LeJEPA's code makes its views: global crops at the run's image size
    and local ones smaller, each view with its own crop, flip, colour jitter (applied with
    `jitter_prob`; brightness, contrast, saturation, hue — saturation and hue leave 1-channel images
    alone), grayscale (3-channel data), Gaussian blur (kernel about a tenth of the view's size, sigma in
    (0.1, 2)) and solarisation (threshold 128), each with its probability. A method with a multi-crop
    gets `images` (B, V_global, C, H, W) and `local_images` (B, V_local, C, h, w)."""

    global_crops: Crops
    local_crops: Crops | None = None
    hflip: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_prob: float = 0.8
    grayscale: float = 0.2
    blur: float = 0.5
    solarize: float = 0.2
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.global_crops.count < 1:
            raise BenchError(f"a multi-crop needs at least one global crop, got {self.global_crops.count}")
        if not 0 <= self.jitter[3] <= 0.5:
            raise BenchError(f"the colour jitter's hue must be in [0, 0.5], got {self.jitter[3]}")
        for name in ("hflip", "jitter_prob", "grayscale", "blur", "solarize"):
            if not 0 <= getattr(self, name) <= 1:
                raise BenchError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        check_interpolation(self.interpolation)


class InputSampler(ABC):
    """A method's per-batch inputs (masks) drawn from the step alone, so a resumed run and every
    process draw the same ones: `sampler(batch_size, step) -> {name: tensor}`. Picklable: the data
    loader's collate runs it, also in worker processes.

    `batch_dims` gives each input's batch dimension (I-JEPA's targets (M, B, Nt): 1), or None for an
    input of the whole step (LeJEPA's slices); a process of a multi-process run keeps its share of the
    global batch's inputs, cut along it, and every input of the step whole (`process_share`).
    A subclass that does not set it cannot be defined.

    `device`: None, the exact sampler every published run used (CPU, per image where the method's
    official code is); a device (`on(device)`), the method's batched sampler with the same
    distributions, drawing from a `torch.Generator` on that device seeded from (seed, step) and
    returning its tensors there: the same masks on the same model of device (a GPU's random streams may
    depend on its model), not the CPU's."""

    batch_dims: ClassVar[Mapping[str, int | None]]
    device: torch.device | None = None

    def on(self, device: torch.device | str | None) -> "InputSampler":
        """This sampler drawing on `device` (a copy; None: the exact CPU sampler, this one)."""
        if device is None:
            return self
        moved = copy.copy(self)
        moved.device = torch.device(device)
        return moved

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "batch_dims", None), Mapping):
            raise TypeError(f"{cls.__name__} must set batch_dims: each input's batch dimension, e.g. {{'keep': 0}}")

    @abstractmethod
    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        """The inputs of a batch of `batch_size` images at optimizer step `step`."""

    def process_share(self, batch_size: int, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
        """Process `rank` of `world`'s share of the inputs of a global batch of `batch_size`: the whole
        batch's, cut along `batch_dims`. A sampler that must cut otherwise (I-JEPA truncates its masks
        within each process's share) overrides it."""
        inputs = self(batch_size, step)
        if world == 1:
            return inputs
        dims = self.batch_dims
        return {k: v if dims[k] is None else v.chunk(world, dims[k])[rank] for k, v in inputs.items()}


class Method(nn.Module, ABC):
    """A pre-training method: trained by the one loop of bench/train/engine.py under a budget,
    evaluated on the frozen features of one of its encoders.

    - `forward(batch) -> {"loss": tensor, **parts}`: batch holds "images" (B, C, H, W), "labels",
      "step" and the input sampler's inputs; the parts beside "loss" are detached scalars.
    - `input_sampler(device=None)`: the `InputSampler` of its per-batch inputs, or None. None: the
      exact sampler (CPU, what the published runs replay); a `torch.device`: its batched sampler, same
      distributions, drawn on that device (`InputSampler.on`), for a data path that makes batches there.
    - `after_step(clock)`: after every optimizer step (the EMA update); returns the momentum, or None.
    - `encoders()`: {"student": ..., "teacher": ...} (the teacher is the EMA copy, where it has one);
      `evaluated`: the one its official code evaluates (`eval.encoder: auto`).
    - `no_weight_decay()`: names of parameters exempt from weight decay beyond biases and norms.
    - `diagnostics(images)`: the method's own label-free health numbers on held-out images (B, C, H, W),
      {name: float}, logged as "health/<name>" (bench/train/health.py); called under no_grad, in eval
      mode, and must draw nothing from the global random generators' streams that training reads.
    """

    @property
    @abstractmethod
    def evaluated(self) -> str:
        """The key of `encoders()` that its official code evaluates (a class attribute in subclasses)."""

    @abstractmethod
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def encoders(self) -> dict[str, VisionTransformer]: ...

    def input_sampler(self, device: torch.device | None = None) -> InputSampler | None:
        return None

    def after_step(self, clock: Clock) -> float | None:
        return None

    def no_weight_decay(self) -> set[str]:
        return set()

    def diagnostics(self, images: torch.Tensor) -> dict[str, float]:
        return {}


@dataclass(frozen=True)
class PaperRun:
    """The run a method's recipe was tuned for: its length in optimizer updates and global batch.
    `recipe: budget` keeps every step-defined hyper-parameter's ratio to this length; `recipe: paper`
    keeps its absolute value (shared/reference/*.md, and the sources named here)."""

    updates: int
    batch: int
    source: str


class Builder(Protocol):
    def __call__(self, encoder: VisionTransformer, section: Any, in_chans: int, seed: int) -> Method:
        """The method around `encoder` (built by the harness from `backbone`, with [cls] where the
        spec asks), from its config section; ValueError for a config it cannot run."""
        ...


@dataclass(frozen=True)
class MethodSpec:
    """Everything the harness needs of a method, registered in the method's own module.

    - `name`: `method: <name>`, and the name of its config section (a field of RunConfig).
    - `section`: the section's dataclass; `default_section` makes its default (None: `section()`).
    - `ranges`: the range of every number in the section, by dotted key within it ("mask.min_keep").
    - `recipe`: optimizer settings (keys of bench/config/schema.py's OptimConfig) that replace the
      defaults when the method is selected; a YAML file or an override still wins over them. One
      learning-rate rule for every method: the paper's rates per 256 images (paper lr x 256 / paper
      batch), scaled to the run's global batch; warm-ups as fractions of the paper's run.
    - `paper_run`: the run the recipe was tuned for (the clock's `paper_updates`).
    - `augmentation`: its training augmentation, from its section.
    - `cls_token`: whether its encoder has a [cls] token.
    """

    name: str
    build: Builder
    section: type
    augmentation: Callable[[Any], Augmentation]
    paper_run: PaperRun
    recipe: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, Range] = field(default_factory=dict)
    cls_token: bool = False
    default_section: Callable[[], Any] | None = None

    def default(self) -> Any:
        """The section's default value in a RunConfig."""
        return (self.default_section or self.section)()


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    return METHODS.add(spec.name, spec)
