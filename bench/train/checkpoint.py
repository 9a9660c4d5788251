"""Checkpoints: written atomically with the one before kept (checkpoint.prev.pt), read back for
evaluation (`load_checkpoint`) and for resuming (`resume_checkpoint`), a damaged one set aside.

Small on purpose: evaluation imports `load_checkpoint` from here without the training loop."""

import logging
import os
from pathlib import Path

import torch

from bench.errors import DamagedFile, TrainingFailed
from bench.files import first_line, read_torch_file, save_torch, write_text
from bench.rundir import CHECKPOINT, PREVIOUS_CHECKPOINT, parse_record
from bench.train.budget import Spent
from bench.train.records import LossWindow

log = logging.getLogger(__name__)

CHECKPOINT_KEYS = ("method", "optimizer", "spent", "rng")


def write_checkpoint(state: dict, run_dir: Path) -> None:
    """checkpoint.pt, the one it replaces kept as checkpoint.prev.pt: a checkpoint damaged after it
    was written (a crash before the disk had it, a copy cut short) costs the steps since the
    previous one, not the run. Never more than two on disk: the older previous one goes first, as
    checkpoint.pt was written (fsync) or read back whole by this process, so it is a sound fallback."""
    latest, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    try:
        if latest.is_file():
            previous.unlink(missing_ok=True)
        save_torch(state, latest, keep=previous)
    except OSError as e:
        raise TrainingFailed(
            f"could not write {latest} ({e.strerror or e}): free disk space and run again; "
            "it resumes from the last checkpoint"
        ) from e


def restore(
    path: Path, method: torch.nn.Module, config_hash: str, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Load the checkpoint at `path` into `method` (and `optimizer`) and return it; DamagedFile, naming
    the file, when it cannot be read, lacks a part, was trained with another config (`config_hash`:
    the run's training_hash) or does not fit this run's model."""
    ckpt = read_torch_file(path)
    needed = CHECKPOINT_KEYS if optimizer is not None else CHECKPOINT_KEYS[:1]
    missing = [k for k in needed if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise DamagedFile(f"{path} is damaged (it has no {', '.join(missing)})")
    written_by = ckpt.get("train_config_hash", config_hash)  # checkpoints from before it was recorded: unchecked
    if written_by != config_hash:  # copied from another run: its weights may even fit this model
        raise DamagedFile(f"{path} was trained with another config (hash {written_by}, not this run's {config_hash})")
    try:
        method.load_state_dict(ckpt["method"])
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
            Spent(**ckpt["spent"])  # the fields this version knows
            LossWindow(**ckpt.get("loss", {}))
            if not isinstance(ckpt["rng"], torch.Tensor) or ckpt["rng"].dtype != torch.uint8:
                raise TypeError("its rng state is not a byte tensor")
    except torch.OutOfMemoryError:  # a RuntimeError, but the device's fault, not the file's
        raise
    except (RuntimeError, ValueError, KeyError, TypeError) as e:  # what load_state_dict and the dataclasses raise
        raise DamagedFile(f"{path} does not fit this run's model ({first_line(e, skip_header=True)})") from None
    return ckpt


def load_checkpoint(run_dir: Path, method: torch.nn.Module, config_hash: str) -> dict:
    """Evaluation's reader: the run's checkpoint.pt, loaded into `method`; DamagedFile (one line) when
    it cannot be. Never checkpoint.prev.pt: that is not the trained model."""
    path = Path(run_dir) / CHECKPOINT
    try:
        return restore(path, method, config_hash)
    except DamagedFile as e:
        raise DamagedFile(f"{e}: restore it, or delete its run folder to redo it") from None


def resume_checkpoint(
    run_dir: Path, method: torch.nn.Module, optimizer: torch.optim.Optimizer, config_hash: str, main: bool
) -> dict | None:
    """Training's reader: the checkpoint to resume from, loaded into `method` and `optimizer`; None when
    the run has none. A damaged checkpoint.pt is moved aside (kept, never deleted: it is the user's to
    inspect) and training resumes from checkpoint.prev.pt, saying so; when neither can be read,
    DamagedFile names them and nothing is touched. `main`: this process may rename files."""
    latest, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    if not latest.exists() and not previous.exists():
        return None
    damage = None
    if latest.exists():
        try:
            return restore(latest, method, config_hash, optimizer)
        except DamagedFile as e:
            damage = e
    fix = "restore it, or move it aside to train the run again from step 0"
    if not previous.exists():
        raise DamagedFile(f"{damage} and there is no {PREVIOUS_CHECKPOINT} to resume from: {fix}")
    try:
        ckpt = restore(previous, method, config_hash, optimizer)
    except DamagedFile as e:
        if damage is None:
            raise DamagedFile(f"{e} and there is no {CHECKPOINT}: {fix}") from None
        raise DamagedFile(
            f"{damage}, and {e}: restore one of them, or move both aside to train the run again from step 0"
        ) from None
    step = ckpt["spent"].get("steps", 0)
    if damage is None:  # a crash between the two renames of write_checkpoint
        if main:
            log.warning("%s is missing; resuming from %s at step %d", latest, previous.name, step)
        return ckpt
    if main:  # else the next checkpoint would move the damaged file over this sound one
        aside = set_aside(latest)
        log.warning(
            "%s; resuming from %s at step %d (the damaged file is kept as %s)", damage, previous.name, step, aside.name
        )
    return ckpt


def set_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.damaged (.damaged.1, ... if that exists), never over another."""
    aside, n = path.with_name(path.name + ".damaged"), 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged.{n}")
    os.replace(path, aside)
    return aside


def trim_metrics(path: Path, step: int) -> float:
    """Drop records past the checkpoint's step: those steps were lost and will be trained again.
    Returns the device-seconds the last dropped record had counted (0 when none was dropped)."""
    if path.exists() and not path.is_file():
        raise DamagedFile(f"{path} is not a file: move it away so that training can log its metrics there")
    if not path.is_file():
        return 0.0
    # a line a crash cut (or any line that is not a record) is dropped with the lost steps
    lines = path.read_bytes().decode(errors="replace").splitlines(keepends=True)
    records = [parse_record(line) for line in lines]
    kept = [line for line, r in zip(lines, records, strict=True) if r is not None and r["step"] <= step]
    dropped = [r for r in records if r is not None and r["step"] > step]
    if len(kept) != len(lines):
        write_text(path, "".join(kept))
    return float(dropped[-1].get("device_hours", 0.0)) * 3600.0 if dropped else 0.0
