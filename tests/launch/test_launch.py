"""Launching without a cluster: multi-process batches, step-boundary stops, run states, the
sweep lock, SLURM parameters and the sbatch scripts the SLURM executor writes (a fake sbatch)."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import submitit
import torch

from bench.data.datasets import load_split
from bench.data.views import Views
from bench.errors import BenchError
from bench.launch import executors
from bench.launch.executors import EXECUTORS, LaunchOptions, submit_slurm
from bench.launch.job import Job, Task
from bench.launch.queue import Queue
from bench.launch.slurm import SlurmConfig, slurm_config
from bench.launch.submit import launch
from bench.launch.sweep import load_sweep
from bench.processes import me, pid_alive, process_identity
from bench.rundir import (
    CHECKPOINT,
    METRICS,
    STATE,
    SUBMISSION,
    SUMMARY,
    last_record,
    prepare_run_dir,
    read_json,
    write_json,
)
from bench.runstate import run_state
from bench.train import engine
from bench.train.devices import Ranks
from bench.train.loader import Collate, StepSampler, StepTagged
from bench.train.loop import Preempted
from bench.train.methods import augmentation, build_method
from core.method import Augmentation

from .. import badinputs
from ..badinputs import Bad
from ..conftest import TINY_BASE, TINY_METHODS, invoke, tiny_config, write_sweep


@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_each_process_gets_its_share_of_the_global_batch_and_its_masks(method):
    """Two processes' batches, put back together along each input's batch dimension, are the
    single process's batch: same images, same crops, same masks. (I-JEPA with truncate=batch: by
    default each process cuts its masks to the shortest of its own share, tests/methods/test_masks.py.)"""
    cfg = tiny_config(method, **({"ijepa.mask.truncate": "batch"} if method == "ijepa" else {}))
    model = build_method(cfg, 1)
    data = load_split(cfg.data, "train")
    dataset = StepTagged(data, Views.of(data, 16, augmentation(cfg)), seed=0)

    def batch(ranks: Ranks, step: int) -> dict:
        sampler = StepSampler(len(data), 16, seed=0, start_step=step, ranks=ranks)
        keys = next(iter(sampler))
        return Collate(model.input_sampler(), ranks)([dataset[k] for k in keys])

    for step in (0, 40):  # 40: past the first epoch (512 images / 16)
        whole = batch(Ranks(), step)
        parts = [batch(Ranks(r, 2), step) for r in range(2)]
        dims = getattr(model.input_sampler(), "batch_dims", {})
        for key, value in whole.items():
            if key == "step":
                continue
            dim = dims.get(key, 0)
            if dim is None:  # an input of the whole step (LeJEPA's slices): every process gets it whole
                assert all(torch.equal(p[key], value) for p in parts), key
                continue
            assert torch.equal(torch.cat([p[key] for p in parts], dim=dim), value), key
            assert parts[0][key].shape[dim] % 8 == 0, key  # cut along a batch dimension (8 images, or 8 x clones)


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(BenchError, match="does not split evenly over 3 processes"):
        StepSampler(512, 16, 0, 0, Ranks(0, 3))


def test_augmentation_depends_on_step_and_image_only():
    cfg = tiny_config()
    data = load_split(cfg.data, "train")
    dataset = StepTagged(data, Views.of(data, 16, Augmentation((0.2, 1.0))), seed=0)
    first = dataset[(5, 7)][1]
    torch.rand(100)  # the global generator moves on; the crop of (step 5, image 7) does not
    for key in [(5, 3), (6, 7)]:
        dataset[key]
    assert torch.equal(dataset[(5, 7)][1], first)
    assert not torch.equal(dataset[(6, 7)][1], first)


@pytest.mark.slow  # three trainings
def test_a_stop_request_checkpoints_that_step_and_the_run_resumes_exactly(tmp_path):
    """The engine's side of a SLURM pre-emption: stop after step 3, checkpoint, resume."""
    cfg = tiny_config(**{"budget.value": 8, "log_every": 1})
    whole = engine.train(cfg, tmp_path / "whole")
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(Preempted, match="step 3"):
        engine.train(cfg, tmp_path / "stopped", stop=stop)
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)["spent"]["steps"] == 3
    resumed = engine.train(cfg, tmp_path / "stopped")
    assert resumed["compute"]["steps"] == whole["compute"]["steps"] == 8
    assert resumed["compute"]["flops"] == whole["compute"]["flops"]
    assert resumed["compute"]["restarts"] == 1 and whole["compute"]["restarts"] == 0
    assert resumed["compute"]["device_hours_lost"] == 0.0

    def records(name):
        records = [json.loads(line) for line in (tmp_path / name / METRICS).read_text().splitlines()]
        return [r for r in records if "loss" in r]  # not step 0's health record

    a, b = records("whole"), records("stopped")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 9))
    assert [r["lr"] for r in a] == [r["lr"] for r in b]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-5)


