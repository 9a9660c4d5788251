"""Vision Transformer backbones built from timm's blocks, registered by name.

Pre-norm ViT as I-JEPA uses it (shared/reference/ijepa.md, "Architecture"): qkv bias,
LayerNorm eps 1e-6, GELU MLP, final LayerNorm, fixed 2-D sin-cos positional embedding
added before masking, optional [cls] token, truncated-normal init with the residual
projections of block l divided by sqrt(2l). `forward(x, keep)` runs on the kept tokens only.

    enc = BACKBONES.get("vit_base_patch16")(img_size=224, in_chans=3)
    z = enc(images, keep=ctx_idx)  # (B, K, D)
"""

import math
from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import PatchEmbed, resample_abs_pos_embed, trunc_normal_
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from core.registry import Registry

BACKBONES: Registry = Registry("backbone")


def sincos_pos_embed(grid: tuple[int, int], dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding (1, H*W, dim): half the channels encode the row, half the column."""
    return build_sincos2d_pos_embed(list(grid), dim=dim, temperature=10000.0).unsqueeze(0)


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def make_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    """timm pre-norm blocks with I-JEPA's init: residual projections of block l scaled by 1/sqrt(2l)."""
    blocks = nn.ModuleList(
        Block(dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
        for _ in range(depth)
    )
    blocks.apply(init_weights)
    for layer, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer))
    return blocks


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), idx (B, K) → (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class VisionTransformer(nn.Module):
    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        cls_token: bool = False,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"image size {img_size} is not a multiple of patch size {patch_size}")
        self.embed_dim, self.patch_size = embed_dim, patch_size
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.num_heads = num_heads
        # other image sizes (a multi-crop's local views) are embedded too, with resampled positions
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=False)
        self.register_buffer("pos_embed", sincos_pos_embed(self.grid, embed_dim), persistent=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if cls_token else None
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.patch_embed.apply(init_weights)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W); keep (B, K) indices of patches to keep → (B, [1+]K, D) after the final norm."""
        x = self.embed(x)  # (B, N, D)
        if keep is not None:
            x = gather_tokens(x, keep)  # (B, K, D)
        return self.encode(x)

    def embed(
        self, x: torch.Tensor, masked: torch.Tensor | None = None, mask_token: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Patch tokens plus position, (B, N, D); `masked` (B, N) patches are replaced by `mask_token`
        before the position is added (BEiT / data2vec v1)."""
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        x = self.patch_embed(x)
        if masked is not None:
            x = torch.where(masked.unsqueeze(-1), mask_token.to(x.dtype), x)
        return x + self.positions(grid)

    def positions(self, grid: tuple[int, int]) -> torch.Tensor:
        """The positional embedding of a grid: the built one, or for another grid (an image of another
        size) the built one resampled bicubically to it, as timm's `dynamic_img_size` and DINO do, so
        a smaller crop's patches span the same range of positions as the full image's."""
        if grid == self.grid:
            return self.pos_embed
        pos = resample_abs_pos_embed(self.pos_embed, list(grid), list(self.grid), num_prefix_tokens=0)
        return pos.to(self.pos_embed.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Embedded tokens (B, K, D) → (B, [1+]K, D): [cls] prepended, blocks, final norm."""
        return self.encode_layers(x, 1)[0]

    def encode_layers(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """Embedded tokens (B, K, D) → the last n blocks' outputs, each through the final norm
        (dinov2's intermediate layers): n tensors (B, [1+]K, D), the last one equal to encode(x)."""
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i >= len(self.blocks) - n:
                outs.append(self.norm(x))
        return outs

    def last_layers(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """Images (B, C, H, W) → the last n blocks' normed outputs (see encode_layers)."""
        return self.encode_layers(self.embed(x), n)

    def patch_tokens(self, out: torch.Tensor) -> torch.Tensor:
        """Drop the [cls] token from an output, if this backbone has one."""
        return out if self.cls_token is None else out[:, 1:]


@dataclass(frozen=True)
class ViTSize:
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0


SIZES = {
    "nano": ViTSize(96, 4, 3),
    "tiny": ViTSize(192, 12, 3),
    "small": ViTSize(384, 12, 6),
    "base": ViTSize(768, 12, 12),
    "large": ViTSize(1024, 24, 16),
    "huge": ViTSize(1280, 32, 16),
    "giant": ViTSize(1408, 40, 16, 48 / 11),  # I-JEPA's ViT-g: MLP width 6144
}
# Patch 14/16 for ImageNet-size images; patch 4 for 28-32 px images (I-JEPA issue #39).
PATCHES = {name: (14, 16) for name in SIZES} | {"nano": (4,), "tiny": (4, 16), "small": (4, 16)}


def _register(size_name: str, patch: int) -> None:
    size = SIZES[size_name]

    def build(img_size: int = 224, in_chans: int = 3, cls_token: bool = False) -> VisionTransformer:
        return VisionTransformer(
            img_size, patch, in_chans, size.embed_dim, size.depth, size.num_heads, size.mlp_ratio, cls_token
        )

    BACKBONES.register(f"vit_{size_name}_patch{patch}")(build)


for _name, _patches in PATCHES.items():
    for _patch in _patches:
        _register(_name, _patch)


def count_params(module: nn.Module, trainable: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
