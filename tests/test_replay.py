"""Published runs replay: each method's tiny run writes, step for step, the records that the code
before issue 14's restructuring wrote (tests/data/replay.json, made by that code on this machine).
Floats within a relative 1e-6, so that another CPU's rounding passes; counts exactly."""

import json
from pathlib import Path

import pytest

from bench.train.engine import train

from .conftest import TINY_METHODS, tiny_config

REPLAY = json.loads((Path(__file__).parent / "data" / "replay.json").read_text())
KEYS = ("step", "progress", "loss", "lr", "wd", "ema", "images", "flops")


@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_each_method_replays_the_records_of_the_code_before(method, tmp_path):
    train(tiny_config(method, log_every=1, **{"budget.value": 5}), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    expected = REPLAY["methods"][method]["records"]
    assert len(records) == len(expected) == 5
    for got, want in zip(records, expected, strict=True):
        for key in KEYS:
            if want[key] is None or isinstance(want[key], int):  # MAE has no EMA: "ema" is null
                assert got[key] == want[key], (got["step"], key)
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-12), (got["step"], key)
