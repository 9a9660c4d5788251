"""Training: any registered method, under a compute budget, into one run folder.

    summary = train(cfg, Path("runs/demo/ijepa-1a2b3c4d5e"))

`train` sets a run up here (model, optimizer, resume, data) and hands it to the loop
(bench/train/loop.py: the step, forward / backward / optimizer / EMA, then its accounting, record
and checkpoint). Beside it: budget.py (compute spent), clock.py (training time, FLOPs per batch
shape), records.py (metrics.jsonl), checkpoint.py (write, restore, resume), loader.py (batches
indexed by step), devices.py and ddp.py (device, processes, their agreement at each step).

A budget is device-hours (wall-clock of the training loop x devices), FLOPs (counted with
torch's FlopCounterMode on the real step, once per distinct batch shape), optimizer steps
or epochs. Every record and the summary also say how fast: the FLOP/s achieved and, on a device
whose peak bench/peaks.py knows, the model-FLOPs utilisation (`flops_per_s`, `mfu`). `compile: true`
trains through torch.compile (bench/train/devices.py `compiled`). The learning rate, weight decay
and EMA momentum are functions of the fraction of the budget spent (bench/train/schedules.py), so
the schedule ends when the budget does.

The run folder holds `config.yaml`, `metrics.jsonl`, `summary.json` and `checkpoint.pt`
(written atomically; the one before it is kept as `checkpoint.prev.pt`). Calling `train` again
on the same folder resumes from the checkpoint with the same schedule, data order,
augmentations, masks and loss records; compute is summed, never reset, and the steps a crash
lost are counted apart (`device_hours_lost`). A checkpoint.pt that cannot be read, or does not
fit the run, is renamed aside (`checkpoint.pt.damaged`) and training resumes from the previous
one, saying so; when neither can be read, training stops with one line naming them.

Multi-process training: when torch.distributed is initialised (bench/launch/job.py does it from
the SLURM job's tasks), the model is wrapped in DistributedDataParallel and every process
trains on its share of the same global batch (`optim.batch_size`), with masks drawn for
the whole batch, so the run matches a single-process run on that batch, with two exceptions
that follow the official code: I-JEPA's default `ijepa.mask.truncate: process` cuts each
process's masks to the shortest of its own share, as the official per-GPU collator does
(`batch` restores the match), and data2vec 2.0 sums its [cls] loss over each process's own
clones, as fairseq does, so more processes weigh [cls] less; and on CPUs LeJEPA's projector
BatchNorm normalises each process's share (torch has SyncBatchNorm on GPUs only, where ddp.py uses
it). LeJEPA's SIGReg is computed on the global batch in every case. Process 0 writes
the run folder and its clock is the budget's.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import torch

from bench.config.runfile import training_hash
from bench.config.schema import RunConfig
from bench.data.datasets import load_split
from bench.errors import TrainingFailed
from bench.peaks import peak_of, utilisation
from bench.rundir import METRICS, SUMMARY, TrainingStatus, is_trained, prepare_run_dir, read_json, write_json
from bench.train.budget import Budget, Spent
from bench.train.checkpoint import resume_checkpoint, trim_metrics
from bench.train.clock import StepClock
from bench.train.ddp import wrap
from bench.train.devices import Ranks, device_name, ranks, select_device
from bench.train.health import Health, final_health
from bench.train.loader import StepSampler, training_loader
from bench.train.loop import Run, run_loop
from bench.train.methods import build_method
from bench.train.records import LossWindow, Window, metrics_log
from core.method import METHODS
from core.seeding import ITEMS, STEPS, derive_seed

log = logging.getLogger(__name__)


def train(
    cfg: RunConfig,
    run_dir: Path,
    stop: Callable[[], bool] | None = None,
    on_log: Callable[[dict], None] | None = None,
    prepared: bool = False,
) -> dict:
    """Train until the budget is spent (resuming if a checkpoint exists); return the summary.

    `stop` is asked after every step; when it says True the step is checkpointed and
    `Preempted` (bench/train/loop.py) raised (bench/launch/job.py turns SLURM's pre-emption signal
    into it). `on_log` receives every record written to metrics.jsonl (bench/tracking.py sends them to W&B).
    `prepared`: the caller (bench/launch/job.py) has made the folder and checked its config already."""
    run_dir = Path(run_dir)
    where = ranks()
    if where.main and not prepared:
        prepare_run_dir(cfg, run_dir)
    done = read_json(run_dir / SUMMARY)
    if is_trained(done):
        return done

    device = select_device(cfg)
    torch.manual_seed(cfg.seed)
    data = load_split(cfg.data, "train")
    method = build_method(cfg, data.channels).to(device)
    health = Health.start(cfg, data, method, device, where.main)  # θ_0: before a checkpoint is loaded
    optimizer = torch.optim.AdamW(param_groups(method), lr=cfg.optim.lr, betas=cfg.optim.betas)
    train_hash = training_hash(cfg)
    spent, window, on_device = resume(cfg, run_dir, method, optimizer, train_hash, device, where)
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, spent.steps, where)
    budget = Budget(cfg.budget, sampler.steps_per_epoch, spent)
    loader = training_loader(cfg, data, method, sampler, where, device, on_device)
    summary = {
        "status": TrainingStatus.RUNNING,
        "train_config_hash": train_hash,  # evaluation refuses a config.yaml whose training part changed
        "budget": {"kind": cfg.budget.kind, "value": cfg.budget.value},
        "device": {"kind": device_name(device), "count": where.world},
    }
    try:
        with metrics_log(run_dir, where.main, f"training {run_dir.name} ({cfg.budget.kind} budget)", on_log) as metrics:
            model = wrap(method, device, where)
            parts = (model, optimizer, loader, budget, device, where, Window(window, device))
            clock = StepClock(budget.spent.device_seconds)
            paper_updates = METHODS.get(cfg.method).paper_run.updates
            run = Run(cfg, run_dir, method, *parts, clock, metrics, stop, train_hash, paper_updates, health)
            last = run_loop(run)
    except TrainingFailed as e:
        summary.update(status=TrainingStatus.FAILED, reason=str(e), compute=compute(budget, len(data), where, device))
        if where.main:
            write_json(summary, run_dir / SUMMARY)
        raise
    summary.update(status=TrainingStatus.DONE, compute=compute(budget, len(data), where, device), final_loss=last)
    if health is not None:  # the final values (a run resumed with its budget spent measured none: the file's)
        summary.update(health=final_health(run_dir / METRICS), health_seconds=budget.spent.health_seconds)
    if where.main:
        write_json(summary, run_dir / SUMMARY)
        log.info("run %s done: %s", run_dir, summary["compute"])
    return summary


def compute(budget: Budget, n_train: int, where: Ranks, device: torch.device) -> dict:
    """summary.json's `compute`: what the run spent, its FLOP/s over all its training time and MFU
    against `peak_flops_per_s` (one device's; None on the CPU or a device bench/peaks.py does not know)."""
    s, peak = budget.spent, peak_of(device_name(device))
    speed = utilisation(s.flops, s.device_seconds, where.world, peak)
    return budget.summary(n_train) | speed | {"peak_flops_per_s": peak.flops_per_s if peak else None}


def resume(cfg: RunConfig, run_dir: Path, method, optimizer, train_hash: str, device, where: Ranks):
    """(Spent, LossWindow) to start from: the checkpoint's, its random state restored, or a fresh
    start's; the metrics records of steps it lost dropped (process 0), their device-seconds counted apart."""
    spent, window = Spent(), LossWindow()
    ckpt = resume_checkpoint(run_dir, method, optimizer, train_hash, where.main)
    if ckpt is not None:
        spent = Spent(**ckpt["spent"])
        spent.restarts += 1
        window = LossWindow(**ckpt.get("loss", {}))  # checkpoints written before it was kept: an empty window
        torch.set_rng_state(ckpt["rng"])  # the model's own draws continue where they stopped
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:  # so do draws on the GPU (data2vec's noise)
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        log.info("resuming %s at step %d", run_dir, spent.steps)
    if where.world > 1:  # each process its own draws (data2vec's decoder noise), reproducibly
        torch.manual_seed(derive_seed(derive_seed(cfg.seed, where.rank, STEPS), spent.steps, ITEMS))
    if where.main:
        # without a checkpoint every record goes, step 0's health record included
        counted = trim_metrics(run_dir / METRICS, spent.steps if ckpt is not None else -1)
        spent.lost_device_seconds += max(counted - spent.device_seconds, 0.0)
    return spent, window, None if ckpt is None else ckpt.get("data_on_device")


def param_groups(model: torch.nn.Module) -> list[dict]:
    """No weight decay on biases and 1-D parameters (norms), nor on the parameters the method names
    in `no_weight_decay()` (data2vec v1's [cls], as BEiT's code exempts it)."""
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name in exempt else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]
