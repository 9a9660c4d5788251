"""The run folder: its file names and the small readers and writers every part shares.

    runs/<sweep>/<method>-<hash>/
        config.yaml     the resolved config (the run id is its hash)
        job.json        the latest submission: executor, job ids, log files (written by the launcher)
        state.json      where the run stands (written by the job: running, trained, done, failed ...)
        metrics.jsonl   one JSON record per logged step
        checkpoint.pt   model, optimizer and compute spent (written atomically)
        checkpoint.prev.pt  the checkpoint before it: training resumes from it when checkpoint.pt is damaged
        summary.json    the training summary: status and compute used
        eval.json       the evaluation: k-NN, few-shot, linear and low-shot probes

No torch here: `bench status` reads a thousand run folders in well under a second.
"""

import json
import os
from pathlib import Path

from bench.config import RunConfig, check_version, config_hash, read_config, training_hash, write_config
from bench.errors import BenchError, DamagedFile

CONFIG, SUBMISSION, STATE = "config.yaml", "job.json", "state.json"
METRICS, CHECKPOINT, SUMMARY, EVAL = "metrics.jsonl", "checkpoint.pt", "summary.json", "eval.json"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"


def write_json(obj: dict, path: Path) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when there is no such file; DamagedFile (one line naming the
    file) when it is not a JSON object: truncated, overwritten, not UTF-8."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged (not a JSON object): restore it, or delete its run folder to redo it")
    return data


def parse_record(line: str) -> dict | None:
    """One metrics.jsonl line; None for a line a crash left half-written."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def last_record(path: Path, tail: int = 4096) -> dict:
    """The last complete record of a JSON-lines file, reading only its end."""
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - tail, 0))
        lines = f.read().decode(errors="replace").splitlines()
    for line in reversed(lines):
        if (record := parse_record(line)) is not None:
            return record
    return {}


def last_line(path: Path | str | None, tail: int = 4096) -> str:
    """The last non-empty line of a log file ('' when there is none)."""
    if not path or not Path(path).is_file():
        return ""
    with Path(path).open("rb") as f:
        f.seek(max(f.seek(0, os.SEEK_END) - tail, 0))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def edited_after_training(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether the training part of the run's config no longer hashes to what training recorded in
    summary.json (runs trained before the hash was recorded: never)."""
    recorded = (read_json(run_dir / SUMMARY) or {}).get("train_config_hash")
    return recorded is not None and recorded != training_hash(cfg)


def prepare_run_dir(cfg: RunConfig, run_dir: Path) -> None:
    """Create the folder and write the config; refuse to resume a folder made with another config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG
    if path.is_file():
        existing = read_config(path)
        check_version(existing, str(run_dir))
        if config_hash(existing) != config_hash(cfg):
            raise BenchError(f"{run_dir} holds a run with a different config; use a new folder")
    else:
        write_config(cfg, path)
