"""MAE (He et al. 2021, *Masked Autoencoders Are Scalable Vision Learners*; shared/reference/baselines.md).

The encoder (a ViT with [cls]) sees the visible 25 % of the patches; a narrow ViT decoder
gets them back in place among copies of one learned mask token, with its own sin-cos
positions, and predicts every patch's pixels; the loss is the MSE on the removed patches,
against per-patch normalised pixels with `norm_pix_loss`.
"""

import torch
from torch import nn

from baselines.config import MAEConfig
from baselines.masking import RandomKeep
from core.method import Augmentation, Method, MethodSpec, PaperRun, register_method
from core.ranges import FRACTION, SHARE, WIDTH, Range
from core.vit import VisionTransformer, make_blocks, sincos_pos_embed


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, p*p*C), patches in the patch embedding's row-major order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def mae_init(module: nn.Module) -> None:
    """MAE's init: Xavier-uniform linear layers, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MAE(Method):
    def __init__(self, encoder: VisionTransformer, cfg: MAEConfig, in_chans: int, seed: int = 0) -> None:
        super().__init__()
        if encoder.cls_token is None:
            raise ValueError("MAE's encoder needs a [cls] token")
        if cfg.decoder_width % cfg.decoder_heads:
            raise ValueError(f"mae.decoder_width={cfg.decoder_width} is not divisible by {cfg.decoder_heads} heads")
        self.cfg = cfg
        self.encoder = encoder
        self.masks = RandomKeep(encoder.grid, cfg.mask_ratio, seed)
        width = cfg.decoder_width
        self.decoder_embed = nn.Linear(encoder.embed_dim, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.register_buffer("decoder_pos", sincos_pos_embed(encoder.grid, width), persistent=False)
        self.decoder_blocks = make_blocks(width, cfg.decoder_depth, cfg.decoder_heads, 4.0)
        self.decoder_norm = nn.LayerNorm(width, eps=1e-6)
        self.decoder_pred = nn.Linear(width, encoder.patch_size**2 * in_chans)
        self.apply(mae_init)
        proj = encoder.patch_embed.proj.weight
        nn.init.xavier_uniform_(proj.data.view(proj.shape[0], -1))  # the patch projection as a linear layer
        nn.init.normal_(encoder.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def input_sampler(self, device: torch.device | None = None) -> RandomKeep:
        return self.masks.on(device)

    def decode(self, z: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encoder output z (B, 1+K, D) at kept indices (B, K) → pixel predictions (B, N, p*p*C)."""
        x = self.decoder_embed(z)  # (B, 1+K, d)
        b, n = x.shape[0], self.encoder.num_patches
        full = self.mask_token.to(x.dtype).expand(b, n, -1)  # (B, N, d)
        full = full.scatter(1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]), x[:, 1:])  # un-shuffle
        x = torch.cat([x[:, :1], full + self.decoder_pos], dim=1)  # [cls] has no position
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        target = patchify(images, self.encoder.patch_size).float()  # (B, N, p*p*C)
        if self.cfg.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return target

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, keep = batch["images"], batch["keep"]  # keep (B, K)
        pred = self.decode(self.encoder(images, keep=keep), keep)  # (B, N, p*p*C)
        per_patch = (pred.float() - self.targets(images)).pow(2).mean(-1)  # (B, N)
        removed = torch.ones_like(per_patch).scatter(1, keep, 0.0)
        return {"loss": (per_patch * removed).sum() / removed.sum()}

    evaluated = "student"  # MAE has one encoder, the one its paper evaluates

    def encoders(self) -> dict[str, VisionTransformer]:
        return {"student": self.encoder}


def build(encoder: VisionTransformer, cfg: MAEConfig, in_chans: int, seed: int) -> MAE:
    return MAE(encoder, cfg, in_chans, seed=seed)


def augmentation(cfg: MAEConfig) -> Augmentation:
    return Augmentation(crop_scale=tuple(cfg.crop_scale), hflip=cfg.hflip, interpolation=cfg.interpolation)


register_method(
    MethodSpec(
        name="mae",
        build=build,
        section=MAEConfig,
        augmentation=augmentation,
        cls_token=True,
        recipe={
            "lr": 1.5e-4,  # per 256 images (the paper's rule: lr = 1.5e-4 x batch / 256)
            "start_lr": 0.0,
            "final_lr": 0.0,
            "warmup": 40 / 800,
            "weight_decay": 0.05,
            "final_weight_decay": 0.05,
            "betas": (0.9, 0.95),
        },
        paper_run=PaperRun(249_600, 4096, "ViT-L: 800 epochs x 312 updates (1,281,167 images // 4096, drop_last)"),
        ranges={
            "mask_ratio": FRACTION,
            "decoder_depth": Range(0, 64),  # 0: a linear decoder
            "decoder_width": WIDTH,
            "decoder_heads": Range(1, 1024),
            "crop_scale": SHARE,
        },
    )
)
