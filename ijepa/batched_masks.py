"""I-JEPA's masks drawn in batched tensor code, on any device: the distributions of ijepa/masks.py's
exact per-image generator (which the CPU data path keeps, so published runs replay bit for bit), for
the device-resident data path (`IJEPA.input_sampler(device)`).

A step's draws are made for the whole global batch at once from one generator on `device`, seeded from
(seed, step), so a resumed run and every process draw the same masks on the same model of device; each
process keeps its share, truncated as `ijepa.mask.truncate` says:

    gen = MaskGenerator((14, 14), MaskConfig(), seed=0)   # the settings, checked once
    ctx, tgt = batched_masks(gen, 256, step=0, device=torch.device("cuda"))   # (B, Nc), (M, B, Nt)

Multiblock, as the exact generator: per step one target size and one context size; per image M target
blocks placed at random, then the context block. The exact generator tries context placements one at a
time, 20 under each relaxation level r (ignoring the last r targets) until one keeps more than min_keep
patches. Here every image gets 20 candidate placements for each level 0..M at once, each scored from an
integral image of the union of the targets it must avoid, and takes the first valid one in the exact
generator's order: the same distribution, without a loop. Level M avoids nothing, and a context block
keeps more than min_keep (MaskGenerator checks it), so every image has a valid candidate.
"""

import torch

from core.grid_masks import box_sums, boxes, first_in_order, step_generator, uniform_below
from ijepa.masks import TRIES_PER_RELAXATION, MaskGenerator

ORIENTATIONS = 8  # the unbiased truncation's orders: row- or column-major, from any of the four corners


