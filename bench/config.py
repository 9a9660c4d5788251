"""Typed run configuration: dataclasses with defaults, YAML files holding only the differences,
dotted overrides (`optim.lr=5e-4`) on the command line.

Every key is checked against the dataclasses: an unknown key fails with the valid keys
listed, a value of the wrong type fails with the expected type. The resolved config is
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
    # momenta keep their time constant 1/(1-m) as that fraction (bench/schedules.py); paper: the papers'
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
            flat[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise BenchError(f"override {item!r}: cannot parse value ({e.__class__.__name__})") from None
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
    from bench.backbones import BACKBONES
    from bench.data import check_available
    from bench.methods import METHODS, check_method

    check_version(cfg, "this config")
    METHODS.get(cfg.method)
    BACKBONES.get(cfg.backbone)
    check_available(cfg.data)
    if cfg.budget.kind not in BUDGET_KINDS:
        raise BenchError(f"budget.kind {cfg.budget.kind!r} is not one of {', '.join(BUDGET_KINDS)}")
    if not cfg.budget.value >= 0:
        raise BenchError(f"budget.value must be >= 0 (0: the initialisation, untrained), got {cfg.budget.value}")
    if cfg.recipe not in RECIPE_KINDS:
        raise BenchError(f"recipe {cfg.recipe!r} is not one of {', '.join(RECIPE_KINDS)}")
    if not cfg.optim.lr_factor > 0:
        raise BenchError(f"optim.lr_factor must be > 0, got {cfg.optim.lr_factor}")
    if cfg.optim.lr_batch < 0:
        raise BenchError(f"optim.lr_batch must be >= 0, got {cfg.optim.lr_batch}")
    if cfg.optim.batch_size < 1:
        raise BenchError(f"optim.batch_size must be >= 1, got {cfg.optim.batch_size}")
    if not 0 <= cfg.optim.warmup < 1:
        raise BenchError(f"optim.warmup is a fraction of the budget in [0, 1), got {cfg.optim.warmup}")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise BenchError(f"precision {cfg.precision!r} is not one of auto, fp32, bf16")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise BenchError(f"device {cfg.device!r} is not one of auto, cpu, cuda")
    if cfg.log_every < 1:
        raise BenchError(f"log_every must be >= 1, got {cfg.log_every}")
    if cfg.checkpoint_every_s < 0:
        raise BenchError(f"checkpoint_every_s must be >= 0, got {cfg.checkpoint_every_s}")
    if not cfg.eval.knn_k or min(cfg.eval.knn_k) < 1:
        raise BenchError(f"eval.knn_k must list k values >= 1, got {list(cfg.eval.knn_k)}")
    if not cfg.eval.temperature > 0:
        raise BenchError(f"eval.temperature must be > 0, got {cfg.eval.temperature}")
    check_eval(cfg.eval)
    check_method(cfg)
    return cfg


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
    if ev.n_layers < 1:
        raise BenchError(f"eval.n_layers must be >= 1, got {ev.n_layers}")
    if not ev.linear_views or not ev.linear_lrs or not ev.linear_wds:
        raise BenchError("eval.linear_views, eval.linear_lrs and eval.linear_wds must each list at least one value")
    if min(ev.linear_lrs) <= 0 or min(ev.linear_wds) < 0 or ev.linear_epochs < 1:
        raise BenchError("eval.linear_lrs must be > 0, eval.linear_wds >= 0 and eval.linear_epochs >= 1")
    if not 0 < ev.val_fraction < 1:
        raise BenchError(f"eval.val_fraction must be in (0, 1), got {ev.val_fraction}")
    if any(not 0 < f <= 1 for f in ev.lowshot) or ev.draws < 1 or any(n < 1 for n in ev.fewshot_n):
        raise BenchError("eval.lowshot fractions must be in (0, 1], eval.draws >= 1 and eval.fewshot_n >= 1")
    if ev.scope not in EVAL_SCOPES:
        raise BenchError(f"eval.scope {ev.scope!r} is not one of {', '.join(EVAL_SCOPES)}")
    for key in ("val_images", "train_images", "test_images"):
        if getattr(ev, key) is not None and getattr(ev, key) < 100:
            raise BenchError(f"eval.{key} must be >= 100 (or null: every image), got {getattr(ev, key)}")
    if ev.encoder not in EVAL_ENCODERS:
        raise BenchError(f"eval.encoder {ev.encoder!r} is not one of {', '.join(EVAL_ENCODERS)}")
    if ev.lowshot_file is not None and not Path(ev.lowshot_file).is_file():
        raise BenchError(f"eval.lowshot_file {ev.lowshot_file} does not exist (expects e.g. SimCLR's 1percent.txt)")


def build_config(data: dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    merged = merge(nest(data or {}), parse_overrides(overrides or []))
    recipe = RECIPES.get(merged.get("method", RunConfig.method), {})
    merged = merge({"optim": json.loads(json.dumps(recipe))}, merged)  # the method's recipe, under the user's keys
    return validate(from_dict(RunConfig, merged))


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BenchError(f"{path}: malformed YAML{where}") from None
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
    """The hash of everything but the `eval` section: what a checkpoint was trained with. Editing the
    eval section of a trained run (eval.encoder: teacher, another probe) and evaluating again is fine."""
    trained = {k: v for k, v in to_dict(cfg).items() if k != "eval"}
    return hashlib.sha1(json.dumps(trained, sort_keys=True).encode()).hexdigest()[:10]


def write_config(cfg: RunConfig, path: Path) -> None:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: ten times faster for big sweeps
    path.write_text(yaml.dump(to_dict(cfg), Dumper=dumper, sort_keys=False))


def read_config(path: Path) -> RunConfig:
    data = load_yaml(path)
    data.setdefault("version", 1)  # configs written before versions were recorded
    return from_dict(RunConfig, data)
