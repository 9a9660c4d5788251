"""Pieces of the batched mask samplers (ijepa/batched_masks.py, baselines/masking.py): the generator of a
step, and rectangles on a patch grid drawn, painted and counted for a whole batch at once, on any device.

    g = step_generator(seed, step, torch.device("cuda"))   # the step's draws, on that device
    top = uniform_below(H - h + 1, g)                      # one placement per image, each its own bound
    inside = boxes(top, left, h, w, (H, W))                # (B, H*W) bool
    covered = box_sums(mask, top, left, h, w)              # how many True of mask (B, H, W) each box holds
"""

import torch
import torch.nn.functional as F

from core.seeding import STEPS, derive_seed


def step_generator(seed: int, step: int, device: torch.device | None = None) -> torch.Generator:
    """The generator of one step's draws, seeded from (seed, step): on the CPU (None), or on `device`."""
    g = torch.Generator() if device is None else torch.Generator(device=device)
    return g.manual_seed(derive_seed(seed, step, STEPS))


def uniform_below(high: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One integer uniform in [0, high) per element of `high` (long, every element >= 1)."""
    u = torch.rand(high.shape, generator=g, device=g.device, dtype=torch.float64)
    return torch.minimum((u * high).long(), high - 1)


def boxes(top: torch.Tensor, left: torch.Tensor, h, w, grid: tuple[int, int]) -> torch.Tensor:
    """(..., H*W) bool: the h x w rectangle at (top, left) of each element of top and left (...); h and
    w are ints or tensors of the same shape. Row-major like the patch tokens."""
    rows = torch.arange(grid[0], device=top.device)
    cols = torch.arange(grid[1], device=top.device)
    in_rows = (rows >= top[..., None]) & (rows < (top + h)[..., None])  # (..., H)
    in_cols = (cols >= left[..., None]) & (cols < (left + w)[..., None])  # (..., W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).flatten(-2)


def box_sums(mask: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h, w) -> torch.Tensor:
    """How many True of `mask` (..., H, W) each rectangle holds: top, left (..., K) (and h, w ints or
    tensors of that shape, each box inside the grid) → (..., K), read off the mask's integral image."""
    integral = F.pad(mask.int().cumsum(-2).cumsum(-1), (1, 0, 1, 0)).flatten(-2)  # (..., (H+1)(W+1))
    stride = mask.shape[-1] + 1
    bottom, right = top + h, left + w

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return integral.gather(-1, r * stride + c)

    return at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)


def first_in_order(masks: torch.Tensor, length: int, order: torch.Tensor | None = None) -> torch.Tensor:
    """(R, length) long, sorted: the first `length` True positions of each mask (R, N) in `order` (R, N)
    (each row a permutation of the positions: the order they are taken in), or row-major (None).
    Every mask holds at least `length`."""
    ordered = masks if order is None else masks.gather(1, order)
    taken = ordered & (ordered.cumsum(1) <= length)
    if order is not None:
        taken = torch.zeros_like(masks).scatter(1, order, taken)
    slot = torch.where(taken, taken.cumsum(1) - 1, length)  # where each taken position goes; the rest: a spare column
    positions = torch.arange(masks.shape[1], device=masks.device).expand_as(masks)
    out = torch.empty(masks.shape[0], length + 1, dtype=torch.long, device=masks.device)
    return out.scatter_(1, slot, positions)[:, :length]
