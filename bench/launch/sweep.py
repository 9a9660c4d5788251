"""Sweeps are data: a YAML file expands into runs with stable ids derived from their config.

    name: masks                     # optional; defaults to the file's stem (1-64 of A-Z a-z 0-9 - _)
    executor: local                 # local | debug | slurm (default: slurm when sbatch is on PATH)
    slurm: {gpus_per_node: 8, tasks_per_node: 8, timeout_min: 240}   # see bench/launch/slurm.py
    budget: {kind: flops, value: 3.0e+12}   # one budget for every run; a list of values
                                            # (value: [1.0e+12, 4.0e+12]) runs the grid at each
    base: {backbone: vit_nano_patch4, ijepa.mask.min_keep: 3}
    grid:                           # a mapping: one cartesian grid over dotted keys;
      ijepa.mask.mode: [official, unbiased]   # a list of mappings: the union of several grids
    seeds: [0, 1]
    tune:                           # optional: search these axes per grid point and budget
      grid: {optim.lr_factor: [1, 4, 16, 64]}
      budget: 2.0e+12               # optional: tune at this budget only, carry the choice to the others
      seed: 100                     # the tuning runs' seed (default 100), apart from the headline seeds
    random_init: true               # optional: each method and seed also at budget 0 (its initialisation)

Tuning: every point of `tune.grid` trains once (seed `tune.seed`) and is scored on a validation
split held out of the training images (`eval.scope: val`: k-NN on it; the test split is never
read). For each grid point and budget, the best-scoring setting then trains over `seeds`: the
headline runs. They exist once their tuning runs are scored: `bench sweep` launches them then
(with --wait it waits for the tuning and goes on by itself; otherwise run it again).

`random_init`: each grid point's method, backbone, data and seed also "trains" a budget of 0 (the
point's other keys — a mask setting, a learning rate — left at the base's, as they do not change
the encoder's initial weights) and is evaluated like the others: the initialisation its gains
are measured from, paired by seed.

Every run is validated before anything is written: a malformed file, an unknown key or a
bad value fails the whole sweep with one line. So do a seed, grid value or budget listed twice,
a grid or base that sets `seed` or `budget` (the sweep's own keys set them), and a sweep of more
than MAX_RUNS runs; each distinct dataset is scanned once (bench/data/datasets.py).

`bench sweep masks.yaml` with no masks.yaml here reads sweeps/masks.yaml (find_sweep_file).
"""

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.parse import check_key, merge, nest
from bench.config.runfile import config_hash
from bench.config.schema import RunConfig
from bench.config.validate import build_config
from bench.config.yamlio import load_yaml
from bench.errors import BenchError, DamagedFile
from bench.launch.slurm import slurm_config
from bench.rundir import EVAL, REDO, SUMMARY, read_json

SWEEP_KEYS = ("name", "executor", "slurm", "budget", "base", "grid", "seeds", "tune", "random_init")
TUNE_KEYS = ("grid", "budget", "seed")
INIT_KEYS = ("method", "backbone", "data")  # a random_init run keeps only these of its grid point
TUNE_SCORE = "knn@20"  # of eval.json's "val": k-NN top-1 on the split held out of the training images


@dataclass
class Run:
    run_id: str
    config: RunConfig
    axes: dict  # the grid values that made this run (for tables)
    role: str = "headline"  # headline | tuning | init


@dataclass
class Tuned:
    """Headline runs that wait for a selection: a grid point at a budget, its tuning runs (one per
    point of the tune grid), and the raw config the selected point completes."""

    raw: dict
    axes: dict
    seeds: list[int]
    candidates: list[tuple[dict, str]]  # (tune point, tuning run id)


@dataclass
class Sweep:
    name: str
    executor: str | None
    runs: list[Run]
    source: Path
    slurm: dict | None = None  # SLURM parameters over the cluster profile's
    tuned: list[Tuned] = field(default_factory=list)
    abandoned: int = 0  # set by ready(): headline groups whose tuning runs all failed

    def ready(self, root: Path, score: Callable[[str], float | None] | None = None) -> tuple[list[Run], int]:
        """The runs that can be launched now — every run but the tuned headline runs, and those whose
        tuning runs are all scored (or failed) — and how many headline groups still wait. `score(run
        id)` gives a tuning run's score (default: read from its folder under root)."""
        score = score or (lambda run_id: tuning_score(root / self.name / run_id))
        runs, waiting, self.abandoned = {r.run_id: r for r in self.runs}, 0, 0
        for group in self.tuned:
            scores = [score(run_id) for _, run_id in group.candidates]
            if any(s is None for s in scores):
                waiting += 1
                continue
            point = select(list(zip([p for p, _ in group.candidates], scores, strict=True)))
            if point is None:  # every tuning run failed: nothing to carry on with (the CLI says so)
                self.abandoned += 1
                continue
            for seed in group.seeds:
                cfg = build_config(merge(merge(group.raw, nest(point)), {"seed": seed}))
                rid = run_id(cfg)
                runs.setdefault(rid, Run(rid, cfg, group.axes | point))
        return list(runs.values()), waiting


