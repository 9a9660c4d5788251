"""The `bench` command through Typer's CliRunner: sweeps end to end and every bad input."""

import csv
import json
import shutil

import pytest

from bench.sweep import load_sweep

from .badinputs import Bad, check
from .conftest import invoke, write_sweep


def test_help_on_every_command():
    for command in ([], ["sweep"], ["status"], ["collate"], ["eval"], ["train"], ["list"]):
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_sweep_expands_grid_union_with_stable_ids(tmp_path):
    path = write_sweep(
        tmp_path / "s.yaml",
        grid=[{"ijepa.mask.mode": ["official", "unbiased"]}, {"ijepa.mask.num_targets": [1, 2]}],
        seeds=[0, 1],
    )
    sweep = load_sweep(path)
    # (official, unbiased) + (1, 2) targets; the default point (official, 2 targets) appears in both grids
    assert len(sweep.runs) == 3 * 2
    assert [r.run_id for r in load_sweep(path).runs] == [r.run_id for r in sweep.runs]
    assert len({r.run_id for r in sweep.runs}) == 6
    assert all(r.config.budget.value == 3 for r in sweep.runs)


def test_a_list_of_budgets_runs_the_grid_at_each(tmp_path):
    single = load_sweep(write_sweep(tmp_path / "one.yaml", seeds=[0, 1]))
    both = load_sweep(write_sweep(tmp_path / "two.yaml", seeds=[0, 1], budget={"kind": "steps", "value": [3, 6]}))
    assert sorted((r.config.budget.value, r.config.seed) for r in both.runs) == [(3, 0), (3, 1), (6, 0), (6, 1)]
    # the runs at the first budget are the one-budget sweep's runs, ids and all
    assert {r.run_id for r in single.runs} < {r.run_id for r in both.runs}


