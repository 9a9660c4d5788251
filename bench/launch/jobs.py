"""Launching: one job class for every launch, executors registered by name.

A `Job` is a list of tasks, each "train this run folder to its budget" and/or "evaluate it".
It is a submitit Checkpointable: on pre-emption or timeout (SLURM's USR2) training stops at
the next step boundary with a checkpoint, `checkpoint()` resubmits the same job, and the run
resumes where it stopped. A job with several tasks per node trains each run with DDP.

Executors:
    local   one process per lane of runs (`--parallel` lanes), each run trained then evaluated
    debug   in this process, one run after the other
    slurm   one job array per sweep for training, one chained evaluation array (bench/launch/slurm.py)

Each run folder says where it stands: `job.json` (written here when a job is submitted) and
`state.json` (written by the job). Both carry the submission's token, so a run whose latest
submission has not started yet reads as submitted. Submission holds a lock on the sweep
folder: two `bench sweep` calls at once never submit a run twice.

A process is named by its host, pid and identity (start time since boot and boot id, from
Linux's /proc): a pid that an unrelated process holds now reads as the run's process having
ended, and is never signalled. Stopping a run (`bench cancel`, a Ctrl-C in `bench sweep --wait`
or `bench train`) ends its training at a step boundary with a checkpoint where it can, so
`bench sweep` resumes it.

    bench sweep sweeps/demo.yaml                      # local (slurm when sbatch is on PATH)
    bench sweep sweeps/demo.yaml --executor slurm --profile cluster.yaml
"""

import contextlib
import fcntl
import functools
import io
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError
from submitit.local import local as submitit_local

from bench.config.schema import RunConfig
from bench.errors import BenchError, DamagedFile, TrainingFailed
from bench.launch import slurm
from bench.launch.slurm import SlurmConfig
from bench.launch.sweep import Sweep
from bench.rundir import (
    STATE,
    SUBMISSION,
    SUMMARY,
    last_line,
    prepare_run_dir,
    read_json,
    read_state,
    read_submission,
    write_json,
)
from bench.tracking import EXIT_INTERRUPTED, Tracker
from core.registry import Registry

log = logging.getLogger(__name__)

EXECUTORS: Registry = Registry("executor")
ACTIVE = ("submitted", "running", "requeued", "evaluating")  # a job owns the run
STOPPED = ("cancelled", "interrupted")  # stopped on request; `bench sweep` resubmits and resumes them
FINISHED = ("done", "failed", "crashed", *STOPPED)
# what submitit raises when a submission is refused: sbatch's error (FailedJobError), an answer it cannot
# read (FailedSubmissionError), no sbatch or no permission to run it, a controller that cannot start (OSError)
SUBMISSION_ERRORS = (FailedJobError, FailedSubmissionError, OSError)
GRACE_S = 20.0  # a local job asked to stop finishes its step, checkpoints and closes its W&B run within this


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@dataclass
class Task:
    config: RunConfig
    run_dir: Path
    train: bool = True  # train to the budget (resuming), or only evaluate a trained run
    evaluate: bool = True


@dataclass
class LaunchOptions:
    parallel: int = 1  # local: runs trained at the same time
    evaluate: bool = True
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    name: str = "bench"  # job name on the cluster


# --- processes: which one is the run's, and stopping it -----------------------------------------

PROC = Path("/proc")


def process_identity(pid: int) -> dict | None:
    """What tells a process from a later one given the same pid: the pid, its start time (clock ticks
    after boot, /proc/PID/stat field 22) and the boot's id; no two processes of a machine share all
    three. (Not its command line: an exec changes it, and a process read as it starts shows its parent's
    or none, so a controller read just after it started would later look like another process.) None
    when no such process lives (a zombie counts as ended: it only waits for its parent to reap it)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        boot = boot_id()
    except OSError:  # no such process (or no /proc: see pid_alive)
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces and ')'
    if fields[0] in ("Z", "X"):
        return None
    return {"pid": pid, "start": int(fields[19]), "boot": boot}


@functools.cache
def boot_id() -> str:
    """This boot's id: read once, it does not change while this process lives."""
    return (PROC / "sys/kernel/random/boot_id").read_text().strip()


