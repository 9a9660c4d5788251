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
        "images_seen": compute.get("images_seen"),
        "epochs": compute.get("epochs"),
        "budget_used": compute.get("budget_used"),
    }
    row |= eval_columns(evaluation)
    row |= {"seed": config["seed"], "status": summary.get("status", "pending")}
    return row


def reference_row(name: str, record: dict) -> dict:
    return {"run": name, "method": name} | eval_columns(record) | {"status": "reference"}


def eval_columns(record: dict) -> dict:
    """The encoder scored (student or teacher), k-NN top-1 per k and its T (always say which k and T
    a number used), few-shot k-NN, the linear probe's test top-1, and each low-shot probe's mean and
    std over its draws."""
    knn = record.get("knn", {})
    columns = {"encoder": record["encoder"]} if "encoder" in record else {}
    columns |= {f"knn@{k}": v for k, v in knn.get("top1", {}).items()}
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


def collate(sweep_dir: Path, references: dict[str, dict] | None = None, dirs: list[Path] | None = None) -> pd.DataFrame:
    """Leaderboard of a sweep folder (or of `dirs`, some of its runs), best k-NN@20 first, reference rows last."""
    dirs = run_dirs(sweep_dir) if dirs is None else dirs
    configs = [flat_config(d) for d in dirs]
    keys = varying_keys(configs)
    rows = [run_row(d, c, keys) for d, c in zip(dirs, configs, strict=True)]
    table = pd.DataFrame(rows)
    if "knn@20" in table:
        table = table.sort_values("knn@20", ascending=False, na_position="last")
    refs = pd.DataFrame([reference_row(name, rec) for name, rec in (references or {}).items()])
    if len(refs):
        table = pd.concat([table, refs], ignore_index=True)
    table = table.reset_index(drop=True)
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


NOT_AVERAGED = ("run", "seed", "status", "linear_view", "knn_T", "budget_used")


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """A row per configuration (method, backbone, what the sweep varied, budget): the mean and the
    std over its seeds of every accuracy and compute column, and how many seeds stand behind it.
    Reference rows are kept as they are (they have no seeds)."""
    group = [c for c in table.attrs.get("group", ["method"]) if c in table]
    runs = table[table["status"] == "done"].copy()  # a run still training or failed has no final compute
    refs = table[table["status"] == "reference"]
    refs = refs[[c for c in refs.columns if not c.endswith("_std")]]  # their std is over draws, not seeds
    metrics = [
        c
        for c in runs.columns
        if c not in (*group, *NOT_AVERAGED) and not c.endswith("_std") and pd.api.types.is_numeric_dtype(runs[c])
    ]
    for c in group:  # lists (tuples in the config) cannot be grouped on
        runs[c] = runs[c].map(lambda v: json.dumps(v) if isinstance(v, list) else v)
    grouped = runs.groupby(group, dropna=False, sort=False)[metrics]
    means, stds = grouped.mean(), grouped.std(ddof=1)
    out = means.copy()
    for c in metrics:
        out.insert(out.columns.get_loc(c) + 1, f"{c}_std", stds[c])
    out["seeds"] = grouped.size()
    out = out.reset_index()
    out = pd.concat([out, refs[[c for c in refs.columns if c in out.columns or c == "method"]]], ignore_index=True)
    out.attrs["group"] = group
    return out


def labels(summary: pd.DataFrame) -> pd.Series:
    """Each configuration's name in a table or a legend: the method, the encoder scored in brackets
    (`data2vec [student]`), and the keys that vary among that method's own runs (a mask setting, a
    clone count), not the budget."""
    group = [
        c for c in summary.attrs.get("group", ["method"]) if c not in ("method", "encoder", "budget", "budget_kind")
    ]
    runs = summary[summary["seeds"].notna()] if "seeds" in summary else summary
    varied = {
        m: [c for c in group if c in rows and rows[c].astype(str).nunique() > 1] for m, rows in runs.groupby("method")
    }

    def value(v) -> str:
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    def label(row) -> str:
        method = row["method"]
        extra = [f"{c.removeprefix(f'{method}.')}={value(row[c])}" for c in varied.get(method, [])]
        name = f"{method} [{row['encoder']}]" if isinstance(row.get("encoder"), str) else str(method)
        return f"{name} ({', '.join(extra)})" if extra else name

    return summary.apply(label, axis=1)


