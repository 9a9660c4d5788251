"""Published runs replay: each method's tiny run writes, step for step, the records that the code
before issue 14's restructuring wrote (tests/fixtures/replay.json, made by that code on this machine).
Floats within a relative 1e-6, so that another CPU's rounding passes; counts exactly."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from bench.train.engine import train
from bench.train.loader import StepSampler
from core.seeding import EPOCHS, INDICES, ITEMS, STEPS, derive_seed

from ..conftest import TINY_METHODS, tiny_config

REPLAY = json.loads((Path(__file__).parents[1] / "fixtures" / "replay.json").read_text())
KEYS = ("step", "progress", "loss", "lr", "wd", "ema", "images", "flops")


@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_each_method_replays_the_records_of_the_code_before(method, tmp_path):
    train(tiny_config(method, log_every=1, **{"budget.value": 5}), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # the health signals (on by default) add step 0's record of their own, which holds no loss, and
    # their keys to the last record: the records before them replay unchanged
    assert [r["step"] for r in records if "loss" not in r] == [0]
    records = [r for r in records if "loss" in r]
    expected = REPLAY["methods"][method]["records"]
    assert len(records) == len(expected) == 5
    for got, want in zip(records, expected, strict=True):
        for key in KEYS:
            if want[key] is None or isinstance(want[key], int):  # MAE has no EMA: "ema" is null
                assert got[key] == want[key], (got["step"], key)
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-12), (got["step"], key)


def test_data2vec_records_every_part_of_its_output(tmp_path):
    """Everything forward returns is recorded: data2vec 2.0's patch and [cls] losses beside the loss."""
    train(tiny_config("data2vec", log_every=2, **{"budget.value": 3}), tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "loss" in r]  # not step 0's health record
    assert [r["step"] for r in records] == [2, 3]
    for r in records:
        assert {"parts/patch_loss", "parts/cls_loss"} <= set(r) and r["mfu"] is None  # the CPU has no peak
        assert all(math.isfinite(v) for k, v in r.items() if k != "mfu")


# --- the one seed derivation (core/seeding.py): today's values where published runs used them --------


def published_runs() -> list[dict]:
    """Every trained run in results/: its steps and epochs."""
    rows = []
    for path in sorted((Path(__file__).parents[2] / "results").rglob("*.csv")):
        with path.open() as f:
            rows += [r for r in csv.DictReader(f) if r.get("steps") and r.get("epochs")]
    return rows


def test_published_runs_get_the_seeds_they_were_trained_with():
    """The formulas written out as the code before core/seeding.py had them, at every seed, step, epoch,
    image (Fashion-MNIST: 60,000) and mask index (batch 128) that the published runs used."""
    runs = published_runs()
    assert runs, "no published run found under results/"
    steps, epochs = max(int(float(r["steps"])) for r in runs), max(math.ceil(float(r["epochs"])) for r in runs)
    seeds = sorted({int(r["seed"]) for r in runs if r.get("seed")} | {0})
    assert steps < 1_000_003 and epochs < 7_919
    for seed in seeds:
        for epoch in (0, 1, epochs, 7_918):
            assert derive_seed(seed, epoch, EPOCHS) == seed * 7_919 + epoch  # data order
        for step in (0, 1, steps, 1_000_002):
            assert derive_seed(seed, step, STEPS) == seed * 1_000_003 + step  # masks: I-JEPA's batch, the baselines'
            for i in (0, 127, 59_999):
                crop = (seed * 1_000_003 + step) * 1_000_033 + i  # an image's augmentation
                assert derive_seed(derive_seed(seed, step, STEPS), i, INDICES) == crop
            for i in (0, 127, 7_918):  # I-JEPA's per-image mask truncation
                assert derive_seed(derive_seed(seed, step, STEPS), i, ITEMS) == (seed * 1_000_003 + step) * 7_919 + i
        for rank in (0, 1, 7):  # a process's own draws (several processes), at a resume's step
            assert derive_seed(derive_seed(seed, rank, STEPS), 5, ITEMS) == (seed * 1_000_003 + rank) * 7_919 + 5


def test_seeds_no_longer_collide_past_the_linear_range():
    """The linear mix gave seed 0 at epoch 7919 seed 1's epoch 0, and so its data order."""
    # the linear formula: 0 * 7_919 + 7_919 == 1 * 7_919 + 0
    assert derive_seed(0, 7_919, EPOCHS) != derive_seed(1, 0, EPOCHS)
    order = [next(iter(StepSampler(512, 16, seed, 32 * epoch))) for seed, epoch in ((0, 7_919), (1, 0))]
    assert [i for _, i in order[0]] != [i for _, i in order[1]]
    pairs = [(s, k) for s in range(-2, 5) for k in [*range(-3, 40), *range(7_900, 7_960), 10**6, 2**70]]
    for span in (EPOCHS, STEPS, INDICES):
        seeds = [derive_seed(s, k, span) for s, k in pairs]
        assert len(set(seeds)) == len(pairs)
        assert all(0 <= x < 2**64 for x in seeds)  # what torch.Generator.manual_seed takes
    torch.Generator().manual_seed(derive_seed(2**70, 3, STEPS))
