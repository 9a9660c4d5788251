"""W&B: a run's config, training curves, compute and evaluation end up in its W&B run; an
interrupted session ends it with a non-zero exit code. The quick tests run bench.tracking against a
fake `wandb` module that records its calls; one slow test reads W&B's real offline files."""

import dataclasses
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import typer
import yaml

from bench.cli.main import app
from bench.config.runfile import to_dict
from bench.errors import BenchError
from bench.launch.job import Job, Task
from bench.rundir import CHECKPOINT, STATE, SUMMARY, read_json
from bench.tracking import EXIT_INTERRUPTED, Tracker, flatten, run_id

from ..conftest import invoke, tiny_config


class FakeSummary(dict):
    """A run's summary: a dict whose updates are recorded."""

    def __init__(self, calls: list, run: str) -> None:
        super().__init__()
        self.calls, self.run = calls, run

    def update(self, values: dict) -> None:
        self.calls.append(("summary", self.run, dict(values)))
        super().update(values)


class FakeRun:
    """What bench.tracking uses of a wandb Run: log, summary.update, finish."""

    def __init__(self, calls: list, kwargs: dict) -> None:
        self.calls, self.kwargs, self.summary = calls, kwargs, FakeSummary(calls, kwargs["id"])

    def log(self, data: dict, step: int) -> None:
        self.calls.append(("log", self.kwargs["id"], data, step))

    def finish(self, exit_code: int = 0) -> None:
        self.calls.append(("finish", self.kwargs["id"], exit_code))


@pytest.fixture
def fake_wandb(monkeypatch):
    """A `wandb` module that records init/log/summary/finish instead of writing W&B files. Like wandb,
    init makes the run's folder under dir/wandb/ (bench.tracking.run_id counts them)."""
    calls, runs = [], []

    def init(**kwargs):
        if fake.fail_init:
            raise fake.errors.Error(fake.fail_init)
        calls.append(("init", kwargs))
        (Path(kwargs["dir"]) / "wandb" / f"offline-run-20260101_000000-{kwargs['id']}").mkdir(parents=True)
        runs.append(FakeRun(calls, kwargs))
        return runs[-1]

    fake = types.ModuleType("wandb")
    fake.init, fake.calls, fake.runs, fake.fail_init = init, calls, runs, None
    fake.errors = types.SimpleNamespace(Error=type("Error", (Exception,), {}))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    return fake


def wandb_records(path):
    """The protobuf records of an offline .wandb file (LevelDB log format: a 7-byte file header,
    32 KiB blocks of records, each with a 7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST).
    run.finish() returns before W&B's service has written the file (about 1 read in 15 found it empty
    or cut short), so the service is shut down first: teardown waits for it to write everything."""
    import wandb
    from wandb.proto import wandb_internal_pb2

    wandb.teardown()
    data, records, pending = path.read_bytes(), [], b""
    assert data[:4] == b":W&B"
    offset, block = 7, 32768
    while offset + 7 <= len(data):
        room = block - offset % block
        if room < 7:  # a block's tail too short for a header is padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        if kind == 0 and length == 0:
            break
        pending += data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def items(entries) -> dict:
    """W&B items carry a key, or a nested key (a list of parts)."""
    return {(e.key or "/".join(e.nested_key)): json.loads(e.value_json) for e in entries}


@pytest.mark.slow
def test_a_run_logs_config_curves_compute_and_eval_to_an_offline_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "sweepname" / "ijepa-run"
    Job([Task(tiny_config(), run_dir)])()
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1 and files[0].name.startswith("run-ijepa-run-") and files[0].name.endswith("-train0.wandb")
    records = wandb_records(files[0])
    kinds = [r.WhichOneof("record_type") for r in records]
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_group == "sweepname" and run.display_name == "ijepa-run"
    config = items(run.config.update)
    assert config["method"] == "ijepa" and config["budget"] == {"kind": "steps", "value": 4.0}
    history = [items(r.history.item) | {"_step": r.history.step.num} for r in records if r.HasField("history")]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [h["_step"] for h in history] == [m["step"] for m in metrics] == [0, 2, 4]  # 0: the health signals
    assert [h.get("loss") for h in history] == [m.get("loss") for m in metrics]
    assert [h["flops"] for h in history] == [m["flops"] for m in metrics]
    assert [h.get("health/rankme") for h in history] == [m.get("health/rankme") for m in metrics]
    summary = {}
    for r in records:
        if r.HasField("summary"):
            summary |= items(r.summary.update)
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert summary["eval/linear/top1"] == evaluation["linear"]["top1"]
    assert summary["eval/knn/top1/5"] == evaluation["knn"]["top1"]["5"]
    assert summary["compute/steps"] == 4 and "compute/device_hours" in summary
    assert "exit" in kinds  # finished cleanly

    # evaluating again is a W&B run of its own (syncing two offline runs with one id would lose one)
    Job([Task(tiny_config(), run_dir, train=False)])()
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2 and any(f.name.endswith("-eval1.wandb") for f in files)
    assert run_id(run_dir, "eval").endswith("-eval2")


