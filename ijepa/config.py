"""I-JEPA's configuration; defaults are the official ViT-H/14 recipe (shared/reference/ijepa.md)."""

from dataclasses import dataclass, field


@dataclass
class MaskConfig:
    """Multi-block masking. `mode`:

    - ``official``: the official collator, biases included — a block's top-left is drawn
      with an exclusive upper bound (the last row/column never starts a block) and every
      mask is truncated to the batch's shortest one by dropping its last (bottom-right)
      indices.
    - ``unbiased``: inclusive upper bound, and truncation makes the official cut in one of the
      grid's 8 orientations drawn per mask (the first indices in row- or column-major order from
      any corner), so a truncated block keeps the official shape and favours no corner.

    `truncate`: ``process`` cuts every mask to the shortest one among this process's share of
    the batch, as the official collator does once per GPU; ``batch`` cuts to the shortest of
    the whole global batch, so a multi-process run equals one process on that batch.

    `strategy` selects the paper's Table 6 ablation: ``multiblock`` (the method),
    ``rasterized`` (context one quadrant, targets the other three), ``block`` (one target
    block of scale `target_scale`, context its complement) or ``random`` (random patches
    of ratio `target_scale[0]` as target, context the rest).
    """

    mode: str = "official"
    truncate: str = "process"
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
    interpolation: str = "bilinear"  # src/transforms.py: RandomResizedCrop's default
    mask: MaskConfig = field(default_factory=MaskConfig)
