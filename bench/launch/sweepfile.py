"""A sweep file read and checked, before anything is expanded: its keys, name, budgets, seeds, grids and
`tune:` section (the format: bench/launch/sweep.py). A malformed file, an unknown key or a bad value fails
with one line naming the file; so do a seed, grid value or budget listed twice, a grid or base that sets
`seed` or `budget` (the sweep's own keys set them), and a sweep of more than MAX_RUNS runs.

`sweep_name(path)` reads only the name: the commands that take a sweep file to find its folder
(`bench status masks.yaml`) do not check or expand the whole sweep.
"""

import math
import re
from dataclasses import dataclass
from pathlib import Path

from bench.config.parse import check_key, nest
from bench.config.yamlio import load_yaml
from bench.errors import BenchError
from bench.launch.slurm import slurm_config

SWEEP_KEYS = ("name", "executor", "slurm", "budget", "base", "grid", "seeds", "tune", "random_init")
TUNE_KEYS = ("grid", "budget", "seed")


@dataclass
class SweepSpec:
    """A sweep file's sections, checked."""

    name: str
    executor: str | None
    slurm: dict | None
    random_init: bool
    base: dict  # config keys, dotted or nested
    budgets: list[dict]  # one budget mapping per value
    seeds: list[int]
    grids: list[dict]  # each a mapping of dotted keys to their values
    tune: dict | None  # {grid, budgets, seed}