@functools.cache
def own_identity(pid: int) -> dict | None:
    """This process's identity (keyed by pid: a forked child computes its own)."""
    return process_identity(pid)


def me() -> dict:
    """What a writer records about itself: its pid and identity."""
    return {"pid": os.getpid(), "process": own_identity(os.getpid())}


def recorded_process(record: dict) -> dict | None:
    """The process identity a record holds; None when it holds none (an older version's) or a malformed one."""
    process = record.get("process")
    return process if isinstance(process, dict) and isinstance(process.get("pid"), int) else None


def pid_alive(state: dict) -> bool | None:
    """Whether the process a record names (`host`, and `process`: its identity, else a bare `pid` from
    an older version) is alive and still that process. A pid held by another process now reads as
    False: the run's process has ended. None when this machine cannot tell: another host, no pid, no
    /proc, or a bare pid that is alive but cannot be proven the run's."""
    recorded = recorded_process(state)
    pid = recorded["pid"] if recorded else state.get("pid")
    if state.get("host") != socket.gethostname() or not isinstance(pid, int) or not (PROC / "self/stat").is_file():
        return None
    now = process_identity(pid)
    if now is None:
        return False
    return all(recorded.get(key) == value for key, value in now.items()) if recorded else None


def signal_process(record: dict, sig: int) -> bool:
    """Send `sig` to the process a record names, only when it is provably that process; True when sent.
    Through a pidfd where the kernel has them: the process checked is the one signalled, even if it
    ends and its pid is reused in between."""
    process = recorded_process(record)
    if process is None or process["pid"] == os.getpid():
        return False
    pid = process["pid"]
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # a kernel before 5.3: check, then signal by pid
        fd = None
    try:
        if not pid_alive(record):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def kill_job(controller: dict) -> None:
    """SIGKILL a local job: the process group its controller leads (the controller, the training
    process and its data-loading workers), or the controller alone when it leads none."""
    if not pid_alive(controller):
        return
    pid = controller["process"]["pid"]  # pid_alive proved it well formed
    try:
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, signal.SIGKILL)
            return
    except ProcessLookupError:
        return
    signal_process(controller, signal.SIGKILL)


def stop_local(workers: list[dict], controllers: list[dict]) -> None:
    """Stop local jobs: SIGINT to each training process (it ends its step with a checkpoint, records
    itself interrupted and closes its W&B run), then, after at most GRACE_S, SIGKILL to whatever of the
    jobs still lives. Only processes proven to be the runs' are signalled."""
    asked = [w for w in workers if signal_process(w, signal.SIGINT)]
    end = time.time() + GRACE_S
    while asked and time.time() < end and any(pid_alive(r) for r in asked + controllers):
        time.sleep(0.1)
    for controller in controllers:
        kill_job(controller)
    for worker in workers:
        signal_process(worker, signal.SIGKILL)


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


# --- the job ------------------------------------------------------------------------------


def write_state(run_dir: Path, state: str, **extra) -> None:
    write_json({"state": state, "time": time.time(), "host": socket.gethostname(), **extra}, run_dir / STATE)


def job_environment() -> submitit.JobEnvironment | None:
    try:
        return submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (e.g. `bench train`)
        return None


def init_distributed(env: submitit.JobEnvironment | None) -> bool:
    """One process per task: join them into a torch.distributed group (NCCL on GPUs, gloo on CPU)."""
    if env is None or env.num_tasks < 2:
        return False
    import torch

    # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK; CUDA_VISIBLE_DEVICES stays SLURM's (the engine
    # picks the GPU of LOCAL_RANK among the job's), and a value inherited from the submitting shell is replaced
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    torch.distributed.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return True


