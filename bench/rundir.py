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

A sweep names each folder by its run id, `<method>-<10 hex>` (`run_id` here: the hash of the whole
config); `bench train --out` folders may have any name. `RunDir` knows a folder's paths and answers
whether its run is trained. A file here that can no longer
be read raises `DamagedFile`, one line naming it; the commands that read many runs (status, collate)
say so for that run and go on with the others.

No torch here: `bench status` reads a thousand run folders in well under a second.
"""

import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BenchError, DamagedFile
from bench.files import write_text

if TYPE_CHECKING:  # the config modules import the methods, so torch: imported where a config is read or made
    from bench.config.schema import RunConfig

CONFIG, SUBMISSION, STATE = "config.yaml", "job.json", "state.json"
METRICS, CHECKPOINT, SUMMARY, EVAL = "metrics.jsonl", "checkpoint.pt", "summary.json", "eval.json"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
RUN_FILES = (CONFIG, SUBMISSION, STATE, METRICS, CHECKPOINT, PREVIOUS_CHECKPOINT, SUMMARY, EVAL)
RUN_ID = re.compile(r"[a-z0-9_]+-[0-9a-f]{10}")  # how bench sweep names a run folder: <method>-<10 hex>
REDO = "restore it, or delete its run folder to redo the run"


class TrainingStatus(StrEnum):
    """summary.json's `status`, written by the engine (str-valued: the file and the tables read the same)."""

    RUNNING = "running"
    DONE = "done"  # training finished: the run can be evaluated
    FAILED = "failed"  # its `reason` says why


def run_id(cfg: "RunConfig") -> str:
    """A run's id, the name of its folder in a sweep: its method and the hash of its resolved config."""
    from bench.config.runfile import config_hash

    return f"{cfg.method}-{config_hash(cfg)}"


@dataclass(frozen=True)
class RunDir:
    """One run folder: whether its run is trained, and making it (`prepare`). Its files are named by
    this module's constants (CONFIG, SUMMARY, ...)."""

    path: Path

    def trained(self) -> bool:
        """Whether its training has finished (summary.json says so); DamagedFile for a damaged summary."""
        return is_trained(read_summary(self.path))

    def prepare(self, cfg: "RunConfig") -> None:
        """Create the folder and write the config; refuse a folder made with another config."""
        prepare_run_dir(cfg, self.path)


def is_trained(summary: dict | None) -> bool:
    """Whether a run whose summary.json holds `summary` (None: none yet) has finished its training."""
    return (summary or {}).get("status") == TrainingStatus.DONE


