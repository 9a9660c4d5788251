"""SLURM: a cluster's parameters, the executors that submit to it, and what its queue says.

A sweep's SLURM parameters come from a cluster profile (YAML, `--profile FILE` or
$BENCH_SLURM_PROFILE) overlaid with the sweep's own `slurm:` section:

    partition: gpu
    account: my-lab
    gpus_per_node: 8
    tasks_per_node: 8        # one training process per GPU (DDP over the job's tasks)
    cpus_per_task: 10
    mem_gb: 480
    timeout_min: 240         # a job that runs out of time checkpoints and requeues itself
    array_parallelism: 16    # runs of one sweep training at the same time
    additional: {reservation: ssl}   # any other sbatch option

`bench/launch/executors.py` submits a sweep as one training array and one evaluation array whose task
i starts when training task i has succeeded (`--dependency=aftercorr`). The queue is read
with one `squeue` call; `sacct` is asked about jobs that have left it when accounting exists.
"""

import getpass
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.config.yamlio import load_yaml
from bench.errors import BenchError
from core.ranges import COUNT, NON_NEGATIVE, POSITIVE

log = logging.getLogger(__name__)

PROFILE_ENV = "BENCH_SLURM_PROFILE"
# SLURM job states in which a job still owns its run (pending, running, or on its way back)
ACTIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
}
# states of a job waiting to (re)start: after a hard requeue its run last said "running"
WAITING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD"}


@dataclass
class SlurmConfig:
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 24 * 60
    eval_timeout_min: int = 4 * 60
    eval_mem_gb: float | None = None  # default: the training job's memory per task
    array_parallelism: int = 64
    max_num_timeout: int = 30  # requeues after running out of time (pre-emptions are not counted)
    signal_delay_s: int = 120  # USR2 this long before the time limit: time to checkpoint
    setup: tuple[str, ...] = ()  # shell lines run before the job, e.g. "module load cuda/12.4"
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {reservation: ssl}


SLURM_RANGES = {
    f"slurm.{name}": rng
    for names, rng in (
        (("nodes", "tasks_per_node", "cpus_per_task", "timeout_min", "eval_timeout_min", "array_parallelism"), COUNT),
        (("gpus_per_node", "max_num_timeout", "signal_delay_s"), NON_NEGATIVE),
        (("mem_gb", "eval_mem_gb"), POSITIVE),
    )
    for name in names
}


def slurm_config(section: dict | None = None, profile: Path | None = None) -> SlurmConfig:
    """A cluster profile (YAML of SlurmConfig keys) overlaid with a sweep's `slurm:` section."""
    from bench.config.parse import from_dict, merge  # here: they import the methods (torch); bench status reads
    from bench.config.ranges import check_ranges  # the queue through this module without them

    data = load_yaml(profile, "SLURM profile") if profile else {}
    if section is not None and not isinstance(section, dict):
        raise BenchError("slurm must be a mapping of SLURM parameters, e.g. {partition: gpu, gpus_per_node: 8}")
    cfg = from_dict(SlurmConfig, merge(data, section or {}), prefix="slurm.")
    check_ranges(cfg, SLURM_RANGES, "slurm.")
    return cfg


def available() -> bool:
    return shutil.which("sbatch") is not None


def executor(folder: Path, cfg: SlurmConfig, name: str, evaluation: bool, dependency: str | None = None):
    """A submitit SlurmExecutor for a sweep's training jobs, or for its (single-task) evaluations."""
    import submitit  # here: reading the queue (bench status, the results tables) needs no submitit

    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:  # submitit would say so with a RuntimeError, or a FileNotFoundError at the first sbatch
        raise BenchError(
            f"the slurm executor needs {' and '.join(missing)} on PATH (a SLURM login node); "
            "without SLURM, --executor local"
        )
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=cfg.max_num_timeout)
    extra = dict(cfg.additional)
    if dependency:
        extra["kill-on-invalid-dep"] = "yes"  # a failed training run cancels its evaluation
    params = {
        "job_name": name,
        "partition": cfg.partition,
        "account": cfg.account,
        "qos": cfg.qos,
        "constraint": cfg.constraint,
        "exclude": cfg.exclude,
        "nodes": 1 if evaluation else cfg.nodes,
        "ntasks_per_node": 1 if evaluation else cfg.tasks_per_node,
        "gpus_per_node": min(cfg.gpus_per_node, 1) if evaluation else cfg.gpus_per_node,
        "cpus_per_task": cfg.cpus_per_task,
        "mem": f"{mem:g}GB" if (mem := eval_mem(cfg) if evaluation else cfg.mem_gb) else None,
        "time": cfg.eval_timeout_min if evaluation else cfg.timeout_min,
        "array_parallelism": cfg.array_parallelism,
        "signal_delay_s": cfg.signal_delay_s,
        "setup": list(cfg.setup),
        "dependency": dependency,
        "additional_parameters": extra,
        # one failed process ends the step at once instead of leaving the others in a collective
        "srun_args": ["--kill-on-bad-exit=1"] if not evaluation and cfg.nodes * cfg.tasks_per_node > 1 else None,
    }
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None and v != 0})
    return ex


def eval_mem(cfg: SlurmConfig) -> float | None:
    """An evaluation is one process: by default it gets a training process's share of the memory."""
    if cfg.eval_mem_gb is not None or cfg.mem_gb is None:
        return cfg.eval_mem_gb
    return cfg.mem_gb / cfg.tasks_per_node


def array_id(job_id: str) -> str:
    return job_id.split("_")[0]


def _run(cmd: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("%s: %s", cmd[0], e)
        return None


def queue() -> dict[str, str] | None:
    """{job id: "STATE" or "STATE (reason)"} for this user's jobs, array tasks one by one, finished
    ones too while SLURM remembers them (MinJobAge); None when squeue does not answer."""
    user = getpass.getuser()  # not --me: that needs SLURM >= 20.11
    done = _run(["squeue", "--user", user, "--noheader", "--array", "--states=all", "--format=%i|%T|%r"])
    if done is None or done.returncode != 0:
        if done is not None:
            log.warning("squeue failed: %s", done.stderr.strip().splitlines()[-1:] or done.returncode)
        return None
    jobs = {}
    for line in done.stdout.splitlines():
        job, state, reason = (line.split("|") + ["", ""])[:3]
        jobs[job.strip()] = state if reason in ("", "None") else f"{state} ({reason})"
    return jobs


def accounted(job_ids: list[str]) -> dict[str, str] | None:
    """Final states from sacct for jobs squeue has forgotten; None when there is no accounting."""
    if shutil.which("sacct") is None:
        return None
    done = _run(
        ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State", "-j", ",".join(job_ids)]
    )
    if done is None or done.returncode != 0:
        return None
    rows = (line.split("|") for line in done.stdout.splitlines() if "|" in line)
    return {row[0]: row[1].split()[0] for row in rows if row[1]}


def is_active(state: str | None) -> bool:
    return bool(state) and state.split()[0] in ACTIVE


def is_waiting(state: str | None) -> bool:
    return bool(state) and state.split()[0] in WAITING


def cancel(job_ids: list[str]) -> None:
    if not job_ids:
        return
    done = _run(["scancel", *job_ids])
    if done is None or done.returncode != 0:
        raise BenchError(f"scancel failed: {done.stderr.strip() if done else 'not found'}")
