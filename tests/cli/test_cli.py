"""The `bench` command through Typer's CliRunner: sweeps end to end and every bad input."""

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from PIL import Image

from bench.launch.sweep import load_sweep

from ..badinputs import Bad, check
from ..conftest import TINY_BASE, invoke, needs_fashion_mnist, write_sweep


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


@pytest.mark.slow  # two runs and two reference rows, trained and evaluated
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
    from bench.results.collate import varying_keys

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


def test_a_bare_sweep_file_name_is_found_in_sweeps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweeps").mkdir()
    write_sweep(tmp_path / "sweeps" / "x.yaml", name="x")
    for target in ("x.yaml", "x"):
        result = invoke("sweep", target, "--dry-run", "--root", "runs")
        assert result.exit_code == 0, result.output
        assert result.output.startswith("sweep file: sweeps/x.yaml (") and "headline" in result.output
    (tmp_path / "runs" / "x").mkdir(parents=True)
    status = invoke("status", "x.yaml", "--root", "runs")  # status, collate, ... find it the same way
    assert "sweep file: sweeps/x.yaml" in status.stdout and "no runs under runs/x" in status.stderr
    write_sweep(tmp_path / "x.yaml", name="here", seeds=[5])  # a file here is what the name means
    here = invoke("sweep", "x.yaml", "--dry-run", "--root", "runs")
    assert "seed=5" in here.output and "sweep file:" not in here.output


@needs_fashion_mnist
def test_a_bare_sweep_file_name_falls_back_to_jepa_bench_own_sweeps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("sweep", "demo.yaml", "--dry-run", "--root", "runs")
    assert result.exit_code == 0, result.output
    used = Path(__file__).resolve().parents[2] / "sweeps" / "demo.yaml"
    assert result.output.startswith(f"sweep file: {used} (demo.yaml is not a file here)")
    assert not (tmp_path / "runs").exists()


# --- the bad-input corpus's inputs: files a case writes into its folder ----------------------------


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    """A case's setup: one file written into its folder."""

    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def sweep_yaml(**changes) -> str:
    """The template's tiny sweep, named b (so that anything it wrote would show), with `changes`."""
    return yaml.safe_dump(
        {"name": "b", "budget": {"kind": "steps", "value": 3}, "base": TINY_BASE, "seeds": [0]} | changes
    )


def bad_sweep(message: str, *args: str, text: str | bytes | None = None, **changes) -> Bad:
    """`bench sweep b.yaml ARGS` on the template's sweep with `changes`, or on `text`."""
    return Bad(
        ["sweep", "b.yaml", *args], message, setup=write("b.yaml", sweep_yaml(**changes) if text is None else text)
    )


def base(**changes) -> dict:
    return TINY_BASE | changes


def bad_train(message: str, *args: str, setup: Callable[[Path], None] | None = None) -> Bad:
    """`bench train` of the tiny config with ARGS (overrides and options), into runs/x."""
    tiny = ["backbone=vit_nano_patch4", "data.name=synthetic", "data.image_size=16", "ijepa.mask.min_keep=0"]
    return Bad(["train", *tiny, *args, *(() if "--out" in args else ("--out", "{tmp}/runs/x"))], message, setup)