def test_steps_lost_in_a_crash_are_counted_apart(tmp_path, monkeypatch):
    from ..conftest import train_preempted

    cfg = tiny_config(**{"budget.value": 8, "log_every": 1, "checkpoint_every_s": 0})
    # every step checkpoints; the 5th save dies: step 5 was logged, then lost and trained again
    summary = train_preempted(cfg, tmp_path / "run", monkeypatch, die_at_save=5)
    assert summary["compute"]["steps"] == 8 and summary["compute"]["restarts"] == 1
    assert summary["compute"]["device_hours_lost"] > 0


# --- where runs stand ------------------------------------------------------------------------


class FakeQueue(Queue):
    def __init__(self, jobs: dict | None) -> None:
        super().__init__()
        self._jobs, self.answered = jobs or {}, jobs is not None


def slurm_run(tmp_path, state: str | None, token="t1", **job):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (tmp_path / "0_log.err").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n\n")
    write_json({"executor": "slurm", "token": "t1", "log": str(tmp_path / "0_log.err"), **job}, run_dir / SUBMISSION)
    if state:
        write_json({"state": state, "token": token, "host": "elsewhere"}, run_dir / STATE)
    return run_dir


def test_run_state_joins_the_run_folder_and_the_slurm_queue(tmp_path):
    ids = {"job_id": "7_0", "eval_job_id": "8_0"}
    # submitted: the new token has not started yet, whatever an older state says
    run = slurm_run(tmp_path, "failed", token="t0", **ids)
    state = run_state(run, FakeQueue({"7_0": "PENDING (Priority)", "8_0": "PENDING (Dependency)"}))
    assert state["state"] == "submitted" and state["active"] and state["queue"] == "PENDING (Priority)"
    # running, and SLURM still has it
    run = slurm_run(tmp_path, "running", **ids)
    assert run_state(run, FakeQueue({"7_0": "RUNNING"}))["active"]
    # running, but SLURM says it ended: crashed, with SLURM's state and the log's last line
    state = run_state(run, FakeQueue({"7_0": "OUT_OF_MEMORY"}))
    assert state["state"] == "crashed" and not state["active"]
    assert state["error"] == "OUT_OF_MEMORY: RuntimeError: CUDA out of memory"
    # squeue did not answer: nothing can be concluded
    assert run_state(run, FakeQueue(None))["state"] == "running"
    # SLURM holds it as pending: requeued without a word from the job (scontrol requeue, pre-emption)
    state = run_state(run, FakeQueue({"7_0": "PENDING (BeginTime)"}))
    assert state["state"] == "requeued" and state["active"] and state["queue"] == "PENDING (BeginTime)"
    evaluating = slurm_run(tmp_path, "evaluating", **ids)
    assert run_state(evaluating, FakeQueue({"8_0": "REQUEUE_HOLD", "7_0": "COMPLETED"}))["state"] == "requeued"
    run = slurm_run(tmp_path, "running", **ids)
    # trained, its evaluation queued: still owned by a job; squeue silent: assumed owned, never resubmitted
    run = slurm_run(tmp_path, "trained", **ids)
    assert run_state(run, FakeQueue({"8_0": "PENDING (Dependency)"}))["active"]
    assert not run_state(run, FakeQueue({"8_0": "CANCELLED (DependencyNeverSatisfied)"}))["active"]
    assert run_state(run, FakeQueue(None))["active"]
    # cancelled, but the job has not ended yet (KillWait): still owned
    run = slurm_run(tmp_path, "cancelled", **ids)
    assert run_state(run, FakeQueue({"7_0": "COMPLETING"}))["active"]
    assert not run_state(run, FakeQueue({"7_0": "CANCELLED"}))["active"]


def dead_process() -> subprocess.Popen:
    """A child that has already exited: its pid names no live process."""
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished


