"""A sweep's report: its leaderboards and plots in one Markdown or self-contained HTML file,
and, online, a W&B Report (wandb-workspaces) over the sweep's W&B runs.

    bench report sweeps/methods.yaml                     # runs/methods/report/report.md
    bench report sweeps/methods.yaml --format html --out results/methods
    WANDB_MODE=online bench report sweeps/methods.yaml --wandb
"""

import base64
import html
import os
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.files import write_text
from bench.results import plots
from bench.results.leaderboards import markdown_report, write_leaderboards


def make_plots(tables: dict[str, pd.DataFrame], dest: Path, metric: str, curves: list[dict] = ()) -> list[Path]:
    """Accuracy against FLOPs and against device-hours, and the configurations as bars (PNG + SVG); where
    the runs logged health signals (`curves`: results/runs.py health_curves), those against FLOPs, and
    where their summaries hold a final RankMe, RankMe against `metric` over the trained runs."""
    summary, runs, made = tables["summary"], tables["runs"], []
    for x in ("flops", "device_hours"):
        if x in summary and summary[x].notna().any():
            made += plots.save(plots.compute_plot(summary, metric, x), dest / f"{metric}_vs_{x}".replace("@", "_"))
    made += plots.save(plots.ablation_bars(summary, metric), dest / f"{metric}_by_configuration".replace("@", "_"))
    if len(curves):
        made += plots.save(plots.health_plot(pd.DataFrame(list(curves)), runs), dest / "health_vs_flops")
    if "rankme" in runs and metric in runs and (runs["rankme"].notna() & runs[metric].notna()).any():
        made += plots.save(plots.rankme_plot(runs, metric), dest / f"rankme_vs_{metric}".replace("@", "_"))
    return made


def write_report(
    tables: dict[str, pd.DataFrame], dest: Path, title: str, metric: str, fmt: str = "md", curves: list[dict] = ()
) -> Path:
    """Tables (CSV, Markdown), plots (PNG, SVG) and report.md or report.html into `dest`; `curves`: the
    runs' health records (make_plots)."""
    dest.mkdir(parents=True, exist_ok=True)
    write_leaderboards(tables, dest / title, title, metric)
    pngs = [p for p in make_plots(tables, dest, metric, curves) if p.suffix == ".png"]
    if fmt == "md":
        path = dest / "report.md"
        write_text(path, markdown_report(tables, title, metric, [p.name for p in pngs]))
        return path
    path = dest / "report.html"
    write_text(path, html_report(tables, title, metric, pngs))
    return path


def html_report(tables: dict[str, pd.DataFrame], title: str, metric: str, pngs: list[Path]) -> str:
    """One file: the plots embedded as data URIs, the tables as HTML."""
    images = "".join(
        f'<img alt="{html.escape(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        for p in pngs
    )

    def table(df: pd.DataFrame) -> str:
        return df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0)

    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:small}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}} img{{max-width:48%;margin:4px}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<h2>Compute against accuracy ({html.escape(metric)}, mean ± std over seeds)</h2>
{table(tables["compute"])}
<div>{images}</div>
<h2>Configurations (mean and std over seeds; reference rows have none)</h2>
{table(tables["summary"])}
<h2>Runs</h2>
{table(tables["runs"])}
</body></html>
"""


def wandb_key(metric: str) -> str:
    """The W&B summary key (bench/tracking.py flattens eval.json) of a leaderboard column."""
    if metric == "linear":
        return "eval/linear/top1"
    if metric.startswith("knn@"):
        return f"eval/knn/top1/{metric[4:]}"
    if metric.startswith("knn_") and metric.endswith("shot"):
        return f"eval/knn_fewshot/{metric[4:-4]}/mean"
    if metric.startswith("linear_"):
        return f"eval/lowshot/{metric[7:]}/mean"
    return metric


def wandb_report(tables: dict[str, pd.DataFrame], sweep: str, metric: str, entity: str, project: str):
    """A W&B Report: the compute-against-accuracy table, scatter panels of accuracy against FLOPs
    and device-hours and the training-loss curves over the sweep's runs (W&B group = sweep, grouped
    by method), and the configurations table. Not saved: `report.save()` publishes it."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    runs = wr.Runset(entity=entity, project=project, name=sweep, filters=expr.And(expr.Metric("Group") == sweep))
    runs.groupby = ["method"]
    accuracy = wr.SummaryMetric(wandb_key(metric))
    panels = [
        wr.ScatterPlot(title=f"{metric} against FLOPs", x=wr.SummaryMetric("compute/flops"), y=accuracy, log_x=True),
        wr.ScatterPlot(
            title=f"{metric} against device-hours", x=wr.SummaryMetric("compute/device_hours"), y=accuracy, log_x=True
        ),
        wr.LinePlot(title="training loss", x="Step", y=["loss"]),
    ]
    return wr.Report(
        project=project,
        entity=entity,
        title=f"jepa-bench: {sweep}",
        description=f"Pre-training methods at equal compute budgets, sweep {sweep}: {metric} top-1 against compute.",
        blocks=[
            wr.H2(f"Compute against accuracy ({metric}, mean ± std over seeds)"),
            wr.MarkdownBlock(text=tables["compute"].to_markdown(index=False)),
            wr.PanelGrid(runsets=[runs], panels=panels),
            wr.H2("Configurations"),
            wr.MarkdownBlock(text=markdown_report(tables, sweep, metric).split("## Configurations", 1)[-1]),
        ],
    )


def publish_wandb_report(tables: dict[str, pd.DataFrame], sweep: str, metric: str) -> str | None:
    """Save the W&B Report and return its URL; None when W&B is not online (nothing to report on)."""
    if os.environ.get("WANDB_MODE", "offline") != "online":
        return None
    import wandb

    from bench.tracking import PROJECT

    project = os.environ.get("WANDB_PROJECT", PROJECT)
    try:
        entity = os.environ.get("WANDB_ENTITY") or wandb.Api().default_entity
        report = wandb_report(tables, sweep, metric, entity, project)
        report.save()
    except (wandb.errors.Error, OSError, ValueError) as e:  # no key, no network: the local report stands
        raise BenchError(
            f"the W&B report was not saved ({str(e).strip().splitlines()[0]}); the local one was"
        ) from None
    return report.url
