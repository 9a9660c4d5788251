"""Sweeps are data: a YAML file expands into runs with stable ids derived from their config.

    name: masks                     # optional; defaults to the file's stem
    executor: local                 # local | debug | slurm (default: slurm when sbatch is on PATH)
    slurm: {gpus_per_node: 8, tasks_per_node: 8, timeout_min: 240}   # see bench/slurm.py
    budget: {kind: flops, value: 3.0e+12}   # one budget for every run; a list of values
                                            # (value: [1.0e+12, 4.0e+12]) runs the grid at each
    base: {backbone: vit_nano_patch4, ijepa.mask.min_keep: 3}
    grid:                           # a mapping: one cartesian grid over dotted keys;
      ijepa.mask.mode: [official, unbiased]   # a list of mappings: the union of several grids
    seeds: [0, 1]

Every run is validated before anything is written: a malformed file, an unknown key or a
bad value fails the whole sweep with one line.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path

from bench.config import RunConfig, build_config, check_key, config_hash, load_yaml, merge, nest
from bench.errors import BenchError
from bench.slurm import slurm_config

SWEEP_KEYS = ("name", "executor", "slurm", "budget", "base", "grid", "seeds")


@dataclass
class Run:
    run_id: str
    config: RunConfig
    axes: dict  # the grid values that made this run (for tables)


@dataclass
class Sweep:
    name: str
    executor: str | None
    runs: list[Run]
    source: Path
    slurm: dict | None = None  # SLURM parameters over the cluster profile's


def _grids(spec) -> list[dict]:
    if spec is None:
        return [{}]
    grids = spec if isinstance(spec, list) else [spec]
    for grid in grids:
        if not isinstance(grid, dict):
            raise BenchError("grid must be a mapping of dotted keys to lists of values, or a list of such mappings")
        for key, values in grid.items():
            check_key(str(key))
            if not isinstance(values, list) or not values:
                raise BenchError(f"grid axis {key!r} must be a non-empty list of values")
    return grids


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    data = load_yaml(path)
    unknown = set(data) - set(SWEEP_KEYS)
    if unknown:
        raise BenchError(f"unknown sweep key {sorted(unknown)[0]!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    if "budget" not in data:
        raise BenchError(f"{path}: a sweep needs one budget for every run, e.g. budget: {{kind: flops, value: 1e12}}")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise BenchError(f"{path}: base must be a mapping of config keys")
    for key in nest(base):
        check_key(key)
    if "budget" in nest(base):
        raise BenchError(f"{path}: set the budget at the top level of the sweep, not in base")
    budget = data["budget"]
    if not isinstance(budget, dict):
        raise BenchError(f"{path}: budget must be a mapping, e.g. budget: {{kind: flops, value: 1e12}}")
    values = budget.get("value")
    budgets = [budget | {"value": v} for v in values] if isinstance(values, list) else [budget]
    if not budgets:
        raise BenchError(f"{path}: budget.value lists no budget")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise BenchError(f"{path}: seeds must be a non-empty list of integers")
    grids = _grids(data.get("grid"))
    runs: dict[str, Run] = {}
    for grid in grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            for one_budget, seed in itertools.product(budgets, seeds):
                raw = merge(merge(nest(base), nest(point)), {"budget": one_budget, "seed": seed})
                cfg = build_config(raw)
                run_id = f"{cfg.method}-{config_hash(cfg)}"
                runs.setdefault(run_id, Run(run_id, cfg, point))
    name = str(data.get("name") or path.stem)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise BenchError(f"{path}: sweep name {name!r} may hold only letters, digits, - and _")
    slurm = data.get("slurm")
    slurm_config(slurm, profile=None)  # an unknown or mistyped SLURM key fails here, before anything runs
    return Sweep(name, data.get("executor"), list(runs.values()), path, slurm)
