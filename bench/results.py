"""Results are data: pure functions over run folders → tables.

`status_table` says where each run of a sweep stands; `collate` makes the leaderboard, a
row per run (method, backbone, mask settings, budget, compute used, k-NN top-1 per k,
seed) plus the raw-pixel reference row.
"""

from pathlib import Path

import pandas as pd

from bench.config import RunConfig, read_config
from bench.engine import CONFIG, METRICS, SUMMARY, parse_record, read_json
from bench.evals.run import EVAL

MASK_COLUMNS = ("mode", "strategy", "num_targets", "target_scale", "context_scale")


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(sweep_dir).glob(f"*/{CONFIG}"))


def last_metrics(run_dir: Path) -> dict:
    path = run_dir / METRICS
    if not path.is_file():
        return {}
    records = [r for line in path.read_text().splitlines() if (r := parse_record(line)) is not None]
    return records[-1] if records else {}


def status_table(sweep_dir: Path) -> pd.DataFrame:
    from bench.launch import run_state

    rows = []
    for run_dir in run_dirs(sweep_dir):
        state = run_state(run_dir)
        metrics = last_metrics(run_dir)
        evaluation = read_json(run_dir / EVAL) or {}
        rows.append(
            {
                "run": run_dir.name,
                "state": state["state"],
                "job": state.get("job_id", ""),
                "step": metrics.get("step", 0),
                "progress": round(metrics.get("progress", 0.0), 3),
                "loss": metrics.get("loss"),
                "knn@20": evaluation.get("knn", {}).get("top1", {}).get("20"),
                "error": state.get("error", ""),
            }
        )
    return pd.DataFrame(rows)


def run_row(run_dir: Path) -> dict:
    cfg: RunConfig = read_config(run_dir / CONFIG)
    summary = read_json(run_dir / SUMMARY) or {}
    evaluation = read_json(run_dir / EVAL) or {}
    compute = summary.get("compute", {})
    row = {"run": run_dir.name, "method": cfg.method, "backbone": cfg.backbone}
    if cfg.method == "ijepa":
        mask = cfg.ijepa.mask
        row |= {c: (list(v) if isinstance(v := getattr(mask, c), tuple) else v) for c in MASK_COLUMNS}
    row |= {
        "budget_kind": cfg.budget.kind,
        "budget": cfg.budget.value,
        "steps": compute.get("steps"),
        "device_hours": compute.get("device_hours"),
        "flops": compute.get("flops"),
        "epochs": compute.get("epochs"),
        "budget_used": compute.get("budget_used"),
    }
    row |= knn_columns(evaluation)
    row |= {"seed": cfg.seed, "status": summary.get("status", "pending")}
    return row


def reference_row(name: str, record: dict) -> dict:
    return {"run": name, "method": name} | knn_columns(record) | {"status": "reference"}


def knn_columns(record: dict) -> dict:
    """k-NN top-1 per k, and the temperature they used (always say which k and T a number used)."""
    knn = record.get("knn", {})
    columns = {f"knn@{k}": v for k, v in knn.get("top1", {}).items()}
    return columns | ({"knn_T": knn["temperature"]} if "temperature" in knn else {})


def collate(sweep_dir: Path, references: dict[str, dict] | None = None) -> pd.DataFrame:
    """Leaderboard of a sweep folder, best k-NN@20 first, reference rows last."""
    rows = [run_row(d) for d in run_dirs(sweep_dir)]
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
