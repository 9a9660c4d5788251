"""The baselines' masks (shared/reference/baselines.md), drawn per batch from (seed, step) so a
resumed run replays them exactly, like I-JEPA's collator. Each is an `InputSampler`
(core/method.py): a picklable `(batch_size, step) -> dict` run by the data loader's collate, whose
masks split over the processes along dimension 0.

Each draws on the CPU by default, exactly as every published run did; `sampler.on(device)` (what
`Method.input_sampler(device)` returns) draws from a generator on that device and returns tensors there,
with the same distributions. RandomKeep and InverseBlockKeep are tensor code either way; BlockMask's
per-image loop becomes one loop over the batch in lockstep (`BlockMask.batched`).

- ``RandomKeep`` — MAE: per sample, keep int(N(1 - ratio)) patches chosen uniformly at
  random (noise → argsort → the first ones), returned sorted: (B, K).
- ``InverseBlockKeep`` — data2vec 2.0: per clone, grow the *kept* set from b x b blocks at
  random centres until it holds N - int(N ratio) patches; the last block is trimmed at
  random so every clone keeps the same number: (B R, K).
- ``BlockMask`` — BEiT / data2vec v1: blocks of at least `min_block` patches, aspect
  0.3–3.3, added while they fit under round(N ratio) masked patches: (B, N) bool.
"""

import math

import torch

from core.grid_masks import box_sums, boxes, step_generator, uniform_below
from core.method import InputSampler


def check_ratio(name: str, ratio: float) -> None:
    if not 0 < ratio < 1:
        raise ValueError(f"{name} must be in (0, 1), got {ratio}")


class RandomKeep(InputSampler):
    batch_dims = {"keep": 0}  # (B, K)

    def __init__(self, grid: tuple[int, int], ratio: float, seed: int = 0) -> None:
        check_ratio("mae.mask_ratio", ratio)
        self.n = grid[0] * grid[1]
        self.keep = int(self.n * (1 - ratio))
        if self.keep < 1:
            raise ValueError(f"mae.mask_ratio={ratio} keeps no patch of a {grid[0]}x{grid[1]} grid")
        self.seed = seed

    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        g = step_generator(self.seed, step, self.device)
        noise = torch.rand(batch_size, self.n, generator=g, device=g.device)
        keep = noise.argsort(dim=1)[:, : self.keep]
        return {"keep": keep.sort(dim=1).values}  # (B, K)


class InverseBlockKeep(InputSampler):
    batch_dims = {"keep": 0}  # (B*R, K): an image's R clones are adjacent rows

    def __init__(self, grid: tuple[int, int], ratio: float, block: int, clones: int, seed: int = 0) -> None:
        check_ratio("data2vec.mask_ratio", ratio)
        if block < 1:
            raise ValueError(f"data2vec.block_size must be >= 1, got {block}")
        if clones < 1:
            raise ValueError(f"data2vec.num_clones must be >= 1, got {clones}")
        self.height, self.width = grid
        n = self.height * self.width
        self.keep = n - int(n * ratio)
        if self.keep < 1:
            raise ValueError(f"data2vec.mask_ratio={ratio} keeps no patch of a {grid[0]}x{grid[1]} grid")
        self.block, self.clones, self.seed = block, clones, seed

    def masks(self, count: int, g: torch.Generator) -> torch.Tensor:
        """(count, H, W) bool, True = kept; exactly self.keep per mask."""
        h, w, b = self.height, self.width, self.block
        kept = torch.zeros(count, h, w, dtype=torch.bool, device=g.device)
        while True:
            need = self.keep - kept.flatten(1).sum(1)  # (S,)
            if not need.any():
                return kept
            top = torch.randint(0, h, (count,), generator=g, device=g.device) - (b - 1) // 2  # centred on a patch
            left = torch.randint(0, w, (count,), generator=g, device=g.device) - (b - 1) // 2
            new = boxes(top, left, b, b, (h, w)) & ~kept.flatten(1)  # (S, N): the block, clipped to the grid
            # Take every new patch, or a random `need` of them when the block overshoots.
            score = torch.rand(new.shape, generator=g, device=g.device).masked_fill(~new, 2.0)
            rank = score.argsort(1).argsort(1)
            kept |= (new & (rank < need[:, None])).view(count, h, w)

    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        kept = self.masks(batch_size * self.clones, step_generator(self.seed, step, self.device)).flatten(1)
        keep = kept.nonzero()[:, 1].view(len(kept), self.keep)  # row-major: sorted within a row
        return {"keep": keep}  # (B*R, K): rows i*R .. i*R+R-1 are the clones of image i


