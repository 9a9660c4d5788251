"""I-JEPA's multi-block mask generator, written from the official collator's algorithm
(shared/reference/ijepa.md, "Multi-block masking"), plus the paper's Table 6 strategies.

Per batch, one target block size and one context block size are drawn from a generator
seeded by (seed, step), so a resumed run replays its masks exactly. A single uniform u
drives both scale and aspect ratio of a block, as in the official code.

    gen = MaskGenerator((16, 16), MaskConfig(), seed=0)
    ctx, tgt = gen(batch_size=128, step=0)  # ctx (B, Nc), tgt (M, B, Nt): row-major indices

Small grids never loop forever: a block that can never keep more than `min_keep`
patches raises ValueError naming the settings to change; after 20 failed placements
the context ignores one more target (the official relaxation), so a context block larger
than `min_keep` always succeeds eventually.
"""

import logging
import math

import torch

from ijepa.config import MaskConfig

log = logging.getLogger(__name__)

MODES = ("official", "unbiased")
STRATEGIES = ("multiblock", "rasterized", "block", "random")
TRIES_PER_RELAXATION = 20


class MaskGenerator:
    def __init__(self, grid: tuple[int, int], cfg: MaskConfig, seed: int = 0) -> None:
        self.height, self.width = grid
        self.cfg = cfg
        self.seed = seed
        self.relaxations = 0  # how often the context had to ignore a target (official warns each time)
        if cfg.mode not in MODES:
            raise ValueError(f"ijepa.mask.mode {cfg.mode!r} is not one of {', '.join(MODES)}")
        if cfg.strategy not in STRATEGIES:
            raise ValueError(f"ijepa.mask.strategy {cfg.strategy!r} is not one of {', '.join(STRATEGIES)}")
        for name in ("target_scale", "context_scale"):
            lo, hi = getattr(cfg, name)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"ijepa.mask.{name} must satisfy 0 < min <= max <= 1, got {(lo, hi)}")
        if cfg.num_targets < 1:
            raise ValueError(f"ijepa.mask.num_targets must be >= 1, got {cfg.num_targets}")
        if min(grid) < 2:
            raise ValueError(f"a {grid[0]}x{grid[1]} patch grid is too small for block masking")
        if cfg.strategy == "multiblock":
            self._check_feasible()

    # --- block geometry ---------------------------------------------------------------
    def block_size(self, u: float, scale: tuple[float, float], aspect: tuple[float, float]) -> tuple[int, int]:
        """Official `_sample_block_size` for a given uniform draw u."""
        s = scale[0] + u * (scale[1] - scale[0])
        n = int(self.height * self.width * s)
        a = aspect[0] + u * (aspect[1] - aspect[0])
        h, w = int(round(math.sqrt(n * a))), int(round(math.sqrt(n / a)))
        # Blocks never span the whole grid (official code). Kept in both modes, so that `unbiased`
        # differs from `official` only by the placement bound and the truncation.
        while h >= self.height:
            h -= 1
        while w >= self.width:
            w -= 1
        return max(1, h), max(1, w)

    def _check_feasible(self) -> None:
        c = self.cfg
        for what, scale, aspect in (
            ("target", c.target_scale, c.target_aspect),
            ("context", c.context_scale, c.context_aspect),
        ):
            h, w = min((self.block_size(u / 100, scale, aspect) for u in range(101)), key=lambda hw: hw[0] * hw[1])
            if h * w <= c.min_keep:
                raise ValueError(
                    f"on a {self.height}x{self.width} patch grid a {what} block can be {h}x{w} = {h * w} patches, "
                    f"never more than ijepa.mask.min_keep={c.min_keep}: lower min_keep or raise {what}_scale"
                )

    def _place(self, g: torch.Generator, h: int, w: int) -> tuple[int, int]:
        extra = 0 if self.cfg.mode == "official" else 1  # official: top in [0, H-h), unbiased: [0, H-h]
        top = int(torch.randint(0, self.height - h + extra, (1,), generator=g))
        left = int(torch.randint(0, self.width - w + extra, (1,), generator=g))
        return top, left

    def _block(self, g: torch.Generator, size: tuple[int, int], allowed: list[torch.Tensor] | None = None):
        """Official `_sample_block_mask`: (flat indices, complement) of one block."""
        h, w = size
        if h * w <= self.cfg.min_keep:
            raise ValueError(f"a {h}x{w} block can never keep more than min_keep={self.cfg.min_keep} patches")
        tries, timeout = 0, TRIES_PER_RELAXATION
        while True:
            top, left = self._place(g, h, w)
            mask = torch.zeros(self.height, self.width, dtype=torch.bool)
            mask[top : top + h, left : left + w] = True
            if allowed:
                for region in allowed[: max(len(allowed) - tries, 0)]:
                    mask &= region
            idx = mask.flatten().nonzero().squeeze(1)
            if len(idx) > self.cfg.min_keep:
                break
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, TRIES_PER_RELAXATION
                self.relaxations += 1
        complement = torch.ones(self.height, self.width, dtype=torch.bool)
        complement[top : top + h, left : left + w] = False
        return idx, complement

    # --- per-image sampling -----------------------------------------------------------
    def sample(self, batch_size: int, step: int) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Untruncated masks: per image, a context index tensor and a list of target tensors."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        c = self.cfg
        if c.strategy == "multiblock":
            t_size = self.block_size(float(torch.rand(1, generator=g)), c.target_scale, c.target_aspect)
            c_size = self.block_size(float(torch.rand(1, generator=g)), c.context_scale, c.context_aspect)
        contexts, targets = [], []
        for _ in range(batch_size):
            if c.strategy == "multiblock":
                tgt, complements = zip(*(self._block(g, t_size) for _ in range(c.num_targets)), strict=True)
                ctx, _ = self._block(g, c_size, None if c.allow_overlap else list(complements))
                tgt = list(tgt)
            else:
                ctx, tgt = self._ablation(g)
            contexts.append(ctx)
            targets.append(tgt)
        return contexts, targets

    def _ablation(self, g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = self.height * self.width
        grid = torch.arange(n).view(self.height, self.width)
        c = self.cfg
        if c.strategy == "rasterized":
            h2, w2 = self.height // 2, self.width // 2
            quads = [grid[:h2, :w2], grid[:h2, w2:], grid[h2:, :w2], grid[h2:, w2:]]
            k = int(torch.randint(0, 4, (1,), generator=g))
            return quads[k].flatten(), [q.flatten() for i, q in enumerate(quads) if i != k]
        if c.strategy == "block":
            u = float(torch.rand(1, generator=g))
            h, w = self.block_size(u, c.target_scale, c.target_aspect)
            top, left = self._place(g, h, w)
            inside = torch.zeros(self.height, self.width, dtype=torch.bool)
            inside[top : top + h, left : left + w] = True
            return (~inside).flatten().nonzero().squeeze(1), [inside.flatten().nonzero().squeeze(1)]
        # random patches
        perm = torch.randperm(n, generator=g)
        k = max(1, int(n * c.target_scale[0]))
        return perm[k:].sort().values, [perm[:k].sort().values]

    # --- collation --------------------------------------------------------------------
    def _truncate(self, g: torch.Generator, idx: torch.Tensor, length: int) -> torch.Tensor:
        if self.cfg.mode == "official":  # keeps the first (top-left) indices: issue #60's bias
            return idx[:length]
        keep = torch.randperm(len(idx), generator=g)[:length]
        return idx[keep.sort().values]

    def __call__(self, batch_size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        contexts, targets = self.sample(batch_size, step)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7919)
        n_ctx = min(len(m) for m in contexts)
        n_tgt = min(len(m) for ms in targets for m in ms)
        ctx = torch.stack([self._truncate(g, m, n_ctx) for m in contexts])  # (B, Nc)
        tgt = torch.stack(
            [torch.stack([self._truncate(g, ms[j], n_tgt) for ms in targets]) for j in range(len(targets[0]))]
        )  # (M, B, Nt)
        return ctx, tgt
