"""Results are data: pure functions over run folders → tables.

`status_table` says where each run of a sweep stands; `collate` makes the leaderboard, a
row per run (method, backbone, the config keys that differ between the sweep's runs,
budget, compute used, k-NN top-1 per k, seed) plus the raw-pixel reference row.
"""

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from bench.config import read_config, to_dict
from bench.rundir import CONFIG, EVAL, METRICS, SUMMARY, last_record, read_json

FIXED_COLUMNS = ("method", "backbone", "seed", "budget.kind", "budget.value")


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(sweep_dir).glob(f"*/{CONFIG}"))


def status_table(sweep_dir: Path) -> pd.DataFrame:
    """A row per run: its state (SLURM's view of its job beside it), progress, loss, k-NN@20 and,
    for a failed or crashed run, the last line of its error."""
    from bench.launch import Queue, run_state

    queue, rows = Queue(), []
    for run_dir in run_dirs(sweep_dir):
        state = run_state(run_dir, queue)
        metrics = last_record(run_dir / METRICS)
        evaluation = read_json(run_dir / EVAL) or {}
        job = state.get("eval_job_id") if state["state"] in ("evaluating", "trained") else state.get("job_id")
        rows.append(
            {
                "run": run_dir.name,
                "state": state["state"],
                "job": job or state.get("job_id", ""),
                "queue": state.get("queue", ""),
                "step": metrics.get("step", 0),
                "progress": round(metrics.get("progress", 0.0), 3),
                "loss": metrics.get("loss"),
                "knn@20": evaluation.get("knn", {}).get("top1", {}).get("20"),
                "error": state.get("error", "") if state["state"] in ("failed", "crashed") else "",
            }
        )
    return pd.DataFrame(rows)


def flat_config(run_dir: Path) -> dict:
    """The run's resolved config as {dotted key: value} (lists for tuples)."""
    flat: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    cfg = read_config(run_dir / CONFIG)
    full = json.loads(json.dumps(asdict(cfg)))  # ADDED_LATER fields too, so their values show
    own = to_dict(cfg).keys()  # the run's own method section only
    walk({k: v for k, v in full.items() if k in own}, "")
    return flat


def varying_keys(configs: list[dict]) -> list[str]:
    """Config keys that take more than one value among the runs that have them: what a sweep varied
    (and, across methods, where their recipes differ)."""
    keys = dict.fromkeys(k for c in configs for k in c if k not in FIXED_COLUMNS)
    return [k for k in keys if len({json.dumps(c[k]) for c in configs if k in c}) > 1]


def run_row(run_dir: Path, config: dict, keys: list[str]) -> dict:
    summary = read_json(run_dir / SUMMARY) or {}
    evaluation = read_json(run_dir / EVAL) or {}
    compute = summary.get("compute", {})
    row = {"run": run_dir.name, "method": config["method"], "backbone": config["backbone"]}
    row |= {k: config.get(k) for k in keys}
    row |= {
        "budget_kind": config["budget.kind"],
        "budget": config["budget.value"],
        "steps": compute.get("steps"),
        "device_hours": compute.get("device_hours"),
        "flops": compute.get("flops"),
        "epochs": compute.get("epochs"),
        "budget_used": compute.get("budget_used"),
    }
    row |= eval_columns(evaluation)
    row |= {"seed": config["seed"], "status": summary.get("status", "pending")}
    return row


def reference_row(name: str, record: dict) -> dict:
    return {"run": name, "method": name} | eval_columns(record) | {"status": "reference"}


def eval_columns(record: dict) -> dict:
    """k-NN top-1 per k and its T (always say which k and T a number used), few-shot k-NN, the
    linear probe's test top-1, and each low-shot probe's mean and std over its draws."""
    knn = record.get("knn", {})
    columns = {f"knn@{k}": v for k, v in knn.get("top1", {}).items()}
    if "temperature" in knn:
        columns["knn_T"] = knn["temperature"]
    for n, r in record.get("knn_fewshot", {}).items():
        columns[f"knn_{n}shot"] = r["mean"]
    if "linear" in record:
        columns["linear"] = record["linear"]["top1"]
        columns["linear_view"] = record["linear"]["best"]["view"]
    for label, r in record.get("lowshot", {}).items():
        columns[f"linear_{label}"] = r["mean"]
        columns[f"linear_{label}_std"] = r["std"]
    return columns


def collate(sweep_dir: Path, references: dict[str, dict] | None = None) -> pd.DataFrame:
    """Leaderboard of a sweep folder, best k-NN@20 first, reference rows last."""
    dirs = run_dirs(sweep_dir)
    configs = [flat_config(d) for d in dirs]
    keys = varying_keys(configs)
    rows = [run_row(d, c, keys) for d, c in zip(dirs, configs, strict=True)]
    table = pd.DataFrame(rows)
    if "knn@20" in table:
        table = table.sort_values("knn@20", ascending=False, na_position="last")
    refs = pd.DataFrame([reference_row(name, rec) for name, rec in (references or {}).items()])
    if len(refs):
        table = pd.concat([table, refs], ignore_index=True)
    return table.reset_index(drop=True)


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """6 significant digits: integers print as integers even in columns with empty cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
