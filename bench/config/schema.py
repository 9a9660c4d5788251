"""Typed run configuration: dataclasses with defaults, YAML files holding only the differences,
dotted overrides (`optim.lr=5e-4`) on the command line.

Every key is checked against the dataclasses: an unknown key fails with the valid keys
listed, a value of the wrong type fails with the expected type, a number outside its range
(`RANGES`: every numeric field has one) fails with the range, and a budget of more than
MAX_STEPS steps is refused. YAML is read within bench/config/yamlio.py's bounds. The resolved config is
written into each run folder (`config.yaml`) and hashed into the run's id; it holds the
section of its own method only, so adding a method never changes another's run ids.

Each method brings its optimizer recipe (baselines/config.py `RECIPES`): selecting
`method: mae` starts `optim` from MAE's settings, and the YAML file or an override still
wins over them.
"""

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from baselines.config import RECIPES, Data2VecConfig, Data2VecV1Config, MAEConfig
from bench.config.yamlio import describe, parse_yaml, read_yaml
from bench.errors import BenchError
from ijepa.config import IJEPAConfig, MaskConfig

BUDGET_KINDS = ("device_hours", "flops", "steps", "epochs")

# A field added after run ids were published is written (and hashed) only when it differs from
# its default, so the runs that existed before it keep their ids and resume.
ADDED_LATER = {"written": "when_set"}


def later(default: Any) -> Any:
    """A field added after run ids were published (see ADDED_LATER)."""
    return field(default=default, metadata=ADDED_LATER)


@dataclass
class DataConfig:
    name: str = "fashion-mnist"
    root: str | None = None  # None: the dataset's default location
    subset: str | None = None  # imagefolder: a SimCLR-style list such as 1percent.txt
    # Fashion-MNIST's 28 px resized to 32: with patch 4 an 8x8 grid (see RunConfig's ijepa default)
    image_size: int = 32
    num_workers: int = 0


@dataclass
class BudgetConfig:
    """How much compute a run may spend. device_hours = wall-clock of the training loop x devices."""

    kind: str = "steps"
    value: float = 100.0


@dataclass
class OptimConfig:
    """AdamW with warm-up + cosine lr and a cosine weight-decay ramp (I-JEPA's recipe).

    Learning rates are per `lr_batch` images and scale linearly with the global batch: every
    method's recipe gives its paper's rates per 256 images (I-JEPA: 1e-3 at batch 2048 is 1.25e-4).
    `lr_factor` multiplies lr, start_lr and final_lr: the knob a sweep's `tune:` searches, one
    grid for every method. `warmup` is a fraction of the paper's run (40 of 300 epochs in the
    official config), so of the budget under `recipe: budget`.
    """

    batch_size: int = 128  # global: split evenly over the processes of a multi-process job
    lr: float = 1e-3 * 256 / 2048
    start_lr: float = 2e-4 * 256 / 2048
    final_lr: float = 1e-6 * 256 / 2048
    warmup: float = 40 / 300
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = None
    # > 0: the lrs are per `lr_batch` images, scaled by the global batch / lr_batch; 0: unscaled
    lr_batch: int = 256
    lr_factor: float = 1.0


VIEWS = ("last_avg", "last_cls", "last4_avg", "last4_cls")
# The headline views are the same for every method (average-pooled patch tokens); a [cls] token,
# which only some methods have, is scored as an extra column, never in the headline.
HEADLINE_VIEWS = ("last_avg", "last4_avg")
EXTRA_VIEWS = ("last_cls", "last4_cls")
EVAL_ENCODERS = ("auto", "student", "teacher")
EVAL_SCOPES = ("full", "val")
RECIPE_KINDS = ("budget", "paper")


