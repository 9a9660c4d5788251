"""Damaged run folders, and the commands that read them (status, collate, eval): one damaged file never
hides the healthy runs, never crashes a command, and a run is evaluated only with the config its
folder's id (or, for a folder of a free name, its recorded training hash) says it was trained with."""

import json
import shutil
import socket

import pytest

from bench.config.runfile import training_hash, write_config
from bench.results.collate import collate
from bench.results.runs import read_runs
from bench.results.status import status_table
from bench.rundir import CONFIG, EVAL, METRICS, STATE, SUBMISSION, SUMMARY, run_id, write_json

from ..badinputs import Bad, run_dir
from ..conftest import invoke, tiny_config


def write_text(name: str, text: str | bytes, where=run_dir):
    """A setup that overwrites file `name` of the template's run (or of the folder `where(tmp)` gives)."""

    def setup(tmp):
        path = where(tmp) / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return setup


def edit_json(name: str, change):
    def setup(tmp):
        path = run_dir(tmp) / name
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return setup


def edit_config(old: str, new: str):
    def setup(tmp):
        path = run_dir(tmp) / CONFIG
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return setup


def both(*setups):
    def setup(tmp):
        for s in setups:
            s(tmp)

    return setup


def remove(name: str):
    def setup(tmp):
        path = run_dir(tmp) / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def local_pid_abc(job):
    """A local run's job.json whose pid is no number (runstate.run_state would int() it)."""
    job.update(executor="local", host=socket.gethostname(), pid="abc")


def eval_json_folder(tmp):
    (run_dir(tmp) / EVAL).unlink()
    (run_dir(tmp) / EVAL).mkdir()


def second_run_damaged(tmp):
    """A second trained run of the sweep whose summary.json was truncated."""
    other = run_dir(tmp).with_name("ijepa-ffffffffff")  # after the healthy one: never evaluated first
    shutil.copytree(run_dir(tmp), other)
    (other / SUMMARY).write_text('{"status": "do')


def free_copy_without_hash(tmp):
    """The run copied under a name of one's own, its summary.json without the training hash that guards it."""
    copy = tmp / "runs" / "scratch" / "mine"
    shutil.copytree(run_dir(tmp), copy)
    summary = json.loads((copy / SUMMARY).read_text())
    del summary["train_config_hash"]
    (copy / SUMMARY).write_text(json.dumps(summary))


def no_state_name(state):
    state["state"] = 5


def knn_as_text(record):
    record["knn"]["top1"]["5"] = "high"


NOT_JSON = '{"state": "done", "ti'
NOT_UTF8 = b"\xff\xfe version: 3\n"
# the example: another backbone and another lr in config.yaml after training, and a summary.json
# that records no training hash (what let it through: the only check compared the two)
EDITED = both(
    edit_config("backbone: vit_nano_patch4", "backbone: vit_tiny_patch4"),
    edit_config("  lr: 0.000125", "  lr: 0.5"),
    edit_json(SUMMARY, lambda s: s.pop("train_config_hash")),
)
EVAL_EDITED = edit_config("temperature: 0.07", "temperature: 0.1")
COLLATE = ["collate", "t", "--no-references", "--metric", "knn@5"]