def test_a_claim_without_job_ids_is_owned_while_its_launcher_lives(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    finished = dead_process()
    claim = {"executor": "slurm", "token": "t", "host": socket.gethostname()}
    me = {"launcher_pid": os.getpid(), "launcher": process_identity(os.getpid())}
    write_json(claim | me, run / SUBMISSION)
    assert run_state(run, FakeQueue({}))["state"] == "submitted" and run_state(run, FakeQueue({}))["active"]
    for gone in (
        {"launcher_pid": finished.pid},  # the launcher died before sbatch answered
        me | {"launcher": me["launcher"] | {"start": me["launcher"]["start"] - 1}},  # its pid is another's now
    ):
        write_json(claim | gone, run / SUBMISSION)
        state = run_state(run, FakeQueue({}))
        assert state["state"] == "crashed" and not state["active"] and state["error"] == "the submission did not finish"


def test_a_local_run_whose_process_ended_is_crashed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    finished = dead_process()
    here = {"executor": "local", "token": "a", "host": socket.gethostname()}
    write_json(here | {"pid": finished.pid}, run / SUBMISSION)
    assert run_state(run)["state"] == "crashed"
    write_json(here | {"pid": os.getpid(), "process": process_identity(os.getpid())}, run / SUBMISSION)
    assert run_state(run)["state"] == "submitted"
    # the training process wrote state.json: its record decides
    write_json(here | {"state": "running", "pid": finished.pid, "process": None}, run / STATE)
    assert run_state(run)["state"] == "crashed"
    # a record that names a live pid without its identity (an older version's) proves nothing either way
    write_json(here | {"state": "running", "pid": os.getpid()}, run / STATE)
    assert run_state(run)["state"] == "running" and pid_alive(run_state(run)) is None


def sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "600"])


def test_a_stale_pid_now_held_by_an_unrelated_process_is_never_signalled(tmp_path):
    """A run's state.json names a pid that an unrelated live process (`sleep`) holds now: another start
    time, or no identity at all. `bench cancel` leaves it alone and the run reads crashed, not active;
    the same record with the process's own identity is the run's, and cancel stops it."""
    sweep_dir = tmp_path / "runs" / "t"
    unrelated, owned = sleeper(), sleeper()
    try:
        for name, pid, process in [
            ("stale", unrelated.pid, process_identity(unrelated.pid) | {"start": 1}),
            ("older", unrelated.pid, None),  # an older version's record: a bare pid
            ("owned", owned.pid, process_identity(owned.pid)),
        ]:
            run = sweep_dir / f"ijepa-{name}"
            prepare_run_dir(tiny_config(), run)
            here = {"executor": "local", "token": "a", "host": socket.gethostname(), "job_id": str(pid)}
            write_json(here | {"pid": pid, "process": process}, run / SUBMISSION)
            write_json(here | {"state": "running", "pid": pid, "process": process}, run / STATE)
        assert pid_alive(read_json(sweep_dir / "ijepa-stale" / STATE)) is False
        status = invoke("status", sweep_dir)
        assert status.exit_code == 0, status.output
        rows = {line.split()[0]: line.split()[1] for line in status.output.splitlines()[1:]}
        assert rows == {"ijepa-older": "running", "ijepa-owned": "running", "ijepa-stale": "crashed"}
        result = invoke("cancel", sweep_dir)
        assert result.exit_code == 0 and "2 run(s) cancelled" in result.output  # older and owned are active
        assert unrelated.poll() is None  # never signalled, though two records name its pid
        assert owned.wait(timeout=10) == -signal.SIGINT  # provably the run's: asked to stop
        assert read_json(sweep_dir / "ijepa-stale" / STATE)["state"] == "running"  # crashed; nothing written
        assert read_json(sweep_dir / "ijepa-owned" / STATE)["state"] == "cancelled"
    finally:
        for process in (unrelated, owned):
            process.kill()
            process.wait()


def test_two_launches_at_once_submit_each_run_once(tmp_path):
    calls = []

    def slow(tasks, folder, options, token):
        calls.append([t.run_dir.name for t in tasks])
        time.sleep(0.5)  # long enough for the other launch to read the states in between, without the lock
        return [{"job_id": f"{len(calls)}_{i}"} for i in range(len(tasks))]

    with EXECUTORS.registered("slow-test", slow):
        spec = load_sweep(write_sweep(tmp_path / "s.yaml", seeds=[0, 1, 2]))
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(launch(spec, tmp_path / "runs", "slow-test")))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(len(r) for r in results) == [0, 3]
    assert len(calls) == 1 and len(calls[0]) == 3