class BlockMask(InputSampler):
    batch_dims = {"masked": 0}  # (B, N)
    ASPECT = (0.3, 1 / 0.3)
    ATTEMPTS = 10

    def __init__(self, grid: tuple[int, int], ratio: float, min_block: int, seed: int = 0) -> None:
        check_ratio("data2vec_v1.mask_ratio", ratio)
        self.height, self.width = grid
        self.target = round(self.height * self.width * ratio)
        if not 1 <= min_block <= self.target:
            raise ValueError(
                f"data2vec_v1.min_block={min_block} must be between 1 and the {self.target} patches to mask "
                f"on a {grid[0]}x{grid[1]} grid"
            )
        self.min_block, self.seed = min_block, seed

    def _add_block(self, mask: torch.Tensor, room: int, g: torch.Generator) -> int:
        """BEiT's `_mask`: up to 10 tries at a block that adds 1..room new patches; returns how many."""
        lo, hi = (math.log(a) for a in self.ASPECT)
        for _ in range(self.ATTEMPTS):
            u, v = torch.rand(2, generator=g).tolist()
            area = self.min_block + u * (room - self.min_block)
            aspect = math.exp(lo + v * (hi - lo))
            h, w = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if h < self.height and w < self.width:
                top = int(torch.randint(0, self.height - h + 1, (1,), generator=g))
                left = int(torch.randint(0, self.width - w + 1, (1,), generator=g))
                window = mask[top : top + h, left : left + w]
                added = h * w - int(window.sum())
                if 0 < added <= room:
                    window.fill_(True)
                    return added
        return 0

    def sample(self, g: torch.Generator) -> torch.Tensor:
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)
        count = 0
        while count < self.target:
            added = self._add_block(mask, self.target - count, g)
            if added == 0:
                break
            count += added
        return mask.flatten()

    def batched(self, batch_size: int, g: torch.Generator) -> torch.Tensor:
        """(B, H, W) bool: `sample`'s masks for a batch in lockstep, on g's device. Each pass adds one
        block to every image still drawing: `_add_block`'s 10 attempts are drawn at once (they are
        independent given the mask so far) and the first that adds 1..room patches is taken; an image
        stops at its target or when none of the 10 does, as `sample` does: the same distribution."""
        (h, w), dev, shape = (self.height, self.width), g.device, (batch_size, self.ATTEMPTS)
        lo, hi = (math.log(a) for a in self.ASPECT)
        mask = torch.zeros(batch_size, h, w, dtype=torch.bool, device=dev)
        count = torch.zeros(batch_size, 1, dtype=torch.long, device=dev)
        drawing = torch.ones(batch_size, dtype=torch.bool, device=dev)
        rows = torch.arange(batch_size, device=dev)
        passes = 0
        while passes % 4 or drawing.any():  # a host sync every 4th pass only; passes after the last do nothing
            passes += 1
            room = self.target - count  # (B, 1)
            u, v = torch.rand(2, *shape, generator=g, device=dev, dtype=torch.float64)  # (B, 10) each
            area = self.min_block + u * (room - self.min_block)
            aspect = (lo + v * (hi - lo)).exp()
            bh, bw = (area * aspect).sqrt().round().long(), (area / aspect).sqrt().round().long()
            fits = (bh < h) & (bw < w)
            bh, bw = bh.clamp(max=h - 1), bw.clamp(max=w - 1)  # in the grid (a block that does not fit is unused)
            top, left = uniform_below(h - bh + 1, g), uniform_below(w - bw + 1, g)
            added = bh * bw - box_sums(mask, top, left, bh, bw)  # (B, 10)
            ok = fits & (added > 0) & (added <= room)
            first = ok.int().argmax(1)  # (B,): the first attempt that succeeds
            drawing &= ok.any(1)
            top, left, bh, bw, added = (t[rows, first] for t in (top, left, bh, bw, added))
            mask |= boxes(top, left, bh, bw, (h, w)).view(batch_size, h, w) & drawing[:, None, None]
            count[:, 0] += torch.where(drawing, added, 0)
            drawing &= count[:, 0] < self.target
        return mask

    def __call__(self, batch_size: int, step: int) -> dict[str, torch.Tensor]:
        g = step_generator(self.seed, step, self.device)
        if self.device is not None:
            return {"masked": self.batched(batch_size, g).flatten(1)}  # (B, N)
        return {"masked": torch.stack([self.sample(g) for _ in range(batch_size)])}  # (B, N)
