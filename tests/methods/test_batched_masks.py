"""The batched mask samplers (`Method.input_sampler(device)`) against the exact ones the published runs
replay: their properties, and their statistics over a few hundred batches, equal within sampling error.

A statistic is compared through its per-batch values (batches are independent; the images of one batch
are not: they share the step's block sizes): |mean_exact - mean_batched| <= Z standard errors of the
difference, for every column (a per-position map has one column per patch, hence its larger Z)."""

import functools
import pickle

import numpy as np
import pytest
import torch

import baselines.masking as masking
import ijepa.batched_masks as batched
from baselines.config import Data2VecV1Config
from baselines.masking import BlockMask, InverseBlockKeep, RandomKeep
from baselines.sigreg import unit_slices
from bench.train.methods import build_method
from core.grid_masks import first_in_order, step_generator
from ijepa.config import MaskConfig
from ijepa.masks import MaskGenerator, pieces
from ijepa.model import MaskInputs

from ..conftest import TINY_METHODS, tiny_config
from .test_masks import orientation_prefix

CPU = torch.device("cpu")
CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]
)
Z_SCALAR, Z_MAP = 4.0, 5.0  # two-sided normal tails 6e-5 and 6e-7 per column
STEPS, BATCH = 200, 64

# (grid, mask settings, world): the study's 8x8 (32 px, patch 4) and ViT-B/16's 14x14 at 224 px
IJEPA_CASES = {
    "8x8-unbiased-process-w1": ((8, 8), MaskConfig(mode="unbiased", min_keep=3), 1),
    "8x8-official-batch-w2": ((8, 8), MaskConfig(min_keep=3, truncate="batch"), 2),
    "14x14-official-process-w2": ((14, 14), MaskConfig(), 2),
    "14x14-unbiased-batch-w1": ((14, 14), MaskConfig(mode="unbiased", truncate="batch"), 1),
    # large targets and min_keep: ~8 % of the contexts are found only after ignoring a target (relaxed)
    "8x8-relaxed": ((8, 8), MaskConfig(mode="unbiased", min_keep=10, target_scale=(0.25, 0.3)), 1),
}
BEIT_CASES = {"14x14-default": ((14, 14), 16), "8x8-study": ((8, 8), 5), "14x14-study": ((14, 14), 5)}