def run_id(cfg: RunConfig) -> str:
    """A run's id: its method and the hash of its resolved config."""
    return f"{cfg.method}-{config_hash(cfg)}"


def tuning_score(run_dir: Path) -> float | None:
    """The validation score of a tuning run; -inf when its training failed (a diverged setting is
    never selected); None while it is not scored yet."""
    summary = read_json(run_dir / SUMMARY) or {}
    if summary.get("status") == "failed":
        return -math.inf
    record = read_json(run_dir / EVAL) or {}
    score = record.get("val", {}).get(TUNE_SCORE) if isinstance(record.get("val", {}), dict) else "?"
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise DamagedFile(f"{run_dir / EVAL} is damaged (no validation score in 'val'): {REDO}")
    return score


def select(scored: list[tuple[dict, float]]) -> dict | None:
    """The tune point with the best validation score (ties: the grid's order); None if all failed.
    Only validation scores come in: the test split is not read by a tuning run's evaluation."""
    best = max(scored, key=lambda pair: pair[1], default=None)
    return None if best is None or best[1] == -math.inf else best[0]


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


def sweep_name(data: dict, path: Path) -> str:
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


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    data = load_yaml(path, "sweep file")
    unknown = set(map(str, data)) - set(SWEEP_KEYS)
    if unknown:
        raise BenchError(f"{path}: unknown sweep key {sorted(unknown)[0]!r}; valid keys: {', '.join(SWEEP_KEYS)}")
    name = sweep_name(data, path)
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
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise BenchError(f"{path}: base must be a mapping of config keys")
    for key in nest(base):
        check_key(key)
    if "budget" in nest(base):
        raise BenchError(f"{path}: set the budget at the top level of the sweep, not in base")
    if "seed" in nest(base):
        raise BenchError(f"{path}: base may not set 'seed': {RESERVED['seed']}")
    budget = data["budget"]
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
    seeds = _seeds(data.get("seeds", [0]), path)
    grids = _grids(data.get("grid"), path)
    tune = tune_spec(data.get("tune"), path, budgets)
    planned = count_runs(grids, len(budgets), len(seeds), tune)
    if planned > MAX_RUNS:
        raise BenchError(
            f"{path}: the sweep expands to {planned:,} runs, more than {MAX_RUNS:,}; split it into several"
        )
    runs: dict[str, Run] = {}
    tuned: list[Tuned] = []
    inits: list[tuple[dict, dict]] = []  # added after the tuning runs, which the headline runs wait for

    def add(raw: dict, axes: dict, role: str) -> str:
        cfg = build_config(raw)
        rid = run_id(cfg)
        runs.setdefault(rid, Run(rid, cfg, axes, role))
        return rid

    for grid in grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            point = dict(zip(keys, values, strict=True))
            raw_point = merge(nest(base), nest(point))
            if random_init:  # what the encoder's init depends on: method, backbone, data, seed
                zero = budgets[0] | {"value": 0}
                shapes = {k: v for k, v in point.items() if k in INIT_KEYS or k.startswith("data.")}
                raw_init = merge(nest(base), nest(shapes))
                inits += [(merge(raw_init, {"budget": zero, "seed": seed}), shapes) for seed in seeds]
            if tune is None:
                for one_budget, seed in itertools.product(budgets, seeds):
                    add(merge(raw_point, {"budget": one_budget, "seed": seed}), point, "headline")
                continue
            candidates: dict[float, list] = {}
            for at in tune["budgets"]:
                for tvalues in itertools.product(*tune["grid"].values()):
                    tpoint = dict(zip(tune["grid"], tvalues, strict=True))
                    raw = merge(merge(raw_point, nest(tpoint)), {"budget": at, "seed": tune["seed"]})
                    tuning_id = add(merge(raw, {"eval": {"scope": "val"}}), point | tpoint, "tuning")
                    candidates.setdefault(budget_value(at), []).append((tpoint, tuning_id))
            for one_budget in budgets:
                at = budget_value(one_budget)
                at = at if at in candidates else budget_value(tune["budgets"][0])
                raw = merge(raw_point, {"budget": one_budget})
                build_config(raw)  # a bad headline config fails now, not after the tuning
                if not any(t.raw == raw for t in tuned):  # a point repeated by several sub-grids: once
                    tuned.append(Tuned(raw, point, seeds, candidates[at]))
    for raw, point in inits:
        add(raw, point, "init")
    return Sweep(name, executor, list(runs.values()), path, slurm, tuned)


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