# The bad-input corpus of damaged run folders (tests/badinputs.py): exit 2, one line naming the file,
# nothing written.
BAD_RUNDIRS = {
    "status: state.json's state not a name": Bad(
        ["status", "t"], "state.json is damaged", edit_json(STATE, no_state_name)
    ),
    "status: state.json without a state": Bad(["status", "t"], "state.json is damaged", write_text(STATE, '{"a": 1}')),
    "status: eval.json's k-NN not a number": Bad(["status", "t"], "eval.json is damaged", edit_json(EVAL, knn_as_text)),
    "status: summary.json not JSON": Bad(["status", "t"], "summary.json is damaged", write_text(SUMMARY, "\x00")),
    "status: eval.json of another shape": Bad(["status", "t"], "eval.json is damaged", write_text(EVAL, '{"knn": 3}')),
    "status: job.json's pid not a number": Bad(
        ["status", "t"], "job.json is damaged (pid is 'abc')", edit_json(SUBMISSION, local_pid_abc)
    ),
    "status: config.yaml lost": Bad(["status", "t"], "config.yaml is missing", remove(CONFIG)),
    "eval: summary.json's compute not a mapping": Bad(
        ["eval", "runs/t"], "summary.json is damaged", edit_json(SUMMARY, lambda s: s.update(compute=5))
    ),
    "eval: a free-named copy without its training hash": Bad(
        ["eval", "runs/scratch/mine"], "records no train_config_hash", free_copy_without_hash
    ),
    "eval: state.json not JSON": Bad(["eval", "runs/t"], "state.json is damaged", write_text(STATE, NOT_JSON)),
    "eval: config.yaml not UTF-8": Bad(["eval", "runs/t"], "damaged (not UTF-8", write_text(CONFIG, NOT_UTF8)),
    "eval: config.yaml unknown key": Bad(
        ["eval", "runs/t"], "config.yaml is damaged (unknown key 'optim.lrr'", edit_config("  lr:", "  lrr:")
    ),
    "eval: config.yaml lost": Bad(["eval", "runs/t/{run}"], "config.yaml is missing", remove(CONFIG)),
    "eval: config edited after training": Bad(["eval", "runs/t/{run}"], "not to its run id", EDITED),
    "eval: eval section edited": Bad(["eval", "runs/t/{run}"], "copy its folder under a name", EVAL_EDITED),
    "eval: config.yaml emptied": Bad(["eval", "runs/t/{run}"], "damaged (empty)", write_text(CONFIG, " ")),
    "eval: eval.json is a folder": Bad(["eval", "runs/t/{run}"], "eval.json is not a file", eval_json_folder),
    "eval: a sweep with one damaged run": Bad(["eval", "runs/t"], "ijepa-ffffffffff/summary.json", second_run_damaged),
    "eval --executor: state.json without a state": Bad(
        ["eval", "runs/t", "--executor", "debug"], "state.json is damaged", write_text(STATE, '{"token": "x"}')
    ),
    "collate: summary.json's compute not a mapping": Bad(
        COLLATE, "summary.json is damaged", edit_json(SUMMARY, lambda s: s.update(compute=[1]))
    ),
    "collate: eval.json missing keys": Bad(
        COLLATE, "eval.json is damaged", edit_json(EVAL, lambda e: e["linear"].pop("best"))
    ),
    "collate: config.yaml malformed": Bad(COLLATE, "config.yaml is damaged (malformed", write_text(CONFIG, "a: [")),
    "collate: config.yaml not UTF-8": Bad(COLLATE, "config.yaml is damaged (not UTF-8", write_text(CONFIG, NOT_UTF8)),
    "collate: state.json not JSON": Bad(COLLATE, "state.json is damaged", write_text(STATE, NOT_JSON)),
    "collate: eval section edited": Bad(COLLATE, "changed after training", EVAL_EDITED),
}


# --- behaviour: fixture run folders, no training ------------------------------------------


def fake_run(sweep_dir, seed: int, knn: float = 50.0, state: str | None = "done", summary: str | None = "done"):
    """A run folder as a finished job leaves it (config, state, summary, eval), without training."""
    cfg = tiny_config(seed=seed)
    folder = sweep_dir / run_id(cfg)
    folder.mkdir(parents=True)
    write_config(cfg, folder / CONFIG)
    if state is not None:
        error = f"{state} because" if state in ("failed", "crashed") else ""
        write_json({"state": state, "error": error}, folder / STATE)
    if summary is not None:
        compute = {"steps": 4, "flops": 1e9, "device_hours": 1e-4, "images_seen": 64, "epochs": 0.1}
        record = {"status": summary, "train_config_hash": training_hash(cfg), "compute": compute}
        if summary == "failed":
            record["reason"] = "loss is NaN at step 3"
        write_json(record, folder / SUMMARY)
    if summary == "done" and state == "done":
        record = {
            "val": {"knn@20": knn},
            "knn": {"top1": {"20": knn}, "temperature": 0.07},
            "linear": {"top1": knn + 10, "best": {"view": "last_avg"}},
        }
        write_json(record, folder / EVAL)
    return folder