def read_spec(path: Path) -> SweepSpec:
    """The sweep file at `path`, every section checked (BenchError naming the file otherwise)."""
    data = load_yaml(path, "sweep file")
    unknown = set(map(str, data)) - set(SWEEP_KEYS)
    if unknown:
        raise BenchError(f"{path}: unknown sweep key {sorted(unknown)[0]!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    name = check_name(data, path)
    executor = data.get("executor")
    if executor is not None and not isinstance(executor, str):
        raise BenchError(f"{path}: executor must be the name of one, e.g. executor: local, got {executor!r}")
    random_init = data.get("random_init", False)
    if not isinstance(random_init, bool):
        raise BenchError(f"{path}: random_init must be true or false, got {random_init!r}")
    slurm = data.get("slurm")
    slurm_config(slurm, profile=None)  # an unknown or mistyped SLURM key fails here, before anything runs
    if "budget" not in data:
        raise BenchError(f"{path}: a sweep needs one budget for every run, e.g. budget: {{kind: flops, value: 1e12}}")
    base = _base(data.get("base") or {}, path)
    budgets = _budgets(data["budget"], path)
    seeds = _seeds(data.get("seeds", [0]), path)
    grids = _grids(data.get("grid"), path)
    tune = tune_spec(data.get("tune"), path, budgets)
    planned = count_runs(grids, len(budgets), len(seeds), tune)
    if planned > MAX_RUNS:
        raise BenchError(
            f"{path}: the sweep expands to {planned:,} runs, more than {MAX_RUNS:,}; split it into several"
        )
    return SweepSpec(name, executor, slurm, random_init, base, budgets, seeds, grids, tune)


def sweep_name(path: str | Path) -> str:
    """The name of the sweep in the file at `path` (its folder under --root), without checking the rest of
    the sweep: the file read within bench/config/yamlio.py's bounds, its `name` checked."""
    path = Path(path)
    return check_name(load_yaml(path, "sweep file"), path)


def _base(base, path: Path) -> dict:
    if not isinstance(base, dict):
        raise BenchError(f"{path}: base must be a mapping of config keys")
    for key in nest(base):
        check_key(key)
    if "budget" in nest(base):
        raise BenchError(f"{path}: set the budget at the top level of the sweep, not in base")
    if "seed" in nest(base):
        raise BenchError(f"{path}: base may not set 'seed': {RESERVED['seed']}")
    return base


def _budgets(budget, path: Path) -> list[dict]:
    """The sweep's budgets: one mapping per value of budget.value (a number or a list of them)."""
    if not isinstance(budget, dict):
        raise BenchError(f"{path}: budget must be a mapping, e.g. budget: {{kind: flops, value: 1e12}}")
    if "value" not in budget:
        raise BenchError(f"{path}: budget needs a value, e.g. budget: {{kind: flops, value: 1e12}}")
    values = budget["value"]
    budgets = [budget | {"value": v} for v in values] if isinstance(values, list) else [budget]
    if not budgets:
        raise BenchError(f"{path}: budget.value lists no budget")
    for b in budgets:  # budget 0 (the initialisation) comes from random_init, never as a sweep's budget
        if budget_value(b) <= 0:
            raise BenchError(f"{path}: budget.value must be > 0, got {b['value']} (random_init: true adds budget 0)")
    _no_repeats([budget_value(b) for b in budgets], "budget.value", path)
    return budgets


# Keys a grid or base may not set: the sweep's own `budget` and `seeds` would silently override them.
RESERVED = {
    "budget": "set budgets with the sweep's budget.value: [...]",
    "seed": "set seeds with the sweep's seeds: [...]",
}
NAME_LENGTH = 64  # a sweep's name is a folder name and part of SLURM job names
MAX_RUNS = 10_000  # a sweep expands to at most this many runs (each is validated before anything runs)
SEED_EXAMPLE = "e.g. seeds: [0, 1, 2]"
SWEEPS_DIR = "sweeps"  # where a bare sweep file name is looked for (`bench sweep masks.yaml`)


def _grids(spec, path: Path, where: str = "grid") -> list[dict]:
    if spec is None:
        return [{}]
    grids = spec if isinstance(spec, list) else [spec]
    if not grids:
        raise BenchError(f"{path}: {where} lists no grid (leave it out to run the base alone)")
    for grid in grids:
        if not isinstance(grid, dict):
            raise BenchError(f"{path}: {where} must be a mapping of dotted keys to lists of values, or a list of them")
        for key, values in grid.items():
            check_key(str(key))
            _not_reserved(str(key), path, where)
            if not isinstance(values, list) or not values:
                raise BenchError(f"{path}: {where} axis {key!r} must be a non-empty list of values")
            _no_repeats(values, f"{where} axis {key!r}", path)
    return grids


def _not_reserved(key: str, path: Path, where: str) -> None:
    top = key.split(".")[0]
    if top in RESERVED:
        raise BenchError(f"{path}: {where} may not set {key!r}: {RESERVED[top]}")


def _no_repeats(values: list, what: str, path: Path) -> None:
    """Refuse a value listed twice: it would be the same runs twice (or a typo for another value)."""
    for i, value in enumerate(values):
        if value in values[:i]:
            raise BenchError(f"{path}: {what} lists {value!r} twice")


def _seeds(value, path: Path) -> list[int]:
    if not isinstance(value, list) or not value:
        raise BenchError(f"{path}: seeds must be a non-empty list of integers, {SEED_EXAMPLE}")
    for seed in value:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise BenchError(f"{path}: seeds must be integers, got {seed!r} ({SEED_EXAMPLE})")
    _no_repeats(value, "seeds", path)
    return value


def check_name(data: dict, path: Path) -> str:
    """The sweep's name (default: the file's stem): the name of its folder under --root."""
    name = path.stem if data.get("name") is None else data["name"]
    if not isinstance(name, str):
        raise BenchError(f"{path}: name must be a string, got {name!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name) or len(name) > NAME_LENGTH:
        shown = name if len(name) <= NAME_LENGTH else f"{name[:20]}... ({len(name)} characters)"
        raise BenchError(
            f"{path}: sweep name {shown!r} must be 1 to {NAME_LENGTH} letters, digits, - and _, "
            "starting with a letter or digit (set name: in the file)"
        )
    return name


def count_runs(grids: list[dict], budgets: int, seeds: int, tune: dict | None) -> int:
    """How many runs a sweep expands to (before removing repeated points), without expanding it."""
    points = sum(math.prod(len(values) for values in grid.values()) for grid in grids)
    if tune is None:
        return points * budgets * seeds
    tuning = math.prod(len(values) for values in tune["grid"].values()) * len(tune["budgets"])
    return points * (budgets * seeds + tuning)


def find_sweep_file(target: str | Path) -> tuple[Path, bool]:
    """The sweep file `target` names, and whether it was found by the fallback: `target` itself when
    it exists; else, for a bare file name (masks.yaml, or masks), sweeps/NAME[.yaml] here, then in
    jepa-bench's own checkout. A target found nowhere is returned as it is (loading it says so)."""
    path = Path(target)
    if path.exists() or len(path.parts) != 1:
        return path, False
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    for folder in (Path(SWEEPS_DIR), Path(__file__).resolve().parents[2] / SWEEPS_DIR):
        if (folder / name).is_file():
            return folder / name, True
    return path, False


def budget_value(budget: dict) -> float:
    """A budget's value as a number (YAML reads 1e13 as a string), one clear error if it is none."""
    try:
        return float(budget["value"])
    except (TypeError, ValueError):
        raise BenchError(f"budget.value: expected a number, got {budget['value']!r}") from None


def tune_spec(spec, path: Path, budgets: list[dict]) -> dict | None:
    """The sweep's `tune:` section checked: its grid's keys, the budgets to tune at, the tuning seed."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("grid"), dict) or not spec["grid"]:
        raise BenchError(f"{path}: tune needs a grid, e.g. tune: {{grid: {{optim.lr_factor: [1, 4, 16]}}}}")
    unknown = set(map(str, spec)) - set(TUNE_KEYS)
    if unknown:
        raise BenchError(f"{path}: unknown tune key {sorted(unknown)[0]!r}; valid keys: {', '.join(TUNE_KEYS)}")
    (grid,) = _grids(spec["grid"], path, "tune.grid")
    if "budget" in spec:
        at = [b for b in budgets if budget_value(b) == budget_value({"value": spec["budget"]})]
        if not at:
            raise BenchError(f"{path}: tune.budget {spec['budget']} is not one of the sweep's budgets")
    else:
        at = budgets
    seed = spec.get("seed", 100)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise BenchError(f"{path}: tune.seed must be an integer, got {seed!r}")
    return {"grid": grid, "budgets": at, "seed": seed}
