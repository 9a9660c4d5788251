"""Where each run of a sweep stands: `bench status`'s table.

A run with a damaged file reads `damaged`, the file named in its `error`, next to every healthy
run; the configs are not parsed here (collate and eval check them).
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from bench.errors import DamagedFile
from bench.results.runs import read_eval, run_dirs
from bench.rundir import CONFIG, METRICS, is_number, last_record, read_run_config, read_summary
from bench.runstate import RunState

if TYPE_CHECKING:
    from bench.runstate import QueueView

STATUS_COLUMNS = ("run", "state", "job", "queue", "step", "progress", "loss", "knn@20", "error")


def status_table(sweep_dir: Path, queue: "QueueView | None" = None) -> pd.DataFrame:
    """A row per run: its state (SLURM's view of its job beside it), progress, loss, k-NN@20 and,
    for a failed or crashed run, the last line of its error. A run with a damaged file (not JSON,
    the wrong shape, config.yaml missing) reads `damaged`, the file named in `error`, and the
    others are shown as ever; `attrs["damaged"]` holds each damaged run's one-line message. The
    configs are not parsed here (a thousand runs in well under a second): collate and eval check them.
    `queue`: what the cluster says of the runs' jobs (the CLI passes bench/launch/queue.py's `Queue`);
    None: what the run folders say alone."""
    rows, damaged = [], []
    for run_dir in run_dirs(sweep_dir):
        try:
            rows.append(status_row(run_dir, queue))
        except DamagedFile as e:
            damaged.append(str(e))
            rows.append(
                {"run": run_dir.name, "state": RunState.DAMAGED, "error": str(e).replace(f"{run_dir}{os.sep}", "")}
            )
    table = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    table.attrs["damaged"] = damaged
    return table


def status_row(run_dir: Path, queue: "QueueView | None") -> dict:
    """One run's row of status_table; DamagedFile when one of the files it reads is damaged."""
    from bench.runstate import run_state

    if not (run_dir / CONFIG).is_file():
        read_run_config(run_dir)  # says which file is missing
    read_summary(run_dir)
    state = run_state(run_dir, queue)  # reads state.json and job.json through their checked readers
    metrics = last_record(run_dir / METRICS)
    evaluation = read_eval(run_dir)
    job = state.get("eval_job_id") if state["state"] in (RunState.EVALUATING, RunState.TRAINED) else state.get("job_id")
    return {
        "run": run_dir.name,
        "state": state["state"],
        "job": job or state.get("job_id", ""),
        "queue": state.get("queue", ""),
        "step": metrics["step"] if metrics else 0,
        "progress": round(metrics["progress"], 3) if is_number(metrics.get("progress")) else 0.0,
        "loss": metrics["loss"] if is_number(metrics.get("loss")) else None,
        "knn@20": evaluation.get("knn@20"),
        "error": state.get("error", "") if state["state"] in (RunState.FAILED, RunState.CRASHED) else "",
    }