def write_json(obj: dict, path: Path) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when there is no such file; DamagedFile (one line naming the
    file) when it is not a JSON object: truncated, overwritten, not UTF-8, a folder."""
    if not path.exists():
        return None
    if not path.is_file():
        raise DamagedFile(f"{path} is damaged (not a file): {REDO}")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged (not a JSON object): {REDO}")
    return data


# the fields of state.json and job.json that runstate.run_state reads, and their types (null: unset)
LAUNCH_FIELDS = {
    "state": str,
    "token": str,
    "host": str,
    "executor": str,
    "error": str,
    "log": str,
    "eval_log": str,
    "pid": int,
    "launcher_pid": int,
    "job_id": str | int,
    "eval_job_id": str | int,
}


def read_launch_record(path: Path) -> dict | None:
    """state.json or job.json, checked: each field runstate.run_state reads of the type it expects."""
    record = read_json(path)
    for key, kind in LAUNCH_FIELDS.items():
        value = (record or {}).get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise DamagedFile(f"{path} is damaged ({key} is {value!r}): {REDO}")
    return record


def read_state(run_dir: Path) -> dict | None:
    """state.json, checked: its fields of the right types and, unless it is empty, a `state`."""
    state = read_launch_record(run_dir / STATE)
    if state and "state" not in state:
        raise DamagedFile(f"{run_dir / STATE} is damaged (no state in it): {REDO}")
    return state


def read_submission(run_dir: Path) -> dict | None:
    """job.json, checked: its fields of the right types."""
    return read_launch_record(run_dir / SUBMISSION)


def read_summary(run_dir: Path) -> dict | None:
    """summary.json, checked: its status a string, its compute a mapping of numbers (DamagedFile otherwise)."""
    summary = read_json(run_dir / SUMMARY)
    if summary is None:
        return None
    compute = summary.get("compute", {})
    if not (
        isinstance(summary.get("status", ""), str)
        and isinstance(compute, dict)
        and all(v is None or is_number(v) for v in compute.values())
    ):
        raise DamagedFile(f"{run_dir / SUMMARY} is damaged (not a training summary): {REDO}")
    return summary


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_run_config(run_dir: Path) -> "RunConfig":
    """The run's config.yaml; DamagedFile naming it when it is missing or is no config (malformed,
    not UTF-8, an unknown key, a value of the wrong type). A config of another version is returned:
    each caller refuses it (check_version) in its own words."""
    from bench.config.runfile import read_config

    path = run_dir / CONFIG
    if not path.is_file():
        raise DamagedFile(f"{path} is {'not a file' if path.exists() else 'missing'}: {REDO}")
    if not path.read_bytes().strip():  # yaml reads nothing as {}: a version-1 config, which it is not
        raise DamagedFile(f"{path} is damaged (empty): {REDO}")
    try:
        return read_config(path)
    except UnicodeDecodeError:
        reason = "not UTF-8"
    except BenchError as e:
        reason = str(e).removeprefix(f"{path}: ")  # the file is named once, here
    raise DamagedFile(f"{path} is damaged ({reason}): {REDO}")


def parse_record(line: str) -> dict | None:
    """One metrics.jsonl record (a JSON object with its integer step); None for a line a crash left
    half-written, or any other garbage."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("step"), int) and not isinstance(record["step"], bool)
    return record if ok else None


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


def config_changed(run_dir: Path, cfg: "RunConfig") -> str | None:
    """Why `cfg` (the run's config.yaml) is not the config the run was made with, with what to do;
    None when it is. A folder named like a run id must still hash to it: the id is the hash of the
    whole config, the eval section too, so its eval.json always scores the config its name says.
    A folder of another name (`bench train --out`) must have the training settings summary.json
    recorded once trained (`train_config_hash`): its eval section may be edited and evaluated again."""
    from bench.config.runfile import training_hash

    summary = read_summary(run_dir) or {}
    recorded = summary.get("train_config_hash")
    name = Path(run_dir).resolve().name  # `bench eval .` inside a run folder is checked by its id too
    if RUN_ID.fullmatch(name):
        if run_id(cfg) == name:
            return None
        if recorded == training_hash(cfg):
            return (
                f"only its eval section differs, yet it hashes to {run_id(cfg)}, not to its run id {name}; restore "
                f"it, and to score this run with other eval settings copy its folder under a name of your own "
                f"(cp -r {run_dir} runs/scratch/NAME), edit the copy's eval section and evaluate the copy"
            )
        return (
            f"it hashes to {run_id(cfg)}, not to its run id {name}; restore it, or train the changed config "
            "in a new folder"
        )
    if is_trained(summary) and not isinstance(recorded, str):
        raise DamagedFile(f"{run_dir / SUMMARY} is damaged (it records no train_config_hash): {REDO}")
    if recorded is not None and recorded != training_hash(cfg):
        return (
            f"the hash of its training settings, {training_hash(cfg)}, is not the {recorded} it was trained "
            "with; restore it, or train the changed config in a new folder"
        )
    return None


def prepare_run_dir(cfg: "RunConfig", run_dir: Path) -> None:
    """Create the folder and write the config; refuse to resume a folder made with another config."""
    from bench.config.runfile import config_hash, write_config
    from bench.config.schema import check_version

    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG
    if path.is_file():
        existing = read_run_config(run_dir)
        check_version(existing, str(run_dir))
        if config_hash(existing) != config_hash(cfg):
            raise BenchError(f"{run_dir} holds a run with a different config; use a new folder")
    else:
        write_config(cfg, path)