def test_usr2_and_ctrl_c_wait_for_the_step_while_training_and_act_at_once_otherwise():
    import signal

    received = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: received.append(signum))
    try:
        job = Job([], token="t")
        with job.deferred_signals() as requeue:
            os.kill(os.getpid(), signal.SIGUSR2)  # evaluating, setting up: submitit's handler at once
            assert received == [signal.SIGUSR2] and job.signal is None
            with pytest.raises(KeyboardInterrupt):  # a Ctrl-C outside training: at once
                os.kill(os.getpid(), signal.SIGINT)
            job.training = True
            os.kill(os.getpid(), signal.SIGUSR2)  # training: held for the end of the step
            assert received == [signal.SIGUSR2] and job.signal is not None
            os.kill(os.getpid(), signal.SIGINT)  # training: the engine stops after this step
            assert job.interrupt
            with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C: at once
                os.kill(os.getpid(), signal.SIGINT)
            job.training = False
            requeue()
            assert received == [signal.SIGUSR2, signal.SIGUSR2]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_job_records_a_failure_and_carries_on(tmp_path):
    good = Task(tiny_config(), tmp_path / "good", evaluate=False)
    # validation refuses a batch larger than the dataset; the job's own check is what fails here (a dataset
    # that shrank after the sweep was checked)
    cfg = tiny_config()
    bad = Task(
        dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, batch_size=4096)),
        tmp_path / "bad",
        evaluate=False,
    )
    with pytest.raises(BenchError):
        Job([bad, good])()
    assert read_json(tmp_path / "bad" / STATE)["error"].startswith("optim.batch_size=4096 is larger than the dataset")
    assert read_json(tmp_path / "good" / STATE)["state"] == "trained"
    assert read_json(tmp_path / "good" / SUMMARY)["status"] == "done"


def test_a_job_whose_submission_was_withdrawn_or_replaced_leaves_the_run_alone(tmp_path):
    """A job that starts after its submission was withdrawn (a Ctrl-C put the run back) or replaced
    writes nothing into the run folder."""
    run = tmp_path / "run"
    run.mkdir()
    write_json({"executor": "slurm", "token": "newer"}, run / SUBMISSION)
    assert Job([Task(tiny_config(), run)], token="older")() == []
    (run / SUBMISSION).unlink()  # withdrawn: the run had no submission before
    assert Job([Task(tiny_config(), run)], token="older")() == []
    assert [p.name for p in run.iterdir()] == []


# --- SLURM parameters and scripts ----------------------------------------------------------------


def test_slurm_profile_overlaid_with_the_sweep_section(tmp_path):
    profile = tmp_path / "cluster.yaml"
    profile.write_text("partition: gpu\naccount: lab\ngpus_per_node: 8\nadditional: {reservation: ssl}\n")
    cfg = slurm_config({"gpus_per_node": 4, "timeout_min": 60}, profile)
    assert (cfg.partition, cfg.account, cfg.gpus_per_node, cfg.timeout_min) == ("gpu", "lab", 4, 60)
    assert cfg.additional == {"reservation": "ssl"}
    with pytest.raises(BenchError, match="unknown key 'slurm.gpus'; valid keys: partition"):
        slurm_config({"gpus": 8})
    with pytest.raises(BenchError, match="slurm.nodes: expected an integer"):
        slurm_config({"nodes": 1.5})
    with pytest.raises(BenchError, match="slurm.array_parallelism must be >= 1"):
        slurm_config({"array_parallelism": 0})


def test_a_bad_slurm_key_in_a_sweep_is_one_line_exit_2(tmp_path):
    path = write_sweep(tmp_path / "s.yaml", slurm={"gpus": 8})
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "slurm")
    assert result.exit_code == 2
    assert result.output.startswith("error: unknown key 'slurm.gpus'") and result.output.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An sbatch on PATH that keeps each script it is given and answers with a new job id."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sbatch"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(ls {tmp_path}/script-* 2>/dev/null | wc -l); id=$((n + 100))\n"
        f'cp "$1" {tmp_path}/script-$id\n'
        'echo "Submitted batch job $id"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return lambda job: (tmp_path / f"script-{job}").read_text()