@dataclass
class EvalConfig:
    """Frozen-feature evaluation (shared/reference/evals.md). Features are extracted once per
    checkpoint and split — the last `n_layers` blocks, average-pooled and [cls] — and cached;
    a *view* picks from them: `last_avg`, `last_cls`, `last4_avg`, `last4_cls` (4 = concat).

    - k-NN: DINO's weighted k-NN at every k of `knn_k`, on `knn_view`; few-shot k-NN with
      n labelled images per class for each n of `fewshot_n`, over `draws` draws.
    - Linear probe: one head per (view, lr, weight decay) trained at once on the cached
      features (SGD, cosine), the best on a `val_fraction` held out of train reported on test.
      The headline probe chooses among `linear_views` (pooled patch tokens, the same for every
      method); `extra_views` ([cls]) are probed apart and reported as `linear_cls`.
    - Validation score (`val`): k-NN top-1 (k=20) from the rest of the training images onto a
      stratified `val_fraction` held out of them (of `val_images` drawn from train, stratified;
      None: all). `scope: val` computes only that and never reads the test split: what a sweep's
      tuning runs are scored by.
    - Low-shot: the same probe on a stratified `lowshot` fraction of the train labels, over
      `draws` draws (mean ± std), or SimCLR's list `lowshot_file` (ImageNet's 1percent.txt).
    - `train_images`, `test_images`: a smoke run reads only a stratified subset of each split
      (the same images for every run); every result table reads them all (None).
    """

    knn_k: tuple[int, ...] = (10, 20, 100, 200)
    temperature: float = 0.07
    batch_size: int = 512
    n_layers: int = later(4)
    knn_view: str = later("last_avg")
    fewshot_n: tuple[int, ...] = later((1, 5, 10))
    linear_views: tuple[str, ...] = later(HEADLINE_VIEWS)
    extra_views: tuple[str, ...] = EXTRA_VIEWS
    linear_lrs: tuple[float, ...] = later((0.01, 0.03, 0.1, 0.3, 1.0))
    linear_wds: tuple[float, ...] = later((0.0, 1e-4))
    linear_epochs: int = later(10)
    linear_min_steps: int = later(500)  # low-shot subsets get at least this many steps
    linear_bn: bool = later(True)  # BatchNorm without affine before the head (MAE's convention)
    val_fraction: float = later(0.1)
    lowshot: tuple[float, ...] = later((0.01,))
    lowshot_file: str | None = later(None)
    draws: int = later(3)
    # auto: the encoder each method's official code evaluates (I-JEPA: the EMA target encoder;
    # MAE, data2vec 2.0, data2vec v1: the student); student | teacher pick one explicitly.
    encoder: str = later("auto")
    scope: str = "full"
    val_images: int | None = 20_000
    # A smoke run's evaluation (sweeps/demo.yaml): every evaluation reads a stratified subset of this
    # many train and test images, the same for every run; None, the default: all of them.
    train_images: int | None = later(None)
    test_images: int | None = later(None)


# The version of what a run's config means. Version 2 (issue 11): data2vec rows score the student,
# data2vec 2.0's [cls] loss, top-K, EMA horizon and augmentation follow fairseq, data2vec v1's masks,
# colour jitter and [cls] weight decay follow its BEiT code, I-JEPA's init and per-process mask
# truncation follow the official pipeline, MAE resizes bicubic, and the embedded default is 32 px.
# Version 3 (issue 12): recipes scale with the budget (`recipe`), every learning rate follows one rule
# (per 256 images, scaled to the batch), and the headline probe reads the same views for every method.
# Written into every config.yaml and hashed into every run id; a config.yaml without it is version 1.
CONFIG_VERSION = 3


@dataclass
class RunConfig:
    version: int = CONFIG_VERSION
    method: str = "ijepa"
    # budget: every hyper-parameter a paper defines in steps or epochs (warm-up, weight-decay and EMA
    # schedules, data2vec 2.0's 100k-update EMA ramp) keeps its ratio to the paper's run length, and EMA
    # momenta keep their time constant 1/(1-m) as that fraction (bench/train/schedules.py); paper: the papers'
    # absolute values, the schedules read at step / the paper's run length
    recipe: str = "budget"
    backbone: str = "vit_tiny_patch4"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    log_every: int = 20
    checkpoint_every_s: float = 300.0
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    # The embedded default is Fashion-MNIST at 32 px, an 8x8 grid with patch 4. The official collator
    # never places a block on the grid's last row or column (exclusive bound), so there its context
    # is always the 7x7 block at (0, 0); `unbiased` lets every patch be context or target
    # (scripts/mask_stats.py: context 12.2 of 64 patches after truncation, 19.1 %). The official
    # min_keep=10 rejects every target block of this grid (9-12 patches); 3 keeps the rest unchanged.
    # For ImageNet set ijepa.mask.mode: official and ijepa.mask.min_keep: 10.
    ijepa: IJEPAConfig = field(default_factory=lambda: IJEPAConfig(mask=MaskConfig(min_keep=3, mode="unbiased")))
    mae: MAEConfig = field(default_factory=MAEConfig)
    data2vec: Data2VecConfig = field(default_factory=Data2VecConfig)
    data2vec_v1: Data2VecV1Config = field(default_factory=Data2VecV1Config)
    eval: EvalConfig = field(default_factory=EvalConfig)


