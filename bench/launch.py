"""Launching: one job class for every launch, executors registered by name.

A `Job` is a list of tasks, each "train this run folder to its budget" and/or "evaluate it".
It is a submitit Checkpointable: on pre-emption or timeout (SLURM's USR2) training stops at
the next step boundary with a checkpoint, `checkpoint()` resubmits the same job, and the run
resumes where it stopped. A job with several tasks per node trains each run with DDP.

Executors:
    local   one process per lane of runs (`--parallel` lanes), each run trained then evaluated
    debug   in this process, one run after the other
    slurm   one job array per sweep for training, one chained evaluation array (bench/slurm.py)

Each run folder says where it stands: `job.json` (written here when a job is submitted) and
`state.json` (written by the job). Both carry the submission's token, so a run whose latest
submission has not started yet reads as submitted. Submission holds a lock on the sweep
folder: two `bench sweep` calls at once never submit a run twice.

    bench sweep sweeps/demo.yaml                      # local (slurm when sbatch is on PATH)
    bench sweep sweeps/demo.yaml --executor slurm --profile cluster.yaml
"""

import fcntl
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import submitit

from bench import slurm
from bench.config import RunConfig
from bench.errors import BenchError, TrainingFailed
from bench.registry import Registry
from bench.rundir import STATE, SUBMISSION, SUMMARY, last_line, prepare_run_dir, read_json, write_json
from bench.slurm import SlurmConfig
from bench.sweep import Sweep
from bench.tracking import Tracker

log = logging.getLogger(__name__)

EXECUTORS: Registry = Registry("executor")
ACTIVE = ("submitted", "running", "requeued", "evaluating")  # a job owns the run
FINISHED = ("done", "failed", "crashed", "cancelled")


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
    task is recorded in its state.json and the next one still runs."""

    def __init__(self, tasks: list[Task], token: str | None = None, threads: int = 0) -> None:
        self.tasks, self.token, self.threads = tasks, token, threads
        self.signal: tuple | None = None  # the pre-emption signal, caught during training
        self.training = False  # the signal waits for the end of the step only while training
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
            with self.deferred_preemption() as requeue:
                return self.run_all(job_id, requeue)
        finally:
            if distributed:
                torch.distributed.destroy_process_group()

    def state(self, run_dir: Path, state: str, **extra) -> None:
        if self.main:  # process 0 speaks for a multi-process job
            write_state(run_dir, state, token=self.token, pid=os.getpid(), **extra)

    def run_all(self, job_id: str | None, requeue) -> list[dict]:
        from bench.engine import Preempted

        summaries, errors = [], []
        for task in self.tasks:
            job = {"job_id": job_id} if job_id else {}
            tracker = Tracker(task.config, task.run_dir, "train" if task.train else "eval") if self.main else None
            try:
                if self.main:  # another config in the folder is refused before anything is logged
                    prepare_run_dir(task.config, task.run_dir)
                tracker.start() if tracker else None
                summaries += self.run_task(task, job, requeue, tracker)
            except Preempted:
                self.state(task.run_dir, "requeued", **job)
                requeue()  # submitit checkpoints this job, requeues it and exits
                return summaries  # other processes of the job: process 0 requeues for them
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
        from bench.engine import train
        from bench.evals.run import evaluate_run

        summary = read_json(task.run_dir / SUMMARY) or {}
        if task.train:
            if (read_json(task.run_dir / STATE) or {}).get("state") == "done":
                return []
            self.state(task.run_dir, "running", **job)
            self.training = True
            try:
                on_log = tracker.log if tracker else None
                summary = train(task.config, task.run_dir, stop=lambda: self.signal is not None, on_log=on_log)
            finally:
                self.training = False
            if tracker:
                tracker.summary({"compute": summary.get("compute", {}), "status": summary.get("status")})
            if not task.evaluate:
                self.state(task.run_dir, "trained", **job)
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
    def deferred_preemption(self) -> Iterator:
        """SLURM warns a job with USR2 before pre-empting it or ending its time; submitit's
        handler then checkpoints and requeues at once. During training the signal is held until
        the current step ends and the engine has written a checkpoint at that step."""
        previous = signal.getsignal(signal.SIGUSR2)
        if not callable(previous):  # not in a submitit job: nothing to requeue
            yield lambda: None
            return

        def handler(signum, frame) -> None:
            if self.training:
                self.signal = (signum, frame)  # the engine stops after this step
            else:  # setting up, evaluating: requeue now (an evaluation starts again from its feature cache)
                previous(signum, frame)

        def requeue() -> None:
            if self.main and self.signal:  # the other processes stopped because process 0 did
                previous(*self.signal)

        signal.signal(signal.SIGUSR2, handler)
        try:
            yield requeue
        finally:
            signal.signal(signal.SIGUSR2, previous)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on pre-emption/timeout: resubmit; each run resumes from its checkpoint."""
        for task in self.tasks:
            if (read_json(task.run_dir / STATE) or {}).get("state") == "running":
                self.state(task.run_dir, "requeued")
        return submitit.helpers.DelayedSubmission(Job(self.tasks, self.token, self.threads))