def worst_z(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """Per statistic (S, K) arrays of per-batch values: the largest |difference of means| over its K
    columns in standard errors (0 where both are constant and equal, inf where they differ)."""
    out = {}
    for key in a:
        diff = np.abs(a[key].mean(0) - b[key].mean(0))
        se = np.sqrt(a[key].var(0, ddof=1) / len(a[key]) + b[key].var(0, ddof=1) / len(b[key]))
        out[key] = float(np.max(np.where(diff < 1e-12, 0.0, diff / np.maximum(se, 1e-300))))
    return out


def assert_same_distribution(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    z = worst_z(a, b)
    for key, value in z.items():
        limit = Z_MAP if a[key].shape[1] > 1 else Z_SCALAR
        gap = np.abs(a[key].mean(0) - b[key].mean(0)).max()
        assert value <= limit, f"{key}: {value:.1f} standard errors apart (max abs difference {gap:.4f}); all: {z}"


def ijepa_stats(draw, grid: tuple[int, int], world: int, steps: int = STEPS) -> dict[str, np.ndarray]:
    """Per batch (the mean over its processes): context and target lengths after truncation, each
    position's frequency in a context and in a target, the 4-connected pieces of a context, and for
    each target m how often the context overlaps it (only after a relaxation ignored it)."""
    n = grid[0] * grid[1]
    rows = {"context": [], "target": [], "context map": [], "target map": [], "context pieces": [], "overlap": []}
    for step in range(steps):
        per_rank = {key: [] for key in rows}
        for rank in range(world):
            ctx, tgt = (t.cpu() for t in draw(BATCH, step, rank, world))  # (B/w, Nc), (M, B/w, Nt)
            per_rank["context"].append([ctx.shape[1]])
            per_rank["target"].append([tgt.shape[2]])
            per_rank["context map"].append(torch.bincount(ctx.flatten(), minlength=n).numpy() / len(ctx))
            per_rank["target map"].append(torch.bincount(tgt.flatten(), minlength=n).numpy() / tgt[0].numel())
            per_rank["context pieces"].append([np.mean([pieces(c, grid) for c in ctx[:8]])])
            in_ctx = torch.zeros(len(ctx), n, dtype=torch.bool).scatter_(1, ctx, True)  # (B/w, N)
            in_tgt = torch.zeros(*tgt.shape[:2], n, dtype=torch.bool).scatter_(2, tgt, True)  # (M, B/w, N)
            per_rank["overlap"].append((in_ctx & in_tgt).any(-1).float().mean(1).numpy())  # (M,)
        for key in rows:
            rows[key].append(np.mean(per_rank[key], axis=0))
    return {key: np.array(value, dtype=float) for key, value in rows.items()}


@functools.cache
def exact_ijepa(case: str) -> dict[str, np.ndarray]:
    grid, cfg, world = IJEPA_CASES[case]
    return ijepa_stats(MaskGenerator(grid, cfg, seed=0), grid, world)


def batched_sampler(grid, cfg, device):
    sampler = MaskInputs(MaskGenerator(grid, cfg, seed=0)).on(device)

    def draw(batch, step, rank, world):
        out = sampler.process_share(batch, step, rank, world)
        return out["masks_ctx"], out["masks_tgt"]

    return draw


@pytest.mark.slow  # a few hundred batches of the exact generator
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("case", list(IJEPA_CASES))
def test_ijepa_batched_statistics_equal_the_exact_ones(case, device):
    grid, cfg, world = IJEPA_CASES[case]
    assert_same_distribution(exact_ijepa(case), ijepa_stats(batched_sampler(grid, cfg, device), grid, world))


@pytest.mark.slow
def test_the_ijepa_comparison_rejects_an_off_by_one_placement_bound(monkeypatch):
    """The comparison can fail: the batched sampler with the other mode's placement bound (official
    truncation kept) is told apart from the exact official one, by the maps."""
    case = "14x14-official-process-w2"
    grid, cfg, world = IJEPA_CASES[case]
    inclusive, original = MaskGenerator(grid, MaskConfig(mode="unbiased"), seed=0), batched.place
    monkeypatch.setattr(batched, "place", lambda gen, g, shape, size: original(inclusive, g, shape, size))
    z = worst_z(exact_ijepa(case), ijepa_stats(batched_sampler(grid, cfg, CPU), grid, world, steps=50))
    assert z["context map"] > Z_MAP and z["target map"] > Z_MAP, z


def beit_stats(sampler: BlockMask, grid: tuple[int, int], steps: int = STEPS) -> dict[str, np.ndarray]:
    """Per batch: the share of patches masked, each position's frequency of being masked, the pieces
    of a mask and the share of masks that reach exactly round(N ratio)."""
    rows = {"share masked": [], "masked map": [], "pieces": [], "full": []}
    for step in range(steps):
        masked = sampler(BATCH, step)["masked"].cpu()  # (B, N) bool
        rows["share masked"].append([masked.float().mean().item()])
        rows["masked map"].append(masked.float().mean(0).numpy())
        rows["pieces"].append([np.mean([pieces(m.nonzero()[:, 0], grid) for m in masked[:16]])])
        rows["full"].append([(masked.sum(1) == sampler.target).float().mean().item()])
    return {key: np.array(value, dtype=float) for key, value in rows.items()}


def beit(case: str, min_block: int | None = None) -> BlockMask:
    grid, default_block = BEIT_CASES[case]
    return BlockMask(grid, Data2VecV1Config().mask_ratio, min_block or default_block, seed=0)


@functools.cache
def exact_beit(case: str) -> dict[str, np.ndarray]:
    return beit_stats(beit(case), BEIT_CASES[case][0])


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("case", list(BEIT_CASES))
def test_beit_batched_statistics_equal_the_exact_ones(case, device):
    assert_same_distribution(exact_beit(case), beit_stats(beit(case).on(device), BEIT_CASES[case][0]))


@pytest.mark.slow
def test_the_beit_comparison_rejects_an_off_by_one_placement_bound(monkeypatch):
    """The comparison can fail: blocks placed with top in [0, H-h) instead of [0, H-h] are told apart."""
    original = masking.uniform_below
    monkeypatch.setattr(masking, "uniform_below", lambda high, g: original((high - 1).clamp(min=1), g))
    z = worst_z(exact_beit("14x14-default"), beit_stats(beit("14x14-default").on(CPU), (14, 14), steps=50))
    assert z["masked map"] > Z_MAP, z


# --- properties -------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("strategy", ["multiblock", "rasterized", "block", "random"])
@pytest.mark.parametrize("mode", ["official", "unbiased"])
def test_ijepa_batched_masks_are_sorted_disjoint_and_keep_more_than_min_keep(mode, strategy, device):
    cfg = MaskConfig(mode=mode, strategy=strategy, min_keep=10)
    if strategy in ("block", "random"):
        cfg.target_scale = (0.6, 0.6)
    gen = MaskGenerator((14, 14), cfg, seed=1)
    for step in range(5):
        ctx, tgt = batched.batched_masks(gen, 32, step, device=torch.device(device))
        exact_ctx, exact_tgt = gen(32, step)
        assert ctx.device.type == tgt.device.type == torch.device(device).type
        assert ctx.dtype == tgt.dtype == exact_ctx.dtype and tgt.shape[:2] == exact_tgt.shape[:2]
        ctx, tgt = ctx.cpu(), tgt.cpu()
        assert (ctx.diff(dim=1) > 0).all() and (tgt.diff(dim=2) > 0).all()  # sorted, no repeats
        assert ctx.min() >= 0 and max(ctx.max(), tgt.max()) < 196
        if strategy == "multiblock":
            assert ctx.shape[1] > cfg.min_keep
        for b in range(32):
            assert not set(ctx[b].tolist()) & set(tgt[:, b].flatten().tolist())


def test_ijepa_batched_targets_are_blocks_of_the_steps_size():
    """Untruncated multiblock targets are the step's h x w rectangles; contexts avoid every target."""
    gen = MaskGenerator((14, 14), MaskConfig(), seed=0)
    g = step_generator(0, 3, CPU)
    context, targets = batched.multiblock(gen, g, 16)  # (B, N), (B, M, N)
    u = torch.rand(2, generator=step_generator(0, 3, CPU)).tolist()
    h, w = gen.block_size(u[0], gen.cfg.target_scale, gen.cfg.target_aspect)
    for t in targets.flatten(0, 1).view(-1, 14, 14):
        rows, cols = t.any(1).nonzero()[:, 0], t.any(0).nonzero()[:, 0]
        assert (len(rows), len(cols)) == (h, w) and t.sum() == h * w
        assert rows.max() < 14 - 1 and cols.max() < 14 - 1  # official: never on the last row or column
    assert not (context[:, None] & targets).any()


def test_ijepa_unbiased_truncation_cuts_in_one_of_8_orientations():
    gen = MaskGenerator((8, 8), MaskConfig(mode="unbiased", min_keep=3), seed=0)
    context, _ = batched.multiblock(gen, step_generator(0, 0, CPU), 256)
    n = int(context.sum(1).min())
    table = batched.orders((8, 8), CPU)
    for o in range(batched.ORIENTATIONS):
        kept = first_in_order(context, n, table[o].expand(256, -1))
        full = [c.nonzero()[:, 0] for c in context]
        assert all(orientation_prefix(f, k, (8, 8)) for f, k in zip(full, kept, strict=True))
    assert len({tuple(row.tolist()) for row in table}) == batched.ORIENTATIONS


@pytest.mark.parametrize("mode", ["official", "unbiased"])
def test_ijepa_batched_same_step_same_masks_and_shares_join(mode):
    """The same (seed, step) draws the same masks; `truncate: batch` shares of 2 processes join into
    the one-process batch; `truncate: process` keeps at least as much, cut from the same draw."""
    whole = MaskInputs(MaskGenerator((8, 8), MaskConfig(mode=mode, min_keep=3, truncate="batch"), seed=4)).on(CPU)
    each = MaskInputs(MaskGenerator((8, 8), MaskConfig(mode=mode, min_keep=3), seed=4)).on(CPU)
    one = whole(32, 7)
    for key, value in whole(32, 7).items():
        assert torch.equal(value, one[key])
    assert not torch.equal(whole(32, 8)["masks_tgt"], one["masks_tgt"])
    shares = [whole.process_share(32, 7, rank, 2) for rank in range(2)]
    assert torch.equal(torch.cat([s["masks_ctx"] for s in shares]), one["masks_ctx"])
    assert torch.equal(torch.cat([s["masks_tgt"] for s in shares], 1), one["masks_tgt"])
    for rank, share in enumerate(shares):
        own = each.process_share(32, 7, rank, 2)
        assert own["masks_ctx"].shape[1] >= share["masks_ctx"].shape[1]
        if mode == "official":  # the same draw: the global cut is a prefix of the share's cut
            assert torch.equal(own["masks_ctx"][:, : share["masks_ctx"].shape[1]], share["masks_ctx"])


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_beit_batched_masks_fill_blocks_up_to_the_target(device):
    masks = BlockMask((14, 14), Data2VecV1Config().mask_ratio, min_block=16, seed=0).on(device)
    masked = masks(64, step=0)["masked"]
    assert masked.shape == (64, 196) and masked.dtype == torch.bool and masked.device.type == device
    counts = masked.sum(1).cpu()
    assert counts.max() <= 120 and counts.min() >= 16  # never past round(N ratio); at least one block
    assert torch.equal(masked, masks(64, step=0)["masked"]) and not torch.equal(masked, masks(64, step=1)["masked"])


def test_tensor_samplers_on_the_cpu_device_draw_exactly_what_they_did():
    """RandomKeep, InverseBlockKeep and LeJEPA's slices were tensor code already: on a device they draw
    from a generator there, so on the CPU device they are the exact samplers, bit for bit."""
    for sampler in (RandomKeep((14, 14), 0.75, seed=2), InverseBlockKeep((14, 14), 0.8, 3, 4, seed=2)):
        assert torch.equal(sampler(16, 5)["keep"], sampler.on(CPU)(16, 5)["keep"])
    slices = unit_slices(8, 16, step_generator(2, 5, CPU))
    assert torch.equal(slices, unit_slices(8, 16, step_generator(2, 5)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_tensor_samplers_on_cuda_keep_their_distributions():
    cuda = torch.device("cuda")
    keep = RandomKeep((14, 14), 0.75, seed=0).on(cuda)(4096, 0)["keep"]
    assert keep.device.type == "cuda" and keep.shape == (4096, 49) and (keep.diff(dim=1) > 0).all()
    freq = torch.bincount(keep.flatten().cpu(), minlength=196) / 4096  # binomial sd 0.0068
    assert (freq - 0.25).abs().max() < 0.035
    kept = InverseBlockKeep((14, 14), 0.8, 3, 4, seed=0).on(cuda)(256, 0)["keep"]
    assert kept.shape == (1024, 40) and (kept.diff(dim=1) > 0).all()
    assert torch.equal(kept, InverseBlockKeep((14, 14), 0.8, 3, 4, seed=0).on(cuda)(256, 0)["keep"])


@pytest.mark.parametrize("method", TINY_METHODS)
def test_every_method_gives_a_picklable_device_sampler_with_the_exact_ones_inputs(method):
    model = build_method(tiny_config(method), in_chans=1)
    exact, on_device = model.input_sampler(), model.input_sampler(CPU)
    if exact is None:
        assert on_device is None
        return
    assert exact.device is None and on_device.device == CPU
    on_device = pickle.loads(pickle.dumps(on_device))  # the data loader's workers get it pickled
    want, got = exact.process_share(8, 3, 1, 2), on_device.process_share(8, 3, 1, 2)
    assert set(got) == set(want) == set(exact.batch_dims)
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].dim() == want[key].dim()
        dim = exact.batch_dims[key]
        assert dim is None or got[key].shape[dim] == want[key].shape[dim]  # this process's share
