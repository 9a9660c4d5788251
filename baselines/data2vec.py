"""data2vec, both versions (shared/reference/baselines.md). The EMA teacher and its targets
are core/ema.py's, the same code I-JEPA's target encoder uses.

- ``Data2Vec`` — data2vec 2.0 (Baevski et al. 2022, *Efficient Self-supervised Learning with
  Contextualized Target Representations*): each image is embedded once and cloned R times,
  every clone with its own inverse block mask; the student encodes the kept tokens (plus
  [cls]); a conv decoder fills the masked slots, which enter as N(0, 0.01) noise; targets
  are the teacher's top-K FFN outputs, instance-normed, averaged, layer-normed, computed
  once per image and repeated R times. L2 on masked positions scaled by 1/sqrt(D), averaged
  per masked patch, plus 0.01 x the same loss of the student's [cls] output against the mean
  target summed over the process's clones (fairseq's normalisation). The EMA ramps over the
  first 100k updates and holds; the student is the evaluated encoder.
- ``Data2VecV1`` — data2vec (Baevski et al. 2022, image model on BEiT's code), the version
  I-JEPA's tables compare against: the student sees every token, masked ones replaced by
  a learned mask token; targets are the teacher's top-6 block outputs, layer-normed without
  parameters, averaged, layer-normed; smooth-L1 (beta 2, averaged over elements) through a
  linear head on the masked outputs; no weight decay on [cls]. BEiT's drop-path, layer-scale
  and relative position bias are not used: every method shares the same backbone.
"""

import math
from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import Data2VecConfig, Data2VecV1Config
from baselines.masking import BlockMask, InverseBlockKeep
from core.clock import Clock
from core.ema import EMATeacher, contextual_targets
from core.health import std
from core.method import Augmentation, InputSampler, Method, MethodSpec, PaperRun, register_method
from core.ranges import COUNT, DEPTH, FRACTION, MOMENTUM, NON_NEGATIVE, SHARE, WIDTH, Range
from core.vit import VisionTransformer, gather_tokens, init_weights


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of (B, C, H, W), without parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        return F.layer_norm(x, x.shape[-1:]).permute(0, 3, 1, 2)