METHOD_SECTIONS = tuple(RECIPES)  # each method's own config section is named after it


# --- the valid range of every number --------------------------------------------------------

# A run takes at most this many optimizer steps, whatever its budget's kind: a budget of 1e308 steps
# is a run that never ends. Per-step seeds (seed x 1,000,003 + step) x 1,000,033 + image index stay
# within torch's 64-bit seeds up to this many steps (see SEED_MAX).
MAX_STEPS = 10**8
MAX_FLOPS = 1e26  # more than any model has been trained with; FLOP budgets also stop at MAX_STEPS
MAX_DEVICE_HOURS = 1e6  # 114 device-years; time budgets also stop at MAX_STEPS
# torch seeds are 64-bit; the engine derives (seed x 1,000,003 + step) x 1,000,033 + index per image
# and step, which overflows past seed 2**24 (bench/train/engine.py StepTagged)
SEED_MAX = 2**24 - 1


@dataclass(frozen=True)
class Range:
    """The values a number may take; each element of a tuple of numbers is checked alone."""

    low: float
    high: float = math.inf
    low_open: bool = False  # (low, ... rather than [low, ...
    high_open: bool = False
    why: str = ""  # said after the range in the message, when the bound is not obvious

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {low}"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


POSITIVE, NON_NEGATIVE, COUNT = Range(0, low_open=True), Range(0), Range(1)
FRACTION = Range(0, 1, low_open=True, high_open=True)  # (0, 1)
SHARE = Range(0, 1, low_open=True)  # (0, 1]
MOMENTUM = Range(0, 1)  # an EMA momentum; 1 freezes the teacher
DEPTH, WIDTH = Range(1, 64), Range(1, 8192)  # layers and widths beyond any ViT's (ViT-g: 40 blocks, 1408 wide)

