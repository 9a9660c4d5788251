"""The runs table of a sweep: a row per run, then the reference rows.

A run's row holds its method, backbone, the config keys that differ between the sweep's runs,
budget, compute used (and the run's achieved `flops_per_s` and `mfu`, where its summary has them),
every evaluation column (eval_columns), the final health signals (`rankme`,
`feature_spread` = feature_std, the method's own diagnostic: bench/train/health.py), seed, role and status. Each run
has a role: `headline` (the rows the comparison is about), `tuning` (a sweep's search, scored on
validation only: no test numbers) or `init` (budget 0: the method's random initialisation
through the same protocol). A headline run's gain over its own initialisation is paired by seed
(`gain_linear` = its linear top-1 minus that of its method's init run of the same seed). Rows
are sorted by the chosen metric, best first; the reference rows (raw pixels, random encoders:
bench/evals/references.py) come last.
"""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config.runfile import to_dict
from bench.config.schema import RunConfig
from bench.results.runs import RunFiles, eval_columns, read_runs
from bench.rundir import TrainingStatus
from bench.runstate import RunState

FIXED_COLUMNS = ("method", "backbone", "seed", "budget.kind", "budget.value", "eval.scope")
GAIN_METRICS = ("knn@20", "linear", "linear_1%")


def flat_config(cfg: RunConfig) -> dict:
    """The run's resolved config as {dotted key: value} (lists for tuples)."""
    flat: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    full = json.loads(json.dumps(asdict(cfg)))  # ADDED_LATER fields too, so their values show
    own = to_dict(cfg).keys()  # the run's own method section only
    walk({k: v for k, v in full.items() if k in own}, "")
    return flat


def varying_keys(configs: list[dict]) -> list[str]:
    """Config keys that take more than one value among the runs that have them: what a sweep varied
    (and, across methods, where their recipes differ)."""
    keys = dict.fromkeys(k for c in configs for k in c if k not in FIXED_COLUMNS)
    return [k for k in keys if len({json.dumps(c[k]) for c in configs if k in c}) > 1]


def run_row(run: RunFiles, config: dict, keys: list[str]) -> dict:
    """A run's row. `status`: how its training ended (summary.json: done, failed) once it has; before
    that, where it stands as `bench status` says (new, submitted, running, ..., and failed or crashed
    for a run that ended before its first step), with the reason in `error`."""
    compute = run.summary.get("compute", {})
    row = {"run": run.run_dir.name, "method": config["method"], "backbone": config["backbone"]}
    row |= {k: config.get(k) for k in keys}
    row |= {
        "budget_kind": config["budget.kind"],
        "budget": config["budget.value"],
        "steps": compute.get("steps"),
        "device_hours": compute.get("device_hours"),
        "flops": compute.get("flops"),
        "images_seen": compute.get("images_seen"),
        "epochs": compute.get("epochs"),
        "budget_used": compute.get("budget_used"),
    }
    # achieved speed where the summary has it (runs trained since issue 16): older runs' tables keep their columns
    row |= {k: compute[k] for k in ("flops_per_s", "mfu") if k in compute}
    row |= run.evaluation
    row |= health_columns(run.summary)
    role = "tuning" if config.get("eval.scope") == "val" else "init" if config["budget.value"] == 0 else "headline"
    if "status" in run.summary:
        status, error = run.summary["status"], run.summary.get("reason") or run.state.get("error", "")
    else:
        status, error = run.state["state"], run.state.get("error", "")
    error = error if status in (RunState.FAILED, RunState.CRASHED) else ""
    row |= {"seed": config["seed"], "role": role, "status": status, "error": error}
    return row


# The final health signals a row shows (summary.json's `health`): RankMe, feature_std and each method's own
# diagnostic (target_std, sigreg); `moved` is eval.json's, `std` stays in the run's files. A name ending
# in `_std` is shown as `_spread`: in these tables `X_std` is X's std over seeds.
HEALTH_HIDDEN = ("moved", "std")


def health_columns(summary: dict) -> dict:
    health = summary.get("health")
    if not isinstance(health, dict):
        return {}
    shown = {k: v for k, v in health.items() if k not in HEALTH_HIDDEN and isinstance(v, int | float)}
    return {k.removesuffix("_std") + "_spread" if k.endswith("_std") else k: v for k, v in shown.items()}


def reference_row(name: str, record: dict) -> dict:
    return {"run": name, "method": name} | eval_columns(record) | {"status": "reference"}


def collate(
    sweep_dir: Path,
    references: dict[str, dict] | None = None,
    runs: list[RunFiles] | None = None,
    metric: str = "linear",
) -> pd.DataFrame:
    """The runs table of a sweep folder (or of `runs`, as read_runs gives them), best `metric` first,
    reference rows last. Runs read_runs leaves out are not in it."""
    runs = read_runs(sweep_dir)[0] if runs is None else runs
    return add_references(run_table(runs, metric), references)


def run_table(runs: list[RunFiles], metric: str = "linear") -> pd.DataFrame:
    """A row per run with its gains, best `metric` first (as read when the runs have no such column);
    attrs["varied"]: the keys the runs differ in."""
    configs = [flat_config(run.config) for run in runs]
    keys = varying_keys(configs)
    rows = [run_row(run, c, keys) for run, c in zip(runs, configs, strict=True)]
    table = pd.DataFrame(rows)
    table.attrs["varied"] = keys
    table = add_gains(table)
    if metric in table:
        table = table.sort_values(metric, ascending=False, na_position="last")
    return table


def add_references(table: pd.DataFrame, references: dict[str, dict] | None) -> pd.DataFrame:
    """run_table's table with the reference rows last, and the attrs the summaries group by."""
    keys = table.attrs["varied"]
    refs = pd.DataFrame([reference_row(name, rec) for name, rec in (references or {}).items()])
    if len(refs):
        table = pd.concat([table, refs], ignore_index=True)
    table = table.reset_index(drop=True)
    tuning = table[table.get("role", pd.Series(dtype=str)) == "tuning"]
    table.attrs["tuned"] = [k for k in keys if k in tuning and tuning[k].astype(str).nunique() > 1]
    scored = ["encoder"] if "encoder" in table else []  # the encoder each evaluation scored
    table.attrs["group"] = [
        "method",
        "backbone",
        *keys,
        *scored,
        "budget_kind",
        "budget",
    ]  # a configuration, bar its seed
    return table


def add_gains(table: pd.DataFrame) -> pd.DataFrame:
    """gain_<metric> of each headline run: its metric minus that of the init run of the same method,
    backbone, evaluated encoder and seed (the weights it started from, through the same protocol)."""
    if "role" not in table or not (table["role"] == "init").any():
        return table
    shape = [k for k in table.attrs.get("varied", []) if k.startswith("data.")]  # init runs exist per data.*
    keys = [k for k in ("method", "backbone", "encoder", "seed", *shape) if k in table]
    inits = table[(table["role"] == "init") & (table["status"] == TrainingStatus.DONE)].drop_duplicates(keys)
    metrics = [m for m in GAIN_METRICS if m in table]
    merged = table[keys].merge(inits[keys + metrics], on=keys, how="left", suffixes=("", "_init"))
    for m in metrics:
        gain = table[m].to_numpy(dtype=float) - merged[m].to_numpy(dtype=float)
        table[f"gain_{m}"] = np.where(table["role"] == "headline", gain, np.nan)
    return table
