"""Leaderboards, plots and reports from fixture run folders (no training): collation is a pure
function of the folders, so every number here is checked against the one written in."""

import re

import numpy as np
import pandas as pd
import pytest

from bench.config.runfile import config_hash, write_config
from bench.results.collate import collate
from bench.results.compute import compute_table
from bench.results.leaderboards import leaderboards
from bench.results.summary import labels, summarize
from bench.rundir import EVAL, SUMMARY, write_json

from ..badinputs import Bad
from ..conftest import invoke, tiny_config

# (method, budget, seed) -> (k-NN@20, linear, 1 %)
RESULTS = {
    ("ijepa", 1e12, 0): (50.0, 70.0, 55.0),
    ("ijepa", 1e12, 1): (54.0, 72.0, 57.0),
    ("ijepa", 2e12, 0): (58.0, 74.0, 60.0),
    ("mae", 1e12, 0): (70.0, 80.0, 66.0),
    ("mae", 1e12, 1): (72.0, 81.0, 68.0),
    ("mae", 2e12, 0): (75.0, 83.0, 70.0),
}
REFERENCES = {
    "pixels": {"knn": {"top1": {"20": 85.7}}, "linear": {"top1": 84.5, "best": {"view": "pixels"}}},
    "random": {"knn": {"top1": {"20": 49.8}}, "linear": {"top1": 65.6, "best": {"view": "last_avg"}}},
}


def write_run(sweep_dir, method, budget, seed, knn, linear, lowshot, encoder=None, used=1.001, **overrides):
    cfg = tiny_config(method, **{"budget.kind": "flops", "budget.value": budget, "seed": seed, **overrides})
    run_dir = sweep_dir / f"{method}-{config_hash(cfg)}"
    run_dir.mkdir(parents=True)
    write_config(cfg, run_dir / "config.yaml")
    compute = {"steps": 10, "flops": budget * used, "device_hours": budget * used / 1e15, "images_seen": 160}
    write_json({"status": "done", "compute": compute | {"epochs": 0.3, "budget_used": used}}, run_dir / SUMMARY)
    evaluation = {
        "knn": {"top1": {"20": knn}, "temperature": 0.07},
        "linear": {"top1": linear, "best": {"view": "last_avg"}},
        "lowshot": {"1%": {"mean": lowshot, "std": 0.5}},
    }
    if encoder is not None:
        evaluation["encoder"] = encoder
    write_json(evaluation, run_dir / EVAL)
    return run_dir


@pytest.fixture
def sweep(tmp_path):
    sweep_dir = tmp_path / "runs" / "methods"
    for (method, budget, seed), values in RESULTS.items():
        write_run(sweep_dir, method, budget, seed, *values)
    return sweep_dir


def test_summary_is_the_mean_and_std_over_seeds_with_reference_rows(sweep):
    summary = summarize(collate(sweep, REFERENCES))
    row = summary[(summary["method"] == "ijepa") & (summary["budget"] == 1e12)].iloc[0]
    assert row["seeds"] == 2
    assert row["linear"] == pytest.approx(71.0) and row["linear_std"] == pytest.approx(2**0.5)
    assert row["knn@20"] == pytest.approx(52.0) and row["linear_1%"] == pytest.approx(56.0)
    assert row["flops"] == pytest.approx(1.001e12) and row["images_seen"] == 160
    one_seed = summary[(summary["method"] == "mae") & (summary["budget"] == 2e12)].iloc[0]
    assert one_seed["seeds"] == 1 and pd.isna(one_seed["linear_std"])  # one seed: no spread to report
    refs = summary[summary["seeds"].isna()]
    assert list(refs["method"]) == ["pixels", "random"] and list(refs["linear"]) == [84.5, 65.6]
    assert len(summary) == 6


def test_compute_table_rows_are_budgets_columns_are_methods(sweep):
    table = compute_table(summarize(collate(sweep, REFERENCES)), "linear")
    assert list(table.columns) == ["budget (flops)", "mae", "ijepa", "ranking", "pixels", "random"]  # best first
    # 2 seeds a side at 1e12 (80, 81 against 70, 72: Welch p = 0.04); 1 seed at 2e12: nothing to test
    assert list(table["ranking"]) == ["mae > ijepa", "mae = ijepa"]
    assert list(table["budget (flops)"]) == [1e12, 2e12]
    assert list(table["ijepa"]) == ["71.00 ± 1.41", "74.00"]
    assert list(table["mae"]) == ["80.50 ± 0.71", "83.00"]
    assert list(table["pixels"]) == ["84.50", "84.50"]


