"""What training writes to metrics.jsonl (and W&B): one record every `log_every` steps and at the
last, the loss and each part of the method's output averaged over the steps since the record before.

A method's `forward` returns {"loss": ..., **parts}: every other scalar it returns (data2vec 2.0's
`patch_loss` and `cls_loss`) is a part, recorded as "parts/<name>" beside "loss". The window of
sums rides in the checkpoint (`LossWindow`), so a record whose window holds a resume averages all
of its steps, and a resumed run writes the records an uninterrupted one would."""

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from bench.errors import TrainingFailed
from bench.progress import progress_bar
from bench.rundir import METRICS
from bench.train.ddp import process_mean
from bench.train.devices import Ranks

PART = "parts/"  # a part's record key: "parts/cls_loss"


@dataclass
class LossWindow:
    """The loss since the last metrics record (summed over its steps), the parts' sums by name and the
    last record's loss, kept in the checkpoint: a run resumed with its budget spent (killed before its
    summary) still knows its final loss."""

    loss_sum: float = 0.0
    steps: int = 0
    last_loss: float | None = None
    parts: dict[str, float] = field(default_factory=dict)


def part_names(out: dict) -> list[str]:
    """The parts of a method's output: every key but "loss". Each must be one number (all are logged):
    a method returning anything else is a method to fix, said at its first step."""
    names = [k for k in out if k != "loss"]
    for k in names:
        v = out[k]
        if not (type(v) in (int, float) or torch.is_tensor(v) and v.numel() == 1):
            shape = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
            raise TypeError(f"forward returned {k!r} of {shape}: every part of its output must be one number")
    return names


class Window:
    """This process's sums since the last record, [loss, *parts], as one tensor on the device."""

    def __init__(self, saved: LossWindow, device: torch.device) -> None:
        self.names: list[str] | None = list(saved.parts) or None  # None: learnt from the first step's output
        self.sums = torch.tensor([saved.loss_sum, *saved.parts.values()], device=device)
        self.steps, self.last_loss = saved.steps, saved.last_loss

    def add(self, out: dict) -> None:
        if self.names is None and not self.steps:  # a run's first step: its parts are what the method returns
            self.names = part_names(out)  # (a window resumed from a checkpoint without parts records none)
            self.sums = torch.cat([self.sums, self.sums.new_zeros(len(self.names))])
        values = [out["loss"], *(out[k] for k in self.names or [])]
        self.sums += torch.stack([torch.as_tensor(v).detach().to(self.sums) for v in values])
        self.steps += 1

    def close(self, where: Ranks) -> dict:
        """The record's averages over its steps and processes, {"loss": ..., "parts/<name>": ...}; a new window."""
        process_mean(self.sums, where)
        means = [s / self.steps for s in self.sums.tolist()]  # one read from the device, not one per value
        self.last_loss = means[0]
        self.sums.zero_()
        self.steps = 0
        return {"loss": means[0]} | {PART + name: m for name, m in zip(self.names or [], means[1:], strict=True)}

    def saved(self, where: Ranks) -> LossWindow:
        """The window for a checkpoint: every process restarts from the mean, which the record's mean keeps."""
        sums = process_mean(self.sums.detach().clone(), where).tolist()
        return LossWindow(sums[0], self.steps, self.last_loss, dict(zip(self.names or [], sums[1:], strict=True)))


def check_finite(loss: torch.Tensor, average: float | None, due: bool, bad: bool, where: Ranks, step: int) -> None:
    """Never record nor checkpoint a diverged model: TrainingFailed when the record's `average` loss is
    not finite, or, when a checkpoint is `due`, this step's loss (with several processes: `bad`, any
    process's loss, as the processes agreed). One process reads its loss only then: a read waits for the GPU."""
    if average is not None and not math.isfinite(average):
        raise TrainingFailed(f"loss is {average} at step {step}")
    if due and where.world == 1 and not math.isfinite(value := float(loss.detach())):
        raise TrainingFailed(f"loss is {value} at step {step}")
    if due and bad:
        raise TrainingFailed(f"loss is not finite on a process at step {step}")


@dataclass
class MetricsLog:
    """metrics.jsonl (process 0; None elsewhere), the `on_log` hook (W&B) and the progress bar."""

    file: TextIO | None = None
    on_log: Callable[[dict], None] | None = None
    show: Callable[[float], None] = lambda done: None

    def write(self, record: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.on_log is not None:
            self.on_log(record)

    def sync(self) -> None:
        """The records written so far reach the disk (before the checkpoint that covers them)."""
        if self.file is not None:
            os.fsync(self.file.fileno())


@contextmanager
def metrics_log(run_dir: Path, main: bool, description: str, on_log) -> Iterator[MetricsLog]:
    """Process 0 appends to the run's metrics.jsonl and shows a progress bar; the others write nothing."""
    if not main:
        yield MetricsLog()
        return
    with (run_dir / METRICS).open("a") as file, progress_bar(description, 1.0) as show:
        yield MetricsLog(file, on_log, show)