class Job:
    """Run each task in turn: train (resuming from any checkpoint), then evaluate. A failed
    task is recorded in its state.json and the next one still runs. A Ctrl-C (SIGINT) records
    the run as interrupted, closes its W&B run with a non-zero exit code and stops the job."""

    def __init__(self, tasks: list[Task], token: str | None = None, threads: int = 0) -> None:
        self.tasks, self.token, self.threads = tasks, token, threads
        self.signal: tuple | None = None  # the pre-emption signal, caught during training
        self.interrupt = False  # a Ctrl-C caught during training: stop at the end of the step
        self.training = False  # the signals wait for the end of the step only while training
        self.main = True  # process 0 of the job (or its only process)

    def __call__(self) -> list[dict]:
        import torch

        setup_logging()
        threads = self.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", 0))
        if threads:
            torch.set_num_threads(threads)
        env = job_environment()
        distributed = init_distributed(env)
        self.main = not distributed or torch.distributed.get_rank() == 0
        job_id = env.job_id if env else None
        try:
            with self.deferred_signals() as requeue:
                return self.run_all(job_id, requeue)
        finally:
            if distributed:
                torch.distributed.destroy_process_group()

    def state(self, run_dir: Path, state: str, **extra) -> None:
        if self.main:  # process 0 speaks for a multi-process job
            write_state(run_dir, state, token=self.token, **me(), **extra)

    def superseded(self, run_dir: Path) -> bool:
        """Whether the run's latest submission is another one (withdrawn after a Ctrl-C, or replaced):
        then this job leaves the run alone. `bench train` (no token) always owns its folder."""
        return self.token is not None and (read_json(run_dir / SUBMISSION) or {}).get("token") != self.token

    def run_all(self, job_id: str | None, requeue) -> list[dict]:
        from bench.train.loop import Preempted

        summaries, errors = [], []
        for task in self.tasks:
            job = {"job_id": job_id} if job_id else {}
            try:
                if self.superseded(task.run_dir):
                    log.warning("%s: its submission was withdrawn or replaced; this job leaves it alone", task.run_dir)
                    continue
                if self.main:
                    prepare_run_dir(task.config, task.run_dir)
            except BenchError as e:  # another config in the folder, a damaged file: not this job's to write
                log.error("%s: %s", task.run_dir, e)
                errors.append(e)
                continue
            tracker = Tracker(task.config, task.run_dir, "train" if task.train else "eval") if self.main else None
            try:
                tracker.start() if tracker else None
                summaries += self.run_task(task, job, requeue, tracker)
            except Preempted:
                self.state(task.run_dir, "requeued", **job)
                requeue()  # submitit checkpoints this job, requeues it and exits
                return summaries  # other processes of the job: process 0 requeues for them
            except KeyboardInterrupt:  # Ctrl-C, `bench cancel`: resumable, from the checkpoint
                if self.main:  # not naming this process, which ends now: the run is free once its job is
                    write_state(task.run_dir, "interrupted", token=self.token, **job)
                if tracker is not None:
                    tracker.finish(exit_code=EXIT_INTERRUPTED)
                raise
            except Exception as e:  # recorded in the run's state.json; the other tasks carry on
                reason = str(e) if isinstance(e, TrainingFailed | BenchError) else f"{type(e).__name__}: {e}"
                log.error("%s failed: %s", task.run_dir, reason)
                self.state(task.run_dir, "failed", error=(reason.splitlines() or [""])[0], **job)
                errors.append(e)
                if tracker is not None:
                    tracker.finish(exit_code=1)
            finally:
                if tracker is not None:
                    tracker.finish()
        if errors:
            raise errors[0]
        return summaries

    def run_task(self, task: Task, job: dict, requeue, tracker: Tracker | None) -> list[dict]:
        """Train and/or evaluate one run; [] when it is done already."""
        from bench.evals.run import evaluate_run
        from bench.train.engine import train
        from bench.train.loop import Preempted

        summary = read_json(task.run_dir / SUMMARY) or {}
        if task.train:
            if (read_json(task.run_dir / STATE) or {}).get("state") == "done":
                return []
            self.state(task.run_dir, "running", **job)
            self.training = True
            try:
                on_log = tracker.log if tracker else None
                stop = lambda: self.signal is not None or self.interrupt  # noqa: E731
                summary = train(task.config, task.run_dir, stop=stop, on_log=on_log)
            except Preempted:
                if self.interrupt:  # the step is checkpointed: the run resumes from it
                    raise KeyboardInterrupt from None
                raise
            finally:
                self.training = False
            if tracker:
                tracker.summary({"compute": summary.get("compute", {}), "status": summary.get("status")})
            if not task.evaluate:
                self.state(task.run_dir, "trained", **job)
            if self.interrupt:  # it came during the last step: trained; the evaluation waits for a rerun
                raise KeyboardInterrupt
            if self.signal:  # it came during the last step: the run is trained, the job goes back
                requeue()
        if task.evaluate and self.main:
            if summary.get("status") != "done":
                raise BenchError(f"{task.run_dir} is not trained yet: nothing to evaluate")
            self.state(task.run_dir, "evaluating", **job)
            summary["eval"] = evaluate_run(task.run_dir)
            if tracker:  # with the compute: one W&B run holds both axes of a compute-against-accuracy plot
                tracker.summary({"compute": summary.get("compute", {}), "eval": summary["eval"]})
            self.state(task.run_dir, "done", **job)
        return [summary]

    @contextmanager
    def deferred_signals(self) -> Iterator:
        """SLURM warns a job with USR2 before pre-empting it or ending its time; submitit's
        handler then checkpoints and requeues at once. During training the signal is held until
        the current step ends and the engine has written a checkpoint at that step. A Ctrl-C
        (SIGINT: the terminal, `bench cancel` of a local job) during training likewise stops at
        the end of the step, with a checkpoint; a second one, or one outside training, at once."""
        previous = {}
        if threading.current_thread() is threading.main_thread():  # Python's rule for signal handlers

            def interrupt(signum, frame) -> None:
                if not self.training or self.interrupt:
                    raise KeyboardInterrupt
                self.interrupt = True  # the engine stops after this step
                log.warning("interrupted: stopping at the end of this step (Ctrl-C again to stop at once)")

            previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
        submitit_handler = signal.getsignal(signal.SIGUSR2)

        def requeue() -> None:
            if self.main and self.signal:  # the other processes stopped because process 0 did
                submitit_handler(*self.signal)

        if callable(submitit_handler):  # in a submitit job: something to requeue

            def preempted(signum, frame) -> None:
                if self.training:
                    self.signal = (signum, frame)  # the engine stops after this step
                else:  # setting up, evaluating: requeue now (an evaluation starts again from its feature cache)
                    submitit_handler(signum, frame)

            previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, preempted)
        try:
            yield requeue
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on pre-emption/timeout: resubmit; each run resumes from its checkpoint."""
        for task in self.tasks:
            if (read_json(task.run_dir / STATE) or {}).get("state") == "running":
                self.state(task.run_dir, "requeued")
        return submitit.helpers.DelayedSubmission(Job(self.tasks, self.token, self.threads))


# --- executors: submit tasks, say which job runs each ---------------------------------------


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


# --- where runs stand -----------------------------------------------------------------------


class Queue:
    """What the cluster says about jobs: squeue asked once (lazily: a local sweep never asks),
    sacct only for jobs squeue has forgotten, and never again once it said accounting is off."""

    def __init__(self) -> None:
        self._jobs: dict[str, str] | None = None
        self.answered = True
        self._accounting = True

    def get(self, job_id: str | None) -> str | None:
        if job_id is None:
            return None
        if self._jobs is None:
            jobs = slurm.queue() if slurm.available() else None
            self.answered = jobs is not None
            self._jobs = jobs or {}
        return self._jobs.get(str(job_id))

    def active(self, job_id: str | None) -> bool:
        return slurm.is_active(self.get(job_id))

    def final(self, job_id: str | None) -> str:
        """SLURM's last word on a job: squeue's while it remembers, then sacct's."""
        if job_id is None:
            return ""
        known = self.get(job_id)
        if known is None and self._accounting:
            states = slurm.accounted([str(job_id)])
            self._accounting = states is not None
            known = (states or {}).get(str(job_id))
        return known or ""


