"""Method registry: name → builder(RunConfig, in_chans) returning an nn.Module with the method contract:

- ``input_sampler() -> callable(batch_size, step) -> dict | None``: per-batch inputs drawn from the step (masks)
- ``forward(batch) -> {"loss": tensor, **parts}``
- ``after_step(clock) -> float | None``: EMA update after each optimizer step; `clock`
  (bench/train/schedules.py) says where the run stands and gives the momentum of a paper's EMA schedule
- ``encoders() -> {"student": VisionTransformer[, "teacher": ...]}``: its encoders (the teacher is
  the EMA copy, where the method has one), and ``evaluated``: the one its official code evaluates
  (I-JEPA: teacher; MAE, data2vec 2.0 and v1: student). ``eval.encoder`` picks another.
- its config section's ``crop_scale`` (and ``hflip``, ``interpolation``, ``color_jitter``): the
  augmentation its official code uses
"""

import json
from dataclasses import asdict

import torch

from bench.config.schema import EVAL_ENCODERS, RunConfig
from bench.data.transforms import Augmentation
from bench.errors import BenchError
from core.registry import Registry
from core.vit import BACKBONES, VisionTransformer

METHODS: Registry = Registry("method")


def build_encoder(cfg: RunConfig, in_chans: int, cls_token: bool = False):
    try:
        return BACKBONES.get(cfg.backbone)(img_size=cfg.data.image_size, in_chans=in_chans, cls_token=cls_token)
    except ValueError as e:  # the image size does not suit the patch size
        raise BenchError(f"data.image_size={cfg.data.image_size} does not suit backbone {cfg.backbone}: {e}") from None


@METHODS.register("ijepa")
def build_ijepa(cfg: RunConfig, in_chans: int):
    from ijepa.model import IJEPA

    return _build(IJEPA, build_encoder(cfg, in_chans), cfg.ijepa, seed=cfg.seed)


@METHODS.register("mae")
def build_mae(cfg: RunConfig, in_chans: int):
    from baselines.mae import MAE

    return _build(MAE, build_encoder(cfg, in_chans, cls_token=True), cfg.mae, in_chans, seed=cfg.seed)


@METHODS.register("data2vec")
def build_data2vec(cfg: RunConfig, in_chans: int):
    from baselines.data2vec import Data2Vec

    return _build(Data2Vec, build_encoder(cfg, in_chans, cls_token=True), cfg.data2vec, seed=cfg.seed)


@METHODS.register("data2vec_v1")
def build_data2vec_v1(cfg: RunConfig, in_chans: int):
    from baselines.data2vec import Data2VecV1

    return _build(Data2VecV1, build_encoder(cfg, in_chans, cls_token=True), cfg.data2vec_v1, seed=cfg.seed)


def eval_encoder(method, which: str = "auto") -> tuple[str, VisionTransformer]:
    """(name, encoder) that an evaluation scores: `auto` is the method's `evaluated` one."""
    if which not in EVAL_ENCODERS:
        raise BenchError(f"eval.encoder {which!r} is not one of {', '.join(EVAL_ENCODERS)}")
    name = method.evaluated if which == "auto" else which
    encoders = method.encoders()
    if name not in encoders:
        raise BenchError(f"this method has no {name} encoder; eval.encoder must be one of auto, {', '.join(encoders)}")
    return name, encoders[name]


def _build(cls, *args, **kwargs):
    try:
        return cls(*args, **kwargs)
    except ValueError as e:  # a config the method cannot run, e.g. masks too large for the grid
        raise BenchError(str(e)) from None


def augmentation(cfg: RunConfig) -> Augmentation:
    """The training augmentation of the method's own config section."""
    section = getattr(cfg, cfg.method)
    return Augmentation(
        crop_scale=tuple(section.crop_scale),
        hflip=bool(getattr(section, "hflip", False)),
        interpolation=getattr(section, "interpolation", "bilinear"),
        color_jitter=float(getattr(section, "color_jitter", 0.0)),
    )


def build_method(cfg: RunConfig, in_chans: int):
    return METHODS.get(cfg.method)(cfg, in_chans)


def check_method(cfg: RunConfig) -> None:
    """Build the method on the meta device (no memory, no compute) so a bad config fails before launch.
    A build depends only on the method, backbone, image size and method section: checked once each,
    so a 1,000-run sweep over seeds or learning rates builds one model, not 1,000."""
    section = json.dumps(asdict(getattr(cfg, cfg.method)), sort_keys=True, default=str)
    key = (cfg.method, cfg.backbone, cfg.data.image_size, section, cfg.eval.encoder)
    if key not in _checked:
        with torch.device("meta"):
            eval_encoder(build_method(cfg, in_chans=3), cfg.eval.encoder)
        augmentation(cfg)
        _checked.add(key)


_checked: set[tuple] = set()