def test_labels_name_what_varies_within_a_method(tmp_path):
    sweep_dir = tmp_path / "masks"
    for targets in (1, 4):
        write_run(sweep_dir, "ijepa", 1e12, 0, 50.0, 70.0 + targets, 55.0, **{"ijepa.mask.num_targets": targets})
    write_run(sweep_dir, "mae", 1e12, 0, 70.0, 80.0, 66.0)
    summary = summarize(collate(sweep_dir))
    assert sorted(labels(summary)) == ["ijepa (mask.num_targets=1)", "ijepa (mask.num_targets=4)", "mae"]


def test_plots_are_pngs_with_the_right_axes(sweep, tmp_path):
    import matplotlib.image

    from bench.results import plots

    summary = summarize(collate(sweep, REFERENCES))
    figure = plots.compute_plot(summary, "linear", "flops")
    ax = figure.axes[0]
    assert ax.get_xlabel() == "compute used (FLOPs)" and ax.get_ylabel() == "linear probe top-1 (%)"
    assert ax.get_xscale() == "log"
    lines = {text.get_text() for text in ax.get_legend().get_texts()}
    assert {"ijepa", "mae", "pixels", "random"} <= lines
    ijepa = next(c for c in ax.containers if c.get_label() == "ijepa")  # error bars over seeds
    assert list(ijepa.lines[0].get_ydata()) == [71.0, 74.0]
    paths = plots.save(figure, tmp_path / "plots" / "compute")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(paths[0]).ndim == 3
    assert paths[1].read_text().lstrip().startswith("<?xml")
    bars = plots.ablation_bars(summary, "knn@20").axes[0]  # one bar per configuration, at the largest budget
    assert bars.get_xlabel() == "k-NN (k=20) top-1 (%)" and bars.get_ylabel() == "configuration"
    assert sorted(p.get_width() for p in bars.patches) == [58.0, 75.0] and "2e+12" in bars.get_title()
    assert [t.get_text() for t in bars.get_yticklabels()] == ["ijepa", "mae"]


