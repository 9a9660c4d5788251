"""Weights & Biases for every run: its config, training curves, compute meters and evaluation,
grouped by sweep. Offline by default (the run's W&B files live in RUN_DIR/wandb/, and
`wandb sync RUN_DIR/wandb/offline-run-*` uploads them later); online when the user sets
WANDB_MODE=online and has a key (`wandb login`); WANDB_MODE=disabled turns it off.

    WANDB_MODE=online WANDB_PROJECT=my-ssl bench sweep sweeps/methods.yaml

A requeued or re-evaluated run resumes the same W&B run (its id comes from the run folder).
"""

import hashlib
import logging
import os
from pathlib import Path

from bench.config import RunConfig, to_dict

log = logging.getLogger(__name__)

PROJECT = "jepa-bench"


def flatten(record: dict, prefix: str = "") -> dict:
    """{"knn": {"top1": {"20": 55.1}}} -> {"knn/top1/20": 55.1}: W&B panels want flat keys."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        elif isinstance(value, int | float | str | bool) or value is None:
            out[f"{prefix}{key}"] = value
    return out


def run_id(run_dir: Path) -> str:
    """Stable per run folder (a requeued job logs into the same W&B run), unique across folders."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:6]
    return f"{Path(run_dir).name}-{digest}"


class Tracker:
    """One W&B run for one run folder; a no-op when W&B is disabled."""

    def __init__(self, cfg: RunConfig, run_dir: Path, job_type: str) -> None:
        self.run = None
        mode = os.environ.get("WANDB_MODE", "offline")
        if mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = self._init(wandb, cfg, run_dir, job_type, mode)
        except wandb.errors.Error as e:  # e.g. online without a key: the run matters more than its W&B copy
            log.warning("W&B did not start (%s); %s goes on without it", str(e).splitlines()[0], run_dir)

    @staticmethod
    def _init(wandb, cfg: RunConfig, run_dir: Path, job_type: str, mode: str):
        return wandb.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            group=Path(run_dir).parent.name,  # the sweep
            name=Path(run_dir).name,
            id=run_id(run_dir),
            resume="allow",
            job_type=job_type,
            dir=str(run_dir),
            config=to_dict(cfg),
            mode=mode,
            tags=[cfg.method, cfg.backbone, f"{cfg.budget.kind}={cfg.budget.value:g}"],
        )

    def log(self, record: dict) -> None:
        """A metrics.jsonl record: loss, lr, wd, EMA, images, FLOPs and device-hours at its step."""
        if self.run is not None:
            self.run.log(flatten({k: v for k, v in record.items() if k != "step"}), step=record["step"])

    def summary(self, values: dict) -> None:
        if self.run is not None:
            self.run.summary.update(flatten(values))

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