# Dotted key -> range, for every number of RunConfig but `version` (checked by check_version). A test
# fails when a numeric field has no entry here.
RANGES: dict[str, Range] = {
    "seed": Range(0, SEED_MAX, why="(per-step seeds derived from it must fit torch's 64-bit seeds)"),
    "log_every": COUNT,
    "checkpoint_every_s": NON_NEGATIVE,
    "data.image_size": Range(1, 1024),
    "data.num_workers": Range(0, 256),
    "budget.value": Range(0, why="(0: the initialisation, untrained)"),
    "optim.batch_size": COUNT,
    "optim.lr": POSITIVE,
    "optim.start_lr": NON_NEGATIVE,
    "optim.final_lr": NON_NEGATIVE,
    "optim.warmup": Range(0, 1, high_open=True, why="(a fraction of the budget)"),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.final_weight_decay": NON_NEGATIVE,
    "optim.betas": Range(0, 1, high_open=True),
    "optim.clip_grad": Range(0, low_open=True, why="(or null: no clipping)"),
    "optim.lr_batch": Range(0, why="(0: learning rates not scaled with the batch)"),
    "optim.lr_factor": POSITIVE,
    "ijepa.predictor_depth": DEPTH,
    "ijepa.predictor_width": WIDTH,
    "ijepa.ema": MOMENTUM,
    "ijepa.crop_scale": SHARE,
    "ijepa.mask.num_targets": Range(1, 64),
    "ijepa.mask.target_scale": SHARE,
    "ijepa.mask.target_aspect": Range(0, 100, low_open=True),
    "ijepa.mask.context_scale": SHARE,
    "ijepa.mask.context_aspect": Range(0, 100, low_open=True),
    "ijepa.mask.min_keep": NON_NEGATIVE,
    "mae.mask_ratio": FRACTION,
    "mae.decoder_depth": Range(0, 64),  # 0: a linear decoder
    "mae.decoder_width": WIDTH,
    "mae.decoder_heads": Range(1, 1024),
    "mae.crop_scale": SHARE,
    "data2vec.num_clones": Range(1, 64),
    "data2vec.mask_ratio": FRACTION,
    "data2vec.block_size": Range(1, 64),
    "data2vec.top_k": Range(1, why="(or null: fairseq's for the depth)"),
    "data2vec.decoder_dim": WIDTH,
    "data2vec.decoder_layers": DEPTH,
    "data2vec.decoder_kernel": Range(1, 63),
    "data2vec.decoder_groups": Range(1, 8192),
    "data2vec.mask_noise_std": NON_NEGATIVE,
    "data2vec.cls_loss": NON_NEGATIVE,
    "data2vec.ema": MOMENTUM,
    "data2vec.ema_steps": Range(1, why="(or null: over the whole run)"),
    "data2vec.crop_scale": SHARE,
    "data2vec_v1.mask_ratio": FRACTION,
    "data2vec_v1.min_block": COUNT,
    "data2vec_v1.top_k": COUNT,
    "data2vec_v1.loss_beta": NON_NEGATIVE,  # 0: plain L1
    "data2vec_v1.ema": MOMENTUM,
    "data2vec_v1.crop_scale": SHARE,
    "data2vec_v1.color_jitter": NON_NEGATIVE,
    "eval.knn_k": Range(1, 2048, why="(faiss searches at most 2048 neighbours on a GPU)"),
    "eval.temperature": POSITIVE,
    "eval.batch_size": Range(1, 65536),
    "eval.n_layers": DEPTH,
    "eval.fewshot_n": COUNT,
    "eval.linear_lrs": POSITIVE,
    "eval.linear_wds": NON_NEGATIVE,
    "eval.linear_epochs": Range(1, 1000),
    "eval.linear_min_steps": Range(0, 10**6),
    "eval.val_fraction": FRACTION,
    "eval.lowshot": SHARE,
    "eval.draws": Range(1, 100),
    "eval.val_images": Range(100, why="(or null: every training image)"),
    "eval.train_images": Range(100, why="(or null: every training image)"),
    "eval.test_images": Range(100, why="(or null: every test image)"),
}


def check_ranges(node: Any, ranges: dict[str, Range], prefix: str = "") -> None:
    """Every number of the dataclass `node` (recursively) within its range in `ranges` (by dotted
    key); one BenchError naming the first key out of range. None (an optional number unset) passes."""
    for f in fields(node):
        key, value = f"{prefix}{f.name}", getattr(node, f.name)
        if is_dataclass(value):
            check_ranges(value, ranges, f"{key}.")
            continue
        if key not in ranges or value is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if v not in ranges[key]:
                shown = list(value) if isinstance(value, tuple) else value
                why = f" {ranges[key].why}" if ranges[key].why else ""
                raise BenchError(f"{key} must be {ranges[key]}{why}, got {shown}")