@pytest.fixture
def sweep(tmp_path):
    sweep_dir = tmp_path / "runs" / "s"
    return sweep_dir, [fake_run(sweep_dir, seed, 50.0 + seed) for seed in range(3)]


DAMAGES = {
    STATE: "not json",
    SUBMISSION: "[1, 2]",
    SUMMARY: '{"status": "done", "compute": 7}',
    EVAL: '{"val": {}}',
    CONFIG: "version: 3\nbackbone: [",
}


@pytest.mark.parametrize("name", DAMAGES)
def test_status_shows_the_healthy_runs_beside_a_damaged_one(sweep, name):
    sweep_dir, runs = sweep
    (runs[1] / name).write_text(DAMAGES[name])
    result = invoke("status", sweep_dir)
    table = status_table(sweep_dir).set_index("run")
    if name == CONFIG:  # status does not parse configs (a thousand runs in well under a second): collate and eval do
        assert result.exit_code == 0 and list(table["state"]) == ["done"] * 3
        return
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and f"{runs[1].name}/{name} is damaged" in lines[0]
    assert table.loc[runs[1].name, "state"] == "damaged" and table.loc[runs[1].name, "error"].startswith(name)
    for healthy, knn in ((runs[0], 50.0), (runs[2], 52.0)):
        assert table.loc[healthy.name, "state"] == "done" and table.loc[healthy.name, "knn@20"] == knn
        assert healthy.name in result.stdout
    assert "damaged" in result.stdout


@pytest.mark.parametrize("name", DAMAGES)
def test_collate_tables_the_healthy_runs_and_names_the_damaged_one(sweep, name, monkeypatch, tmp_path):
    sweep_dir, runs = sweep
    (runs[1] / name).write_text(DAMAGES[name])
    runs_read, left_out = read_runs(sweep_dir)
    assert sorted(r.run_dir for r in runs_read) == sorted([runs[0], runs[2]])
    assert len(left_out) == 1 and f"{runs[1].name}/{name} is damaged" in left_out[0]
    monkeypatch.chdir(tmp_path)
    result = invoke("collate", sweep_dir, "--no-references", "--metric", "knn@20")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipping run") and f"{name} is damaged" in lines[0]
    table = (sweep_dir / "leaderboard.csv").read_text()
    assert runs[0].name in table and runs[2].name in table and runs[1].name not in table


def test_metrics_garbage_is_not_damage_status_shows_the_last_good_record(sweep):
    sweep_dir, runs = sweep
    lines = ['{"step": 2, "progress": 0.5, "loss": 1.5}', "[1, 2]", '{"step": "x"}', "\x00\x01garbage", '{"ste']
    (runs[0] / METRICS).write_text("\n".join(lines) + "\n")
    (runs[1] / METRICS).write_text('{"step": 3, "progress": "half", "loss": null}\n')
    table = status_table(sweep_dir).set_index("run")
    assert table.loc[runs[0].name, "step"] == 2 and table.loc[runs[0].name, "progress"] == 0.5
    assert table.loc[runs[1].name, "step"] == 3 and table.loc[runs[1].name, "progress"] == 0.0
    assert not table.attrs["damaged"]


def test_a_run_that_failed_before_its_first_step_reads_failed_with_its_reason(tmp_path):
    sweep_dir = tmp_path / "runs" / "s"
    fake_run(sweep_dir, 0)
    failed = fake_run(sweep_dir, 1, state="failed", summary=None)  # e.g. its dataset vanished: no summary.json
    table = collate(sweep_dir).set_index("run")
    assert table.loc[failed.name, "status"] == "failed" and table.loc[failed.name, "error"] == "failed because"
    assert status_table(sweep_dir).set_index("run").loc[failed.name, "state"] == "failed"


