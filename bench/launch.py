"""Launching: one job class for every launch, executors registered by name.

`Job` trains a run folder to its budget and evaluates it. It is a submitit Checkpointable:
on preemption or timeout `checkpoint()` resubmits the same job, which resumes from the
run's latest checkpoint. Each run folder carries a `state.json` so `bench status` can tell
queued, running, done, failed and crashed runs apart without asking the executor.

    bench sweep sweeps/demo.yaml            # local executor: one process per run, returns at once
    bench sweep sweeps/demo.yaml --executor debug   # in this process, one after the other
"""

import logging
import os
import socket
import time
from pathlib import Path

import submitit

from bench.config import RunConfig
from bench.engine import prepare_run_dir, read_json, write_json
from bench.errors import BenchError, TrainingFailed
from bench.registry import Registry
from bench.sweep import Sweep

log = logging.getLogger(__name__)

STATE = "state.json"
EXECUTORS: Registry = Registry("executor")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def write_state(run_dir: Path, state: str, **extra) -> None:
    write_json({"state": state, "time": time.time(), "host": socket.gethostname(), **extra}, run_dir / STATE)


class Job:
    """Train `cfg` into `run_dir` (resuming if it holds a checkpoint), then evaluate it."""

    def __init__(self, cfg: RunConfig, run_dir: Path, threads: int = 0, evaluate: bool = True) -> None:
        self.cfg, self.run_dir, self.threads, self.evaluate = cfg, Path(run_dir), threads, evaluate

    def __call__(self) -> dict:
        import torch

        from bench.engine import train
        from bench.evals.run import evaluate_run

        setup_logging()
        prepare_run_dir(self.cfg, self.run_dir)
        if self.threads:
            torch.set_num_threads(self.threads)
        previous = read_json(self.run_dir / STATE) or {}
        job_id = previous.get("job_id")
        try:
            job_id = submitit.JobEnvironment().job_id
        except RuntimeError:  # not inside a submitit job (e.g. `bench train`)
            pass
        job = {"job_id": job_id, "executor": previous.get("executor")}
        write_state(self.run_dir, "running", pid=os.getpid(), **job)
        try:
            summary = train(self.cfg, self.run_dir)
            if self.evaluate:
                summary["eval"] = evaluate_run(self.run_dir)
        except TrainingFailed as e:
            write_state(self.run_dir, "failed", error=str(e), **job)
            raise
        except Exception as e:  # record why the job died for `bench status`, then let it die
            write_state(self.run_dir, "failed", error=f"{type(e).__name__}: {e}".splitlines()[0], **job)
            raise
        write_state(self.run_dir, "done", **job)
        return summary

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on preemption/timeout: resubmit; the run resumes from its checkpoint."""
        write_state(self.run_dir, "requeued")
        return submitit.helpers.DelayedSubmission(Job(self.cfg, self.run_dir, self.threads, self.evaluate))


@EXECUTORS.register("local")
def local_executor(folder: Path) -> submitit.Executor:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=7 * 24 * 60)
    return executor


@EXECUTORS.register("debug")
def debug_executor(folder: Path) -> submitit.Executor:
    return submitit.DebugExecutor(folder=folder)


def pid_alive(state: dict) -> bool | None:
    """Whether the process named in a state is alive; None when this machine cannot tell."""
    if state.get("host") != socket.gethostname() or "pid" not in state:
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(run_dir: Path) -> dict:
    """The run's state, with 'crashed' for a run whose process is gone without a word."""
    state = read_json(run_dir / STATE) or {"state": "new"}
    if state["state"] in ("submitted", "running", "requeued") and state.get("executor", "local") == "local":
        if pid_alive(state) is False:
            state = {**state, "state": "crashed", "error": state.get("error", "process ended without a word")}
    return state


def launch(sweep: Sweep, root: Path, executor_name: str, retry_failed: bool = False) -> list[tuple[str, str]]:
    """Submit every run of the sweep that is not done, active or (unless retry_failed) failed."""
    make_executor = EXECUTORS.get(executor_name)
    sweep_dir = root / sweep.name
    todo = []
    for run in sweep.runs:
        state = run_state(sweep_dir / run.run_id)["state"]
        if state in ("done", "submitted", "running", "requeued") or (state == "failed" and not retry_failed):
            continue
        todo.append(run)
    if not todo:
        return []
    for run in todo:
        prepare_run_dir(run.config, sweep_dir / run.run_id)
    executor = make_executor(sweep_dir / "submitit")
    # Local jobs share this machine's cores: give each its share instead of oversubscribing.
    threads = max(1, (os.cpu_count() or 1) // len(todo)) if executor_name == "local" else 0
    submitted = []
    for run in todo:
        run_dir = sweep_dir / run.run_id
        write_state(run_dir, "submitted", executor=executor_name)
        job = executor.submit(Job(run.config, run_dir, threads))
        if executor_name == "debug":
            try:
                job.result()  # the debug executor runs the job here, in this process
            except Exception as e:  # the job recorded its failure in state.json; carry on with the sweep
                log.error("%s failed: %s", run.run_id, str(e).splitlines()[-1] if str(e) else type(e).__name__)
        elif run_state(run_dir)["state"] == "submitted":  # the job has not started writing its own state yet
            write_state(run_dir, "submitted", executor=executor_name, job_id=job.job_id, pid=int(job.job_id))
        submitted.append((run.run_id, job.job_id))
    return submitted


def wait(sweep: Sweep, root: Path, poll_s: float = 2.0) -> None:
    """Block until every run of the sweep is done, failed or crashed."""
    sweep_dir = root / sweep.name
    while any(
        run_state(sweep_dir / r.run_id)["state"] in ("submitted", "running", "requeued") for r in sweep.runs
    ):
        time.sleep(poll_s)


def check_executor(name: str) -> None:
    if name not in EXECUTORS:
        raise BenchError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS.names())}")
