"""The baselines' configurations and optimizer recipes (shared/reference/baselines.md).

Defaults are the papers' ViT-B recipes; sweeps scale the decoders down for small
backbones. `RECIPES` holds each method's own optimizer settings: they replace the
engine's defaults (I-JEPA's) when `method` selects the baseline, and a sweep or an
override still wins over them.
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


# Optimizer settings per method (keys of bench.config.schema.OptimConfig). One learning-rate rule for every
# method: each paper's rates are converted to rates per 256 images (paper lr x 256 / paper batch) and
# scaled linearly to the run's global batch (`lr_batch: 256`), as MAE's recipe states it. Warm-ups are
# fractions of the run: the paper's warm-up over the paper's run length (PAPER_RUNS).
RECIPES: dict[str, dict] = {
    "ijepa": {},  # bench.config.schema.OptimConfig's defaults: 1e-3 (2e-4 -> 1e-3 -> 1e-6) at batch 2048, per 256
    "mae": {
        "lr": 1.5e-4,  # per 256 images (the paper's rule: lr = 1.5e-4 x batch / 256)
        "start_lr": 0.0,
        "final_lr": 0.0,
        "warmup": 40 / 800,
        "weight_decay": 0.05,
        "final_weight_decay": 0.05,
        "betas": (0.9, 0.95),
    },
    "data2vec": {
        "lr": 1e-3,  # fairseq's ViT-B: 1e-3 at batch 256 (16 GPUs x 16 images)
        "start_lr": 0.0,
        "final_lr": 0.0,
        "warmup": 50_040 / 375_300,  # fairseq's warmup_updates over max_update
        "weight_decay": 0.05,
        "final_weight_decay": 0.05,
        "betas": (0.9, 0.95),
        "clip_grad": 4.0,
    },
    "data2vec_v1": {
        "lr": 2e-3 * 256 / 2048,  # 2e-3 at batch 2048
        "start_lr": 0.0,
        "final_lr": 1e-5 * 256 / 2048,  # BEiT's min_lr, same scaling
        "warmup": 10 / 800,
        "weight_decay": 0.05,
        "final_weight_decay": 0.05,
        "clip_grad": 3.0,
    },
}


@dataclass(frozen=True)
class PaperRun:
    """The run a method's recipe was tuned for: its length in optimizer updates and global batch.
    `recipe: budget` keeps every step-defined hyper-parameter's ratio to this length; `recipe: paper`
    keeps its absolute value (shared/reference/*.md, and the sources named here)."""

    updates: int
    batch: int
    source: str


PAPER_RUNS: dict[str, PaperRun] = {
    "ijepa": PaperRun(
        187_500, 2048, "ViT-H/14 in1k_vith14_ep300.yaml: 300 epochs x 625 updates (1,281,167 images // 2048)"
    ),
    "mae": PaperRun(249_600, 4096, "ViT-L: 800 epochs x 312 updates (1,281,167 images // 4096, drop_last)"),
    "data2vec": PaperRun(375_300, 256, "ViT-B fairseq base_images_only_task.yaml: max_update 375,300"),
    "data2vec_v1": PaperRun(500_000, 2048, "ViT-B (BEiT code): 800 epochs x 625 updates (batch 2048)"),
}
