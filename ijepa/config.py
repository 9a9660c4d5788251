"""I-JEPA's configuration; defaults are the official ViT-H/14 recipe (shared/reference/ijepa.md)."""

from dataclasses import dataclass, field


@dataclass
class MaskConfig:
    """Multi-block masking. `mode`:

    - ``official``: the official collator, biases included — a block's top-left is drawn
      with an exclusive upper bound (the last row/column never starts a block) and every
      mask is truncated to the batch's shortest one by dropping its last (bottom-right)
      indices.
    - ``unbiased``: inclusive upper bound, and truncation drops a random subset instead.

    `strategy` selects the paper's Table 6 ablation: ``multiblock`` (the method),
    ``rasterized`` (context one quadrant, targets the other three), ``block`` (one target
    block of scale `target_scale`, context its complement) or ``random`` (random patches
    of ratio `target_scale[0]` as target, context the rest).
    """

    mode: str = "official"
    strategy: str = "multiblock"
    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_keep: int = 10
    allow_overlap: bool = False


@dataclass
class IJEPAConfig:
    predictor_depth: int = 6  # official default; the ViT-H/14 config uses 12
    predictor_width: int = 384
    loss: str = "smooth_l1"  # code: smooth_l1 (beta 1); paper text: l2
    ema: tuple[float, float] = (0.996, 1.0)
    crop_scale: tuple[float, float] = (0.3, 1.0)
    mask: MaskConfig = field(default_factory=MaskConfig)