# the jobs whose life decides whether a run in a state still has an owner
WATCHED = {
    "submitted": ("job_id", "eval_job_id"),
    "running": ("job_id",),
    "requeued": ("job_id",),
    "trained": ("eval_job_id",),  # its evaluation may still be queued
    "evaluating": ("eval_job_id", "job_id"),
    "cancelled": ("job_id", "eval_job_id"),  # a cancelled job may take KillWait seconds to end
    "interrupted": ("job_id", "eval_job_id"),
}


def run_state(run_dir: Path, queue: Queue | None = None) -> dict:
    """Where the run stands: its state.json, or 'submitted' while its latest submission has not
    started, with the submission's job ids; `active` while a job owns it; 'crashed' when the job
    that owned it has gone without a word (its process has ended, or SLURM no longer has it), with
    SLURM's last word and the last line of its log; 'requeued' while SLURM holds a job that last
    said 'running' as pending (a hard requeue). Without an answer from squeue a SLURM run keeps its
    state and stays owned: nothing is resubmitted on a guess. DamagedFile for a state.json or
    job.json that cannot be read."""
    state = read_state(run_dir) or {"state": "new"}
    submission = read_submission(run_dir) or {}
    submission.pop("previous", None)
    if submission and submission.get("token") != state.get("token"):
        state = {"state": "submitted", "host": submission.get("host"), **submission}
    else:  # a pid and its identity come from the same file: the training process's, or its job's
        state = {**submission, **state} | ({"process": state.get("process")} if "pid" in state else {})
    executor, name = state.get("executor"), state["state"]
    state["active"] = name in ACTIVE
    if name == "submitted" and not any(state.get(k) for k in ("job_id", "eval_job_id", "pid")):
        # claimed, no job id recorded yet: owned while the launcher that claimed it lives
        launcher = {"host": submission.get("host"), "pid": submission.get("launcher_pid")}
        if pid_alive(launcher | {"process": submission.get("launcher")}) is False:
            state.update(state="crashed", active=False, error="the submission did not finish")
    elif executor == "slurm" and queue is not None and name in WATCHED:
        watched = [state[k] for k in WATCHED[name] if state.get(k)]
        state["queue"] = next((q for q in map(queue.get, watched) if q), "")
        alive = any(queue.active(j) for j in watched)
        if not queue.answered:
            state["active"] = state["active"] or (name in ("trained", *STOPPED) and bool(watched))
        elif name in ("trained", *STOPPED):
            state["active"] = alive
        elif not alive:
            known = state["queue"] or (queue.final(watched[0]) if watched else "")
            log_file = state.get("eval_log") if name == "evaluating" else state.get("log")
            reason = last_line(log_file) or "the job left the SLURM queue without a word"
            state.update(state="crashed", active=False, error=f"{known}: {reason}" if known else reason)
        elif name in ("running", "evaluating") and slurm.is_waiting(state["queue"]):
            state["state"] = "requeued"  # killed and requeued without a word (scontrol requeue, pre-emption)
    elif executor != "slurm" and name in (*ACTIVE, *STOPPED):  # a process of this machine (local, debug, train)
        alive = pid_alive(state)
        if name in STOPPED:
            state["active"] = bool(alive)
        elif alive is False:
            error = state.get("error") or last_line(state.get("log")) or "process ended"
            state.update(state="crashed", active=False, error=error)
    return state


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
        prepare_run_dir(task.config, task.run_dir)
        before = read_json(task.run_dir / SUBMISSION)
        previous[task.run_dir] = {k: v for k, v in before.items() if k != "previous"} if before else None
        write_json(claim | {"previous": previous[task.run_dir]}, task.run_dir / SUBMISSION)

    submitted = False
    try:
        with ThreadPoolExecutor(4) as pool:  # 1,000 runs write 1,000 folders: overlap the file system's waits
            list(pool.map(prepare, tasks))
        try:
            jobs = run(tasks, folder, options, token)
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


