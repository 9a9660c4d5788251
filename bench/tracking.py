"""Weights & Biases for every run: its config, training curves, compute meters and evaluation,
grouped by sweep. Offline by default (the run's W&B files live in RUN_DIR/wandb/, and
`wandb sync RUN_DIR/wandb/offline-run-*` uploads them later); online when the user sets
WANDB_MODE=online and has a key (`wandb login`); WANDB_MODE=disabled turns it off.

    WANDB_MODE=online WANDB_PROJECT=my-ssl bench sweep sweeps/methods.yaml

Each session of a run folder (training, a requeued continuation, the evaluation) is a W&B
run of its own, named after the folder, in the sweep's group, with its job type: syncing
offline runs that share an id would replace one with the other. The evaluation's W&B run
holds both the compute used and the accuracies, the axes of a compute-against-accuracy plot.
W&B never stops training: its errors are logged as warnings. A session that fails, or is
interrupted (Ctrl-C, `bench cancel`), ends its W&B run with a non-zero exit code.
"""

import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.config.runfile import to_dict
from bench.config.schema import RunConfig

log = logging.getLogger(__name__)

PROJECT = "jepa-bench"
EXIT_INTERRUPTED = 130  # a Ctrl-C's exit code (128 + SIGINT): the W&B run of an interrupted session says so


def flatten(record: dict, prefix: str = "") -> dict:
    """{"knn": {"top1": {"20": 55.1}}} -> {"knn/top1/20": 55.1}: W&B panels want flat keys."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def run_id(run_dir: Path, job_type: str) -> str:
    """Unique per run folder (its path's digest) and session (the W&B runs the folder already has)."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:6]
    session = len(list(Path(run_dir).glob("wandb/*run-*")))
    return f"{Path(run_dir).name}-{digest}-{job_type}{session}"


class Tracker:
    """One W&B run for one session of a run folder; a no-op when W&B is disabled or fails."""

    def __init__(self, cfg: RunConfig, run_dir: Path, job_type: str) -> None:
        self.cfg, self.run_dir, self.job_type = cfg, Path(run_dir), job_type
        self.run = None

    def start(self) -> None:
        mode = os.environ.get("WANDB_MODE", "offline")
        if mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        with self.guard("start"):
            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", PROJECT),
                group=self.run_dir.parent.name,  # the sweep
                name=self.run_dir.name,
                id=run_id(self.run_dir, self.job_type),
                job_type=self.job_type,
                dir=str(self.run_dir),
                config=to_dict(self.cfg),
                mode=mode,
                tags=[self.cfg.method, self.cfg.backbone, f"{self.cfg.budget.kind}={self.cfg.budget.value:g}"],
            )

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """W&B's errors (no key, no network, a full disk) become a warning: the run matters more."""
        import wandb

        try:
            yield
        except (wandb.errors.Error, OSError, ValueError) as e:
            log.warning("W&B could not %s (%s); %s goes on without it", what, str(e).splitlines()[:1], self.run_dir)
            self.run = None

    def log(self, record: dict) -> None:
        """A metrics.jsonl record: loss and the method's other outputs ("parts/<name>"), lr, wd, EMA, images,
        FLOPs and device-hours at its step."""
        if self.run is not None:
            with self.guard("log"):
                self.run.log(flatten({k: v for k, v in record.items() if k != "step"}), step=record["step"])

    def summary(self, values: dict) -> None:
        if self.run is not None:
            with self.guard("write the summary"):
                self.run.summary.update(flatten(values))

    def finish(self, exit_code: int = 0) -> None:
        """Close the W&B run; a non-zero exit code marks it failed (a failed run) or stopped
        (EXIT_INTERRUPTED: a Ctrl-C or `bench cancel`). Once: later calls do nothing."""
        if self.run is not None:
            with self.guard("finish"):
                self.run.finish(exit_code=exit_code)
            self.run = None
