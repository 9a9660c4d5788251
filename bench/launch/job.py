"""The job: one class for every launch. A `Job` is a list of tasks, each "train this run folder to
its budget" and/or "evaluate it"; every executor (bench/launch/executors.py) submits Jobs.

It is a submitit Checkpointable: on pre-emption or timeout (SLURM's USR2) training stops at the next
step boundary with a checkpoint, `checkpoint()` resubmits the same job, and the run resumes where it
stopped. A job with several tasks per node trains each run with DDP. The job writes each run's
state.json (bench/runstate.py); a Ctrl-C (`bench cancel` of a local job, the terminal) ends its
training at a step boundary with a checkpoint, so `bench sweep` resumes it.

submitit pickles a Job by its import path (bench.launch.job.Job): jobs queued by an older version
must finish before an upgrade.
"""

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import submitit

from bench.config.schema import RunConfig
from bench.errors import BenchError, TrainingFailed
from bench.processes import me
from bench.rundir import STATE, SUBMISSION, SUMMARY, RunDir, read_json
from bench.runstate import RunState, write_state
from bench.tracking import EXIT_INTERRUPTED, Tracker

log = logging.getLogger(__name__)


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@dataclass
class Task:
    config: RunConfig
    run_dir: Path
    train: bool = True  # train to the budget (resuming), or only evaluate a trained run
    evaluate: bool = True
    prepared: bool = False  # its folder made and its config checked at submission: the job does not redo it


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

    def state(self, run_dir: Path, state: RunState, **extra) -> None:
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
                if self.main and not task.prepared:  # `bench train`: no submission prepared the folder
                    RunDir(task.run_dir).prepare(task.config)
            except BenchError as e:  # another config in the folder, a damaged file: not this job's to write
                log.error("%s: %s", task.run_dir, e)
                errors.append(e)
                continue
            tracker = Tracker(task.config, task.run_dir, "train" if task.train else "eval") if self.main else None
            try:
                tracker.start() if tracker else None
                summaries += self.run_task(task, job, requeue, tracker)
            except Preempted:
                self.state(task.run_dir, RunState.REQUEUED, **job)
                requeue()  # submitit checkpoints this job, requeues it and exits
                return summaries  # other processes of the job: process 0 requeues for them
            except KeyboardInterrupt:  # Ctrl-C, `bench cancel`: resumable, from the checkpoint
                if self.main:  # not naming this process, which ends now: the run is free once its job is
                    write_state(task.run_dir, RunState.INTERRUPTED, token=self.token, **job)
                if tracker is not None:
                    tracker.finish(exit_code=EXIT_INTERRUPTED)
                raise
            except Exception as e:  # recorded in the run's state.json; the other tasks carry on
                reason = str(e) if isinstance(e, TrainingFailed | BenchError) else f"{type(e).__name__}: {e}"
                log.error("%s failed: %s", task.run_dir, reason)
                self.state(task.run_dir, RunState.FAILED, error=(reason.splitlines() or [""])[0], **job)
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
            if (read_json(task.run_dir / STATE) or {}).get("state") == RunState.DONE:
                return []
            self.state(task.run_dir, RunState.RUNNING, **job)
            self.training = True
            try:
                on_log = tracker.log if tracker else None
                stop = lambda: self.signal is not None or self.interrupt  # noqa: E731
                summary = train(task.config, task.run_dir, stop=stop, on_log=on_log, prepared=True)
            except Preempted:
                if self.interrupt:  # the step is checkpointed: the run resumes from it
                    raise KeyboardInterrupt from None
                raise
            finally:
                self.training = False
            if tracker:
                health = {"health": summary["health"]} if "health" in summary else {}  # final signals
                tracker.summary({"compute": summary.get("compute", {}), "status": summary.get("status"), **health})
            if not task.evaluate:
                self.state(task.run_dir, RunState.TRAINED, **job)
            if self.interrupt:  # it came during the last step: trained; the evaluation waits for a rerun
                raise KeyboardInterrupt
            if self.signal:  # it came during the last step: the run is trained, the job goes back
                requeue()
        if task.evaluate and self.main:
            if not RunDir(task.run_dir).trained():
                raise BenchError(f"{task.run_dir} is not trained yet: nothing to evaluate")
            self.state(task.run_dir, RunState.EVALUATING, **job)
            summary["eval"] = evaluate_run(task.run_dir)
            if tracker:  # with the compute: one W&B run holds both axes of a compute-against-accuracy plot
                tracker.summary({"compute": summary.get("compute", {}), "eval": summary["eval"]})
            self.state(task.run_dir, RunState.DONE, **job)
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
        """Called by submitit on pre-emption/timeout: resubmit; each run resumes from its checkpoint. The
        requeued job checks each folder again when it starts (a config.yaml edited or lost in the queue)."""
        for task in self.tasks:
            if (read_json(task.run_dir / STATE) or {}).get("state") == RunState.RUNNING:
                self.state(task.run_dir, RunState.REQUEUED)
        tasks = [replace(task, prepared=False) for task in self.tasks]
        return submitit.helpers.DelayedSubmission(Job(tasks, self.token, self.threads))
