"""Where a run stands: the run states, and their inference from a run folder and the cluster's queue.

The job writes state.json (`write_state`), the launcher job.json; both carry the submission's token,
so a run whose latest submission has not started yet reads as submitted. `run_state` joins the two
with what it can learn of the job that owns the run: its process on this machine (bench/processes.py)
or what SLURM's queue says (any object with `QueueView`'s methods: bench/launch/queue.py's `Queue` asks
squeue and sacct). No submitit and no torch here: `bench status` and the results tables read states.
"""

import logging
import socket
import time
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from bench.processes import pid_alive
from bench.rundir import STATE, last_line, read_state, read_submission, write_json

log = logging.getLogger(__name__)


class RunState(StrEnum):
    """A run's state, as state.json, job.json, `bench status` and the tables write it (str-valued)."""

    NEW = "new"  # nothing submitted yet
    SUBMITTED = "submitted"  # its latest submission has not started
    RUNNING = "running"
    REQUEUED = "requeued"  # pre-empted or out of time: back in the queue, resumes from its checkpoint
    TRAINED = "trained"  # trained; its evaluation is a job of its own (SLURM)
    EVALUATING = "evaluating"
    DONE = "done"  # trained and evaluated
    FAILED = "failed"  # the job recorded why
    CRASHED = "crashed"  # the job that owned it has gone without a word
    CANCELLED = "cancelled"  # `bench cancel`
    INTERRUPTED = "interrupted"  # a Ctrl-C
    DAMAGED = "damaged"  # a file of its folder cannot be read (bench status shows it; nothing writes it)


ACTIVE = (RunState.SUBMITTED, RunState.RUNNING, RunState.REQUEUED, RunState.EVALUATING)  # a job owns the run
STOPPED = (RunState.CANCELLED, RunState.INTERRUPTED)  # stopped on request; `bench sweep` resubmits and resumes them

# the jobs whose life decides whether a run in a state still has an owner
WATCHED = {
    RunState.SUBMITTED: ("job_id", "eval_job_id"),
    RunState.RUNNING: ("job_id",),
    RunState.REQUEUED: ("job_id",),
    RunState.TRAINED: ("eval_job_id",),  # its evaluation may still be queued
    RunState.EVALUATING: ("eval_job_id", "job_id"),
    RunState.CANCELLED: ("job_id", "eval_job_id"),  # a cancelled job may take KillWait seconds to end
    RunState.INTERRUPTED: ("job_id", "eval_job_id"),
}


class QueueView(Protocol):
    """What the cluster says about jobs (bench/launch/queue.py's `Queue`; tests pass their own)."""

    answered: bool  # False when squeue did not answer: nothing is known

    def get(self, job_id: str | None) -> str | None: ...  # "STATE" or "STATE (reason)"; None: unknown

    def active(self, job_id: str | None) -> bool: ...  # the job still owns its run

    def waiting(self, job_id: str | None) -> bool: ...  # pending, to (re)start

    def final(self, job_id: str | None) -> str: ...  # SLURM's last word on it ('' if none)


def write_state(run_dir: Path, state: RunState, **extra) -> None:
    """state.json: the run's state, when, on which host, and what the writer adds (token, process, error)."""
    write_json({"state": state, "time": time.time(), "host": socket.gethostname(), **extra}, run_dir / STATE)


def run_state(run_dir: Path, queue: QueueView | None = None) -> dict:
    """Where the run stands: its state.json, or 'submitted' while its latest submission has not
    started, with the submission's job ids; `active` while a job owns it; 'crashed' when the job
    that owned it has gone without a word (its process has ended, or SLURM no longer has it), with
    SLURM's last word and the last line of its log; 'requeued' while SLURM holds a job that last
    said 'running' as pending (a hard requeue). Without an answer from squeue a SLURM run keeps its
    state and stays owned: nothing is resubmitted on a guess. DamagedFile for a state.json or
    job.json that cannot be read."""
    state = read_state(run_dir) or {"state": RunState.NEW}
    submission = read_submission(run_dir) or {}
    submission.pop("previous", None)
    if submission and submission.get("token") != state.get("token"):
        state = {"state": RunState.SUBMITTED, "host": submission.get("host"), **submission}
    else:  # a pid and its identity come from the same file: the training process's, or its job's
        state = {**submission, **state} | ({"process": state.get("process")} if "pid" in state else {})
    executor, name = state.get("executor"), state["state"]
    state["active"] = name in ACTIVE
    if name == RunState.SUBMITTED and not any(state.get(k) for k in ("job_id", "eval_job_id", "pid")):
        # claimed, no job id recorded yet: owned while the launcher that claimed it lives
        launcher = {"host": submission.get("host"), "pid": submission.get("launcher_pid")}
        if pid_alive(launcher | {"process": submission.get("launcher")}) is False:
            state.update(state=RunState.CRASHED, active=False, error="the submission did not finish")
    elif executor == "slurm" and queue is not None and name in WATCHED:
        _slurm_state(state, queue)
    elif executor != "slurm" and name in (*ACTIVE, *STOPPED):  # a process of this machine (local, debug, train)
        alive = pid_alive(state)
        if name in STOPPED:
            state["active"] = bool(alive)
        elif alive is False:
            error = state.get("error") or last_line(state.get("log")) or "process ended"
            state.update(state=RunState.CRASHED, active=False, error=error)
    return state


def _slurm_state(state: dict, queue: QueueView) -> None:
    """A SLURM run's state joined with the queue: owned while one of its watched jobs is active."""
    name = state["state"]
    watched = [state[k] for k in WATCHED[name] if state.get(k)]
    shown = next((job for job in watched if queue.get(job)), None)  # the first job the queue knows
    state["queue"] = queue.get(shown) or ""
    alive = any(queue.active(job) for job in watched)
    if not queue.answered:
        state["active"] = state["active"] or (name in (RunState.TRAINED, *STOPPED) and bool(watched))
    elif name in (RunState.TRAINED, *STOPPED):
        state["active"] = alive
    elif not alive:
        known = state["queue"] or (queue.final(watched[0]) if watched else "")
        log_file = state.get("eval_log") if name == RunState.EVALUATING else state.get("log")
        reason = last_line(log_file) or "the job left the SLURM queue without a word"
        state.update(state=RunState.CRASHED, active=False, error=f"{known}: {reason}" if known else reason)
    elif name in (RunState.RUNNING, RunState.EVALUATING) and queue.waiting(shown):
        state["state"] = RunState.REQUEUED  # killed and requeued without a word (scontrol requeue, pre-emption)