def test_collate_and_report_write_their_files(sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("collate", "methods", "--root", "runs", "--out", "results/methods.csv", "--no-references")
    assert result.exit_code == 0, result.output
    for name in ("methods.csv", "methods_summary.csv", "methods_compute.csv", "methods.md"):
        assert (tmp_path / "results" / name).is_file(), name
    assert "budget (flops) | mae " in (tmp_path / "results" / "methods.md").read_text()
    assert (sweep / "leaderboard_summary.csv").is_file()

    report = invoke("report", "methods", "--root", "runs", "--no-references")
    assert report.exit_code == 0, report.output
    text = (sweep / "report" / "report.md").read_text()
    for png in ("linear_vs_flops.png", "linear_vs_device_hours.png", "linear_by_configuration.png"):
        assert f"]({png})" in text and (sweep / "report" / png).is_file()
    html = invoke("report", "methods", "--root", "runs", "--format", "html", "--out", "results/methods")
    assert html.exit_code == 0, html.output
    page = (tmp_path / "results" / "methods" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and 'src="linear' not in page  # self-contained

    outside = invoke("report", "methods", "--root", "runs", "--out", str(tmp_path / "elsewhere"))
    assert outside.exit_code == 2 and "outside the results folder" in outside.output
    folder = invoke("collate", "methods", "--root", "runs", "--out", "results", "--no-references")
    assert folder.exit_code == 2 and "must name a CSV file in the results folder" in folder.output
    unknown = invoke("collate", "methods", "--root", "runs", "--metric", "top5", "--no-references")
    assert unknown.exit_code == 2 and "--metric 'top5' is not an accuracy column of methods" in unknown.output
    assert "choose one of: knn@20, linear, linear_1%" in unknown.output
    missing = invoke("collate", "methods", "--root", "runs", "--metric", "linear_1%", "--no-references")
    assert missing.exit_code == 0, missing.output


def test_the_runs_are_sorted_by_the_chosen_metric(sweep, tmp_path, monkeypatch):
    """Best first by --metric, whichever it is (a run best at k-NN and worst at linear moves)."""
    odd = write_run(sweep, "ijepa", 1e12, 2, 99.0, 10.0, 50.0)
    monkeypatch.chdir(tmp_path)
    for metric, place in (("knn@20", 0), ("linear", -1)):
        result = invoke("collate", "methods", "--root", "runs", "--no-references", "--metric", metric)
        assert result.exit_code == 0, result.output
        runs = pd.read_csv(sweep / "leaderboard.csv")
        assert list(runs[metric]) == sorted(runs[metric], reverse=True) and runs["run"].iloc[place] == odd.name
    assert collate(sweep, metric="knn@20")["run"].iloc[0] == odd.name == collate(sweep)["run"].iloc[-1]


def test_leaderboards_hold_the_three_tables(sweep):
    tables = leaderboards(collate(sweep, REFERENCES), "knn@20")
    assert set(tables) == {"runs", "summary", "compute"}
    assert len(tables["runs"]) == 8  # 6 runs + 2 references
    assert list(tables["compute"]["mae"]) == ["71.00 ± 1.41", "75.00"]


def test_progress_bars_show_on_a_terminal_only(capsys, monkeypatch):
    import sys

    from bench.progress import progress_bar

    with progress_bar("features of 10 images", 10) as show:
        show(5)
    assert capsys.readouterr().err == ""  # not a terminal: job logs stay plain
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar("features of 10 images", 10) as show:
        show(10)
    err = capsys.readouterr().err
    assert "features of 10 images" in err and "100%" in err


def test_wandb_report_offline_writes_the_local_report_and_says_how_to_sync(sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    result = invoke("report", "methods", "--root", "runs", "--no-references", "--wandb")
    assert result.exit_code == 0, result.output
    assert (sweep / "report" / "report.md").is_file()
    assert "W&B is offline" in result.output and "wandb sync runs/methods/*/wandb/offline-run-*" in result.output


def test_wandb_report_holds_the_table_and_panels_over_the_sweeps_runs(sweep):
    import wandb_workspaces.reports.v2 as wr

    from bench.results.report import wandb_report

    tables = leaderboards(collate(sweep, REFERENCES), "linear")
    report = wandb_report(tables, "methods", "linear", entity="someone", project="jepa-bench")
    assert report.title == "jepa-bench: methods" and report.project == "jepa-bench"
    grid = next(b for b in report.blocks if isinstance(b, wr.PanelGrid))
    runset = grid.runsets[0]
    assert runset.groupby == ["method"] and "methods" in str(runset.filters)  # the sweep's W&B group
    scatter = [p for p in grid.panels if isinstance(p, wr.ScatterPlot)]
    assert {str(p.x) for p in scatter} >= {str(wr.SummaryMetric("compute/flops"))}
    assert all(str(p.y) == str(wr.SummaryMetric("eval/linear/top1")) for p in scatter)
    text = next(b for b in report.blocks if isinstance(b, wr.MarkdownBlock)).text
    assert "71.00 ± 1.41" in text and "84.5" in text  # the compute table, reference column included


def test_runs_not_done_do_not_count_as_seeds_and_tables_show_no_nan(sweep):
    from bench.results.leaderboards import to_markdown

    running = write_run(sweep, "ijepa", 1e12, 2, 99.0, 99.0, 99.0)  # a third seed, still training
    summary_path = running / SUMMARY
    summary_path.write_text(summary_path.read_text().replace('"done"', '"running"'))
    summary = summarize(collate(sweep, REFERENCES))
    row = summary[(summary["method"] == "ijepa") & (summary["budget"] == 1e12)].iloc[0]
    assert row["seeds"] == 2 and row["linear"] == pytest.approx(71.0)
    assert "linear_1%_std" not in summary.columns or summary.loc[summary["seeds"].isna(), "linear_1%_std"].isna().all()
    assert not re.search(r"\bnan\b", to_markdown(summary))  # (vit_nano contains "nan")


# The demo's shape: four methods, each at one budget and at its init (budget 0), over 2 seeds; a FLOP
# budget stops at the step boundary nearest to it, so each method's compute used is a little off it.
DEMO = {  # method -> (encoder, (k-NN@20, linear, 1 %) at init, the same after training, budget used)
    "ijepa": ("teacher", (54.0, 70.4, 61.0), (57.8, 72.8, 62.0), 1.004),
    "mae": ("student", (70.9, 79.0, 68.1), (71.6, 79.4, 67.9), 0.998),
    "data2vec": ("student", (51.1, 69.2, 57.7), (68.8, 74.6, 66.8), 1.03),
    "data2vec_v1": ("student", (50.1, 65.9, 55.7), (57.7, 72.4, 64.4), 0.99),
}


@pytest.fixture
def demo_sweep(tmp_path):
    sweep_dir = tmp_path / "runs" / "demo"
    for method, (encoder, init, trained, used) in DEMO.items():
        for seed in (0, 1):
            write_run(sweep_dir, method, 0.0, seed, *(v + seed for v in init), encoder=encoder)
            write_run(sweep_dir, method, 3e12, seed, *(v + 2 * seed for v in trained), encoder=encoder, used=used)
    return sweep_dir


def test_narrow_board_is_a_row_per_configuration_with_its_gains(demo_sweep):
    from bench.results.board import narrow_board

    board = narrow_board(summarize(collate(demo_sweep, REFERENCES)))
    assert list(board.columns) == [
        "configuration",
        *("budget", "steps", "k-NN@20", "linear", "1 %", "Δk-NN@20", "Δlinear", "Δ1 %"),
    ]
    assert list(board["budget"]) == ["3e+12"] * 4 + ["init"] * 4 + ["-"] * 2
    assert list(board["configuration"][:4]) == [
        "mae [student]",
        "data2vec [student]",
        "ijepa [teacher]",
        "data2vec_v1 [student]",
    ]  # by linear
    ijepa = board[(board["configuration"] == "ijepa [teacher]") & (board["budget"] == "3e+12")].iloc[0]
    # mean ± std over seeds 0 and 1 (+0, +2): 73.8 ± 1.4; gain +2.4 then +3.4: 2.9 ± 0.7, > 2 std
    assert ijepa["linear"] == "73.8±1.4" and ijepa["Δlinear"] == "+2.9" and ijepa["steps"] == "10"
    mae = board[(board["configuration"] == "mae [student]") & (board["budget"] == "3e+12")].iloc[0]
    assert mae["Δ1 %"] == "+0.3~" and mae["Δlinear"] == "+0.9~"  # 0.4 then 1.4: within noise, marked
    assert "Δ: gain over the method's own init" in board.attrs["note"] and "~: within noise" in board.attrs["note"]
    init = board[(board["configuration"] == "mae [student]") & (board["budget"] == "init")].iloc[0]
    assert init["linear"] == "79.5±0.7" and init["Δlinear"] == ""
    pixels = board[board["configuration"] == "pixels"].iloc[0]
    assert pixels["linear"] == "84.5" and pixels["Δlinear"] == "" and pixels["steps"] == "-"


def test_collate_prints_a_leaderboard_that_fits_100_columns(demo_sweep, tmp_path, monkeypatch, capsys):
    import sys

    from bench.cli.display import print_table
    from bench.results.board import narrow_board

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bench.evals.references.reference_rows", lambda configs, root: REFERENCES)
    result = invoke("collate", "demo", "--root", "runs")  # not a terminal: plain text
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, result.stdout
    assert lines[0].split() == ["configuration", "budget", "steps", "k-NN@20", "linear", "1", "%", "Δk-NN@20"] + [
        "Δlinear",
        "Δ1",
        "%",
    ]
    assert sum("data2vec_v1 [student]" in line for line in lines) == 2 and "pixels" in result.stdout
    assert "runs/demo/leaderboard{.csv,_summary.csv,_compute.csv,.md}" in lines[-1]
    assert (demo_sweep / "leaderboard_compute.csv").is_file()  # the wide tables, as before

    board = narrow_board(summarize(collate(demo_sweep, REFERENCES)))  # a terminal 100 wide: rich
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    print_table(board)
    shown = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in capsys.readouterr().out.splitlines()]  # no styles
    assert max(len(line) for line in shown) <= 100 and any("data2vec_v1 [student]" in line for line in shown)
    assert sum("3e+12" in line for line in shown) == 4


def test_narrow_board_shortens_long_names_in_the_middle():
    from bench.results.board import narrow_board

    summary = pd.DataFrame(
        {
            "method": ["ijepa"],
            "seeds": [1],
            "budget": [1e12],
            "steps": [10.0],
            "linear": [70.0],
            "ijepa.mask.some_very_long_setting_name": ["a_long_value_" * 6],
        }
    )
    summary.attrs["group"] = ["method", "ijepa.mask.some_very_long_setting_name", "budget"]
    board = narrow_board(pd.concat([summary, summary.assign(**{"ijepa.mask.some_very_long_setting_name": "b"})]))
    assert max(len(line) for line in board.to_string(index=False).splitlines()) <= 100
    assert board["configuration"].iloc[0].startswith("ijepa (mask.") and "…" in board["configuration"].iloc[0]


# The bad-input corpus (tests/badinputs.py) for collate and report: each case exits 2 with one line and
# writes nothing — no table, no feature cache, no references/ folder.
def _make(path: str, folder: bool = False):
    def setup(tmp):
        target = tmp / path
        if folder:
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("kept\n")

    return setup


BAD_REPORTS = {
    "collate metric typo": Bad(["collate", "t", "--metric", "linaer"], "--metric 'linaer' is not an accuracy column"),
    "report metric typo": Bad(["report", "t", "--metric", "knn@21"], "--metric 'knn@21' is not an accuracy column"),
    "collate metric of a view the runs lack": Bad(["collate", "t", "--metric", "linear_cls"], "choose one of: knn@20"),
    "report bad format": Bad(["report", "t", "--format", "pdf"], "--format must be md or html"),
    "report --out outside results": Bad(["report", "t", "--out", "{tmp}/elsewhere"], "outside the results folder"),
    "collate --out not a CSV": Bad(["collate", "t", "--out", "results/t.txt"], "must name a CSV file"),
    "collate --out a folder": Bad(
        ["collate", "t", "--out", "results/t.csv"], "results/t.csv is a folder", setup=_make("results/t.csv", True)
    ),
    "collate --out whose summary is a folder": Bad(
        ["collate", "t", "--out", "results/t.csv"], "t_summary.csv is a folder", _make("results/t_summary.csv", True)
    ),
    "collate --out under a file": Bad(
        ["collate", "t", "--out", "results/old.csv/t.csv"], "results/old.csv is a file", _make("results/old.csv")
    ),
    "report --out onto an existing file": Bad(
        ["report", "t", "--out", "results/page.html"], "results/page.html is a file", _make("results/page.html")
    ),
    "collate unknown sweep": Bad(["collate", "nosweep"], "no sweep folder"),
    "report unknown sweep": Bad(["report", "nosweep", "--format", "html"], "no sweep folder"),
    "collate sweep without runs": Bad(["collate", "empty"], "no runs under", setup=_make("runs/empty/notes", True)),
    "report metric in capitals": Bad(["report", "t", "--metric", "Linear"], "--metric 'Linear' is not an accuracy"),
    "report default folder is a file": Bad(["report", "t"], "runs/t/report is a file", setup=_make("runs/t/report")),
    "collate leaderboard is a folder": Bad(
        ["collate", "t"], "leaderboard_compute.csv is a folder", _make("runs/t/leaderboard_compute.csv", True)
    ),
    "collate --out with results a file": Bad(
        ["collate", "t", "--out", "results/t.csv"], "results is a file", setup=lambda tmp: _results_file(tmp)
    ),
}


def _results_file(tmp):
    (tmp / "results").rmdir()
    (tmp / "results").write_text("not a folder\n")


def test_reference_rows_are_cached_per_distinct_encoder(tmp_path, monkeypatch, caplog):
    """Keyed by the encoder's initial weights, the data and the evaluation settings: a learning rate or
    the encoder scored at init (I-JEPA's teacher is a copy of its student) reuse one entry; a predictor
    built before it, which changes its initial weights, or another method, get their own."""
    import json
    import logging

    from bench.evals import references

    cache = tmp_path / "references"
    first = references.reference("random", tiny_config("ijepa"), cache)
    assert [p.name.split("-")[0] for p in cache.iterdir()] == ["random"] and first["n_train"] == 512

    def no_compute(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(references, "extract_splits", no_compute)
    same = [tiny_config("ijepa", **{"optim.lr_factor": 4}), tiny_config("ijepa", **{"eval.encoder": "student"})]
    assert all(references.reference("random", cfg, cache) == first for cfg in same)
    assert len(list(cache.iterdir())) == 1
    monkeypatch.undo()

    references.reference("random", tiny_config("ijepa", **{"ijepa.predictor_depth": 2}), cache)
    references.reference("random", tiny_config("mae"), cache)
    assert len({json.loads((p / "eval.json").read_text())["weights"] for p in cache.iterdir()}) == 3

    (entry,) = [p for p in cache.iterdir() if json.loads((p / "eval.json").read_text()) == first]
    (entry / "eval.json").write_text('{"knn": ')  # a write cut short
    with caplog.at_level(logging.WARNING, logger="bench.evals.references"):
        again = references.reference("random", tiny_config("ijepa"), cache)
    assert again["knn"] == first["knn"] and json.loads((entry / "eval.json").read_text())["knn"] == first["knn"]
    assert "is damaged (not JSON): computing it again" in caplog.text and str(entry) in caplog.text


FIVE_REFERENCES = {"pixels": REFERENCES["pixels"]} | {
    f"random ({method})": {"knn": {"top1": {"20": 50.0 + i}}, "linear": {"top1": 66.0 + i, "best": {"view": "x"}}}
    for i, method in enumerate(DEMO)
}


@pytest.mark.parametrize("x", ["flops", "device_hours"])
def test_plots_of_one_budget_have_readable_ticks(demo_sweep, x):
    """One budget: the points lie within a few % of each other, where a log axis has no power of ten
    to label. Each panel gets distinct, non-empty labels at round values around the points."""
    from bench.results import plots

    summary = summarize(collate(demo_sweep, FIVE_REFERENCES))
    figure = plots.compute_plot(summary, "linear", x)
    figure.canvas.draw()
    trained = summary[(summary["seeds"].notna()) & (summary["budget"] > 0)][x]
    assert len(figure.axes) == 2  # accuracy, and the gain over each init
    for ax in figure.axes:
        texts = [t.get_text() for t in ax.get_xticklabels()]
        assert len(texts) >= 2 and all(texts) and len(set(texts)) == len(texts), texts
        low, high = ax.get_xlim()
        assert low < trained.min() and trained.max() < high
        assert not [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    if x == "flops":
        assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["2.5e12", "3e12", "3.5e12", "4e12"]


def test_reference_lines_each_have_their_own_style(demo_sweep):
    from bench.results import plots

    summary = summarize(collate(demo_sweep, FIVE_REFERENCES))
    names = set(FIVE_REFERENCES)
    for figure in (plots.compute_plot(summary, "linear"), plots.ablation_bars(summary, "linear")):
        ax = figure.axes[0]
        refs = [line for line in ax.get_lines() if line.get_label() in names]
        assert sorted(line.get_label() for line in refs) == sorted(names)
        styles = {(line.get_linestyle(), line.get_color()) for line in refs}
        assert len(styles) == len(refs) == 5
        configs = {c.lines[0].get_color() for c in ax.containers if getattr(c, "lines", [None])[0] is not None}
        assert not configs & {line.get_color() for line in refs}  # no reference passes for a configuration


def test_an_evaluation_on_subsets_reads_stratified_images_and_caches_them_apart(tmp_path):
    """eval.train_images / test_images (the demo): a stratified subset of each split, the same for every
    run; the raw-pixel row of a full evaluation and of a subset are two cache entries."""
    from bench.evals import references, run

    cache = tmp_path / "references"
    small = references.reference("pixels", tiny_config(**{"eval.train_images": 200, "eval.test_images": 100}), cache)
    full = references.reference("pixels", tiny_config(), cache)
    assert (small["n_train"], small["n_test"], full["n_train"], full["n_test"]) == (200, 100, 512, 128)
    assert len(list(cache.iterdir())) == 2
    y = run.features.labels(run.extract_splits(None, tiny_config(**{"eval.train_images": 200}), tmp_path, {})[0])
    assert sorted(np.bincount(y)) == [50, 50, 50, 50]  # 4 classes, stratified