def trained(run_dir: Path) -> bool:
    return (read_json(run_dir / SUMMARY) or {}).get("status") == "done"


def launch(
    sweep: Sweep, root: Path, executor_name: str, options: LaunchOptions | None = None, retry_failed: bool = False
) -> list[tuple[str, dict]]:
    """Submit every run of the sweep that is not done or active (nor failed, unless retry_failed);
    a trained run whose evaluation was lost is submitted for evaluation only."""
    options = options or LaunchOptions()
    EXECUTORS.get(executor_name)
    sweep_dir = root / sweep.name
    with sweep_lock(sweep_dir):
        queue, todo = Queue(), []
        for run in sweep.ready(root)[0]:
            state = run_state(sweep_dir / run.run_id, queue)
            if state["active"] or state["state"] == "done" or (state["state"] == "failed" and not retry_failed):
                continue
            done_training = state["state"] == "trained" or trained(sweep_dir / run.run_id)
            todo.append((run.run_id, Task(run.config, sweep_dir / run.run_id, train=not done_training)))
        if not todo:
            return []
        options = replace(options, name=f"bench-{sweep.name}")
        jobs = submit([task for _, task in todo], sweep_dir / "submitit", executor_name, options)
    return [(run_id, job) for (run_id, _), job in zip(todo, jobs, strict=True)]


