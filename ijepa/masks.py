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

import numpy as np
import torch

from core.seeding import ITEMS, STEPS, derive_seed
from ijepa.config import MaskConfig

log = logging.getLogger(__name__)

MODES = ("official", "unbiased")
TRUNCATIONS = ("process", "batch")
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
        if cfg.truncate not in TRUNCATIONS:
            raise ValueError(f"ijepa.mask.truncate {cfg.truncate!r} is not one of {', '.join(TRUNCATIONS)}")
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
        g = torch.Generator().manual_seed(derive_seed(self.seed, step, STEPS))
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
    def _truncate(self, idx: torch.Tensor, length: int, g: torch.Generator) -> torch.Tensor:
        if self.cfg.mode == "official":  # keeps the first (top-left) indices: issue #60's bias
            return idx[:length]
        # The official cut in one of the grid's 8 orientations, drawn per mask: the first `length`
        # indices in row- or column-major order, from any of the four corners. A truncated block keeps
        # the official shape (the same pieces), and no corner is favoured.
        rows, cols = idx // self.width, idx % self.width
        column_major, flip_rows, flip_cols = torch.randint(0, 2, (3,), generator=g).tolist()
        if flip_rows:
            rows = self.height - 1 - rows
        if flip_cols:
            cols = self.width - 1 - cols
        order = cols * self.height + rows if column_major else rows * self.width + cols
        return idx[order.argsort()[:length]].sort().values

    def __call__(self, batch_size: int, step: int, rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx (B/world, Nc), tgt (M, B/world, Nt)): process `rank`'s share of the masks of a global
        batch of `batch_size`. `truncate: process` cuts every mask to the shortest of this share (the
        official collator runs once per GPU); `batch`, to the shortest of the whole batch, so the
        shares of `world` processes join into exactly one process's masks."""
        if batch_size % world:
            raise ValueError(f"a batch of {batch_size} does not split over {world} processes")
        contexts, targets = self.sample(batch_size, step)
        local = batch_size // world
        share = range(rank * local, (rank + 1) * local)
        among = share if self.cfg.truncate == "process" else range(batch_size)
        n_ctx = min(len(contexts[i]) for i in among)
        n_tgt = min(len(m) for i in among for m in targets[i])
        ctx, tgt = [], []
        for i in share:  # drawn per image: the same whatever the number of processes
            g = torch.Generator().manual_seed(derive_seed(derive_seed(self.seed, step, STEPS), i, ITEMS))
            ctx.append(self._truncate(contexts[i], n_ctx, g))
            tgt.append([self._truncate(m, n_tgt, g) for m in targets[i]])
        return torch.stack(ctx), torch.stack([torch.stack(ts) for ts in zip(*tgt, strict=True)])


# --- statistics (scripts/mask_stats.py, tests) ----------------------------------------
def pieces(idx: torch.Tensor, grid: tuple[int, int]) -> int:
    """4-connected pieces of one mask (flat row-major indices)."""
    from scipy import ndimage  # statistics only: training does not need scipy

    image = np.zeros(grid[0] * grid[1], dtype=bool)
    image[idx.numpy()] = True
    return int(ndimage.label(image.reshape(grid))[1])


def mask_statistics(grid: tuple[int, int], cfg: MaskConfig, batch: int, steps: int, world: int = 1) -> dict:
    """What the collated masks cover over `steps` batches of `batch` images on `world` processes:
    mean context and target lengths after truncation, the positions that ever appear in a context
    and in a target, and the mean number of 4-connected pieces of a truncated context."""
    gen = MaskGenerator(grid, cfg, seed=0)
    n = grid[0] * grid[1]
    ctx_len, tgt_len, ctx_pieces = [], [], []
    ctx_seen, tgt_seen = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    for step in range(steps):
        for rank in range(world):
            ctx, tgt = gen(batch, step, rank, world)  # (B/world, Nc), (M, B/world, Nt)
            ctx_len.append(ctx.shape[1])
            tgt_len.append(tgt.shape[2])
            ctx_seen[ctx.flatten().numpy()] = True
            tgt_seen[tgt.flatten().numpy()] = True
            ctx_pieces += [pieces(c, grid) for c in ctx[:32]]
    return {
        "grid": f"{grid[0]}x{grid[1]}",
        "mode": cfg.mode,
        "truncate": cfg.truncate,
        "batch": batch,
        "world": world,
        "context": round(float(np.mean(ctx_len)), 1),
        "context_share": round(float(np.mean(ctx_len)) / n, 3),
        "target": round(float(np.mean(tgt_len)), 1),
        "positions_in_a_context": int(ctx_seen.sum()),
        "positions_in_a_target": int(tgt_seen.sum()),
        "positions": n,
        "context_pieces": round(float(np.mean(ctx_pieces)), 2),
    }