class ConvDecoder(nn.Module):
    """data2vec 2.0's image decoder: layers of grouped Conv2d → LayerNorm (no affine) → GELU,
    each with a residual where the widths match, then a linear map back to the encoder width."""

    def __init__(self, grid: tuple[int, int], embed_dim: int, cfg: Data2VecConfig) -> None:
        super().__init__()
        for name, width in (("the encoder width", embed_dim), ("data2vec.decoder_dim", cfg.decoder_dim)):
            if width % cfg.decoder_groups:
                raise ValueError(f"{name} ({width}) is not divisible by data2vec.decoder_groups={cfg.decoder_groups}")
        if cfg.decoder_layers < 1 or cfg.decoder_kernel % 2 == 0:
            raise ValueError("data2vec.decoder_layers must be >= 1 and data2vec.decoder_kernel odd")
        self.grid = grid
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(
                    embed_dim if i == 0 else cfg.decoder_dim,
                    cfg.decoder_dim,
                    cfg.decoder_kernel,
                    padding=cfg.decoder_kernel // 2,
                    groups=cfg.decoder_groups,
                ),
                ChannelNorm(),
                nn.GELU(),
            )
            for i in range(cfg.decoder_layers)
        )
        self.proj = nn.Linear(cfg.decoder_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(S, N, D) tokens on the full grid → (S, N, D) predictions."""
        s, n, d = x.shape
        x = x.transpose(1, 2).reshape(s, d, *self.grid)
        for layer in self.layers:
            y = layer(x)
            x = y + x if y.shape == x.shape else y
        return self.proj(x.flatten(2).transpose(1, 2))


OFFICIAL_TOP_K = {12: 10, 24: 18, 32: 24}  # fairseq's data2vec 2.0: ViT-B, L, H


def default_top_k(depth: int) -> int:
    """data2vec 2.0's teacher layers averaged into targets: fairseq's K where it has one for this
    depth, else the top 3/4 of the blocks, rounded."""
    return OFFICIAL_TOP_K.get(depth, max(1, round(0.75 * depth)))


def bert_init(encoder: VisionTransformer) -> None:
    """fairseq's `init_bert_params` on data2vec 2.0's blocks: every Linear normal(0, 0.02), bias 0,
    with no residual rescale; its [cls] token is drawn from N(0, 1) (`init_extra_token_zero: false`)."""
    for m in encoder.blocks.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    nn.init.normal_(encoder.cls_token, std=1.0)


class TeacherStudent(Method):
    """What both data2vecs share: a student encoder with [cls], its EMA teacher (the whole encoder,
    patch embedding included) whose top-K layers are the targets, the EMA step, and the student
    as the evaluated encoder (as both official codebases do). `key` names the config section in error messages."""

    def __init__(self, encoder: VisionTransformer, cfg, key: str) -> None:
        super().__init__()
        if encoder.cls_token is None:
            raise ValueError(f"{key}'s encoder needs a [cls] token")
        depth = len(encoder.blocks)
        self.top_k = default_top_k(depth) if cfg.top_k is None else cfg.top_k
        if not 1 <= self.top_k <= depth:
            raise ValueError(f"{key}.top_k={self.top_k} must be between 1 and the encoder's {depth} blocks")
        self.cfg = cfg
        self.encoder = encoder
        self.teacher = EMATeacher(encoder)

    masks: InputSampler

    def input_sampler(self, device: torch.device | None = None) -> InputSampler:
        return self.masks.on(device)

    def ema_horizon(self, clock: Clock) -> float | None:
        """The fraction of the paper's run over which the momentum ramps: data2vec 2.0's `ema_steps`
        (100k of ViT-B's 375,300 updates); None (v1, or ema_steps: null): the whole of this run."""
        steps = getattr(self.cfg, "ema_steps", None)  # data2vec v1's momentum is constant: it has none
        return None if steps is None else steps / clock.paper_updates

    def after_step(self, clock: Clock) -> float:
        momentum = clock.ema(*self.cfg.ema, horizon=self.ema_horizon(clock))
        self.teacher.update(self.encoder, momentum)
        return momentum

    # Both official codebases evaluate the student: fairseq's data2vec 2.0 image fine-tuning
    # deletes the EMA copy and loads the student; data2vec v1 (BEiT code) fine-tunes `model`.
    evaluated = "student"

    def encoders(self) -> dict[str, VisionTransformer]:
        return {"student": self.encoder, "teacher": self.teacher.net}

    @abstractmethod
    def target_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """What the student regresses to, for every patch of `images`: (B, N, D)."""

    @torch.no_grad()
    def diagnostics(self, images: torch.Tensor) -> dict[str, float]:
        """`target_std`: the mean per-dimension std, over every patch token of `images`, of the targets
        the student regresses to (`target_tokens`, before masking): near 0 when the teacher's targets
        collapse to one vector, whatever the loss says."""
        return {"target_std": std(self.target_tokens(images).flatten(0, 1))}


class Data2Vec(TeacherStudent):
    def __init__(self, encoder: VisionTransformer, cfg: Data2VecConfig, seed: int = 0) -> None:
        bert_init(encoder)  # before the teacher copies it
        super().__init__(encoder, cfg, "data2vec")
        self.decoder = ConvDecoder(encoder.grid, encoder.embed_dim, cfg)
        self.decoder.apply(init_weights)
        self.masks = InverseBlockKeep(encoder.grid, cfg.mask_ratio, cfg.block_size, cfg.num_clones, seed)

    def target_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's top-K FFN outputs, instance-normed, averaged, layer-normed: (B, N, D)."""
        return contextual_targets(self.teacher.layer_outputs(images, at="ffn"), self.top_k, "instance")

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, keep = batch["images"], batch["keep"]  # keep (B*R, K)
        r, dim = self.cfg.num_clones, self.encoder.embed_dim
        y = self.target_tokens(images)  # (B, N, D)
        y = y.repeat_interleave(r, 0)  # (B*R, N, D): once per image, repeated per clone

        tokens = self.encoder.embed(images).repeat_interleave(r, 0)  # embed once, clone R times
        z = self.encoder.encode(gather_tokens(tokens, keep))  # (B*R, 1+K, D)
        noise = torch.randn_like(tokens) * self.cfg.mask_noise_std  # masked slots: noise, not a token
        full = noise.scatter(1, keep.unsqueeze(-1).expand(-1, -1, dim), z[:, 1:].to(noise.dtype))
        pred = self.decoder(full)  # (B*R, N, D)

        masked = torch.ones(keep.shape[0], tokens.shape[1], dtype=torch.bool, device=keep.device)
        masked.scatter_(1, keep, False)
        at = torch.sort(masked.int(), dim=1, descending=True, stable=True).indices[:, : masked.shape[1] - keep.shape[1]]
        scale = 1 / math.sqrt(dim)  # at: the N-K masked positions in order, as [masked] picks, without a GPU wait
        patch_loss = (pred.float() - y).pow(2).sum(-1).gather(1, at).flatten().mean() * scale  # per masked patch
        cls_loss = (z[:, 0].float() - y.mean(1)).pow(2).sum(-1) * scale  # (B*R,): per clone
        # fairseq weighs the [cls] loss by cls_loss * sample_size (this process's masked patches) and
        # sums it over the clones; the trainer divides the total by sample_size. So the [cls] term is
        # cls_loss x the sum over this process's B*R clones (ViT-B: 0.01 x 16 images x 16 clones =
        # 2.56 x the mean), not the mean over clones.
        loss = patch_loss + self.cfg.cls_loss * cls_loss.sum()
        return {"loss": loss, "patch_loss": patch_loss.detach(), "cls_loss": cls_loss.mean().detach()}


class Data2VecV1(TeacherStudent):
    def __init__(self, encoder: VisionTransformer, cfg: Data2VecV1Config, seed: int = 0) -> None:
        super().__init__(encoder, cfg, "data2vec_v1")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(encoder.embed_dim, encoder.embed_dim)
        self.head.apply(init_weights)
        self.masks = BlockMask(encoder.grid, cfg.mask_ratio, cfg.min_block, seed)

    def no_weight_decay(self) -> set[str]:
        return {"encoder.cls_token"}  # BEiT's no_weight_decay(): pos_embed (fixed here) and cls_token

    def target_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's top-K block outputs, layer-normed without affine, averaged: (B, N, D)."""
        return contextual_targets(self.teacher.layer_outputs(images, at="block"), self.top_k, "layer")

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, masked = batch["images"], batch["masked"]  # masked (B, N) bool
        y = self.target_tokens(images)  # (B, N, D)
        x = self.encoder.embed(images, masked=masked, mask_token=self.mask_token)
        z = self.encoder.patch_tokens(self.encoder.encode(x))  # (B, N, D)
        # (M, D) over the batch's masked patches. M varies per batch while the batch's shapes do
        # not, so the FLOP count (once per shape) misses the head's share of that variation: < 0.1 %.
        pred = self.head(z[masked])
        return {"loss": F.smooth_l1_loss(pred.float(), y[masked], beta=self.cfg.loss_beta)}


def build_data2vec(encoder: VisionTransformer, cfg: Data2VecConfig, in_chans: int, seed: int) -> Data2Vec:
    return Data2Vec(encoder, cfg, seed=seed)


def build_data2vec_v1(encoder: VisionTransformer, cfg: Data2VecV1Config, in_chans: int, seed: int) -> Data2VecV1:
    return Data2VecV1(encoder, cfg, seed=seed)


def data2vec_augmentation(cfg: Data2VecConfig) -> Augmentation:
    return Augmentation(crop_scale=tuple(cfg.crop_scale), hflip=cfg.hflip, interpolation=cfg.interpolation)


def data2vec_v1_augmentation(cfg: Data2VecV1Config) -> Augmentation:
    return Augmentation(tuple(cfg.crop_scale), cfg.hflip, cfg.interpolation, float(cfg.color_jitter))


register_method(
    MethodSpec(
        name="data2vec",
        build=build_data2vec,
        section=Data2VecConfig,
        augmentation=data2vec_augmentation,
        cls_token=True,
        recipe={
            "lr": 1e-3,  # fairseq's ViT-B: 1e-3 at batch 256 (16 GPUs x 16 images)
            "start_lr": 0.0,
            "final_lr": 0.0,
            "warmup": 50_040 / 375_300,  # fairseq's warmup_updates over max_update
            "weight_decay": 0.05,
            "final_weight_decay": 0.05,
            "betas": (0.9, 0.95),
            "clip_grad": 4.0,
        },
        paper_run=PaperRun(375_300, 256, "ViT-B fairseq base_images_only_task.yaml: max_update 375,300"),
        ranges={
            "num_clones": Range(1, 64),
            "mask_ratio": FRACTION,
            "block_size": Range(1, 64),
            "top_k": Range(1, why="(or null: fairseq's for the depth)"),
            "decoder_dim": WIDTH,
            "decoder_layers": DEPTH,
            "decoder_kernel": Range(1, 63),
            "decoder_groups": Range(1, 8192),
            "mask_noise_std": NON_NEGATIVE,
            "cls_loss": NON_NEGATIVE,
            "ema": MOMENTUM,
            "ema_steps": Range(1, why="(or null: over the whole run)"),
            "crop_scale": SHARE,
        },
    )
)

register_method(
    MethodSpec(
        name="data2vec_v1",
        build=build_data2vec_v1,
        section=Data2VecV1Config,
        augmentation=data2vec_v1_augmentation,
        cls_token=True,
        recipe={
            "lr": 2e-3 * 256 / 2048,  # 2e-3 at batch 2048
            "start_lr": 0.0,
            "final_lr": 1e-5 * 256 / 2048,  # BEiT's min_lr, same scaling
            "warmup": 10 / 800,
            "weight_decay": 0.05,
            "final_weight_decay": 0.05,
            "clip_grad": 3.0,
        },
        paper_run=PaperRun(500_000, 2048, "ViT-B (BEiT code): 800 epochs x 625 updates (batch 2048)"),
        ranges={
            "mask_ratio": FRACTION,
            "min_block": COUNT,
            "top_k": COUNT,
            "loss_beta": NON_NEGATIVE,  # 0: plain L1
            "ema": MOMENTUM,
            "crop_scale": SHARE,
            "color_jitter": NON_NEGATIVE,
        },
    )
)