def wait(sweep: Sweep, root: Path, poll_s: float = 2.0) -> None:
    """Block until no run of the sweep is active any more."""
    sweep_dir = root / sweep.name

    def active() -> bool:
        queue = Queue()  # squeue asked once a poll, not once a run
        return any(run_state(sweep_dir / r.run_id, queue)["active"] for r in sweep.ready(root)[0])

    while active():
        time.sleep(poll_s)


def cancel(run_dirs: list[Path], sweep_dir: Path, reason: str = "cancelled") -> list[Path]:
    """Stop the jobs that own the given runs and record each run `reason`: cancelled (`bench cancel`)
    or interrupted (a Ctrl-C); `bench sweep` resubmits both and they resume from their checkpoints.
    SLURM jobs: scancel. Jobs on this machine: `stop_local`, which signals a process only when host,
    pid and identity prove it the run's. After a Ctrl-C a run whose job never started goes back to
    how it was. A damaged state.json or job.json refuses (DamagedFile) before anything is signalled."""
    with sweep_lock(sweep_dir):
        queue = Queue()
        states = {d: run_state(d, queue) for d in run_dirs}
        owned = {d: s for d, s in states.items() if s["active"]}
        slurm.cancel(
            sorted(
                {
                    s[k]
                    for s in owned.values()
                    if s.get("executor") == "slurm"
                    for k in ("job_id", "eval_job_id")
                    if s.get(k)
                }
            )
        )
        here = {d: s for d, s in owned.items() if s.get("executor") != "slurm"}
        # the training process is the one state.json names; a local lane's controller, the one job.json names
        workers = {
            recorded_process(s)["pid"]: s for s in here.values() if s["state"] != "submitted" and recorded_process(s)
        }
        controllers = {}
        for d, s in here.items():
            job = read_json(d / SUBMISSION) or {}
            if s.get("executor") == "local" and recorded_process(job):
                controllers[job["process"]["pid"]] = job
        stop_local(list(workers.values()), list(controllers.values()))
        for run_dir, state in owned.items():
            if reason == "interrupted" and state["state"] == "submitted" and withdraw(run_dir, state["token"]):
                continue
            write_state(run_dir, reason, token=state.get("token"))
    return list(owned)
