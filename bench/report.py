"""A sweep's report: its leaderboards and plots in one Markdown or self-contained HTML file.

bench report sweeps/methods.yaml                     # runs/methods/report/report.md
bench report sweeps/methods.yaml --format html --out results/methods
"""

import base64
import html
from pathlib import Path

import pandas as pd

from bench import plots
from bench.results import markdown_report, write_leaderboards


def make_plots(tables: dict[str, pd.DataFrame], dest: Path, metric: str) -> list[Path]:
    """Accuracy against FLOPs and against device-hours, and the configurations as bars (PNG + SVG)."""
    summary, made = tables["summary"], []
    for x in ("flops", "device_hours"):
        if x in summary and summary[x].notna().any():
            made += plots.save(plots.compute_plot(summary, metric, x), dest / f"{metric}_vs_{x}".replace("@", "_"))
    made += plots.save(plots.ablation_bars(summary, metric), dest / f"{metric}_by_configuration".replace("@", "_"))
    return made


def write_report(tables: dict[str, pd.DataFrame], dest: Path, title: str, metric: str, fmt: str = "md") -> Path:
    """Tables (CSV, Markdown), plots (PNG, SVG) and report.md or report.html into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    write_leaderboards(tables, dest / title, title, metric)
    pngs = [p for p in make_plots(tables, dest, metric) if p.suffix == ".png"]
    if fmt == "md":
        path = dest / "report.md"
        path.write_text(markdown_report(tables, title, metric, [p.name for p in pngs]))
        return path
    path = dest / "report.html"
    path.write_text(html_report(tables, title, metric, pngs))
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