def test_slurm_executor_submits_a_training_array_and_a_chained_evaluation_array(tmp_path, fake_sbatch):
    tasks = [Task(tiny_config(seed=s), tmp_path / f"run{s}") for s in range(3)]
    tasks.append(Task(tiny_config(seed=9), tmp_path / "trained", train=False))
    slurm = SlurmConfig(partition="gpu", gpus_per_node=8, tasks_per_node=8, array_parallelism=2, mem_gb=480)
    options = LaunchOptions(slurm=slurm)
    jobs = submit_slurm(tasks, tmp_path / "submitit", options, token="t")
    assert [j.get("job_id") for j in jobs] == ["100_0", "100_1", "100_2", None]
    assert [j["eval_job_id"] for j in jobs] == ["101_0", "101_1", "101_2", "102"]
    train, chained, alone = fake_sbatch(100), fake_sbatch(101), fake_sbatch(102)
    assert "#SBATCH --array=0-2%2" in train and "#SBATCH --partition=gpu" in train
    assert "#SBATCH --gpus-per-node=8" in train and "#SBATCH --ntasks-per-node=8" in train
    assert "#SBATCH --signal=USR2@120" in train  # time to checkpoint before the limit
    assert "#SBATCH --mem=480GB" in train and "#SBATCH --mem=60GB" in chained  # one process's share
    assert "--kill-on-bad-exit=1" in train and "--kill-on-bad-exit" not in chained
    assert "dependency" not in train
    assert "#SBATCH --dependency=aftercorr:100" in chained and "#SBATCH --kill-on-invalid-dep=yes" in chained
    assert "#SBATCH --gpus-per-node=1" in chained and "#SBATCH --ntasks-per-node=1" in chained
    assert "dependency" not in alone and "--array" not in alone


def test_a_refused_submission_leaves_the_runs_as_they_were(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: gpu' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    path = write_sweep(tmp_path / "s.yaml", seeds=[0, 1], slurm={"partition": "gpu"})
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "slurm")
    assert result.exit_code == 2, result.output
    assert "slurm submission failed" in result.output and "invalid partition" in result.output
    assert not list((tmp_path / "runs").glob(f"*/{SUBMISSION}"))


