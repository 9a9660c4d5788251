"""Executors, registered by name: each submits a list of tasks and says which job runs each.

    local   one process per lane of runs (`--parallel` lanes), each run trained then evaluated
    debug   in this process, one run after the other
    slurm   one job array per sweep for training, one chained evaluation array (bench/launch/slurm.py)

An executor is `run(tasks, folder, options, token) -> [{job_id, log, ...} per task]`; bench/launch/submit.py
calls it and records what it returns in each run's job.json.
"""

import contextlib
import functools
import io
import logging
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.local import local as submitit_local

from bench.errors import BenchError, TrainingFailed
from bench.launch import slurm
from bench.launch.job import Job, Task
from bench.launch.slurm import SlurmConfig
from bench.launch.stop import kill_job
from bench.processes import me, process_identity
from core.registry import Registry

log = logging.getLogger(__name__)

EXECUTORS: Registry = Registry("executor")
# what submitit raises when a submission is refused: sbatch's error (FailedJobError), an answer it cannot
# read (FailedSubmissionError), no sbatch or no permission to run it, a controller that cannot start (OSError)
SUBMISSION_ERRORS = (FailedJobError, FailedSubmissionError, OSError)


@dataclass
class LaunchOptions:
    parallel: int = 1  # local: runs trained at the same time
    evaluate: bool = True
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    name: str = "bench"  # job name on the cluster


@contextmanager
def detached_controllers(log: Path) -> Iterator[None]:
    """submitit's LocalExecutor starts each job's controller (`subprocess.Popen`) with the caller's
    stdin, stdout and stderr and in the caller's process group: a pipe reading `bench sweep`'s output
    (`| tee`, `$(...)`) then stays open until the jobs end, and a Ctrl-C at the terminal reaches the
    jobs. While this holds, a controller starts in a session of its own (its process group is the job:
    what `cancel` kills), reading nothing and writing to `log`."""
    real = submitit_local.subprocess
    with log.open("ab") as out:
        popen = functools.partial(real.Popen, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        submitit_local.subprocess = SimpleNamespace(**{**vars(real), "Popen": popen})
        try:
            yield
        finally:
            submitit_local.subprocess = real


@EXECUTORS.register("local")
def submit_local(tasks: list[Task], folder: Path, options: LaunchOptions, token: str) -> list[dict]:
    """`parallel` lanes, one process each, its runs one after another, each lane its share of the cores.
    A lane's job is a submitit controller (its pid is the job id) that starts the training process;
    the controller leads a process group of its own (see `detached_controllers`)."""
    import torch

    if options.parallel < 1:
        raise BenchError(f"--parallel must be >= 1, got {options.parallel}")
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=7 * 24 * 60)
    lanes = [tasks[i :: options.parallel] for i in range(min(options.parallel, len(tasks)))]
    threads = max(1, (os.cpu_count() or 1) // len(lanes))
    gpus = list(range(torch.cuda.device_count()))
    jobs, started, submitted = {}, [], False
    try:
        for i, lane in enumerate(lanes):
            if gpus:  # submitit hides every GPU from a local job that asks for none: each lane its share
                mine = gpus[i :: len(lanes)] or [gpus[i % len(gpus)]]
                executor.update_parameters(gpus_per_node=len(mine), visible_gpus=mine)
            with detached_controllers(folder / "controllers.log"):
                job = executor.submit(Job(lane, token, threads))
            controller = {"pid": int(job.job_id), "process": process_identity(int(job.job_id))}
            started.append({"host": socket.gethostname(), **controller})
            for task in lane:
                jobs[task.run_dir] = {"job_id": job.job_id, **controller, "log": str(job.paths.stderr)}
        submitted = True
    finally:
        if not submitted:  # refused, a bug or a Ctrl-C: the lanes already started stop with it
            for controller in started:
                kill_job(controller)
    return [jobs[task.run_dir] for task in tasks]


@EXECUTORS.register("debug")
def submit_debug(tasks: list[Task], folder: Path, options: LaunchOptions, token: str) -> list[dict]:
    """In this process, one run after the other: a failed run is recorded and the next one runs; a bug
    stops the sweep with its traceback. (Not submitit's DebugExecutor: a failed job opens pdb there.)"""
    for task in tasks:
        try:
            Job([task], token)()
        except (TrainingFailed, BenchError) as e:  # recorded in the run's state.json; the sweep carries on
            log.error("%s failed: %s", task.run_dir.name, (str(e).splitlines() or [type(e).__name__])[0])
    return [{"job_id": str(os.getpid()), **me()} for _ in tasks]


def submit_array(executor, jobs: list[Job]) -> list:
    # submitit prints sbatch's complaint on stderr before raising it: it comes once, in our error's line
    # (outside the batch: its sbatch runs when the batch closes)
    with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # one sbatch for all of them
        submitted = [executor.submit(job) for job in jobs]
    return submitted


@EXECUTORS.register("slurm")
def submit_slurm(tasks: list[Task], folder: Path, options: LaunchOptions, token: str) -> list[dict]:
    """A training array (one task per run, `array_parallelism` at once) and an evaluation array
    chained to it task by task; runs already trained get an evaluation array of their own."""
    cfg = options.slurm
    jobs: dict[Path, dict] = {task.run_dir: {} for task in tasks}
    to_train = [task for task in tasks if task.train]
    to_evaluate = [task for task in tasks if not task.train]
    if to_train:
        executor = slurm.executor(folder, cfg, f"{options.name}-train", evaluation=False)
        trained = submit_array(executor, [Job([replace(task, evaluate=False)], token) for task in to_train])
        for task, job in zip(to_train, trained, strict=True):
            jobs[task.run_dir] |= {"job_id": job.job_id, "log": str(job.paths.stderr)}
        if options.evaluate:
            first = trained[0].job_id
            after = f"aftercorr:{slurm.array_id(first)}" if "_" in first else f"afterok:{first}"
            submitted = False
            try:
                executor = slurm.executor(folder, cfg, f"{options.name}-eval", evaluation=True, dependency=after)
                evals = submit_array(executor, [Job([replace(t, train=False)], token) for t in to_train])
                submitted = True
            finally:
                if not submitted:  # refused, a bug or a Ctrl-C: no training array without its evaluations
                    cancel_quietly(slurm.array_id(first))
            for task, job in zip(to_train, evals, strict=True):
                jobs[task.run_dir] |= {"eval_job_id": job.job_id, "eval_log": str(job.paths.stderr)}
    if to_evaluate:
        executor = slurm.executor(folder, cfg, f"{options.name}-eval", evaluation=True)
        evals = submit_array(executor, [Job([task], token) for task in to_evaluate])
        for task, job in zip(to_evaluate, evals, strict=True):
            jobs[task.run_dir] |= {"eval_job_id": job.job_id, "eval_log": str(job.paths.stderr)}
    return [jobs[task.run_dir] for task in tasks]


def cancel_quietly(job_id: str) -> None:
    """scancel during a rollback: its own failure is logged, so the error that caused the rollback shows."""
    try:
        slurm.cancel([job_id])
    except BenchError as e:
        log.error("could not cancel job %s (%s): cancel it by hand (scancel %s)", job_id, e, job_id)