# (state.json's state, summary.json's status) -> what collate's status column says
STATES = {
    (None, None): "new",
    ("running", None): "running",
    ("requeued", None): "requeued",
    ("failed", None): "failed",
    ("crashed", None): "crashed",
    ("cancelled", None): "cancelled",
    ("trained", "done"): "done",
    ("evaluating", "done"): "done",
    ("done", "done"): "done",
    ("failed", "failed"): "failed",
}


@pytest.mark.parametrize("state, summary", STATES)
def test_status_and_collate_agree_on_every_state(tmp_path, state, summary):
    """Before training ends collate says what status says; after, how training ended (done: its
    compute counts; a trained run waiting for its evaluation has no accuracy yet)."""
    sweep_dir = tmp_path / "runs" / "s"
    run = fake_run(sweep_dir, 0, state=state, summary=summary)
    shown = status_table(sweep_dir).set_index("run").loc[run.name]
    row = collate(sweep_dir).set_index("run").loc[run.name]
    assert shown["state"] == (state or "new")
    assert row["status"] == STATES[(state, summary)]
    if summary is None:
        assert row["status"] == shown["state"] and row["error"] == shown["error"]
    assert (row["error"] != "") == (row["status"] in ("failed", "crashed"))
    if summary == "failed":
        assert row["error"] == "loss is NaN at step 3"


# --- behaviour: the trained template run ----------------------------------------------------


def test_eval_rewrites_a_damaged_eval_json(bad_template, tmp_path, monkeypatch):
    """eval.json is the one damaged file evaluation repairs: it is what evaluating writes."""
    shutil.copytree(bad_template, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    run = run_dir(tmp_path)
    (run / EVAL).write_text('{"knn": ')
    assert invoke("status", "t", "--root", "runs").exit_code == 2
    result = invoke("eval", run)
    assert result.exit_code == 0, result.output
    assert set(json.loads((run / EVAL).read_text())["knn"]["top1"]) == {"1", "5"}
    assert invoke("status", "t", "--root", "runs").exit_code == 0


def test_an_edited_config_is_evaluated_neither_by_bench_eval_nor_by_the_job(bad_template, tmp_path, monkeypatch):
    """Issue 13, item 3: the run id is the hash of the whole config. The issue's example (another
    backbone and lr, a summary.json without its training hash) is refused by `bench eval` and by the
    job's evaluation alike, and eval.json is left as it was; a copy under a free name may change its
    eval section and be evaluated (the training hash guards it)."""
    from bench.config.runfile import read_config
    from bench.errors import BenchError
    from bench.launch.job import Job, Task

    shutil.copytree(bad_template, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    run = run_dir(tmp_path)
    before = (run / EVAL).read_bytes()
    EDITED(tmp_path)
    result = invoke("eval", run)
    assert result.exit_code == 2 and "not to its run id" in result.stderr
    with pytest.raises(BenchError, match="not to its run id"):
        Job([Task(read_config(run / CONFIG), run, train=False)])()
    assert (run / EVAL).read_bytes() == before

    shutil.rmtree(tmp_path / "runs")
    shutil.copytree(bad_template / "runs", tmp_path / "runs")
    copy = tmp_path / "runs" / "scratch" / "teacher-T"
    shutil.copytree(run, copy)
    (copy / CONFIG).write_text((copy / CONFIG).read_text().replace("temperature: 0.07", "temperature: 0.1"))
    result = invoke("eval", copy)
    assert result.exit_code == 0, result.output
    assert json.loads((copy / EVAL).read_text())["knn"]["temperature"] == 0.1
    (copy / CONFIG).write_text((copy / CONFIG).read_text().replace("  lr: 0.000125", "  lr: 0.5"))
    result = invoke("eval", copy)
    assert result.exit_code == 2 and "was changed after training: the hash of its training settings" in result.stderr