def test_a_job_squeue_forgot_gets_its_final_state_from_sacct(tmp_path, monkeypatch):
    """With accounting (slurmdbd), sacct remembers what squeue has forgotten; without it
    (sacct fails, as on the local cluster) the run is still crashed, with its log's last line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\necho '7_0|OUT_OF_MEMORY '\necho '7_0.batch|OUT_OF_MEMORY'\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    run = slurm_run(tmp_path, "running", job_id="7_0")
    state = run_state(run, FakeQueue({}))  # squeue answered, but no longer knows job 7_0
    assert state["state"] == "crashed" and state["error"] == "OUT_OF_MEMORY: RuntimeError: CUDA out of memory"
    (bin_dir / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    assert run_state(run, FakeQueue({}))["error"] == "RuntimeError: CUDA out of memory"


def test_a_refused_evaluation_array_cancels_its_training_array(tmp_path, monkeypatch):
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\nif grep -q dependency \"$1\"; then echo 'sbatch: error: bad dependency' >&2; exit 1; fi\n"
        "echo 'Submitted batch job 300'\n"
    )
    (bin_dir / "scancel").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    for tool in ("sbatch", "scancel"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    path = write_sweep(tmp_path / "s.yaml", seeds=[0, 1])
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "slurm")
    assert result.exit_code == 2 and "bad dependency" in result.output
    assert calls.read_text().split() == ["300"]  # the training array it had submitted
    assert not list((tmp_path / "runs").glob(f"*/{SUBMISSION}"))


def test_a_missing_sbatch_is_one_line_and_the_runs_stay_as_they_were(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    path = write_sweep(tmp_path / "s.yaml", seeds=[0, 1])
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "slurm")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: the slurm executor needs sbatch and srun on PATH")
    assert not list((tmp_path / "runs").glob(f"*/*/{SUBMISSION}"))


def test_a_bug_in_submission_is_a_traceback_and_rolls_back(tmp_path):
    """Only what submitit raises for a refused submission becomes one line: a bug of the tool's own
    surfaces as itself (the runs go back to where they were first)."""

    def broken(tasks, folder, options, token):
        return 1 / 0

    with EXECUTORS.registered("broken-test", broken):
        path = write_sweep(tmp_path / "s.yaml")
        result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "broken-test")
    assert result.exit_code == 1 and isinstance(result.exception, ZeroDivisionError)
    assert not list((tmp_path / "runs").glob(f"*/*/{SUBMISSION}"))


def test_ctrl_c_between_the_training_and_evaluation_arrays_rolls_back(tmp_path, monkeypatch, fake_sbatch):
    calls = tmp_path / "calls"
    (tmp_path / "bin" / "scancel").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (tmp_path / "bin" / "scancel").chmod(0o755)
    real, arrays = executors.submit_array, []

    def interrupted_second(executor, jobs):
        arrays.append(len(jobs))
        if len(arrays) == 2:  # the training array is queued; the evaluation array's sbatch is next
            raise KeyboardInterrupt
        return real(executor, jobs)

    monkeypatch.setattr(executors, "submit_array", interrupted_second)
    path = write_sweep(tmp_path / "s.yaml", seeds=[0, 1])
    with pytest.raises(KeyboardInterrupt):
        launch(load_sweep(path), tmp_path / "runs", "slurm")
    assert calls.read_text().split() == ["100"]  # the training array, cancelled
    assert not list((tmp_path / "runs").glob(f"*/*/{SUBMISSION}"))
    arrays.clear()
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "slurm")  # through the command
    assert result.exit_code == 130 and result.stderr.startswith("interrupted: sweep t"), result.output
    assert calls.read_text().split() == ["100", "101"] and not list((tmp_path / "runs").glob(f"*/*/{SUBMISSION}"))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again after the cleanup


@pytest.mark.skipif(torch.cuda.is_available(), reason="a run asking for CUDA must fail here")
def test_a_debug_sweep_with_a_failed_run_exits_1_saying_so(tmp_path):
    path = write_sweep(tmp_path / "s.yaml", grid={"device": ["cpu", "cuda"]})
    result = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "debug")
    assert result.exit_code == 1, result.output
    assert "2 run(s) launched on debug" in result.stdout and "finished" not in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        f"sweep t: 1 of 2 run(s) did not finish (1 failed); `bench status {path} --root {tmp_path / 'runs'}` says why"
    )
    again = invoke("sweep", path, "--root", tmp_path / "runs", "--executor", "debug", "--retry-failed", "--wait")
    assert again.exit_code == 1 and "1 of 1 run(s) did not finish (1 failed)" in again.stderr


@pytest.mark.slow  # a sweep of two runs, trained and evaluated
def test_eval_as_a_job_leaves_untrained_and_owned_runs_alone(tmp_path):
    sweep_dir = tmp_path / "runs" / "t"
    assert (
        invoke(
            "sweep", write_sweep(tmp_path / "s.yaml", seeds=[0, 1]), "--root", tmp_path / "runs", "--executor", "debug"
        ).exit_code
        == 0
    )
    first, second = sorted(d for d in sweep_dir.iterdir() if (d / SUBMISSION).is_file())
    write_json({"state": "running", "token": read_json(second / SUBMISSION)["token"]}, second / STATE)
    write_json(read_json(second / SUBMISSION) | {"launcher_pid": os.getpid(), "job_id": None}, second / SUBMISSION)
    result = invoke("eval", sweep_dir, "--executor", "debug")
    assert result.exit_code == 0, result.output
    assert "evaluation of 1 run(s)" in result.output and "1 skipped" in result.output
    (first / SUMMARY).unlink()  # not trained any more: nothing left to evaluate
    assert invoke("eval", first, "--executor", "debug").exit_code == 2


# --- local jobs: the real executor, through the `bench` command -----------------------------------

BENCH = str(Path(sys.executable).parent / "bench")
LONG = {"kind": "steps", "value": 100_000}  # never ends within a test: stopped by it


def wait_until(condition, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def spent(run: Path) -> dict:
    return torch.load(run / CHECKPOINT, weights_only=True)["spent"] if (run / CHECKPOINT).is_file() else {}


def started(run: Path, steps: int = 3) -> bool:
    return (read_json(run / STATE) or {}).get("state") == "running" and last_record(run / METRICS).get(
        "step", 0
    ) >= steps


@pytest.mark.slow
def test_a_local_sweep_returns_through_a_pipe_and_cancel_stops_its_training_for_real(tmp_path):
    """`bench sweep --executor local | cat` returns while the job runs (the job holds none of its
    output); job.json names the job's controller, state.json the training process, in a process group
    of its own; `bench cancel` ends both (the step checkpointed), the run reads cancelled, and
    `bench sweep` resubmits it and it resumes from that checkpoint."""
    path = write_sweep(tmp_path / "s.yaml", base=TINY_BASE | {"log_every": 1, "checkpoint_every_s": 1}, budget=LONG)
    command = [BENCH, "sweep", str(path), "--root", "runs", "--executor", "local"]
    began = time.time()
    sweep = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert sweep.returncode == 0 and "1 run(s) launched on local" in sweep.stdout, sweep.stderr
    assert time.time() - began < 90  # starting Python and torch (a loaded machine), not the training: it never ends
    (run,) = (tmp_path / "runs" / "t").glob("ijepa-*")
    wait_until(lambda: started(run), 120, "training to start")
    job, state = read_json(run / SUBMISSION), read_json(run / STATE)
    controller, worker = job["process"]["pid"], state["process"]["pid"]
    assert job["pid"] == int(job["job_id"]) == controller != worker == state["pid"]
    assert os.getpgid(worker) == os.getpgid(controller) == os.getsid(controller) == controller  # the job's own group
    assert run_state(run)["state"] == "running"

    cancelled = invoke("cancel", "t", "--root", tmp_path / "runs")
    assert cancelled.exit_code == 0 and "1 run(s) cancelled" in cancelled.output, cancelled.output
    assert pid_alive(state) is False and pid_alive(job) is False  # the training and its controller
    after = run_state(run)
    assert after["state"] == "cancelled" and not after["active"]
    stopped = spent(run)["steps"]
    assert stopped == last_record(run / METRICS)["step"]  # stopped at a step boundary, that step checkpointed

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 run(s) launched on local" in again.stdout, again.stderr
    wait_until(lambda: spent(run).get("restarts") == 1 and spent(run)["steps"] > stopped, 120, "the run to resume")
    records = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]  # not step 0's health record
    assert steps[: stopped + 1] == list(range(1, stopped + 2))  # from the checkpoint on, no step lost or repeated
    assert invoke("cancel", "t", "--root", tmp_path / "runs").exit_code == 0


def test_ctrl_c_while_local_lanes_start_stops_the_lanes_already_started(tmp_path, monkeypatch):
    real, started = submitit.LocalExecutor.submit, []

    def second_interrupted(self, fn):
        if started:
            raise KeyboardInterrupt
        started.append(real(self, fn))
        return started[-1]

    monkeypatch.setattr(submitit.LocalExecutor, "submit", second_interrupted)
    path = write_sweep(tmp_path / "s.yaml", seeds=[0, 1], budget=LONG)
    with pytest.raises(KeyboardInterrupt):
        launch(load_sweep(path), tmp_path / "runs", "local", LaunchOptions(parallel=2))
    (job,) = started  # its controller is this process's child: its end can be read
    _, status = os.waitpid(int(job.job_id), 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL  # killed, with its process group
    assert not list((tmp_path / "runs").glob(f"*/*/{SUBMISSION}"))  # both runs as they were


@pytest.mark.slow
def test_ctrl_c_in_sweep_wait_stops_its_jobs_and_a_rerun_resumes(tmp_path):
    """A Ctrl-C at the terminal (SIGINT to `bench sweep --wait`'s process group): its local job stops
    at a step boundary with a checkpoint, the run that was training reads interrupted, the one queued
    behind it in the same lane reads as before the sweep; one line, no traceback, exit 130."""
    path = write_sweep(
        tmp_path / "s.yaml", base=TINY_BASE | {"log_every": 1, "checkpoint_every_s": 1}, budget=LONG, seeds=[0, 1]
    )
    command = [BENCH, "sweep", str(path), "--root", "runs", "--executor", "local", "--wait", "--parallel", "1"]
    sweep = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        runs = {run.config.seed: tmp_path / "runs" / "t" / run.run_id for run in load_sweep(path).runs}
        first = wait_until(lambda: next((r for r in runs.values() if started(r)), None), 120, "a run to train")
        (second,) = set(runs.values()) - {first}
        job, state = read_json(first / SUBMISSION), read_json(first / STATE)
        os.killpg(sweep.pid, signal.SIGINT)  # what the terminal sends the foreground job
        out, err = sweep.communicate(timeout=180)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted: sweep t's jobs are stopped"), err
    assert pid_alive(state) is False and pid_alive(job) is False
    interrupted = run_state(first)
    assert interrupted["state"] == "interrupted" and not interrupted["active"]
    assert spent(first)["steps"] == last_record(first / METRICS)["step"]  # checkpointed where it stopped
    assert run_state(second)["state"] == "new"  # never started: as it was
    assert not (second / SUBMISSION).exists() and not (second / STATE).exists()

    again = subprocess.run(command[:-3], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "2 run(s) launched on local" in again.stdout, again.stderr
    wait_until(lambda: spent(first).get("restarts") == 1, 120, "the interrupted run to resume")
    assert invoke("cancel", "t", "--root", tmp_path / "runs").exit_code == 0


# --- the bad-input corpus (tests/badinputs.py): launching, cancelling, training into a run folder --------


def damage(name: str, data: bytes = b'{"state": "running", "tok'):
    """Overwrite a file of the template's finished run: truncated JSON by default."""
    return lambda tmp: (badinputs.run_dir(tmp) / name).write_bytes(data)


def finished(tmp: Path) -> None:
    """The template's finished run, moved to tmp/finished (a path a command line can name)."""
    badinputs.run_dir(tmp).rename(tmp / "finished")


def owned_by_a_live_job(tmp: Path) -> None:
    """The finished run, as a job of its latest submission (this process: alive) has just restarted it."""
    finished(tmp)
    token = read_json(tmp / "finished" / SUBMISSION)["token"]
    write_json({"state": "running", "token": token, "host": socket.gethostname(), **me()}, tmp / "finished" / STATE)


BAD_LAUNCH = {
    "cancel, state.json truncated": Bad(["cancel", "t"], "state.json is damaged", damage(STATE)),
    "cancel, state.json empty": Bad(["cancel", "t"], "state.json is damaged", damage(STATE, b"")),
    "cancel, state.json not UTF-8": Bad(["cancel", "t"], "state.json is damaged", damage(STATE, b'{"state": "\xff"}')),
    "cancel, state.json a list": Bad(["cancel", "t"], "state.json is damaged", damage(STATE, b"[]")),
    "cancel, job.json truncated": Bad(["cancel", "t"], "job.json is damaged", damage(SUBMISSION)),
    "cancel an unknown sweep": Bad(["cancel", "nosweep"], "no sweep folder"),
    "sweep again, state.json truncated": Bad(
        ["sweep", "s.yaml", "--executor", "debug"], "state.json is damaged", damage(STATE)
    ),
    "sweep again, job.json truncated": Bad(
        ["sweep", "s.yaml", "--executor", "debug", "--wait"], "job.json is damaged", damage(SUBMISSION)
    ),
    "train --out a finished run of another config": Bad(
        ["train", "--out", "{tmp}/finished"], "holds a run with a different config", finished
    ),
    "train --out a run with a damaged config.yaml": Bad(
        ["train", "--out", "{tmp}/finished"],
        "malformed YAML",
        lambda tmp: (finished(tmp), (tmp / "finished" / "config.yaml").write_text("method: [\n")),
    ),
    "train --out a run with a damaged state.json": Bad(
        ["train", "--out", "{tmp}/finished"],
        "state.json is damaged",
        lambda tmp: (damage(STATE)(tmp), finished(tmp)),
    ),
    "train --out a run with a damaged job.json": Bad(
        ["train", "--out", "{tmp}/finished"],
        "job.json is damaged",
        lambda tmp: (damage(SUBMISSION)(tmp), finished(tmp)),
    ),
    "train --out a run a live job owns": Bad(
        ["train", "--out", "{tmp}/finished"], "is running in a job of its own", owned_by_a_live_job
    ),
    "train --out an existing file": Bad(
        ["train", "--out", "{tmp}/s.yaml"], "s.yaml is a file; --out must name a folder"
    ),
    "train --out below a file": Bad(
        ["train", "--out", "{tmp}/s.yaml/run"], "s.yaml is a file; --out must name a folder"
    ),
}
