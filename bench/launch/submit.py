"""Submitting runs, and stopping them: the one path from "these runs" to jobs, and back.

`submit_runs` is what `bench sweep` (through `launch`) and `bench eval --executor` (through
`submit_evaluations`) both call: under a lock on the sweep folder (two `bench sweep` calls at once
never submit a run twice) it reads where each run stands, lets the caller pick a task for the runs no
job owns, and submits them. `submit` records each run's submission in its job.json (bench/runstate.py
reads it beside the job's state.json). `cancel` stops the jobs that own runs: scancel for SLURM jobs;
on this machine, only processes proven the runs' (bench/launch/stop.py).

    bench sweep sweeps/demo.yaml                      # local (slurm when sbatch is on PATH)
    bench sweep sweeps/demo.yaml --executor slurm --profile cluster.yaml
"""

import fcntl
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench.config.schema import RunConfig
from bench.errors import BenchError, DamagedFile
from bench.launch import slurm
from bench.launch.executors import EXECUTORS, SUBMISSION_ERRORS, LaunchOptions
from bench.launch.job import Task
from bench.launch.queue import Queue
from bench.launch.stop import stop_local
from bench.launch.sweep import Sweep
from bench.processes import me, recorded_process
from bench.rundir import STATE, SUBMISSION, RunDir, read_json, write_json
from bench.runstate import RunState, run_state, write_state


@contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """An exclusive lock on the sweep folder (flock: released if the process dies)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with (sweep_dir / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def withdraw(run_dir: Path, token: str) -> bool:
    """Put back the submission the run had before `token`'s (its job.json as it was), unless a job of
    that submission has started (its state.json carries the token): the run reads as it did before.
    True when withdrawn."""
    if (read_json(run_dir / STATE) or {}).get("token") == token:
        return False
    path = run_dir / SUBMISSION
    previous = (read_json(path) or {}).get("previous")
    if previous:
        write_json(previous, path)
    else:
        path.unlink(missing_ok=True)
    return True


def submit(tasks: list[Task], folder: Path, executor_name: str, options: LaunchOptions) -> list[dict]:
    """Submit, then record each run's submission (job.json: executor, token, this launching process, job
    ids, log files, and the submission before it). Call under `sweep_lock`. A refused submission (one
    line, BenchError), a bug or a Ctrl-C leaves the runs no job started as they were."""
    run = EXECUTORS.get(executor_name)
    token, launcher = uuid.uuid4().hex, me()
    # until the job ids are known the runs are this process's (a claim); then it is who submitted them
    claim = {
        "executor": executor_name,
        "token": token,
        "host": socket.gethostname(),
        "submitted": time.time(),
        "launcher_pid": launcher["pid"],
        "launcher": launcher["process"],
    }
    previous = {}

    def prepare(task: Task) -> None:
        RunDir(task.run_dir).prepare(task.config)  # the run's one check of its folder: the job trusts it
        before = read_json(task.run_dir / SUBMISSION)
        previous[task.run_dir] = {k: v for k, v in before.items() if k != "previous"} if before else None
        write_json(claim | {"previous": previous[task.run_dir]}, task.run_dir / SUBMISSION)

    submitted = False
    try:
        with ThreadPoolExecutor(4) as pool:  # 1,000 runs write 1,000 folders: overlap the file system's waits
            list(pool.map(prepare, tasks))
        try:
            jobs = run([replace(task, prepared=True) for task in tasks], folder, options, token)
        except SUBMISSION_ERRORS as e:  # e.g. sbatch refused the job
            reason = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            raise BenchError(f"{executor_name} submission failed: {reason}") from None
        submitted = True
    finally:
        if not submitted:  # refused, a bug or a Ctrl-C: the runs go back to where they were
            for task in tasks:
                if task.run_dir in previous:
                    withdraw(task.run_dir, token)
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda pair: write_json(
                    claim | pair[1] | {"previous": previous[pair[0].run_dir]}, pair[0].run_dir / SUBMISSION
                ),
                zip(tasks, jobs, strict=True),
            )
        )
    return jobs


def submitted_here(run_dirs: list[Path]) -> list[Path]:
    """The runs whose latest submission this process made: what a Ctrl-C in it stops, wherever the
    Ctrl-C came (even amid a submission, before the runs were reported)."""
    mine = {"host": socket.gethostname(), "launcher": me()["process"]}
    ours = []
    for run_dir in run_dirs:
        try:
            job = read_json(run_dir / SUBMISSION) or {}
        except DamagedFile:  # this process writes whole files: not one of its runs
            continue
        if job.get("host") == mine["host"] and job.get("launcher") == mine["launcher"]:
            ours.append(run_dir)
    return ours


def submit_runs(
    run_dirs: list[Path],
    sweep_dir: Path,
    executor_name: str,
    options: LaunchOptions,
    task_for: Callable[[Path, dict], Task | None],
) -> list[tuple[Task, dict]]:
    """The one submission path of `bench sweep` (`launch`) and `bench eval --executor`: under the sweep
    folder's lock, `task_for(run_dir, its run_state)` says what to submit for each run (None: nothing);
    those tasks are submitted as jobs named after the sweep folder. The tasks and their jobs."""
    EXECUTORS.get(executor_name)
    with sweep_lock(sweep_dir):
        queue = Queue()
        tasks = [task for run_dir in run_dirs if (task := task_for(run_dir, run_state(run_dir, queue))) is not None]
        if not tasks:
            return []
        options = replace(options, name=f"bench-{sweep_dir.name}")
        jobs = submit(tasks, sweep_dir / "submitit", executor_name, options)
    return list(zip(tasks, jobs, strict=True))


def launch(
    sweep: Sweep, root: Path, executor_name: str, options: LaunchOptions | None = None, retry_failed: bool = False
) -> list[tuple[str, dict]]:
    """Submit every run of the sweep that is not done or active (nor failed, unless retry_failed);
    a trained run whose evaluation was lost is submitted for evaluation only. (run id, job) per run."""
    EXECUTORS.get(executor_name)
    sweep_dir = root / sweep.name
    configs = {sweep_dir / run.run_id: run.config for run in sweep.ready(root)[0]}

    def task_for(run_dir: Path, state: dict) -> Task | None:
        name = state["state"]
        if state["active"] or name == RunState.DONE or (name == RunState.FAILED and not retry_failed):
            return None
        return Task(configs[run_dir], run_dir, train=not RunDir(run_dir).trained())

    submitted = submit_runs(list(configs), sweep_dir, executor_name, options or LaunchOptions(), task_for)
    return [(task.run_dir.name, job) for task, job in submitted]


def submit_evaluations(
    configs: dict[Path, RunConfig], sweep_dir: Path, executor_name: str, options: LaunchOptions
) -> list[tuple[Task, dict]]:
    """`bench eval --executor`: an evaluation job for each trained run (its config given) no job owns."""

    def task_for(run_dir: Path, state: dict) -> Task | None:
        return None if state["active"] else Task(configs[run_dir], run_dir, train=False)

    return submit_runs(list(configs), sweep_dir, executor_name, options, task_for)


def wait(sweep: Sweep, root: Path, poll_s: float = 2.0) -> None:
    """Block until no run of the sweep is active any more."""
    sweep_dir = root / sweep.name

    def active() -> bool:
        queue = Queue()  # squeue asked once a poll, not once a run
        return any(run_state(sweep_dir / r.run_id, queue)["active"] for r in sweep.ready(root)[0])

    while active():
        time.sleep(poll_s)


def cancel(run_dirs: list[Path], sweep_dir: Path, reason: RunState = RunState.CANCELLED) -> list[Path]:
    """Stop the jobs that own the given runs and record each run `reason`: cancelled (`bench cancel`)
    or interrupted (a Ctrl-C); `bench sweep` resubmits both and they resume from their checkpoints.
    SLURM jobs: scancel. Jobs on this machine: `stop_local`, which signals a process only when host,
    pid and identity prove it the run's. After a Ctrl-C a run whose job never started goes back to
    how it was. A damaged state.json or job.json refuses (DamagedFile) before anything is signalled."""
    with sweep_lock(sweep_dir):
        queue = Queue()
        states = {d: run_state(d, queue) for d in run_dirs}
        owned = {d: s for d, s in states.items() if s["active"]}
        on_slurm = [s for s in owned.values() if s.get("executor") == "slurm"]
        slurm.cancel(sorted({s[k] for s in on_slurm for k in ("job_id", "eval_job_id") if s.get(k)}))
        here = {d: s for d, s in owned.items() if s.get("executor") != "slurm"}
        # the training process is the one state.json names; a local lane's controller, the one job.json names
        workers = {
            recorded_process(s)["pid"]: s
            for s in here.values()
            if s["state"] != RunState.SUBMITTED and recorded_process(s)
        }
        controllers = {}
        for d, s in here.items():
            job = read_json(d / SUBMISSION) or {}
            if s.get("executor") == "local" and recorded_process(job):
                controllers[job["process"]["pid"]] = job
        stop_local(list(workers.values()), list(controllers.values()))
        for run_dir, state in owned.items():
            never_started = reason == RunState.INTERRUPTED and state["state"] == RunState.SUBMITTED
            if never_started and withdraw(run_dir, state["token"]):
                continue
            write_state(run_dir, reason, token=state.get("token"))
    return list(owned)
