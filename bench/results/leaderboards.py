"""A sweep's leaderboards as data and as files: the runs table, the summary and the compute table,
written as CSV and Markdown; the --metric a caller may choose among them."""

from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.files import write_text
from bench.results.collate import GAIN_METRICS
from bench.results.compute import compute_table
from bench.results.summary import summarize


def accuracy_columns(table: pd.DataFrame) -> list[str]:
    """The columns of a runs table a --metric may name: top-1 accuracies (k-NN per k, few-shot k-NN,
    the linear, [cls] and low-shot probes, the validation score), not their std, view or temperature."""
    other = ("knn_T", "linear_view")
    return [
        c
        for c in table.columns
        if c.startswith(("knn", "val_knn", "linear")) and c not in other and not c.endswith("_std")
    ]


def check_metric(table: pd.DataFrame, metric: str, sweep: str) -> None:
    """One clear error unless `metric` is an accuracy column that some run of the sweep has a value of:
    checked on the runs alone, before any reference row is computed."""
    known = accuracy_columns(table)
    if metric in known and table[metric].notna().any():
        return
    if metric in known or metric in GAIN_METRICS:
        raise BenchError(f"no run of {sweep} has a {metric!r} result yet (evaluate them: bench eval)")
    choices = ", ".join(dict.fromkeys([*GAIN_METRICS, *known]))
    raise BenchError(f"--metric {metric!r} is not an accuracy column of {sweep}; choose one of: {choices}")


def to_markdown(table: pd.DataFrame) -> str:
    cells = table.astype(object).where(table.notna(), None)  # tabulate leaves NaN as "nan"
    return cells.to_markdown(index=False, floatfmt=".4g", missingval="")


def leaderboards(table: pd.DataFrame, metric: str = "linear") -> dict[str, pd.DataFrame]:
    """The tables of a sweep: a row per run, a row per configuration (mean ± std over seeds), and
    compute against accuracy (rows: budget, columns: configuration); reference rows in each."""
    summary = summarize(table, metric)
    return {"runs": table, "summary": summary, "compute": compute_table(summary, metric)}


SUMMARY_COLUMNS = (
    "knn@20",
    "linear",
    "linear_1%",
    "linear_cls",
    "gain_knn@20",
    "gain_linear",
    "gain_linear_1%",
    "moved",
    "rankme",
    "feature_spread",
    "target_spread",
    "sigreg",
    "device_hours",
    "flops",
    "images_seen",
    "epochs",
    "tuning_flops",
    "tuning_device_hours",
)


def markdown_report(tables: dict[str, pd.DataFrame], title: str, metric: str, plots: list[str] = ()) -> str:
    """The tables as Markdown, with the plots they come with."""
    summary = tables["summary"]
    keep = [c for c in summary.columns if c in (*summary.attrs.get("group", ()), "seeds")]
    keep += [c for name in SUMMARY_COLUMNS for c in (name, f"{name}_std") if c in summary.columns]
    flags = ("gain_linear_noise", "barely_moved", "collapsed", "rank", "p_next", "tied_next")
    keep += [c for c in flags if c in summary.columns]
    parts = [f"# {title}", "", f"## Compute against accuracy ({metric}, mean ± std over seeds)", ""]
    parts += [to_markdown(tables["compute"]), ""]
    parts += [f"![{Path(p).stem}]({p})" for p in plots] + ([""] if plots else [])
    parts += ["## Configurations (mean and std over seeds; reference rows have none)", ""]
    parts += [to_markdown(summary[keep]), "", "## Runs", "", to_markdown(tables["runs"]), ""]
    return "\n".join(parts)


def leaderboard_files(stem: Path) -> list[Path]:
    """STEM.csv (runs), STEM_summary.csv, STEM_compute.csv and STEM.md."""
    names = (f"{stem.name}.csv", f"{stem.name}_summary.csv", f"{stem.name}_compute.csv", f"{stem.name}.md")
    return [stem.with_name(name) for name in names]


def write_leaderboards(tables: dict[str, pd.DataFrame], stem: Path, title: str, metric: str) -> list[Path]:
    """STEM.csv (runs), STEM_summary.csv, STEM_compute.csv and STEM.md; their paths."""
    paths = leaderboard_files(stem)
    write_csv(tables["runs"], paths[0])
    write_csv(tables["summary"], paths[1])
    write_csv(tables["compute"], paths[2])
    write_text(paths[3], markdown_report(tables, title, metric))
    return paths


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """6 significant digits: integers print as integers even in columns with empty cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, table.to_csv(index=False, float_format="%.6g"))
