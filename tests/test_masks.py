import statistics

import pytest
import torch

from ijepa.config import MaskConfig
from ijepa.masks import MaskGenerator

VIT_H14 = (16, 16)  # 224 px / patch 14


def test_official_statistics_vit_h14():
    """shared/reference/ijepa.md: targets 35-54 patches, context ≈110 before truncation, ≈67 after."""
    gen = MaskGenerator(VIT_H14, MaskConfig(), seed=0)
    target_sizes, ctx_pre, ctx_post = [], [], []
    for step in range(20):
        contexts, targets = gen.sample(128, step)
        target_sizes += [len(t) for ts in targets for t in ts]
        ctx_pre += [len(c) for c in contexts]
        ctx, tgt = gen(128, step)
        ctx_post.append(ctx.shape[1])
        assert tgt.shape[:2] == (4, 128)
    assert 35 <= min(target_sizes) and max(target_sizes) <= 54
    assert 100 <= statistics.mean(ctx_pre) <= 120
    assert 57 <= statistics.mean(ctx_post) <= 77


def test_official_context_block_is_15x15_at_origin():
    gen = MaskGenerator(VIT_H14, MaskConfig(num_targets=1, allow_overlap=True), seed=0)
    contexts, _ = gen.sample(16, 3)
    expected = torch.arange(256).view(16, 16)[:15, :15].flatten()
    for ctx in contexts:
        assert torch.equal(ctx, expected)


@pytest.mark.parametrize("mode", ["official", "unbiased"])
@pytest.mark.parametrize("strategy", ["multiblock", "rasterized", "block", "random"])
def test_context_and_targets_are_disjoint(mode, strategy):
    cfg = MaskConfig(mode=mode, strategy=strategy)
    if strategy in ("block", "random"):
        cfg.target_scale = (0.6, 0.6)
    gen = MaskGenerator((14, 14), cfg, seed=1)
    contexts, targets = gen.sample(32, 5)
    for ctx, tgts in zip(contexts, targets, strict=True):
        ctx_set = set(ctx.tolist())
        assert ctx_set, "empty context"
        for t in tgts:
            assert not ctx_set & set(t.tolist())
    ctx, tgt = gen(32, 5)
    for b in range(32):  # truncation keeps a subset, so disjointness survives collation
        assert not set(ctx[b].tolist()) & set(tgt[:, b].flatten().tolist())


def test_same_step_same_masks_other_step_other_masks():
    a, b = MaskGenerator(VIT_H14, MaskConfig(), seed=3), MaskGenerator(VIT_H14, MaskConfig(), seed=3)
    ca, ta = a(8, 42)
    cb, tb = b(8, 42)
    assert torch.equal(ca, cb) and torch.equal(ta, tb)
    cc, _ = a(8, 43)
    assert cc.shape != ca.shape or not torch.equal(cc, ca)


def test_official_bound_never_starts_a_block_on_the_last_row():
    gen = MaskGenerator((8, 8), MaskConfig(num_targets=1, allow_overlap=True, min_keep=1), seed=0)
    unbiased = MaskGenerator((8, 8), MaskConfig(mode="unbiased", num_targets=1, allow_overlap=True, min_keep=1), 0)
    last_row = set(range(56, 64))
    seen = {"official": False, "unbiased": False}
    for step in range(200):
        for name, g in (("official", gen), ("unbiased", unbiased)):
            _, targets = g.sample(8, step)
            seen[name] |= any(set(t[0].tolist()) & last_row for t in targets)
    assert not seen["official"] and seen["unbiased"]


def test_modes_draw_the_same_block_sizes():
    """`unbiased` changes only placement and truncation, not the size of the blocks."""
    for grid in ((7, 7), VIT_H14):
        off = MaskGenerator(grid, MaskConfig(min_keep=3), seed=5)
        unb = MaskGenerator(grid, MaskConfig(mode="unbiased", min_keep=3), seed=5)
        for step in range(10):
            _, t_off = off.sample(8, step)
            _, t_unb = unb.sample(8, step)
            assert [len(t) for ts in t_off for t in ts] == [len(t) for ts in t_unb for t in ts]
        for u in (0.0, 0.5, 1.0):
            assert off.block_size(u, (0.85, 1.0), (1.0, 1.0)) == unb.block_size(u, (0.85, 1.0), (1.0, 1.0))


def test_official_truncation_keeps_first_indices_unbiased_does_not():
    off = MaskGenerator(VIT_H14, MaskConfig(), seed=0)
    contexts, _ = off.sample(64, 0)
    ctx, _ = off(64, 0)
    for full, kept in zip(contexts, ctx, strict=True):
        assert torch.equal(kept, full[: len(kept)])
    unb = MaskGenerator(VIT_H14, MaskConfig(mode="unbiased"), seed=0)
    contexts, _ = unb.sample(64, 0)
    ctx, _ = unb(64, 0)
    prefixes = sum(torch.equal(k, f[: len(k)]) for f, k in zip(contexts, ctx, strict=True) if len(f) > len(k))
    assert prefixes == 0
    for full, kept in zip(contexts, ctx, strict=True):
        assert set(kept.tolist()) <= set(full.tolist())


def test_small_grid_raises_instead_of_looping():
    # 32 px with patch 16 (I-JEPA issue #68): a 2x2 grid can never hold a block of > 10 patches
    with pytest.raises(ValueError, match="min_keep"):
        MaskGenerator((2, 2), MaskConfig())
    with pytest.raises(ValueError, match="too small"):
        MaskGenerator((1, 1), MaskConfig(min_keep=0))


def test_small_grid_with_relaxed_min_keep_terminates():
    gen = MaskGenerator((7, 7), MaskConfig(min_keep=3), seed=0)
    ctx, tgt = gen(64, 0)
    assert ctx.shape[1] > 3 and tgt.shape == (4, 64, tgt.shape[2])
