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
    """Train each (config, run folder) of `runs` in turn, resuming any that holds a checkpoint,
    then evaluate it. A failed run is recorded in its state.json and the next one still runs.
    With train=False the job only evaluates finished runs (evaluation as its own job)."""

    def __init__(
        self, runs: list[tuple[RunConfig, Path]], threads: int = 0, evaluate: bool = True, train: bool = True
    ) -> None:
        self.runs = [(cfg, Path(run_dir)) for cfg, run_dir in runs]
        self.threads, self.evaluate, self.train = threads, evaluate, train

    def __call__(self) -> list[dict]:
        import torch

        setup_logging()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            job_id = submitit.JobEnvironment().job_id
        except RuntimeError:  # not inside a submitit job (e.g. `bench train`)
            job_id = None
        summaries, errors = [], []
        if not self.train:
            from bench.evals.run import evaluate_run

            for _, run_dir in self.runs:
                try:
                    summaries.append(evaluate_run(run_dir))
                except Exception as e:  # one bad run does not stop the others' evaluation
                    log.error("evaluating %s failed: %s", run_dir, e)
                    errors.append(e)
            if errors:
                raise errors[0]
            return summaries
        for cfg, run_dir in self.runs:
            prepare_run_dir(cfg, run_dir)  # a folder made with another config is refused, even when done
            if run_state(run_dir)["state"] == "done":
                continue
            try:
                summaries.append(self.run_one(cfg, run_dir, job_id))
            except Exception as e:  # recorded in the run's state.json; the other runs carry on
                errors.append(e)
        if errors:
            raise errors[0]
        return summaries

    def run_one(self, cfg: RunConfig, run_dir: Path, job_id: str | None) -> dict:
        from bench.engine import train
        from bench.evals.run import evaluate_run

        prepare_run_dir(cfg, run_dir)
        previous = read_json(run_dir / STATE) or {}
        job = {"job_id": job_id or previous.get("job_id"), "executor": previous.get("executor")}
        write_state(run_dir, "running", pid=os.getpid(), **job)
        try:
            summary = train(cfg, run_dir)
            if self.evaluate:
                summary["eval"] = evaluate_run(run_dir)
        except TrainingFailed as e:
            write_state(run_dir, "failed", error=str(e), **job)
            raise
        except Exception as e:  # record why the run died for `bench status`, then re-raise
            write_state(run_dir, "failed", error=f"{type(e).__name__}: {e}".splitlines()[0], **job)
            raise
        write_state(run_dir, "done", **job)
        return summary

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on preemption/timeout: resubmit; each run resumes from its checkpoint."""
        for _, run_dir in self.runs:
            if run_state(run_dir)["state"] == "running":
                write_state(run_dir, "requeued")
        return submitit.helpers.DelayedSubmission(Job(self.runs, self.threads, self.evaluate, self.train))


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


def launch(
    sweep: Sweep, root: Path, executor_name: str, parallel: int = 1, retry_failed: bool = False
) -> list[tuple[str, str]]:
    """Submit every run of the sweep that is not done, active or (unless retry_failed) failed.

    The local executor runs the sweep in `parallel` lanes: one job per lane, its runs one
    after another, so a workstation is not oversubscribed. The debug executor runs each
    run in this process, in order.
    """
    make_executor = EXECUTORS.get(executor_name)
    if parallel < 1:
        raise BenchError(f"--parallel must be >= 1, got {parallel}")
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
        write_state(sweep_dir / run.run_id, "submitted", executor=executor_name)
    executor = make_executor(sweep_dir / "submitit")
    if executor_name == "debug":
        lanes = [[run] for run in todo]
        threads = 0
    else:
        lanes = [todo[i::parallel] for i in range(min(parallel, len(todo)))]
        threads = max(1, (os.cpu_count() or 1) // len(lanes))  # each lane its share of the cores
    submitted = []
    for lane in lanes:
        job = executor.submit(Job([(run.config, sweep_dir / run.run_id) for run in lane], threads))
        if executor_name == "debug":
            try:
                job.result()  # the debug executor runs the job here, in this process
            except Exception as e:  # the run recorded its failure in state.json; carry on with the sweep
                log.error("%s failed: %s", lane[0].run_id, str(e).splitlines()[-1] if str(e) else type(e).__name__)
        for run in lane:
            run_dir = sweep_dir / run.run_id
            if run_state(run_dir)["state"] == "submitted":  # not started yet: remember who will run it
                write_state(run_dir, "submitted", executor=executor_name, job_id=job.job_id, pid=int(job.job_id))
            submitted.append((run.run_id, job.job_id))
    return submitted


def wait(sweep: Sweep, root: Path, poll_s: float = 2.0) -> None:
    """Block until every run of the sweep is done, failed or crashed."""
    sweep_dir = root / sweep.name
    while any(run_state(sweep_dir / r.run_id)["state"] in ("submitted", "running", "requeued") for r in sweep.runs):
        time.sleep(poll_s)
