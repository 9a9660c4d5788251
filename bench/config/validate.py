"""The checks of a run's config that span fields or need the registries (methods, backbones) and the
dataset, and `build_config`: YAML data and dotted overrides → a checked RunConfig.

Each method brings its optimizer recipe (core/method.py `MethodSpec.recipe`, merged in by
bench/config/parse.py `config_data`): selecting `method: mae` starts `optim` from MAE's settings, and
the YAML file or an override still wins over them. A budget
of more than MAX_STEPS steps is refused; the dataset is scanned once per dataset per process.
"""

import math
from pathlib import Path

from bench.config.parse import config_data, from_dict
from bench.config.ranges import MAX_DEVICE_HOURS, MAX_FLOPS, MAX_STEPS, check_ranges, run_ranges
from bench.config.schema import (
    BUDGET_KINDS,
    EVAL_ENCODERS,
    EVAL_SCOPES,
    HEADLINE_VIEWS,
    RECIPE_KINDS,
    VIEWS,
    EvalConfig,
    RunConfig,
    check_version,
)
from bench.data.datasets import check_dataset
from bench.errors import BenchError
from bench.train.methods import check_method
from core.method import METHODS
from core.vit import BACKBONES


def validate(cfg: RunConfig) -> RunConfig:
    """Checks that span fields or need the registries and the dataset; returns `cfg`."""
    check_version(cfg, "this config")
    METHODS.get(cfg.method)
    BACKBONES.get(cfg.backbone)
    check_ranges(cfg, run_ranges())
    if cfg.budget.kind not in BUDGET_KINDS:
        raise BenchError(f"budget.kind {cfg.budget.kind!r} is not one of {', '.join(BUDGET_KINDS)}")
    if cfg.recipe not in RECIPE_KINDS:
        raise BenchError(f"recipe {cfg.recipe!r} is not one of {', '.join(RECIPE_KINDS)}")
    if cfg.precision not in ("auto", "fp32", "bf16"):
        raise BenchError(f"precision {cfg.precision!r} is not one of auto, fp32, bf16")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise BenchError(f"device {cfg.device!r} is not one of auto, cpu, cuda")
    if not isinstance(cfg.compile, bool):
        raise BenchError(f"compile must be true or false, not {cfg.compile!r}")
    if not cfg.eval.knn_k:
        raise BenchError("eval.knn_k must list at least one k")
    check_eval(cfg.eval)
    check_method(cfg)
    check_budget(cfg, check_dataset(cfg.data))  # last: the one check that reads the disk (once per dataset)
    return cfg


def check_budget(cfg: RunConfig, train_images: int) -> None:
    """The batch fits the training split, and the budget is at most MAX_STEPS steps (FLOP and time
    budgets are bounded in their unit here and in steps by the engine, once a step's cost is known)."""
    if cfg.optim.batch_size > train_images:
        raise BenchError(
            f"optim.batch_size={cfg.optim.batch_size} is larger than {cfg.data.name}'s training split "
            f"({train_images:,} images)"
        )
    value, kind = cfg.budget.value, cfg.budget.kind
    steps = {"steps": math.ceil(value), "epochs": value * (train_images // cfg.optim.batch_size)}.get(kind)
    if steps is not None and steps > MAX_STEPS:
        per = f" ({train_images // cfg.optim.batch_size:,} steps each)" if kind == "epochs" else ""
        raise BenchError(f"budget.value={value:g} {kind}{per} is more than the {MAX_STEPS:.0e} steps a run may take")
    limit = {"flops": MAX_FLOPS, "device_hours": MAX_DEVICE_HOURS}.get(kind)
    if limit is not None and value > limit:
        raise BenchError(f"budget.value={value:g} {kind} is more than the {limit:.0e} a run may take")


def check_eval(ev: EvalConfig) -> None:
    for view in (ev.knn_view, *ev.linear_views):
        if view not in HEADLINE_VIEWS:
            raise BenchError(
                f"eval view {view!r}: headline views are {', '.join(HEADLINE_VIEWS)}, the same for every method "
                f"(a [cls] view goes in eval.extra_views)"
            )
        if view.startswith("last4") and ev.n_layers < 4:
            raise BenchError(f"eval view {view!r} needs eval.n_layers >= 4, got {ev.n_layers}")
    for view in ev.extra_views:  # an extra view the encoder cannot give (no [cls], too few layers) is skipped
        if view not in VIEWS:
            raise BenchError(f"eval view {view!r} is not one of {', '.join(VIEWS)}")
    if not ev.linear_views or not ev.linear_lrs or not ev.linear_wds:
        raise BenchError("eval.linear_views, eval.linear_lrs and eval.linear_wds must each list at least one value")
    if ev.scope not in EVAL_SCOPES:
        raise BenchError(f"eval.scope {ev.scope!r} is not one of {', '.join(EVAL_SCOPES)}")
    if ev.precision not in ("fp32", "bf16"):
        raise BenchError(f"eval.precision {ev.precision!r} is not one of fp32, bf16")
    if ev.encoder not in EVAL_ENCODERS:
        raise BenchError(f"eval.encoder {ev.encoder!r} is not one of {', '.join(EVAL_ENCODERS)}")
    if ev.lowshot_file is not None and not Path(ev.lowshot_file).is_file():
        raise BenchError(f"eval.lowshot_file {ev.lowshot_file} does not exist (expects e.g. SimCLR's 1percent.txt)")


def build_config(data: dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    """A checked RunConfig from YAML `data` and dotted `overrides` (bench/config/parse.py `config_data`)."""
    return validate(from_dict(RunConfig, config_data(data, overrides)))
