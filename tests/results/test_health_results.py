"""The health signals in the results: columns, the `collapsed` flag, and the report's two plots."""

import json

import pandas as pd
import pytest

from bench.results.collate import collate
from bench.results.compute import compute_table
from bench.results.leaderboards import leaderboards, markdown_report
from bench.results.runs import health_curves
from bench.results.summary import summarize
from bench.rundir import SUMMARY

from ..conftest import invoke
from .test_results import RESULTS, write_run

# (method, budget, seed) -> final (rankme, feature_std): mae collapsed by RankMe (< 1.2) at 2e12, ijepa healthy
HEALTH = {
    ("ijepa", 1e12, 0): (12.0, 0.5),
    ("ijepa", 1e12, 1): (14.0, 0.7),
    ("ijepa", 2e12, 0): (20.0, 0.6),
    ("mae", 1e12, 0): (3.0, 0.3),
    ("mae", 1e12, 1): (5.0, 0.2),
    ("mae", 2e12, 0): (1.1, 0.3),
}


def add_health(run_dir, budget, rankme, feature_std):
    """summary.json's final health, and metrics.jsonl's health records at step 0, half-way and the end."""
    summary = json.loads((run_dir / SUMMARY).read_text())
    final = {"rankme": rankme, "feature_std": feature_std, "std": 0.1, "moved": 0.2, "target_std": 0.4}
    (run_dir / SUMMARY).write_text(json.dumps(summary | {"health": final, "health_seconds": 1.0}))
    lines = [
        {"step": 0, "flops": 0.0, "health/rankme": 1.5, "health/feature_std": 0.05, "health/moved": 0.0},
        {"step": 5, "flops": budget / 2, "loss": 1.0},
        {"step": 8, "flops": budget / 2, "health/rankme": rankme / 2, "health/feature_std": 0.1, "health/moved": 0.1},
        {"step": 10, "flops": budget, "loss": 0.9, **{f"health/{k}": v for k, v in final.items()}},
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.fixture
def sweep(tmp_path):
    sweep_dir = tmp_path / "runs" / "methods"
    for key, values in RESULTS.items():
        add_health(write_run(sweep_dir, *key, *values), key[1], *HEALTH[key])
    write_run(sweep_dir, "ijepa", 0, 0, 40.0, 60.0, 45.0)  # an init run, trained before health: no columns
    return sweep_dir


def test_the_tables_show_the_final_health_and_flag_collapse(sweep):
    runs = collate(sweep)
    one = runs[(runs["method"] == "mae") & (runs["budget"] == 2e12)].iloc[0]
    # feature_std and target_std as `_spread`: `_std` columns are stds over seeds here
    assert (one["rankme"], one["feature_spread"], one["target_spread"]) == (1.1, 0.3, 0.4)
    assert "std" not in runs and "feature_std" not in runs  # the raw std stays in the run's files
    summary = summarize(runs)

    def row(method, budget):
        return summary[(summary["method"] == method) & (summary["budget"] == budget)].iloc[0]

    assert row("ijepa", 1e12)["rankme"] == pytest.approx(13.0) and row("ijepa", 1e12)["rankme_std"] == pytest.approx(
        2**0.5
    )
    assert row("mae", 1e12)["feature_spread"] == pytest.approx(0.25)
    assert row("mae", 1e12)["feature_spread_std"] == pytest.approx(0.1 * 2**0.5 / 2 * 1)
    assert row("mae", 2e12)["collapsed"] == True  # noqa: E712  RankMe 1.1 < 1.2
    assert row("mae", 1e12)["collapsed"] == False and row("ijepa", 2e12)["collapsed"] == False  # noqa: E712
    assert pd.isna(row("ijepa", 0)["collapsed"])  # an init run: nothing trained to collapse
    table = compute_table(summary, "linear")
    mae = dict(zip(table["budget (flops)"], table["mae"], strict=True))
    assert mae[2e12].endswith(" collapsed") and "collapsed" not in mae[1e12]
    md = markdown_report(leaderboards(runs), "methods", "linear")
    assert " rankme " in md and " feature_spread " in md and " target_spread " in md
    assert " collapsed " in md.split("## Runs")[0]


def test_a_collapse_by_feature_std_alone_is_flagged(tmp_path):
    sweep_dir = tmp_path / "s"
    add_health(write_run(sweep_dir, "ijepa", 1e12, 0, 50.0, 70.0, 55.0), 1e12, 30.0, 0.019)
    add_health(write_run(sweep_dir, "mae", 1e12, 0, 50.0, 70.0, 55.0), 1e12, 1.21, 0.021)
    flags = summarize(collate(sweep_dir)).set_index("method")["collapsed"]
    assert flags["ijepa"] == True and flags["mae"] == False  # noqa: E712


def test_health_curves_are_the_health_records_of_each_run(sweep):
    names = sorted(p.name for p in sweep.iterdir())
    rows = pd.DataFrame(health_curves(sweep, [*names, "pixels"]))  # a reference row's name: no folder
    assert len(rows) == 3 * 6  # three health records a run, none for the init run trained before health
    first = rows[rows["run"] == names[0]]
    assert first["step"].tolist() == [0, 8, 10] and first["moved"].tolist() == [0.0, 0.1, 0.2]


def test_the_plots_of_health_against_compute_and_rankme_against_accuracy(sweep):
    from bench.results import plots

    runs = collate(sweep)
    figure = plots.health_plot(pd.DataFrame(health_curves(sweep, runs["run"])), runs)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["rankme", "feature_std", "moved", "target_std"]
    rankme = figure.axes[0]
    assert len(rankme.get_lines()) == 6 and rankme.get_xlabel() == "compute used (FLOPs)"
    assert sorted({t.get_text() for t in rankme.figure.axes[-1].get_legend().get_texts()}) == ["ijepa", "mae"]
    # RankMe (12, 14, 20, 3, 5, 1.1) ranks (4, 5, 6, 2, 3, 1) against linear (70, 72, 74, 80, 81, 83) ranks
    # (1, ..., 6): d = (3, 3, 3, -2, -2, -5), sum d^2 = 60, rho = 1 - 6 * 60 / (6 * (36 - 1)) = -0.714
    scatter = plots.rankme_plot(runs, "linear").axes[0]
    assert "Spearman ρ = -0.71" in scatter.get_title() and "n = 6" in scatter.get_title(), scatter.get_title()
    assert scatter.get_xlabel() == "RankMe at the end of training"


@pytest.mark.slow  # the whole report: every plot as PNG and SVG
def test_bench_report_holds_the_health_plots(sweep, tmp_path, monkeypatch):
    import matplotlib.image

    monkeypatch.chdir(tmp_path)
    report = invoke("report", "methods", "--root", "runs", "--no-references")
    assert report.exit_code == 0, report.output
    text = (sweep / "report" / "report.md").read_text()
    for png in ("health_vs_flops.png", "rankme_vs_linear.png"):
        assert f"]({png})" in text and matplotlib.image.imread(sweep / "report" / png).ndim == 3
