"""The SLURM path against a real single-node cluster (scripts/slurm-local.sh up): a sweep end to
end with a failing run, pre-emption and requeue several times mid-training, a 2-process gloo
DDP job against one process, a crash, cancelling, and two `bench sweep` calls racing.

Skipped where no cluster answers, except under CI, where a missing cluster is a failure."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.launch.queue import Queue
from bench.launch.sweep import load_sweep
from bench.rundir import CHECKPOINT, METRICS, STATE, SUBMISSION, SUMMARY, last_record, read_json
from bench.runstate import run_state
from bench.train import engine

from ..conftest import TINY_BASE, invoke, write_sweep

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def squeue(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def local_cluster() -> bool:
    """The one-node cluster of scripts/slurm-local.sh answers (never a real cluster's login node)."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if not conf.is_file() or "written by jepa-bench scripts/slurm-local.sh" not in conf.read_text():
        return False
    try:
        ok = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return ok.returncode == 0 and any(s in ok.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if not local_cluster():
        if os.environ.get("CI"):
            pytest.fail("the local SLURM cluster does not answer: CI runs scripts/slurm-local.sh up first")
        pytest.skip("the local SLURM cluster does not answer (scripts/slurm-local.sh up starts one)")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # sbatch runs the job in the submitting folder
    yield tmp_path
    for d in (tmp_path / "runs").glob("*"):  # nothing of this test keeps running
        if d.is_dir():
            invoke("cancel", d)


def wait_until(check, timeout: float, what: str, poll: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        if value := check():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def states(sweep_dir: Path) -> dict[str, dict]:
    queue = Queue()
    return {d.name: run_state(d, queue) for d in sorted(sweep_dir.iterdir()) if (d / "config.yaml").is_file()}


def settled(sweep_dir: Path) -> bool:
    return all(not s["active"] for s in states(sweep_dir).values())


def records(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / METRICS).read_text().splitlines()]
    return [r for r in records if "loss" in r]  # not step 0's health record


def test_sweep_through_the_cluster_with_a_failing_run(in_tmp):
    path = write_sweep(in_tmp / "s.yaml", name="e2e", grid={"device": ["cpu", "cuda"]}, seeds=[0, 1])
    result = invoke("sweep", path, "--root", "runs")  # sbatch is on PATH: slurm is the default
    assert result.exit_code == 0, result.output
    assert "4 run(s) launched on slurm" in result.output
    again = invoke("sweep", path, "--root", "runs")
    assert "0 run(s) launched" in again.output  # queued runs are never submitted twice

    sweep_dir = in_tmp / "runs" / "e2e"
    wait_until(lambda: settled(sweep_dir), 240, "the sweep to finish")
    device = {run.run_id: run.config.device for run in load_sweep(path).runs}
    by_device = {"cpu": [], "cuda": []}
    for name, state in states(sweep_dir).items():
        by_device[device[name]].append((name, state))
    for name, state in by_device["cpu"]:
        assert state["state"] == "done", state
        assert read_json(sweep_dir / name / "eval.json")["knn"]["top1"]
        assert "_" in state["job_id"] and "_" in state["eval_job_id"]  # array tasks
    for name, state in by_device["cuda"]:
        assert state["state"] == "failed"
        assert state["error"] == "device=cuda was asked for but no CUDA device is visible"
        assert squeue(state["eval_job_id"]).startswith("CANCELLED")  # its evaluation never ran
        assert not (sweep_dir / name / "eval.json").exists()
    # one training array and one evaluation array
    job = read_json(sweep_dir / by_device["cpu"][0][0] / SUBMISSION)
    assert len({read_json(sweep_dir / n / SUBMISSION)["job_id"].split("_")[0] for n in states(sweep_dir)}) == 1
    assert job["eval_job_id"].split("_")[0] != job["job_id"].split("_")[0]

    status = invoke("status", "e2e", "--root", "runs")
    assert status.exit_code == 0
    lines = status.output.splitlines()
    assert sum("done" in line for line in lines) == 2
    assert sum("failed" in line and "no CUDA device is visible" in line for line in lines) == 2
    assert "0 run(s) launched" in invoke("sweep", path, "--root", "runs").output  # failed stays failed
    retried = invoke("sweep", path, "--root", "runs", "--retry-failed")
    assert "2 run(s) launched" in retried.output


def test_preempted_three_times_the_run_matches_an_uninterrupted_one(in_tmp):
    base = TINY_BASE | {"log_every": 1, "checkpoint_every_s": 3600}  # only the pre-emptions checkpoint
    path = write_sweep(in_tmp / "s.yaml", name="pre", base=base, budget={"kind": "flops", "value": 1.2e11})
    spec = load_sweep(path)
    assert invoke("sweep", path, "--root", "runs", "--executor", "slurm").exit_code == 0
    run_dir = in_tmp / "runs" / "pre" / spec.runs[0].run_id
    job = read_json(run_dir / SUBMISSION)["job_id"]

    for i in range(3):
        at = 40 * (i + 1)
        wait_until(lambda at=at: last_record(run_dir / METRICS).get("step", 0) >= at, 120, f"step {at}")
        subprocess.run(["scancel", "--signal=USR2", job], check=True)  # what SLURM sends before pre-empting
        wait_until(lambda: squeue(job) == "PENDING", 60, "the job to requeue itself")
        assert read_json(run_dir / STATE)["state"] == "requeued"
        stopped = torch.load(run_dir / CHECKPOINT, weights_only=True)["spent"]
        assert stopped["steps"] >= at and stopped["restarts"] == i
        # SLURM holds a requeued job for ~2 minutes; the test cluster lets it start now
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_until(lambda: run_state(run_dir, Queue())["state"] == "done", 240, "the run and its evaluation")

    reference = engine.train(spec.runs[0].config, in_tmp / "reference")  # the same run, never interrupted
    summary = read_json(run_dir / SUMMARY)
    assert summary["compute"]["restarts"] == 3 and summary["compute"]["device_hours_lost"] == 0
    assert summary["compute"]["steps"] == reference["compute"]["steps"]
    assert summary["compute"]["flops"] == reference["compute"]["flops"]  # summed across requeues, once
    assert 0 < summary["compute"]["device_hours"] < (time.time() - read_json(run_dir / SUBMISSION)["submitted"]) / 3600
    a, b = records(run_dir), records(in_tmp / "reference")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert [r["lr"] for r in a] == [r["lr"] for r in b]  # the same schedule, step for step
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-3)
    assert read_json(run_dir / "eval.json")["knn"]["top1"]


def test_two_process_gloo_job_matches_one_process_on_the_same_global_batch(in_tmp):
    # truncate=batch: each process's masks cut to the whole batch's shortest, so two processes equal
    # one. The default (process) cuts within each share, as the official per-GPU collator does.
    base = TINY_BASE | {"log_every": 1, "ijepa.mask.truncate": "batch"}
    path = write_sweep(
        in_tmp / "s.yaml", name="ddp", base=base, budget={"kind": "steps", "value": 6}, slurm={"tasks_per_node": 2}
    )
    spec = load_sweep(path)
    assert invoke("sweep", path, "--root", "runs", "--executor", "slurm").exit_code == 0
    run_dir = in_tmp / "runs" / "ddp" / spec.runs[0].run_id
    wait_until(lambda: run_state(run_dir, Queue())["state"] in ("done", "failed", "crashed"), 240, "the DDP run")
    assert run_state(run_dir, Queue())["state"] == "done", run_state(run_dir, Queue())

    single = engine.train(spec.runs[0].config, in_tmp / "single")
    summary = read_json(run_dir / SUMMARY)
    assert summary["device"]["count"] == 2 and single["device"]["count"] == 1
    assert summary["compute"]["images_seen"] == single["compute"]["images_seen"] == 6 * 16
    assert summary["compute"]["flops"] == pytest.approx(single["compute"]["flops"], rel=1e-6)
    a, b = records(run_dir), records(in_tmp / "single")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-4)
    ours = torch.load(run_dir / CHECKPOINT, weights_only=True)["method"]
    theirs = torch.load(in_tmp / "single" / CHECKPOINT, weights_only=True)["method"]
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_a_killed_job_shows_as_crashed_and_cancel_stops_a_sweep(in_tmp):
    path = write_sweep(in_tmp / "s.yaml", name="long", budget={"kind": "steps", "value": 100_000}, seeds=[0, 1])
    assert invoke("sweep", path, "--root", "runs", "--executor", "slurm").exit_code == 0
    sweep_dir = in_tmp / "runs" / "long"
    wait_until(lambda: all(s["state"] == "running" for s in states(sweep_dir).values()), 90, "both runs to start")
    (killed, state), (other, _) = states(sweep_dir).items()
    os.kill(state["pid"], signal.SIGKILL)  # the training process dies without a word (as by the OOM killer)
    crashed = wait_until(lambda: (s := states(sweep_dir)[killed])["state"] == "crashed" and s, 60, "a crash")
    assert crashed["error"].startswith("FAILED")  # SLURM's word for it, then the log's last line
    assert states(sweep_dir)[other]["state"] == "running"  # the rest of the array carries on
    status = invoke("status", "long", "--root", "runs")
    assert "crashed" in status.output and "running" in status.output

    # a hard requeue (as a pre-emption without warning): the job's last word stays "running", SLURM's is PENDING
    other_job = read_json(sweep_dir / other / SUBMISSION)["job_id"]
    subprocess.run(["scontrol", "requeue", other_job], check=True)
    wait_until(lambda: squeue(other_job) == "PENDING", 60, "the job to be requeued")
    requeued = states(sweep_dir)[other]
    assert read_json(sweep_dir / other / STATE)["state"] == "running"
    assert requeued["state"] == "requeued" and requeued["active"] and requeued["queue"].startswith("PENDING")

    relaunched = invoke("sweep", path, "--root", "runs", "--executor", "slurm")
    assert "1 run(s) launched" in relaunched.output  # only the crashed one
    cancelled = invoke("cancel", path, "--root", "runs")
    assert cancelled.exit_code == 0 and "2 run(s) cancelled" in cancelled.output
    jobs = {
        read_json(sweep_dir / name / SUBMISSION)[key] for name in (killed, other) for key in ("job_id", "eval_job_id")
    }
    for job in jobs:
        wait_until(lambda job=job: squeue(job).startswith("CANCELLED") or squeue(job) == "", 60, f"{job} to end")
    assert {s["state"] for s in states(sweep_dir).values()} == {"cancelled"}
    assert "0 run(s) cancelled" in invoke("cancel", path, "--root", "runs").output


def test_two_sweeps_racing_submit_each_run_once(in_tmp):
    # held in the queue (sbatch --hold): this test is about submission only
    path = write_sweep(in_tmp / "s.yaml", name="race", seeds=[0, 1, 2], slurm={"additional": {"hold": True}})
    bench = str(Path(sys.executable).parent / "bench")
    command = [bench, "sweep", str(path), "--root", "runs", "--executor", "slurm"]
    calls = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [c.communicate(timeout=120)[0] for c in calls]
    assert sorted(int(o.split("run(s) launched")[0].split()[-1]) for o in outputs) == [0, 3], outputs
    sweep_dir = in_tmp / "runs" / "race"
    jobs = [read_json(d / SUBMISSION)["job_id"] for d in sweep_dir.iterdir() if (d / SUBMISSION).is_file()]
    assert len(jobs) == len(set(jobs)) == 3
    assert len({j.split("_")[0] for j in jobs}) == 1  # one array
