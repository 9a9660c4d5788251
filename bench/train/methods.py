"""The harness's side of the method contract (core/method.py): build a registered method from a run's
config, pick the encoder an evaluation scores, and read its augmentation.

A method is its own module(s) plus one `register_method(MethodSpec(...))` call there; importing it
(bench/config/schema.py imports every method module) puts it in `core.method.METHODS`, and with it its
config section, optimizer recipe, paper run, ranges and augmentation. Its contract, as `Method`:

- ``input_sampler(device=None) -> InputSampler | None``: per-batch inputs drawn from the step (masks);
  ``sampler(batch_size, step) -> dict``, with ``batch_dims`` (each input's batch dimension, along
  which a multi-process run cuts each process's share) and ``process_share(batch_size, step, rank, world)``;
  with a device, the batched sampler of the same distribution drawing there (the device data path)
- ``forward(batch) -> {"loss": tensor, **parts}``
- ``after_step(clock) -> float | None``: EMA update after each optimizer step; `clock`
  (core/clock.py) says where the run stands and gives the momentum of a paper's EMA schedule
- ``encoders() -> {"student": VisionTransformer[, "teacher": ...]}``: its encoders (the teacher is
  the EMA copy, where the method has one), and ``evaluated``: the one its official code evaluates
  (I-JEPA: teacher; MAE, data2vec 2.0 and v1, LeJEPA: student). ``eval.encoder`` picks another.
- its spec's ``augmentation(section) -> Augmentation``: the crop scale, flip, interpolation and
  colour jitter its official code uses, or a multi-crop (LeJEPA: global and local views)
"""

import json
from dataclasses import asdict

import torch

from bench.config.schema import EVAL_ENCODERS, RunConfig
from bench.errors import BenchError
from core.method import METHODS, Augmentation, Method, MethodSpec
from core.vit import BACKBONES, VisionTransformer


def build_encoder(cfg: RunConfig, in_chans: int, cls_token: bool = False) -> VisionTransformer:
    try:
        return BACKBONES.get(cfg.backbone)(img_size=cfg.data.image_size, in_chans=in_chans, cls_token=cls_token)
    except ValueError as e:  # the image size does not suit the patch size
        raise BenchError(f"data.image_size={cfg.data.image_size} does not suit backbone {cfg.backbone}: {e}") from None


def method_spec(cfg: RunConfig) -> MethodSpec:
    return METHODS.get(cfg.method)


def build_method(cfg: RunConfig, in_chans: int) -> Method:
    """The run's method around a fresh encoder of its backbone (with [cls] where the method has one)."""
    spec = method_spec(cfg)
    encoder = build_encoder(cfg, in_chans, cls_token=spec.cls_token)
    try:
        return spec.build(encoder, getattr(cfg, cfg.method), in_chans=in_chans, seed=cfg.seed)
    except ValueError as e:  # a config the method cannot run, e.g. masks too large for the grid
        raise BenchError(str(e)) from None


def eval_encoder(method: Method, which: str = "auto") -> tuple[str, VisionTransformer]:
    """(name, encoder) that an evaluation scores: `auto` is the method's `evaluated` one."""
    if which not in EVAL_ENCODERS:
        raise BenchError(f"eval.encoder {which!r} is not one of {', '.join(EVAL_ENCODERS)}")
    name = method.evaluated if which == "auto" else which
    encoders = method.encoders()
    if name not in encoders:
        raise BenchError(f"this method has no {name} encoder; eval.encoder must be one of auto, {', '.join(encoders)}")
    return name, encoders[name]


def augmentation(cfg: RunConfig) -> Augmentation:
    """The training augmentation of the method, from its own config section."""
    return method_spec(cfg).augmentation(getattr(cfg, cfg.method))


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
