"""The baselines' config sections (shared/reference/baselines.md): `mae`, `data2vec`, `data2vec_v1`.

Defaults are the papers' ViT-B recipes; sweeps scale the decoders down for small backbones.
Each method's optimizer recipe, paper run and ranges are in its registration (baselines/mae.py,
baselines/data2vec.py).
"""

from dataclasses import dataclass


@dataclass
class MAEConfig:
    """MAE (He et al. 2021): per-sample random masking, encoder on the visible patches,
    a narrow ViT decoder with one shared mask token, MSE on the removed patches."""

    mask_ratio: float = 0.75
    decoder_depth: int = 8
    decoder_width: int = 512
    decoder_heads: int = 16
    norm_pix_loss: bool = True  # each target patch normalised by its own mean and variance
    crop_scale: tuple[float, float] = (0.2, 1.0)
    hflip: bool = True
    interpolation: str = "bicubic"  # main_pretrain.py: RandomResizedCrop(..., interpolation=3)


@dataclass
class Data2VecConfig:
    """data2vec 2.0 (Baevski et al. 2022b): R masked clones per image, inverse block masking,
    student on the kept tokens, conv decoder, EMA teacher's top-K instance-normed layers."""

    num_clones: int = 16  # R; the teacher runs once per image, its targets are repeated R times
    mask_ratio: float = 0.8  # ViT-B; 0.75 for L/H
    block_size: int = 3  # the kept blocks are block_size x block_size
    # None: fairseq's K for the depth — the top 10 of 12 blocks (ViT-B: 10 main blocks after a
    # 2-block pre-net), 18 of 24 (L), 24 of 32 (H) — and the top 3/4, rounded, at other depths.
    top_k: int | None = None
    decoder_dim: int = 768
    decoder_layers: int = 6
    decoder_kernel: int = 3
    decoder_groups: int = 16
    mask_noise_std: float = 0.01  # masked slots enter the decoder as N(0, std) noise
    # weight of the [cls] → mean-target regression, summed over the process's B x R clones as fairseq
    # does: relative to the clone mean, cls_loss x B x R (2.56 for ViT-B's 16 images per GPU)
    cls_loss: float = 0.01
    ema: tuple[float, float] = (0.9998, 0.99999)
    # updates of the paper's run over which the momentum ramps from ema[0] to ema[1], then holds
    # (fairseq's ema_anneal_end_step, 100k of ViT-B's 375,300: with `recipe: budget` the first
    # 26.6 % of any run); None: over the whole run
    ema_steps: int | None = 100_000
    crop_scale: tuple[float, float] = (0.2, 1.0)  # fairseq's MaeImageDataset
    hflip: bool = True
    interpolation: str = "bicubic"


@dataclass
class Data2VecV1Config:
    """data2vec v1 (Baevski et al. 2022a, BEiT-based): learned mask tokens inside the encoder,
    BEiT block-wise masking, top-6 layer-normed teacher layers, smooth-L1 with beta 2."""

    mask_ratio: float = 120 / 196  # round(N ratio) patches: the README runs' 120 of 196 at ViT-B/16
    min_block: int = 16  # BEiT's smallest masked block, in patches
    top_k: int = 6
    loss_beta: float = 2.0
    ema: tuple[float, float] = (0.9998, 0.9998)  # constant (the README's ViT-B run: --ema_start_at 0)
    crop_scale: tuple[float, float] = (0.08, 1.0)  # BEiT's
    hflip: bool = True
    interpolation: str = "bicubic"
    color_jitter: float = 0.4  # ColorJitter(0.4, 0.4, 0.4): brightness, contrast, saturation (3-channel data)


@dataclass
class LeJEPAConfig:
    """LeJEPA (Balestriero & LeCun 2025): no teacher, no stop-gradient, no predictor. Every view's
    [cls] embedding goes through a projector; the loss is (1 - lam) x the views' squared distance to the
    mean of the global views' projections plus lam x SIGReg (baselines/sigreg.py) of each view's
    projections (shared/reference/lejepa.md). Defaults are the paper's: 2 global views (scale 0.3-1)
    and 6 local ones (0.05-0.3), lam 0.05, a 3-layer projector to 64 dimensions, 1024 slices, 17 knots
    on [0, 3]; `local_size` is the embedded data's (98/224 of 32 px is 14, rounded up to whole patches
    of 4: 16), 98 for ImageNet at 224."""

    global_views: int = 2
    local_views: int = 6
    global_scale: tuple[float, float] = (0.3, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.3)
    local_size: int = 16
    lam: float = 0.05
    slices: int = 1024
    knots: int = 17
    t_max: float = 3.0
    proj_hidden: int = 2048
    proj_dim: int = 64
    proj_layers: int = 3  # linear layers: BatchNorm + ReLU after each but the last
    hflip: float = 0.5
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)  # brightness, contrast, saturation, hue
    jitter_prob: float = 0.8
    grayscale: float = 0.2
    blur: float = 0.5
    solarize: float = 0.2