def test_debug_sweep_end_to_end_then_status_collate_and_skip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / "s.yaml", grid={"ijepa.mask.mode": ["official", "unbiased"]})
    result = invoke("sweep", path, "--executor", "debug", "--root", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "2 run(s) launched on debug" in result.output
    runs = sorted((tmp_path / "runs" / "t").glob("ijepa-*"))
    assert len(runs) == 2
    for run in runs:
        assert json.loads((run / "state.json").read_text())["state"] == "done"
        top1 = json.loads((run / "eval.json").read_text())["knn"]["top1"]
        assert set(top1) == {"1", "5"} and all(0 <= v <= 100 for v in top1.values())

    again = invoke("sweep", path, "--executor", "debug", "--root", tmp_path / "runs")
    assert again.exit_code == 0 and "0 run(s) launched" in again.output and "2 skipped" in again.output

    status = invoke("status", path, "--root", tmp_path / "runs")
    assert status.exit_code == 0 and status.output.count("done") == 2

    out = tmp_path / "results" / "t.csv"
    table = invoke("collate", path, "--root", tmp_path / "runs", "--out", out)
    assert table.exit_code == 0, table.output
    rows = list(csv.DictReader(out.open()))
    assert [r["method"] for r in rows] == ["ijepa", "ijepa", "pixels", "random"]
    for r in rows:  # every row went through the whole protocol
        for column in ("knn@5", "knn_2shot", "linear", "linear_25%", "linear_25%_std"):
            assert 0 <= float(r[column]) <= 100, (r["run"], column)
    assert {r["ijepa.mask.mode"] for r in rows[:2]} == {"official", "unbiased"}  # the axis the sweep varied
    assert "ijepa.mask.strategy" not in rows[0]  # keys every run shares are left out
    assert all(r["budget_kind"] == "steps" and float(r["steps"]) == 3 for r in rows[:2])
    assert all(float(r["flops"]) > 0 and float(r["device_hours"]) > 0 for r in rows[:2])
    assert float(rows[2]["knn@5"]) > 90 and float(rows[2]["linear"]) > 90  # synthetic classes are separable
    assert [r["encoder"] for r in rows] == ["teacher", "teacher", "", ""]  # I-JEPA scores its EMA target encoder
    assert "ijepa [teacher]" in (tmp_path / "results" / "t_compute.csv").read_text()
    assert (tmp_path / "runs" / "t" / "leaderboard.csv").is_file()

    # a run folder made before config versions is left out of the tables, with one line saying so
    old = tmp_path / "runs" / "t" / "ijepa-0000000000"
    old.mkdir()
    config = (runs[0] / "config.yaml").read_text()
    (old / "config.yaml").write_text("\n".join(x for x in config.splitlines() if not x.startswith("version:")) + "\n")
    (old / "eval.json").write_text((runs[0] / "eval.json").read_text())
    skipped = invoke("collate", path, "--root", tmp_path / "runs", "--out", out)
    assert skipped.exit_code == 0 and "skipping 1 run(s)" in skipped.output
    assert len(list(csv.DictReader(out.open()))) == 4
    shutil.rmtree(old)
    # so is a run whose training settings were edited after training
    edited = runs[1] / "config.yaml"
    text = edited.read_text()
    edited.write_text(text.replace("lr_factor: 1.0\n", "lr_factor: 2.0\n", 1))
    assert edited.read_text() != text
    skipped = invoke("collate", path, "--root", tmp_path / "runs", "--out", out)
    assert (
        skipped.exit_code == 0 and "skipping 1 run(s)" in skipped.output and "changed after training" in skipped.output
    )
    assert len(list(csv.DictReader(out.open()))) == 3
    edited.write_text(text)

    before = json.loads((runs[0] / "eval.json").read_text())
    (runs[0] / "eval.json").unlink()  # evaluation as its own job, from the cached features
    evaluated = invoke("eval", runs[0], "--executor", "debug")
    assert evaluated.exit_code == 0 and "submitted on debug" in evaluated.output, evaluated.output
    assert json.loads((runs[0] / "eval.json").read_text())["knn"] == before["knn"]


def test_leaderboard_columns_are_the_keys_that_differ():
    from bench.results import varying_keys

    configs = [
        {"method": "ijepa", "seed": 0, "optim.lr": 1e-3, "ijepa.mask.mode": "official", "ijepa.loss": "l2"},
        {"method": "ijepa", "seed": 1, "optim.lr": 1e-3, "ijepa.mask.mode": "unbiased", "ijepa.loss": "l2"},
        {"method": "mae", "seed": 0, "optim.lr": 1.5e-4, "mae.mask_ratio": 0.75},
    ]
    assert varying_keys(configs) == ["optim.lr", "ijepa.mask.mode"]


@pytest.mark.slow
def test_local_executor_runs_a_lane_in_the_background(tmp_path):
    path = write_sweep(tmp_path / "s.yaml", name="bg", grid={"ijepa.mask.mode": ["official", "unbiased"]})
    result = invoke("sweep", path, "--executor", "local", "--root", tmp_path / "runs", "--wait", "--parallel", "1")
    assert result.exit_code == 0, result.output
    assert "2 run(s) launched on local" in result.output
    runs = sorted((tmp_path / "runs" / "bg").glob("ijepa-*"))
    states = [json.loads((run / "state.json").read_text()) for run in runs]
    assert [s["state"] for s in states] == ["done", "done"], states
    assert states[0]["job_id"] and states[0]["job_id"] == states[1]["job_id"]  # one job ran both, in turn
    assert all((run / "eval.json").is_file() for run in runs)


BAD_SWEEPS = {
    "malformed": ("name: [unclosed\n", "malformed YAML"),
    "unknown top key": ("budget: {kind: steps, value: 1}\nbase: {}\nfoo: 1\n", "unknown sweep key 'foo'"),
    "unknown base key": ("budget: {kind: steps, value: 1}\nbase: {optim.lrr: 1}\n", "unknown key 'optim.lrr'"),
    "budget zero": ("budget: {kind: steps, value: 0}\n", "budget.value must be > 0"),
    "negative budget": ("budget: {kind: flops, value: -1.0e+9}\n", "budget.value must be > 0"),
    "no budget": ("base: {}\n", "needs one budget"),
    "bad axis": ("budget: {kind: steps, value: 1}\ngrid: {ijepa.mask.nope: [1, 2]}\n", "unknown key 'ijepa.mask.nope'"),
    "axis not a list": ("budget: {kind: steps, value: 1}\ngrid: {optim.lr_factor: 3}\n", "non-empty list"),
    "bad value": ("budget: {kind: steps, value: 1}\ngrid: {ijepa.mask.mode: [sideways]}\n", "not one of"),
    "missing data": ("budget: {kind: steps, value: 1}\nbase: {data.root: /no/such/dir}\n", "does not exist"),
    "budget not a mapping": ("budget: 5\n", "budget must be a mapping"),
    "empty budget list": ("budget: {kind: steps, value: []}\n", "lists no budget"),
    "bad budget in list": ("budget: {kind: steps, value: [2, 0]}\n", "budget.value must be > 0"),
}


@pytest.mark.parametrize("case", BAD_SWEEPS)
def test_bad_sweep_gives_one_line_exit_2_and_writes_nothing(tmp_path, case):
    text, message = BAD_SWEEPS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    root = tmp_path / "runs"
    result = invoke("sweep", path, "--root", root)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not root.exists()


def test_missing_sweep_file(tmp_path):
    result = invoke("sweep", tmp_path / "nope.yaml", "--root", tmp_path / "runs")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_collate_refuses_a_path_outside_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path / "s.yaml")
    assert invoke("sweep", path, "--executor", "debug", "--root", "runs").exit_code == 0
    result = invoke("collate", path, "--root", "runs", "--out", tmp_path / "elsewhere.csv")
    assert result.exit_code == 2 and "outside the results folder" in result.stderr
    assert not (tmp_path / "elsewhere.csv").exists()


def test_eval_and_status_of_nothing(tmp_path):
    assert invoke("eval", tmp_path / "nothing").exit_code == 2
    result = invoke("status", "nosweep", "--root", tmp_path)
    assert result.exit_code == 2 and "no sweep folder" in result.stderr


def test_train_bad_override_exits_2(tmp_path):
    result = invoke("train", "optim.lrr=1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "unknown key 'optim.lrr'" in result.stderr
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_finished_folder_made_with_another_config(tmp_path):
    args = ["backbone=vit_nano_patch4", "data.name=synthetic", "data.image_size=16", "optim.batch_size=16"]
    args += ["ijepa.predictor_width=48", "ijepa.predictor_depth=1", "ijepa.mask.min_keep=0", "budget.value=2"]
    assert invoke("train", *args, "--no-eval", "--out", tmp_path / "r").exit_code == 0
    result = invoke("train", *args, "optim.lr=0.5", "--no-eval", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "different config" in result.stderr


# The bad-input corpus (tests/badinputs.py): every command, wrong arguments and damaged files.
BAD_INPUTS = {
    "status of an unknown sweep": Bad(["status", "nosweep"], "no sweep folder"),
    "eval of nothing": Bad(["eval", "{tmp}/nothing"], "does not exist"),
    "collate --out outside results": Bad(["collate", "t", "--out", "{tmp}/elsewhere.csv"], "outside the results"),
    "train unknown key": Bad(["train", "optim.lrr=1", "--out", "{tmp}/runs/x"], "unknown key 'optim.lrr'"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gives_one_line_and_writes_nothing(case, bad_template, tmp_path, monkeypatch):
    check(BAD_INPUTS[case], bad_template, tmp_path, monkeypatch)