def orders(grid: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(8, N): the positions of the grid in each orientation's order, as MaskGenerator._truncate takes
    them (orientation o: column-major if o & 4, rows flipped if o & 2, columns flipped if o & 1)."""
    h, w = grid
    idx = torch.arange(h * w, device=device)
    out = []
    for o in range(ORIENTATIONS):
        rows, cols = idx // w, idx % w
        rows = h - 1 - rows if o & 2 else rows
        cols = w - 1 - cols if o & 1 else cols
        out.append((cols * h + rows if o & 4 else rows * w + cols).argsort())
    return torch.stack(out)


def place(gen: MaskGenerator, g: torch.Generator, shape: tuple[int, ...], size: tuple[int, int]):
    """Top-left corners of h x w blocks, (shape) each: official [0, H-h), unbiased [0, H-h]."""
    extra = 0 if gen.cfg.mode == "official" else 1
    h, w = size
    top = torch.randint(0, gen.height - h + extra, shape, generator=g, device=g.device)
    left = torch.randint(0, gen.width - w + extra, shape, generator=g, device=g.device)
    return top, left


def multiblock(gen: MaskGenerator, g: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Untruncated masks: context (B, N) and targets (B, M, N), bool."""
    c, grid, m = gen.cfg, (gen.height, gen.width), gen.cfg.num_targets
    u_target, u_context = torch.rand(2, generator=g, device=g.device).tolist()
    t_size = gen.block_size(u_target, c.target_scale, c.target_aspect)
    c_size = gen.block_size(u_context, c.context_scale, c.context_aspect)
    targets = boxes(*place(gen, g, (batch, m), t_size), *t_size, grid)  # (B, M, N)
    if c.allow_overlap:
        return boxes(*place(gen, g, (batch,), c_size), *c_size, grid), targets
    # avoid[:, r]: what the context must avoid at relaxation level r, the union of the first M - r targets
    union = targets.view(batch, m, *grid).cumsum(1) > 0  # (B, M, H, W): of the first j + 1
    avoid = torch.cat([torch.zeros_like(union[:, :1]), union], 1).flip(1)  # (B, M+1, H, W)
    top, left = place(gen, g, (batch, m + 1, TRIES_PER_RELAXATION), c_size)  # (B, M+1, 20)
    kept = c_size[0] * c_size[1] - box_sums(avoid, top, left, *c_size)
    first = (kept > c.min_keep).flatten(1).int().argmax(1)  # (B,): the first valid candidate, level-major
    level = first // TRIES_PER_RELAXATION
    top, left = top.flatten(1).gather(1, first[:, None])[:, 0], left.flatten(1).gather(1, first[:, None])[:, 0]
    context = boxes(top, left, *c_size, grid) & ~avoid[torch.arange(batch, device=g.device), level].flatten(1)
    return context, targets


def ablation(gen: MaskGenerator, g: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's Table 6 strategies (MaskGenerator._ablation), batched: context (B, N), targets (B, M, N)."""
    c, h, w, dev = gen.cfg, gen.height, gen.width, g.device
    n = h * w
    if c.strategy == "rasterized":
        h2, w2 = h // 2, w // 2
        top, left, height, width = torch.tensor(
            [[0, 0, h2, h2], [0, w2, 0, w2], [h2, h2, h - h2, h - h2], [w2, w - w2, w2, w - w2]], device=dev
        )
        quads = boxes(top, left, height, width, (h, w))  # (4, N): grid[:h2, :w2], grid[:h2, w2:], ...
        others = torch.tensor([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]], device=dev)
        k = torch.randint(0, 4, (batch,), generator=g, device=dev)
        return quads[k], quads[others[k]]
    if c.strategy == "block":
        u = torch.rand(batch, generator=g, device=dev).double()  # one size per image
        (s0, s1), (a0, a1) = c.target_scale, c.target_aspect
        count = (h * w * (s0 + u * (s1 - s0))).floor()
        aspect = a0 + u * (a1 - a0)
        bh = (count * aspect).sqrt().round().long().clamp(1, h - 1)  # block_size's shrink, then max(1, .)
        bw = (count / aspect).sqrt().round().long().clamp(1, w - 1)
        extra = 0 if c.mode == "official" else 1
        top, left = uniform_below(h - bh + extra, g), uniform_below(w - bw + extra, g)
        inside = boxes(top, left, bh, bw, (h, w))
        return ~inside, inside[:, None]
    chosen = torch.rand(batch, n, generator=g, device=dev).argsort(1)[:, : max(1, int(n * c.target_scale[0]))]
    target = torch.zeros(batch, n, dtype=torch.bool, device=dev).scatter(1, chosen, True)
    return ~target, target[:, None]


def batched_masks(
    gen: MaskGenerator, batch_size: int, step: int, rank: int = 0, world: int = 1, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """What `gen(batch_size, step, rank, world)` gives, in distribution: process `rank`'s share of the
    masks of a global batch, ctx (B/world, Nc) and tgt (M, B/world, Nt), long, sorted, on `device`."""
    if batch_size % world:
        raise ValueError(f"a batch of {batch_size} does not split over {world} processes")
    device = torch.device("cpu") if device is None else torch.device(device)
    g = step_generator(gen.seed, step, device)
    draw = multiblock if gen.cfg.strategy == "multiblock" else ablation
    context, targets = draw(gen, g, batch_size)  # (B, N), (B, M, N)
    m = targets.shape[1]
    if gen.cfg.mode == "unbiased":  # one orientation per mask, drawn for the global batch: (B, 1+M, N)
        way = torch.randint(0, ORIENTATIONS, (batch_size, 1 + m), generator=g, device=device)
        ways = orders((gen.height, gen.width), device)[way]
    local = batch_size // world
    share = slice(rank * local, (rank + 1) * local)
    among = share if gen.cfg.truncate == "process" else slice(None)
    n_ctx, n_tgt = torch.stack([context[among].sum(1).min(), targets[among].sum(2).min()]).tolist()
    ctx_order = tgt_order = None
    if gen.cfg.mode == "unbiased":
        ctx_order, tgt_order = ways[share, 0], ways[share, 1:].flatten(0, 1)
    ctx = first_in_order(context[share], n_ctx, ctx_order)
    tgt = first_in_order(targets[share].flatten(0, 1), n_tgt, tgt_order)  # (B/world * M, Nt), image-major
    return ctx, tgt.view(local, m, n_tgt).transpose(0, 1).contiguous()
