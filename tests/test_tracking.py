"""W&B: a run's config, training curves, compute and evaluation end up in its offline W&B run; an
interrupted session ends it with a non-zero exit code."""

import json
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import torch
import typer
import yaml

from bench.cli import app
from bench.config.schema import to_dict
from bench.launch.job import Job, Task
from bench.rundir import CHECKPOINT, STATE, SUMMARY, read_json
from bench.tracking import EXIT_INTERRUPTED, Tracker, flatten, run_id

from .conftest import invoke, tiny_config


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
    assert [h["_step"] for h in history] == [m["step"] for m in metrics] == [2, 4]
    assert [h["loss"] for h in history] == [m["loss"] for m in metrics]
    assert [h["flops"] for h in history] == [m["flops"] for m in metrics]
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


def test_ctrl_c_in_bench_train_closes_the_wandb_run_non_zero_and_the_rerun_resumes(tmp_path, monkeypatch):
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
    (session,) = out.glob("wandb/offline-run-*/run-*-train0.wandb")
    (ended,) = [r.exit for r in wandb_records(session) if r.WhichOneof("record_type") == "exit"]
    assert ended.exit_code == EXIT_INTERRUPTED == 130

    # the same command, later (another process: this one named itself in state.json, and lives on)
    bench = str(Path(sys.executable).parent / "bench")
    again = subprocess.run([bench, "train", "-c", config, "--out", out], capture_output=True, text=True, timeout=300)
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
