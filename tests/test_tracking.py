"""W&B: a run's config, training curves, compute and evaluation end up in its offline W&B run."""

import json
import struct

from bench.launch import Job, Task
from bench.tracking import flatten, run_id

from .conftest import tiny_config


def wandb_records(path):
    """The protobuf records of an offline .wandb file (LevelDB log format: a 7-byte file header,
    32 KiB blocks of records, each with a 7-byte header: CRC, length, type FULL/FIRST/MIDDLE/LAST)."""
    from wandb.proto import wandb_internal_pb2

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
    Job([Task(tiny_config(), run_dir)], token="t")()
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
    Job([Task(tiny_config(), run_dir, train=False)], token="t")()
    files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2 and any(f.name.endswith("-eval1.wandb") for f in files)
    assert run_id(run_dir, "eval").endswith("-eval2")


def test_flatten_makes_slash_separated_keys():
    assert flatten({"knn": {"top1": {"20": 55.1}}, "view": "last_avg", "skip": [1, 2]}) == {
        "knn/top1/20": 55.1,
        "view": "last_avg",
    }