def image_folder(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """A case's setup: an ImageFolder img/ (two classes, two images each, in train/ and val/), damaged,
    and b.yaml, the template's sweep on it."""

    def setup(tmp: Path) -> None:
        for split in ("train", "val"):
            for c in ("a", "b"):
                (tmp / "img" / split / c).mkdir(parents=True)
                for i in range(2):
                    Image.new("RGB", (20, 20), (40 * i, 10, 200)).save(tmp / "img" / split / c / f"{c}{i}.png")
        damage(tmp / "img")
        data = {"name": "imagefolder", "root": "img", "image_size": 16}
        write("b.yaml", sweep_yaml(base=base(data=data, **{"optim.batch_size": 2})))(tmp)

    return setup


BILLION_LAUGHS = (
    "name: b\nbudget: {kind: steps, value: 3}\nbase:\n  x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
)
BILLION_LAUGHS += "".join(f"  x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 9)}]\n" for i in range(1, 10))
GOOD = sweep_yaml()

# The bad-input corpus (tests/badinputs.py): every command, wrong arguments and damaged files.
BAD_INPUTS = {
    "status of an unknown sweep": Bad(["status", "nosweep"], "no sweep folder"),
    "eval of nothing": Bad(["eval", "{tmp}/nothing"], "does not exist"),
    "health of nothing": Bad(["health", "{tmp}/nothing"], "does not exist"),
    "health of a folder without runs": Bad(["health", "{tmp}/results"], "holds no run folders"),
    "collate --out outside results": Bad(["collate", "t", "--out", "{tmp}/elsewhere.csv"], "outside the results"),
    "train unknown key": Bad(["train", "optim.lrr=1", "--out", "{tmp}/runs/x"], "unknown key 'optim.lrr'"),
    # what the sweep file holds: its bytes, its YAML, its own keys
    "sweep file not UTF-8": bad_sweep("b.yaml: not UTF-8 text (byte 0xe9", text=GOOD.encode() + b"# caf\xe9\n"),
    "sweep file of 2 MiB": bad_sweep("b.yaml: larger than the 1 MiB", text=GOOD + "#" * (2 << 20) + "\n"),
    "sweep file nested 100 deep": bad_sweep("nested deeper than 32 levels", text=GOOD + "x: " + "[" * 100 + "]" * 100),
    "sweep billion laughs in base": bad_sweep("values once its aliases are expanded", text=BILLION_LAUGHS),
    "sweep key given twice": bad_sweep("duplicate key 'seeds' (first at line", text=GOOD + "seeds: [1]\n"),
    "sweep file is a folder": Bad(["sweep", "folder.yaml"], "is a folder, not a YAML file", write("folder.yaml/x", "")),
    "sweep name of 300 letters": bad_sweep("must be 1 to 64 letters, digits, - and _", name="a" * 300),
    "sweep name with a slash": bad_sweep("sweep name '../b' must be", name="../b"),
    "sweep seed twice": bad_sweep("b.yaml: seeds lists 0 twice", seeds=[0, 1, 0]),
    "sweep seed true": bad_sweep("seeds must be integers, got True", seeds=[True]),
    "sweep seed 2**70": bad_sweep("seed must be in [0, 16777215]", seeds=[2**70]),
    "sweep negative seed": bad_sweep("seed must be in [0, 16777215]", seeds=[-1]),
    "sweep grid value twice": bad_sweep(
        "grid axis 'optim.lr_factor' lists 2 twice", grid={"optim.lr_factor": [1, 2, 2]}
    ),
    "sweep seed in the grid": bad_sweep("grid may not set 'seed'", grid={"seed": [1, 2]}),
    "sweep seed in base": bad_sweep("base may not set 'seed'", base=base(seed=3)),
    "sweep budget twice": bad_sweep("budget.value lists 3.0 twice", budget={"kind": "steps", "value": [3, 3]}),
    "sweep budget without value": bad_sweep("budget needs a value", budget={"kind": "flops"}),
    "sweep budget null": bad_sweep(
        "budget.value: expected a number, got None", budget={"kind": "steps", "value": None}
    ),
    "sweep 1e308 steps": bad_sweep(
        "more than the 1e+08 steps a run may take", budget={"kind": "steps", "value": 1e308}
    ),
    "sweep 1e308 epochs": bad_sweep(
        "(32 steps each) is more than the 1e+08", budget={"kind": "epochs", "value": 1e308}
    ),
    "sweep 1e308 flops": bad_sweep("flops is more than the 1e+26", budget={"kind": "flops", "value": 1e308}),
    "sweep random_init 'yes'": bad_sweep("random_init must be true or false, got 'yes'", random_init="yes"),
    "sweep executor a list": bad_sweep("executor must be the name of one", executor=["local"]),
    "sweep of 20,000 runs": bad_sweep(
        "expands to 20,000 runs, more than 10,000",
        grid={"optim.lr_factor": list(range(1, 201))},
        seeds=list(range(100)),
    ),
    "sweep slurm negative memory": bad_sweep("slurm.mem_gb must be > 0, got -1.0", slurm={"mem_gb": -1}),
    # numbers of the runs' config, from the sweep's base
    "sweep negative lr": bad_sweep("optim.lr must be > 0, got -0.001", base=base(**{"optim.lr": -1e-3})),
    "sweep num_workers -1": bad_sweep(
        "data.num_workers must be in [0, 256], got -1", base=base(**{"data.num_workers": -1})
    ),
    "sweep batch over the dataset": bad_sweep(
        "optim.batch_size=1024 is larger than synthetic's training split (512 images)",
        base=base(**{"optim.batch_size": 1024}),
    ),
    "sweep beta of 1": bad_sweep("optim.betas must be in [0, 1)", base=base(**{"optim.betas": [0.9, 1.0]})),
    # datasets, checked before anything is launched
    "imagefolder empty class": Bad(
        ["sweep", "b.yaml"], "img/train/c holds no image", image_folder(lambda r: (r / "train" / "c").mkdir())
    ),
    "imagefolder corrupt image": Bad(
        ["sweep", "b.yaml"],
        "img/val/b/b0.png is not a readable image",
        image_folder(lambda r: (r / "val" / "b" / "b0.png").write_bytes(b"junk")),
    ),
    "imagefolder other classes in val": Bad(
        ["sweep", "b.yaml"],
        "train/ and val/ hold different class folders",
        image_folder(lambda r: (r / "val" / "b").rename(r / "val" / "z")),
    ),
    # the command line of bench sweep
    "sweep --parallel 0": Bad(
        ["sweep", "s.yaml", "--executor", "local", "--parallel", "0"], "--parallel must be >= 1, got 0"
    ),
    "sweep --root a file": Bad(
        ["sweep", "s.yaml", "--root", "f"], "--root f: f is a file", write("f", "x"), root=False
    ),
    "sweep folder is a file": Bad(
        ["sweep", "b.yaml"],
        "runs/b is a file where sweep b's folder goes",
        lambda t: [write("b.yaml", GOOD)(t), write("runs/b", "x")(t)],
    ),
    "sweep of a missing file": Bad(["sweep", "nope.yaml"], "sweep file nope.yaml does not exist"),
    # bench train: its -c file, overrides and --out
    "train -c not UTF-8": bad_train(
        "c.yaml: not UTF-8 text", "-c", "c.yaml", setup=write("c.yaml", b"optim: {lr: 1.0e-3} # caf\xe9\n")
    ),
    "train -c key twice": bad_train(
        "c.yaml: duplicate key 'lr' (first at line 2) at line 3",
        "-c",
        "c.yaml",
        setup=write("c.yaml", "optim:\n  lr: 1\n  lr: 2\n"),
    ),
    "train -c billion laughs": bad_train(
        "values once its aliases are expanded",
        "-c",
        "c.yaml",
        setup=write("c.yaml", BILLION_LAUGHS.replace("name: b\nbudget: {kind: steps, value: 3}\nbase:\n", "x:\n")),
    ),
    "train -c a folder": bad_train("config file d is a folder", "-c", "d", setup=write("d/x", "")),
    "lejepa local crops off the patch grid": bad_train(
        "lejepa.local_size=6 is not a multiple of the patch size 4", "method=lejepa", "lejepa.local_size=6"
    ),
    "lejepa hue above 0.5": bad_train("hue <= 0.5", "method=lejepa", "lejepa.color_jitter=[0.4,0.4,0.2,0.7]"),
    "lejepa without a global view": bad_train(
        "lejepa.global_views must be >= 1", "method=lejepa", "lejepa.global_views=0"
    ),
    "lejepa lam above 1": bad_train("lejepa.lam must be in [0, 1], got 1.5", "method=lejepa", "lejepa.lam=1.5"),
    "train --out a file": bad_train("--out f: f is a file", "--out", "f", setup=write("f", "x")),
    "train seed 2**70": bad_train("seed must be in [0, 16777215]", f"seed={2**70}"),
    "train clip_grad 0": bad_train("optim.clip_grad must be > 0 (or null: no clipping), got 0.0", "optim.clip_grad=0"),
    "train 1e308 steps": bad_train("budget.value=1e+308 steps is more than the 1e+08 steps", "budget.value=1e308"),
    "train override key twice": bad_train("duplicate key 'a'", "optim={a: 1, a: 2}"),
    "train image size not a patch multiple": bad_train(
        "data.image_size=18 does not suit backbone vit_nano_patch4", "data.image_size=18"
    ),
    "train EMA above 1": bad_train("ijepa.ema must be in [0, 1], got [0.99, 1.5]", "ijepa.ema=[0.99, 1.5]"),
    "train eval draws 1e9": bad_train("eval.draws must be in [1, 100]", "eval.draws=1000000000"),
    "train health every -1": bad_train("health.every must be in [0, 100000000]", "health.every=-1"),
    "train health images 1": bad_train("health.images must be in [2, 65536]", "health.images=1"),
}


# ... and the cases that meet each part, defined beside its other tests: damaged run folders (status,
# eval, collate), launching (sweep, cancel, train), checkpoints and feature caches, collate and report
def corpus() -> dict:
    from ..launch.test_launch import BAD_LAUNCH
    from ..launch.test_rundirs import BAD_RUNDIRS
    from ..results.test_results import BAD_REPORTS
    from ..train.test_engine import BAD_ENGINE

    tables = (BAD_INPUTS, BAD_RUNDIRS, BAD_LAUNCH, BAD_ENGINE, BAD_REPORTS)
    joined = {name: case for table in tables for name, case in table.items()}
    assert len(joined) == sum(map(len, tables)), "two cases of the corpus share a name"
    return joined


BAD = corpus()


def test_the_corpus_covers_every_command():
    commands = {case.args[0] for case in BAD.values()}
    assert commands >= {"sweep", "train", "eval", "collate", "report", "status", "cancel"}, commands
    assert len(BAD) >= 60


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_one_line_and_writes_nothing(case, bad_template, tmp_path, monkeypatch):
    check(BAD[case], bad_template, tmp_path, monkeypatch)


@pytest.mark.slow  # a fresh process that imports torch: 5 s
def test_bench_list_names_every_registered_method_backbone_dataset_and_executor():
    bench = str(Path(sys.executable).parent / "bench")  # a fresh process: registrations no test made
    lines = subprocess.run([bench, "list"], capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert lines[0] == "methods: data2vec, data2vec_v1, ijepa, lejepa, mae"
    assert "vit_nano_patch4" in lines[1] and lines[2] == "datasets: fashion-mnist, imagefolder, synthetic"
    assert lines[3] == "executors: debug, local, slurm"


def test_bench_status_reads_a_sweep_without_torch(finished_run, tmp_path):
    """`bench status` over a thousand runs must stay well under a second: it imports neither torch nor
    the methods (a fresh interpreter, so that no other test's imports count)."""
    sweep = tmp_path / "sweep"
    shutil.copytree(finished_run, sweep / finished_run.name)
    code = (
        "import sys; from typer.testing import CliRunner; from bench.cli.main import app; "
        f"r = CliRunner().invoke(app, ['status', {str(sweep)!r}]); "
        "print(r.exit_code, sorted(m for m in ('torch', 'timm', 'submitit', 'ijepa') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout + out.stderr