def test_flatten_makes_slash_separated_keys():
    assert flatten({"knn": {"top1": {"20": 55.1}}, "view": "last_avg", "skip": [1, 2]}) == {
        "knn/top1/20": 55.1,
        "view": "last_avg",
    }


def calls(fake, kind: str) -> list:
    return [c[1:] for c in fake.calls if c[0] == kind]


def test_a_session_sends_config_curves_compute_and_eval_to_its_own_wandb_run(tmp_path, fake_wandb):
    """Training is one W&B run (in the sweep's group, named after the run folder): the config, every
    metrics.jsonl record at its step, the compute in the summary; the evaluation is another, with the
    compute and the accuracies. Each ends with exit code 0, once."""
    run_dir = tmp_path / "sweepname" / "ijepa-run"
    cfg = tiny_config()
    Job([Task(cfg, run_dir, evaluate=False)])()
    ((init,),) = calls(fake_wandb, "init")
    train_id = init.pop("id")
    assert train_id.startswith("ijepa-run-") and train_id.endswith("-train0")
    assert init == {
        "project": "jepa-bench",
        "group": "sweepname",
        "name": "ijepa-run",
        "job_type": "train",
        "dir": str(run_dir),
        "config": to_dict(cfg),
        "mode": "offline",
        "tags": ["ijepa", "vit_nano_patch4", "steps=4"],
    }
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [step for _, _, step in calls(fake_wandb, "log")] == [m["step"] for m in metrics] == [0, 2, 4]
    assert [data for _, data, _ in calls(fake_wandb, "log")] == [
        flatten({k: v for k, v in m.items() if k != "step"}) for m in metrics
    ]
    compute, health = read_json(run_dir / SUMMARY)["compute"], read_json(run_dir / SUMMARY)["health"]
    expected = {"compute": compute, "status": "done", "health": health}
    assert calls(fake_wandb, "summary") == [(train_id, flatten(expected))]
    assert compute["steps"] == 4 and "device_hours" in compute
    assert fake_wandb.calls[-1] == ("finish", train_id, 0)

    # evaluating is a W&B run of its own (syncing two offline runs with one id would lose one)
    del fake_wandb.calls[:]
    Job([Task(cfg, run_dir, train=False)])()
    ((init,),) = calls(fake_wandb, "init")
    assert init["job_type"] == "eval" and init["id"] == train_id.replace("-train0", "-eval1")
    evaluation = read_json(run_dir / "eval.json")
    ((_, summary),) = calls(fake_wandb, "summary")
    assert summary == flatten({"compute": compute, "eval": evaluation})
    assert summary["eval/linear/top1"] == evaluation["linear"]["top1"]
    assert summary["eval/knn/top1/5"] == evaluation["knn"]["top1"]["5"]
    assert calls(fake_wandb, "log") == [] and calls(fake_wandb, "finish") == [(init["id"], 0)]
    assert run_id(run_dir, "eval").endswith("-eval2")