# --- building from dicts ------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated type, or raise a BenchError naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except BenchError as e:
                errors.append(str(e))
        raise BenchError(errors[0] if errors else f"{key}: cannot be {value!r}")
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise BenchError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            value = [value] if args[-1] is Ellipsis else value
        if not isinstance(value, list | tuple):
            raise BenchError(f"{key}: expected a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise BenchError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise BenchError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise BenchError(f"{key}: expected {tp.__name__}, got {value!r}")
        if isinstance(value, str):  # YAML reads "3e13" as a string
            try:
                value = float(value)
            except ValueError:
                raise BenchError(f"{key}: expected {tp.__name__}, got {value!r}") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise BenchError(f"{key}: expected a finite number, got {value!r}")
        if tp is int:
            if int(value) != value:
                raise BenchError(f"{key}: expected an integer, got {value!r}")
            return int(value)
        return float(value)
    if tp is dict:
        if not isinstance(value, dict):
            raise BenchError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is str:
        if not isinstance(value, str):
            raise BenchError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {_type_name(tp)}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict; unknown keys raise with the valid ones listed."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in by_name:
            raise BenchError(f"unknown key '{prefix}{key}'; valid keys: {', '.join(by_name)}")
        default = by_name[key].default_factory
        if is_dataclass(hints[key]) and isinstance(value, dict) and default is not dataclasses.MISSING:
            value = merge(json.loads(json.dumps(asdict(default()))), value)  # a partial section keeps its defaults
        kwargs[key] = _coerce(value, hints[key], f"{prefix}{key}")
    return cls(**kwargs)


def nest(flat: dict) -> dict:
    """{'a.b': 1, 'c': {'d': 2}} → {'a': {'b': 1}, 'c': {'d': 2}} (dotted and nested keys mix)."""
    out: dict = {}
    for key, value in flat.items():
        if isinstance(value, dict):
            value = nest(value)
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BenchError(f"key {key!r} sets inside a value that is not a mapping")
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = merge(node[parts[-1]], value)
        else:
            node[parts[-1]] = value
    return out


def merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict:
    """['optim.lr=5e-4', 'ijepa.mask.num_targets=2'] → a nested dict, values parsed as YAML."""
    flat = {}
    for item in items:
        if "=" not in item:
            raise BenchError(f"override {item!r} must look like key=value (e.g. optim.lr=5e-4)")
        key, raw = item.split("=", 1)
        try:
            flat[key.strip()] = parse_yaml(raw)
        except yaml.YAMLError as e:
            raise BenchError(f"override {item!r}: cannot parse value ({describe(e)})") from None
    return nest(flat)


def check_key(key: str, cls: type = RunConfig) -> None:
    """Raise if the dotted `key` does not name a field of the config (used by sweep axes)."""
    node: Any = cls
    seen = ""
    for part in key.split("."):
        if not (isinstance(node, type) and is_dataclass(node)):
            raise BenchError(f"key {key!r}: {seen.rstrip('.')} has no sub-keys")
        hints = typing.get_type_hints(node)
        if part not in hints:
            raise BenchError(f"unknown key '{seen}{part}'; valid keys: {', '.join(f.name for f in fields(node))}")
        node = hints[part]
        seen += part + "."


def check_version(cfg: RunConfig, where: str) -> None:
    """Refuse a config written by a jepa-bench whose configs meant something else (never a silent mix)."""
    if cfg.version != CONFIG_VERSION:
        age = "an older" if cfg.version < CONFIG_VERSION else "another"
        raise BenchError(
            f"{where} was made by {age} jepa-bench (config version {cfg.version}, this one reads "
            f"{CONFIG_VERSION}: issues 11 and 12 changed how the methods train and how they are scored); "
            "train it again in a new folder (bench sweep gives new run ids) or use the older checkout"
        )


def validate(cfg: RunConfig) -> RunConfig:
    """Checks that span fields or need registries (imported lazily: they pull in torch)."""
    from bench.data.datasets import check_dataset
    from bench.train.methods import METHODS, check_method
    from core.vit import BACKBONES

    check_version(cfg, "this config")
    METHODS.get(cfg.method)
    BACKBONES.get(cfg.backbone)
    check_ranges(cfg, RANGES)
    if cfg.budget.kind not in BUDGET_KINDS:
        raise BenchError(f"budget.kind {cfg.budget.kind!r} is not one of {', '.join(BUDGET_KINDS)}")
    if cfg.recipe not in RECIPE_KINDS:
        raise BenchError(f"recipe {cfg.recipe!r} is not one of {', '.join(RECIPE_KINDS)}")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise BenchError(f"precision {cfg.precision!r} is not one of auto, fp32, bf16")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise BenchError(f"device {cfg.device!r} is not one of auto, cpu, cuda")
    if not cfg.eval.knn_k:
        raise BenchError("eval.knn_k must list at least one k")
    check_eval(cfg.eval)
    check_method(cfg)
    check_budget(cfg, check_dataset(cfg.data))  # last: the one check that reads the disk (once per dataset)
    return cfg


def check_budget(cfg: RunConfig, train_images: int) -> None:
    """The batch fits the training split, and the budget is at most MAX_STEPS steps (FLOP and time
    budgets are bounded in their unit here and in steps by the engine, once a step's cost is known)."""
    if cfg.optim.batch_size > train_images:
        raise BenchError(
            f"optim.batch_size={cfg.optim.batch_size} is larger than {cfg.data.name}'s training split "
            f"({train_images:,} images)"
        )
    value, kind = cfg.budget.value, cfg.budget.kind
    steps = {"steps": math.ceil(value), "epochs": value * (train_images // cfg.optim.batch_size)}.get(kind)
    if steps is not None and steps > MAX_STEPS:
        per = f" ({train_images // cfg.optim.batch_size:,} steps each)" if kind == "epochs" else ""
        raise BenchError(f"budget.value={value:g} {kind}{per} is more than the {MAX_STEPS:.0e} steps a run may take")
    limit = {"flops": MAX_FLOPS, "device_hours": MAX_DEVICE_HOURS}.get(kind)
    if limit is not None and value > limit:
        raise BenchError(f"budget.value={value:g} {kind} is more than the {limit:.0e} a run may take")


def check_eval(ev: EvalConfig) -> None:
    for view in (ev.knn_view, *ev.linear_views):
        if view not in HEADLINE_VIEWS:
            raise BenchError(
                f"eval view {view!r}: headline views are {', '.join(HEADLINE_VIEWS)}, the same for every method "
                f"(a [cls] view goes in eval.extra_views)"
            )
        if view.startswith("last4") and ev.n_layers < 4:
            raise BenchError(f"eval view {view!r} needs eval.n_layers >= 4, got {ev.n_layers}")
    for view in ev.extra_views:  # an extra view the encoder cannot give (no [cls], too few layers) is skipped
        if view not in VIEWS:
            raise BenchError(f"eval view {view!r} is not one of {', '.join(VIEWS)}")
    if not ev.linear_views or not ev.linear_lrs or not ev.linear_wds:
        raise BenchError("eval.linear_views, eval.linear_lrs and eval.linear_wds must each list at least one value")
    if ev.scope not in EVAL_SCOPES:
        raise BenchError(f"eval.scope {ev.scope!r} is not one of {', '.join(EVAL_SCOPES)}")
    if ev.encoder not in EVAL_ENCODERS:
        raise BenchError(f"eval.encoder {ev.encoder!r} is not one of {', '.join(EVAL_ENCODERS)}")
    if ev.lowshot_file is not None and not Path(ev.lowshot_file).is_file():
        raise BenchError(f"eval.lowshot_file {ev.lowshot_file} does not exist (expects e.g. SimCLR's 1percent.txt)")


def build_config(data: dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    merged = merge(nest(data or {}), parse_overrides(overrides or []))
    method = merged.get("method", RunConfig.method)
    recipe = RECIPES.get(method, {}) if isinstance(method, str) else {}  # not a string: from_dict says so
    merged = merge({"optim": json.loads(json.dumps(recipe))}, merged)  # the method's recipe, under the user's keys
    return validate(from_dict(RunConfig, merged))


def load_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a file, read within bench/config/yamlio.py's bounds; {} for an empty file."""
    path = Path(path)
    data = read_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BenchError(f"{path}: expected a mapping at the top level")
    return data


def to_dict(cfg: RunConfig) -> dict:
    """Plain nested dict (tuples as lists) that YAML/JSON can write and from_dict can read;
    of the method sections, only the run's own; fields ADDED_LATER only when set."""
    out = _plain(cfg)
    return {k: v for k, v in out.items() if k not in METHOD_SECTIONS or k == cfg.method}


def _plain(node: Any) -> Any:
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if not is_dataclass(node):
        return node
    out = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if f.metadata.get("written") == "when_set" and value == f.default:
            continue
        out[f.name] = _plain(value)
    return out


def config_hash(cfg: RunConfig) -> str:
    return hashlib.sha1(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:10]


def training_hash(cfg: RunConfig) -> str:
    """The hash of everything but the `eval` section: what a checkpoint was trained with (recorded in
    summary.json). A folder `bench sweep` named by its run id must still hash to that id, eval section
    included; in a folder of a name of one's own (`bench train --out`, or a copy of a sweep's run),
    editing the eval section (eval.encoder: teacher, another probe) and evaluating again is fine."""
    trained = {k: v for k, v in to_dict(cfg).items() if k != "eval"}
    return hashlib.sha1(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:10]


def write_config(cfg: RunConfig, path: Path) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: ten times faster for big sweeps
    path.write_text(yaml.dump(to_dict(cfg), Dumper=dumper, sort_keys=False))


def read_config(path: Path) -> RunConfig:
    data = load_yaml(path)
    data.setdefault("version", 1)  # configs written before versions were recorded
    return from_dict(RunConfig, data)
