"""I-JEPA: predictor and the method (shared/reference/ijepa.md).

The context encoder sees the patches of the context block; the EMA target encoder sees
the whole image, its output is layer-normed (no affine) and gathered at each target
block; the predictor maps context tokens plus one mask token per target patch to the
target representations; the loss is smooth-L1 (official code) or L2 (paper text). The method
registers itself at the end of this module (core/method.py `MethodSpec`).
"""

import torch
import torch.nn.functional as F
from torch import nn

from core.clock import Clock
from core.ema import EMATeacher
from core.health import std
from core.method import Augmentation, InputSampler, Method, MethodSpec, PaperRun, register_method
from core.ranges import DEPTH, MOMENTUM, NON_NEGATIVE, SHARE, WIDTH, Range
from core.vit import VisionTransformer, gather_tokens, init_weights, make_blocks, sincos_pos_embed
from ijepa.batched_masks import batched_masks
from ijepa.config import IJEPAConfig, MaskConfig
from ijepa.masks import MaskGenerator

LOSSES = ("smooth_l1", "l2")


class Predictor(nn.Module):
    """Narrow ViT: all M target blocks run in one pass of batch M*B."""

    def __init__(self, grid: tuple[int, int], embed_dim: int, width: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("pos_embed", sincos_pos_embed(grid, width), persistent=False)
        self.blocks = make_blocks(width, depth, num_heads, 4.0)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.proj = nn.Linear(width, embed_dim)
        for m in (self.embed, self.norm, self.proj):
            m.apply(init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, z: torch.Tensor, ctx: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """z (B, Nc, D) context tokens; ctx (B, Nc), tgt (M, B, Nt) indices → (M*B, Nt, D)."""
        m, b, _ = tgt.shape
        pos = self.pos_embed.expand(b, -1, -1)
        x = self.embed(z) + gather_tokens(pos, ctx)  # (B, Nc, d)
        x = x.repeat(m, 1, 1)  # (M*B, Nc, d), target-major like tgt.flatten(0, 1)
        tgt = tgt.flatten(0, 1)  # (M*B, Nt)
        queries = self.mask_token + gather_tokens(pos.repeat(m, 1, 1), tgt)  # (M*B, Nt, d)
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)[:, ctx.shape[1] :]  # keep the target outputs
        return self.proj(x)


def official_init(module: nn.Module) -> None:
    """The official training pipeline (src/helper.py `init_model`) re-initialises every Linear with
    trunc-normal(0.02), bias 0, and every LayerNorm to (1, 0) after building the models, which undoes
    the 1/sqrt(2l) rescale of the residual projections that its ViT constructor applied."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.LayerNorm):  # not the patch embedding's Conv2d
            init_weights(m)


class MaskInputs(InputSampler):
    """(batch_size, step) -> masks. `process_share` gives one process its share of a global batch's
    masks, truncated within that share as the official per-GPU collator does (ijepa.mask.truncate).
    On the CPU by default, the exact per-image generator (ijepa/masks.py); `on(device)`: the batched
    one with the same distributions (ijepa/batched_masks.py), drawn on that device."""

    batch_dims = {"masks_ctx": 0, "masks_tgt": 1}  # ctx (B, Nc), tgt (M, B, Nt)

    def __init__(self, masks: MaskGenerator) -> None:
        self.masks = masks

    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        return self.process_share(batch_size, step, 0, 1)

    def process_share(self, batch_size: int, step: int, rank: int, world: int) -> dict[str, torch.Tensor]:
        if self.device is None:
            ctx, tgt = self.masks(batch_size, step, rank, world)
        else:
            ctx, tgt = batched_masks(self.masks, batch_size, step, rank, world, self.device)
        return {"masks_ctx": ctx, "masks_tgt": tgt}


class IJEPA(Method):
    """The method (core/method.py's contract); `input_sampler()` draws each batch's masks from its step."""

    def __init__(self, encoder: VisionTransformer, cfg: IJEPAConfig, seed: int = 0) -> None:
        super().__init__()
        if cfg.loss not in LOSSES:
            raise ValueError(f"ijepa.loss {cfg.loss!r} is not one of {', '.join(LOSSES)}")
        if cfg.predictor_width % encoder.num_heads:
            raise ValueError(
                f"ijepa.predictor_width={cfg.predictor_width} must be divisible by the encoder's "
                f"{encoder.num_heads} heads (the predictor uses as many heads as the encoder)"
            )
        self.cfg = cfg
        self.encoder = encoder
        self.predictor = Predictor(
            encoder.grid, encoder.embed_dim, cfg.predictor_width, cfg.predictor_depth, encoder.num_heads
        )
        official_init(self.encoder)
        official_init(self.predictor)
        self.target = EMATeacher(encoder)
        self.masks = MaskGenerator(encoder.grid, cfg.mask, seed)

    def input_sampler(self, device: torch.device | None = None) -> MaskInputs:
        return MaskInputs(self.masks).on(device)

    @torch.no_grad()
    def targets(self, images: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Layer-normed target-encoder output gathered at the targets: (M*B, Nt, D)."""
        h = self.target.last_layer(images)  # (B, N, D)
        m = tgt.shape[0]
        return gather_tokens(h.repeat(m, 1, 1), tgt.flatten(0, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, ctx, tgt = batch["images"], batch["masks_ctx"], batch["masks_tgt"]
        target = self.targets(images, tgt)  # (M*B, Nt, D)
        z = self.encoder.patch_tokens(self.encoder(images, keep=ctx))  # (B, Nc, D)
        pred = self.predictor(z, ctx, tgt)  # (M*B, Nt, D)
        if self.cfg.loss == "smooth_l1":
            loss = F.smooth_l1_loss(pred.float(), target.float())
        else:
            loss = F.mse_loss(pred.float(), target.float())
        return {"loss": loss}

    def after_step(self, clock: Clock) -> float:
        momentum = clock.ema(*self.cfg.ema)  # 0.996 -> 1.0 over the whole run
        self.target.update(self.encoder, momentum)
        return momentum

    @torch.no_grad()
    def diagnostics(self, images: torch.Tensor) -> dict[str, float]:
        """`target_std`: the mean per-dimension std, over every patch token of `images`, of what the
        predictor regresses to (the target encoder's layer-normed output before the targets are
        gathered): near 0 when the targets collapse to one vector, whatever the loss says."""
        return {"target_std": std(self.target.last_layer(images).flatten(0, 1))}

    evaluated = "teacher"  # the paper's appendix evaluates the target (EMA) encoder

    def encoders(self) -> dict[str, VisionTransformer]:
        return {"student": self.encoder, "teacher": self.target.net}


def build(encoder: VisionTransformer, cfg: IJEPAConfig, in_chans: int, seed: int) -> IJEPA:
    return IJEPA(encoder, cfg, seed=seed)


def default_config() -> IJEPAConfig:
    """The bench's default section. The embedded default is Fashion-MNIST at 32 px, an 8x8 grid with
    patch 4. The official collator never places a block on the grid's last row or column (exclusive
    bound), so there its context is always the 7x7 block at (0, 0); `unbiased` lets every patch be
    context or target (scripts/mask_stats.py: context 12.2 of 64 patches after truncation, 19.1 %).
    The official min_keep=10 rejects every target block of this grid (9-12 patches); 3 keeps the rest
    unchanged. For ImageNet set ijepa.mask.mode: official and ijepa.mask.min_keep: 10."""
    return IJEPAConfig(mask=MaskConfig(min_keep=3, mode="unbiased"))


def augmentation(cfg: IJEPAConfig) -> Augmentation:
    """A random resized crop only (src/transforms.py)."""
    return Augmentation(crop_scale=tuple(cfg.crop_scale), interpolation=cfg.interpolation)


register_method(
    MethodSpec(
        name="ijepa",
        build=build,
        section=IJEPAConfig,
        default_section=default_config,
        augmentation=augmentation,
        # OptimConfig's defaults are I-JEPA's: 1e-3 (2e-4 -> 1e-3 -> 1e-6) at batch 2048, per 256 images
        recipe={},
        paper_run=PaperRun(
            187_500, 2048, "ViT-H/14 in1k_vith14_ep300.yaml: 300 epochs x 625 updates (1,281,167 images // 2048)"
        ),
        ranges={
            "predictor_depth": DEPTH,
            "predictor_width": WIDTH,
            "ema": MOMENTUM,
            "crop_scale": SHARE,
            "mask.num_targets": Range(1, 64),
            "mask.target_scale": SHARE,
            "mask.target_aspect": Range(0, 100, low_open=True),
            "mask.context_scale": SHARE,
            "mask.context_aspect": Range(0, 100, low_open=True),
            "mask.min_keep": NON_NEGATIVE,
        },
    )
)