# --- executors: submit tasks, say which job runs each ---------------------------------------


@EXECUTORS.register("local")
def submit_local(tasks: list[Task], folder: Path, options: LaunchOptions, token: str) -> list[dict]:
    """`parallel` lanes, one process each, its runs one after another, each lane its share of the cores."""
    import torch

    if options.parallel < 1:
        raise BenchError(f"--parallel must be >= 1, got {options.parallel}")
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=7 * 24 * 60)
    lanes = [tasks[i :: options.parallel] for i in range(min(options.parallel, len(tasks)))]
    threads = max(1, (os.cpu_count() or 1) // len(lanes))
    gpus = list(range(torch.cuda.device_count()))
    jobs = {}
    for i, lane in enumerate(lanes):
        if gpus:  # submitit hides every GPU from a local job that asks for none: each lane its share
            mine = gpus[i :: len(lanes)] or [gpus[i % len(gpus)]]
            executor.update_parameters(gpus_per_node=len(mine), visible_gpus=mine)
        job = executor.submit(Job(lane, token, threads))
        for task in lane:
            jobs[task.run_dir] = {"job_id": job.job_id, "pid": int(job.job_id), "log": str(job.paths.stderr)}
    return [jobs[task.run_dir] for task in tasks]


@EXECUTORS.register("debug")
def submit_debug(tasks: list[Task], folder: Path, options: LaunchOptions, token: str) -> list[dict]:
    """In this process, one run after the other; a failed run is recorded and the next one runs."""
    executor = submitit.DebugExecutor(folder=folder)
    jobs = []
    for task in tasks:
        job = executor.submit(Job([task], token))
        try:
            job.result()
        except Exception as e:  # the run recorded its failure in state.json; carry on with the sweep
            log.error("%s failed: %s", task.run_dir.name, str(e).splitlines()[-1] if str(e) else type(e).__name__)
        jobs.append({"job_id": job.job_id})
    return jobs


def submit_array(executor, jobs: list[Job]) -> list:
    with executor.batch():  # one sbatch for all of them
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
            executor = slurm.executor(folder, cfg, f"{options.name}-eval", evaluation=True, dependency=after)
            try:
                evals = submit_array(executor, [Job([replace(t, train=False)], token) for t in to_train])
            except Exception:  # no training array without its evaluations: the runs stay as they were
                slurm.cancel([slurm.array_id(first)])
                raise
            for task, job in zip(to_train, evals, strict=True):
                jobs[task.run_dir] |= {"eval_job_id": job.job_id, "eval_log": str(job.paths.stderr)}
    if to_evaluate:
        executor = slurm.executor(folder, cfg, f"{options.name}-eval", evaluation=True)
        evals = submit_array(executor, [Job([task], token) for task in to_evaluate])
        for task, job in zip(to_evaluate, evals, strict=True):
            jobs[task.run_dir] |= {"eval_job_id": job.job_id, "eval_log": str(job.paths.stderr)}
    return [jobs[task.run_dir] for task in tasks]


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


def pid_alive(state: dict) -> bool | None:
    """Whether the process named in a state is alive; None when this machine cannot tell."""
    if state.get("host") != socket.gethostname() or state.get("pid") is None:
        return None
    try:
        os.kill(int(state["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# the jobs whose life decides whether a run in a state still has an owner
WATCHED = {
    "submitted": ("job_id", "eval_job_id"),
    "running": ("job_id",),
    "requeued": ("job_id",),
    "trained": ("eval_job_id",),  # its evaluation may still be queued
    "evaluating": ("eval_job_id", "job_id"),
    "cancelled": ("job_id", "eval_job_id"),  # a cancelled job may take KillWait seconds to end
}


def run_state(run_dir: Path, queue: Queue | None = None) -> dict:
    """Where the run stands: its state.json, or 'submitted' while its latest submission has not
    started, with the submission's job ids; `active` while a job owns it; 'crashed' when the job
    that owned it has gone without a word (its process is dead, or SLURM no longer has it), with
    SLURM's last word and the last line of its log. Without an answer from squeue a SLURM run
    keeps its state and stays owned: nothing is resubmitted on a guess."""
    state = read_json(run_dir / STATE) or {"state": "new"}
    submission = read_json(run_dir / SUBMISSION) or {}
    if submission and submission.get("token") != state.get("token"):
        state = {"state": "submitted", "host": submission.get("host"), **submission}
    else:
        state = {**submission, **state}
    executor, name = state.get("executor"), state["state"]
    state["active"] = name in ACTIVE
    if name == "submitted" and not any(state.get(k) for k in ("job_id", "eval_job_id", "pid")):
        # claimed, no job id recorded yet: owned while the launcher that claimed it lives
        launcher = pid_alive({"host": submission.get("host"), "pid": submission.get("launcher_pid")})
        if launcher is False:
            state.update(state="crashed", active=False, error="the submission did not finish")
    elif executor == "slurm" and queue is not None and name in WATCHED:
        watched = [state[k] for k in WATCHED[name] if state.get(k)]
        state["queue"] = next((q for q in map(queue.get, watched) if q), "")
        alive = any(queue.active(j) for j in watched)
        if not queue.answered:
            state["active"] = state["active"] or (name in ("trained", "cancelled") and bool(watched))
        elif name in ("trained", "cancelled"):
            state["active"] = alive
        elif not alive:
            known = state["queue"] or (queue.final(watched[0]) if watched else "")
            log_file = state.get("eval_log") if name == "evaluating" else state.get("log")
            reason = last_line(log_file) or "the job left the SLURM queue without a word"
            state.update(state="crashed", active=False, error=f"{known}: {reason}" if known else reason)
    elif executor == "local" and name in (*ACTIVE, "cancelled"):
        alive = pid_alive(state)
        if name == "cancelled":
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


def submit(tasks: list[Task], folder: Path, executor_name: str, options: LaunchOptions) -> list[dict]:
    """Submit, then record each run's submission (job.json: executor, token, job ids, log files).
    Call under `sweep_lock`. A refused submission leaves the runs as they were."""
    run = EXECUTORS.get(executor_name)
    token = uuid.uuid4().hex
    base = {"executor": executor_name, "token": token, "host": socket.gethostname(), "submitted": time.time()}
    claim = base | {"launcher_pid": os.getpid()}  # owned by this process until the job ids are known

    def prepare(task: Task) -> None:
        prepare_run_dir(task.config, task.run_dir)
        write_json(claim, task.run_dir / SUBMISSION)

    with ThreadPoolExecutor(4) as pool:  # a sweep of 1,000 runs writes 1,000 folders: overlap the file system's waits
        list(pool.map(prepare, tasks))
    try:
        jobs = run(tasks, folder, options, token)
    except Exception as e:  # e.g. sbatch refused the job: the runs go back to where they were
        for task in tasks:
            (task.run_dir / SUBMISSION).unlink(missing_ok=True)
        if isinstance(e, BenchError):
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise BenchError(f"{executor_name} submission failed: {reason}") from None
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda pair: write_json(base | pair[1], pair[0].run_dir / SUBMISSION), zip(tasks, jobs, strict=True)
            )
        )
    return jobs


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
    while any(run_state(sweep_dir / r.run_id, Queue())["active"] for r in sweep.ready(root)[0]):
        time.sleep(poll_s)


def cancel(run_dirs: list[Path], sweep_dir: Path) -> list[Path]:
    """Cancel the jobs that own the given runs (scancel; SIGKILL for local processes) and mark the
    runs cancelled; `bench sweep` resubmits them and they resume from their checkpoints."""
    with sweep_lock(sweep_dir):
        queue = Queue()
        states = {d: run_state(d, queue) for d in run_dirs}
        owned = {d: s for d, s in states.items() if s["active"]}
        slurm_ids = sorted(
            {
                s[k]
                for s in owned.values()
                if s.get("executor") == "slurm"
                for k in ("job_id", "eval_job_id")
                if s.get(k)
            }
        )
        slurm.cancel(slurm_ids)
        for pid in {s["pid"] for s in owned.values() if s.get("executor") == "local" and pid_alive(s)}:
            os.kill(int(pid), signal.SIGKILL)  # submitit's local jobs ignore SIGTERM
        for run_dir, state in owned.items():
            write_state(run_dir, "cancelled", token=state.get("token"))
    return list(owned)