def test_a_ctrl_c_ends_the_wandb_run_with_130_and_a_failure_with_1(tmp_path, fake_wandb, monkeypatch):
    real_log = Tracker.log

    def log_then_ctrl_c(self, record: dict) -> None:
        real_log(self, record)
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C: the step ends, then the job stops

    monkeypatch.setattr(Tracker, "log", log_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        Job([Task(tiny_config(**{"budget.value": 6, "log_every": 1}), tmp_path / "run")])()
    assert [step for _, _, step in calls(fake_wandb, "log")] == [0, 1, 2, 3]  # 0: the health signals
    assert [code for _, code in calls(fake_wandb, "finish")] == [EXIT_INTERRUPTED] == [130]

    del fake_wandb.calls[:]
    cfg = tiny_config()  # the job's own check fails it: a dataset that shrank after the sweep was checked
    with pytest.raises(BenchError, match="larger than the dataset"):
        Job([Task(dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, batch_size=4096)), tmp_path / "bad")])()
    assert [c[0] for c in fake_wandb.calls] == ["init", "finish"] and fake_wandb.calls[-1][2] == 1


def test_wandb_errors_are_a_warning_and_a_disabled_wandb_is_never_imported(tmp_path, fake_wandb, monkeypatch, caplog):
    fake_wandb.fail_init = "no API key"
    tracker = Tracker(tiny_config(), tmp_path / "run", "train")
    tracker.start()
    tracker.log({"step": 1, "loss": 1.0})
    tracker.summary({"compute": {"steps": 1}})
    tracker.finish()
    assert tracker.run is None and fake_wandb.calls == []
    assert "W&B could not start (['no API key'])" in caplog.text and "goes on without it" in caplog.text

    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.delitem(sys.modules, "wandb")
    Tracker(tiny_config(), tmp_path / "run", "train").start()
    assert "wandb" not in sys.modules


def test_run_id_is_the_folder_its_path_digest_the_job_type_and_the_session(tmp_path):
    run_dir = tmp_path / "ijepa-run"
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:6]
    assert run_id(run_dir, "train") == f"ijepa-run-{digest}-train0"
    (run_dir / "wandb" / "offline-run-20260101_000000-x").mkdir(parents=True)
    assert run_id(run_dir, "eval") == f"ijepa-run-{digest}-eval1"


@pytest.mark.slow
def test_ctrl_c_in_bench_train_closes_the_wandb_run_non_zero_and_the_rerun_resumes(tmp_path, monkeypatch, fake_wandb):
    """A Ctrl-C during `bench train`: the step ends with a checkpoint, the run reads interrupted, its W&B
    run ends with exit code 130, one line says so (exit 130); the same command resumes and ends with
    one readable line."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(to_dict(tiny_config(**{"budget.value": 6, "log_every": 1}))))
    out = tmp_path / "scratch" / "run"
    real_log = Tracker.log

    def log_then_ctrl_c(self, record: dict) -> None:
        real_log(self, record)
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C, during step 2's bookkeeping

    monkeypatch.setattr(Tracker, "log", log_then_ctrl_c)
    result = invoke("train", "-c", config, "--out", out)
    assert result.exit_code == 130, result.output
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"interrupted: {out} keeps its checkpoint; the same command resumes it"
    )
    assert read_json(out / STATE)["state"] == "interrupted"
    assert torch.load(out / CHECKPOINT, weights_only=True)["spent"]["steps"] == 3  # the step under way, then stop
    assert [code for _, code in calls(fake_wandb, "finish")] == [EXIT_INTERRUPTED] == [130]

    # the same command, later (another process: this one named itself in state.json, and lives on)
    bench = str(Path(sys.executable).parent / "bench")
    env = os.environ | {"WANDB_MODE": "disabled"}  # the fake wandb lives in this process only
    again = subprocess.run(
        [bench, "train", "-c", config, "--out", out], capture_output=True, text=True, timeout=300, env=env
    )
    assert again.returncode == 0, again.stderr
    compute = read_json(out / SUMMARY)["compute"]
    assert compute["steps"] == 6 and compute["restarts"] == 1
    evaluation = read_json(out / "eval.json")
    last = again.stdout.strip().splitlines()[-1]
    assert last == (
        f"{out}: done, 6 steps, {compute['flops']:.3g} FLOPs, {compute['device_hours']:.3g} device-hours; "
        f"k-NN@5 {evaluation['knn']['top1']['5']:.1f}, linear {evaluation['linear']['top1']:.1f}, "
        f"linear 25% {evaluation['lowshot']['25%']['mean']:.1f} (top-1 %, {out / 'eval.json'})"
    )
    (option,) = [p for p in typer.main.get_command(app).commands["train"].params if p.name == "evaluate"]
    assert option.help == "Evaluate after training: k-NN, few-shot k-NN, linear and low-shot probes."
