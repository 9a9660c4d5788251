"""The valid range of every number of a run's config: the shared fields' here (`SHARED_RANGES`), each
method's section's in its registration (core/method.py `MethodSpec.ranges`). A number outside its
range fails with the range; a test fails when a numeric field has no range.
"""

from dataclasses import fields, is_dataclass
from typing import Any

import bench.config.schema  # noqa: F401  registers the methods whose sections' ranges run_ranges reads
from bench.errors import BenchError
from core.method import METHODS
from core.ranges import COUNT, DEPTH, FRACTION, NON_NEGATIVE, POSITIVE, SHARE, Range

# A run takes at most this many optimizer steps, whatever its budget's kind: a budget of 1e308 steps
# is a run that never ends. Per-step seeds (seed x 1,000,003 + step) x 1,000,033 + image index stay
# within torch's 64-bit seeds up to this many steps (see SEED_MAX).
MAX_STEPS = 10**8
MAX_FLOPS = 1e26  # more than any model has been trained with; FLOP budgets also stop at MAX_STEPS
MAX_DEVICE_HOURS = 1e6  # 114 device-years; time budgets also stop at MAX_STEPS
# torch seeds are 64-bit; the engine derives (seed x 1,000,003 + step) x 1,000,033 + index per image
# and step, which overflows past seed 2**24 (bench/train/engine.py StepTagged)
SEED_MAX = 2**24 - 1

# Dotted key -> range, for every number of the shared sections but `version` (checked by check_version).
SHARED_RANGES: dict[str, Range] = {
    "seed": Range(0, SEED_MAX, why="(per-step seeds derived from it must fit torch's 64-bit seeds)"),
    "log_every": COUNT,
    "checkpoint_every_s": NON_NEGATIVE,
    "data.image_size": Range(1, 1024),
    "data.num_workers": Range(0, 256),
    "budget.value": Range(0, why="(0: the initialisation, untrained)"),
    "optim.batch_size": COUNT,
    "optim.lr": POSITIVE,
    "optim.start_lr": NON_NEGATIVE,
    "optim.final_lr": NON_NEGATIVE,
    "optim.warmup": Range(0, 1, high_open=True, why="(a fraction of the budget)"),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.final_weight_decay": NON_NEGATIVE,
    "optim.betas": Range(0, 1, high_open=True),
    "optim.clip_grad": Range(0, low_open=True, why="(or null: no clipping)"),
    "optim.lr_batch": Range(0, why="(0: learning rates not scaled with the batch)"),
    "optim.lr_factor": POSITIVE,
    "health.every": Range(0, MAX_STEPS, why="(optimizer steps between health records; 0: off)"),
    "health.images": Range(2, 65536, why="(the fixed batch the health signals are measured on)"),
    "eval.knn_k": Range(1, 2048, why="(faiss searches at most 2048 neighbours on a GPU)"),
    "eval.temperature": POSITIVE,
    "eval.batch_size": Range(1, 65536),
    "eval.n_layers": DEPTH,
    "eval.fewshot_n": COUNT,
    "eval.linear_lrs": POSITIVE,
    "eval.linear_wds": NON_NEGATIVE,
    "eval.linear_epochs": Range(1, 1000),
    "eval.linear_min_steps": Range(0, 10**6),
    "eval.val_fraction": FRACTION,
    "eval.lowshot": SHARE,
    "eval.draws": Range(1, 100),
    "eval.val_images": Range(100, why="(or null: every training image)"),
    "eval.train_images": Range(100, why="(or null: every training image)"),
    "eval.test_images": Range(100, why="(or null: every test image)"),
}


def run_ranges() -> dict[str, Range]:
    """The range of every number of RunConfig: the shared ones and every registered method's section's."""
    out = dict(SHARED_RANGES)
    for name, spec in METHODS.items():
        out.update({f"{name}.{key}": r for key, r in spec.ranges.items()})
    return out


def check_ranges(node: Any, ranges: dict[str, Range], prefix: str = "") -> None:
    """Every number of the dataclass `node` (recursively) within its range in `ranges` (by dotted
    key); one BenchError naming the first key out of range. None (an optional number unset) passes."""
    for f in fields(node):
        key, value = f"{prefix}{f.name}", getattr(node, f.name)
        if is_dataclass(value):
            check_ranges(value, ranges, f"{key}.")
            continue
        if key not in ranges or value is None:
            continue
        for v in value if isinstance(value, tuple) else (value,):
            if v not in ranges[key]:
                shown = list(value) if isinstance(value, tuple) else value
                why = f" {ranges[key].why}" if ranges[key].why else ""
                raise BenchError(f"{key} must be {ranges[key]}{why}, got {shown}")