def compute_table(summary: pd.DataFrame, metric: str = "linear") -> pd.DataFrame:
    """Compute against accuracy: a row per budget, a column per configuration (mean ± std over seeds,
    or the single value of one seed) and one per reference row."""
    runs = summary[summary["seeds"].notna()].copy()
    runs["label"] = labels(summary)[runs.index]

    def cell(row) -> str:
        if pd.isna(row[metric]):
            return ""
        std = row.get(f"{metric}_std")
        return f"{row[metric]:.2f} ± {std:.2f}" if pd.notna(std) else f"{row[metric]:.2f}"

    runs["cell"] = runs.apply(cell, axis=1)
    kind = runs["budget_kind"].iloc[0] if len(runs) else "budget"
    table = runs.pivot_table(index="budget", columns="label", values="cell", aggfunc="first", sort=False)
    table = table.sort_index().reset_index().rename(columns={"budget": f"budget ({kind})"})
    for _, ref in summary[summary["seeds"].isna()].iterrows():
        table[ref["method"]] = f"{ref[metric]:.2f}" if metric in ref and pd.notna(ref[metric]) else ""
    table.columns.name = None
    return table


def to_markdown(table: pd.DataFrame) -> str:
    cells = table.astype(object).where(table.notna(), None)  # tabulate leaves NaN as "nan"
    return cells.to_markdown(index=False, floatfmt=".4g", missingval="")


def leaderboards(table: pd.DataFrame, metric: str = "linear") -> dict[str, pd.DataFrame]:
    """The tables of a sweep: a row per run, a row per configuration (mean ± std over seeds), and
    compute against accuracy (rows: budget, columns: configuration); reference rows in each."""
    summary = summarize(table)
    return {"runs": table, "summary": summary, "compute": compute_table(summary, metric)}


SUMMARY_COLUMNS = ("knn@20", "linear", "linear_1%", "device_hours", "flops", "images_seen", "epochs")


def markdown_report(tables: dict[str, pd.DataFrame], title: str, metric: str, plots: list[str] = ()) -> str:
    """The tables as Markdown, with the plots they come with."""
    summary = tables["summary"]
    keep = [c for c in summary.columns if c in (*summary.attrs.get("group", ()), "seeds")]
    keep += [c for name in SUMMARY_COLUMNS for c in (name, f"{name}_std") if c in summary.columns]
    parts = [f"# {title}", "", f"## Compute against accuracy ({metric}, mean ± std over seeds)", ""]
    parts += [to_markdown(tables["compute"]), ""]
    parts += [f"![{Path(p).stem}]({p})" for p in plots] + ([""] if plots else [])
    parts += ["## Configurations (mean and std over seeds; reference rows have none)", ""]
    parts += [to_markdown(summary[keep]), "", "## Runs", "", to_markdown(tables["runs"]), ""]
    return "\n".join(parts)


def write_leaderboards(tables: dict[str, pd.DataFrame], stem: Path, title: str, metric: str) -> list[Path]:
    """STEM.csv (runs), STEM_summary.csv, STEM_compute.csv and STEM.md."""
    paths = [stem.with_suffix(".csv"), stem.with_name(f"{stem.name}_summary.csv")]
    paths += [stem.with_name(f"{stem.name}_compute.csv"), stem.with_suffix(".md")]
    write_csv(tables["runs"], paths[0])
    write_csv(tables["summary"], paths[1])
    write_csv(tables["compute"], paths[2])
    paths[3].write_text(markdown_report(tables, title, metric))
    return paths


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """6 significant digits: integers print as integers even in columns with empty cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
