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

Every run is validated before anything is written: the file is checked first (bench/launch/sweepfile.py:
a malformed file, an unknown key or a bad value fails the whole sweep with one line), then each run's
config is built; each distinct dataset is scanned once (bench/data/datasets.py). A run's id is
bench/rundir.py's `run_id`.

`bench sweep masks.yaml` with no masks.yaml here reads sweeps/masks.yaml (sweepfile.find_sweep_file).
"""

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.parse import merge, nest
from bench.config.schema import RunConfig
from bench.config.validate import build_config
from bench.errors import DamagedFile
from bench.launch.sweepfile import SweepSpec, budget_value, read_spec
from bench.rundir import EVAL, REDO, SUMMARY, TrainingStatus, read_json, run_id

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


def tuning_score(run_dir: Path) -> float | None:
    """The validation score of a tuning run; -inf when its training failed (a diverged setting is
    never selected); None while it is not scored yet."""
    summary = read_json(run_dir / SUMMARY) or {}
    if summary.get("status") == TrainingStatus.FAILED:
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


def load_sweep(path: str | Path) -> Sweep:
    """The sweep in the file at `path`, checked and expanded into its runs (BenchError on the first fault)."""
    path = Path(path)
    spec = read_spec(path)
    expansion = _Expansion(spec)
    for grid in spec.grids:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            expansion.point(dict(zip(keys, values, strict=True)))
    for raw, point in expansion.inits:  # after the tuning runs, which the headline runs wait for
        expansion.add(raw, point, "init")
    return Sweep(spec.name, spec.executor, list(expansion.runs.values()), path, spec.slurm, expansion.tuned)


class _Expansion:
    """A sweep's runs, grid point by grid point: each run once, in the order they were first met."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.runs: dict[str, Run] = {}
        self.tuned: list[Tuned] = []
        self.inits: list[tuple[dict, dict]] = []

    def add(self, raw: dict, axes: dict, role: str) -> str:
        cfg = build_config(raw)
        rid = run_id(cfg)
        self.runs.setdefault(rid, Run(rid, cfg, axes, role))
        return rid

    def point(self, point: dict) -> None:
        """A grid point's runs: its headline runs (or its tuning runs and the group that waits for them)
        and, with random_init, its initialisation runs (queued in `inits`)."""
        spec, base = self.spec, nest(self.spec.base)
        raw_point = merge(base, nest(point))
        if spec.random_init:  # what the encoder's init depends on: method, backbone, data, seed
            zero = spec.budgets[0] | {"value": 0}
            shapes = {k: v for k, v in point.items() if k in INIT_KEYS or k.startswith("data.")}
            raw_init = merge(base, nest(shapes))
            self.inits += [(merge(raw_init, {"budget": zero, "seed": seed}), shapes) for seed in spec.seeds]
        if spec.tune is None:
            for one_budget, seed in itertools.product(spec.budgets, spec.seeds):
                self.add(merge(raw_point, {"budget": one_budget, "seed": seed}), point, "headline")
        else:
            self.tuning(point, raw_point, spec.tune)

    def tuning(self, point: dict, raw_point: dict, tune: dict) -> None:
        """A tuned grid point: a tuning run per tune point and tuning budget, and per budget a group of
        headline runs that waits for their scores."""
        candidates: dict[float, list] = {}
        for at in tune["budgets"]:
            for tvalues in itertools.product(*tune["grid"].values()):
                tpoint = dict(zip(tune["grid"], tvalues, strict=True))
                raw = merge(merge(raw_point, nest(tpoint)), {"budget": at, "seed": tune["seed"]})
                tuning_id = self.add(merge(raw, {"eval": {"scope": "val"}}), point | tpoint, "tuning")
                candidates.setdefault(budget_value(at), []).append((tpoint, tuning_id))
        for one_budget in self.spec.budgets:
            at = budget_value(one_budget)
            at = at if at in candidates else budget_value(tune["budgets"][0])
            raw = merge(raw_point, {"budget": one_budget})
            build_config(raw)  # a bad headline config fails now, not after the tuning
            if not any(t.raw == raw for t in self.tuned):  # a point repeated by several sub-grids: once
                self.tuned.append(Tuned(raw, point, self.spec.seeds, candidates[at]))
