"""The training loop and its step: forward, backward, optimizer, EMA, then the step's accounting
(clock and budget, bench/train/clock.py and budget.py), its record (records.py) and its checkpoint
(checkpoint.py). With several processes, one all-reduce a step (ddp.py) makes them agree."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from bench.config.schema import RunConfig
from bench.peaks import Peak, peak_of, utilisation
from bench.train import schedules
from bench.train.budget import Budget
from bench.train.checkpoint import write_checkpoint
from bench.train.clock import StepClock
from bench.train.ddp import agree, barrier
from bench.train.device_batches import DeviceBatches
from bench.train.devices import Ranks, autocast, compiled, device_name
from bench.train.health import Health
from bench.train.records import MetricsLog, Window, check_finite
from core.clock import Clock


class Preempted(Exception):
    """Training stopped at a step boundary because `stop()` asked; the checkpoint holds that step."""


@dataclass
class Run:
    """One training session's parts: what the loop and its step work with."""

    cfg: RunConfig
    run_dir: Path
    method: torch.nn.Module
    model: torch.nn.Module  # what the step calls: the method, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    loader: DataLoader | DeviceBatches  # the CPU path's, or the device path's (data.on_device)
    budget: Budget
    device: torch.device
    where: Ranks
    window: Window
    clock: StepClock
    log: MetricsLog
    stop: Callable[[], bool] | None
    train_hash: str  # what each checkpoint was trained with (restore refuses another's)
    paper_updates: int  # the paper's run length in updates (`recipe: paper` schedules)
    health: Health | None = None  # process 0's health signals (None: off, or another process)
    peak: Peak | None = field(init=False)  # the device's peak FLOP/s (bench/peaks.py); None: unknown, no MFU
    compiled: torch.nn.Module | None = field(init=False)  # `compile: true`: `model` through torch.compile
    mark: tuple[float, float] = field(init=False)  # (FLOPs, device-seconds) spent at the record before

    def __post_init__(self) -> None:
        self.peak = peak_of(device_name(self.device))
        self.compiled = compiled(self.model, self.cfg)
        self.mark = (self.budget.spent.flops, self.budget.spent.device_seconds)  # the first record's: this session's


@dataclass(frozen=True)
class Due:
    """What the processes agreed after a step: stop here, write a checkpoint, a process's loss is bad."""

    stopping: bool
    checkpoint: bool
    bad: bool


def run_loop(run: Run) -> float | None:
    """Train until the budget is spent; the last record's loss."""
    if run.budget.spent.steps == 0 and run.budget.spent.restarts == 0:  # the initialisation's health
        write_records(run, None, run.budget.done())
    if run.budget.done():
        if run.budget.spent.steps == 0:  # a zero budget: the initialisation is the result
            save(run)
        return run.window.last_loss  # resumed spent (killed before the summary): the final record's loss
    batches = iter(run.loader)
    run.method.train()
    while not run.budget.done():
        step(run, next(batches))
    return run.window.last_loss


def step(run: Run, batch: dict) -> None:
    """One optimizer step on `batch`, then its accounting, record and checkpoint."""
    lr, wd = set_schedule(run)
    images, batch = to_device(run, batch)
    with run.clock.start(batch):  # the step's clock; a batch shape's first step counts its FLOPs
        # 1. forward (compiled, except on a counted step: FlopCounterMode cannot see inside a graph)
        model = run.model if run.compiled is None or run.clock.counting else run.compiled
        with autocast(run.device, run.cfg.precision):
            out = model(batch)
        # 2. backward
        run.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
    # 3. optimizer
    if run.cfg.optim.clip_grad:
        torch.nn.utils.clip_grad_norm_(run.method.parameters(), run.cfg.optim.clip_grad)
    run.optimizer.step()
    due = account(run, images, out["loss"])  # charged to the budget before the EMA reads the progress
    # 4. EMA (after the step, at the progress reached)
    momentum = run.method.after_step(clock(run))

    run.log.show(run.budget.progress())
    run.window.add(out)
    steps, final = run.budget.spent.steps, run.budget.done()
    means = run.window.close(run.where) if steps % run.cfg.log_every == 0 or final else None
    average = None if means is None else means["loss"]
    check_finite(out["loss"], average, final or due.checkpoint or due.stopping, due.bad, run.where, steps)
    write_records(run, None if means is None else record(run, means, lr, wd, momentum), final)
    if due.stopping and not final:
        save(run)
        barrier(run.where)  # the checkpoint is on disk before any process leaves
        raise Preempted(f"stopped at step {steps}")
    if final or due.checkpoint:
        with run.clock.checkpointing():
            save(run)


def clock(run: Run) -> Clock:
    """Where the schedules stand: the budget's progress and the steps taken."""
    return Clock(run.budget.progress(), run.budget.spent.steps, run.cfg.recipe, run.paper_updates)


def set_schedule(run: Run) -> tuple[float, float]:
    """The learning rate and weight decay at the budget's progress, set in the optimizer."""
    position = clock(run).position()
    lr = schedules.learning_rate(position, run.cfg.optim) * schedules.lr_scale(run.cfg.optim)
    wd = schedules.weight_decay(position, run.cfg.optim)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
        if group["apply_wd"]:
            group["weight_decay"] = wd
    return lr, wd


def to_device(run: Run, batch: dict) -> tuple[int, dict]:
    """The batch's number of images and its tensors on the device (labels are not the method's)."""
    if batch.pop("step") != run.budget.spent.steps:  # data order and masks are indexed by step
        raise RuntimeError("data loader is out of step with the optimizer")
    images = len(batch.pop("labels"))
    return images, {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}


def account(run: Run, images: int, loss: torch.Tensor) -> Due:
    """The step's time and FLOPs charged to the budget, and whether to stop or checkpoint after it."""
    elapsed, flops = run.clock.stop(run.device)
    stopping = run.stop is not None and run.stop()
    checkpoint = run.clock.checkpoint_due(run.cfg.checkpoint_every_s)
    bad = False
    if run.where.world > 1:
        elapsed, stopping, checkpoint, flops, bad = agree(
            run.where, run.device, elapsed, stopping, checkpoint, flops, loss
        )
    world = run.where.world
    run.budget.charge(images * world, flops, run.clock.seconds0 + elapsed * world)
    return Due(stopping, checkpoint, bad)


def record(run: Run, means: dict, lr: float, wd: float, momentum: float) -> dict:
    """A metrics.jsonl record: the window's mean loss and parts, the schedules, the compute spent."""
    s = run.budget.spent
    parts = {k: v for k, v in means.items() if k != "loss"}
    return {
        "step": s.steps,
        "progress": round(run.budget.progress(), 6),
        "loss": means["loss"],
        "lr": lr,
        "wd": wd,
        "ema": momentum,
        **compute_spent(run),
        **parts,
    }


def compute_spent(run: Run) -> dict:
    """A record's compute: images, FLOPs and device-hours spent so far, and the speed since the record
    before (the first: since this session began): `flops_per_s`, the FLOPs charged over the training
    seconds charged (wall-clock, all processes together), and `mfu`, that over the processes' devices'
    peak (None on a device without one). Both time-based: None when no training time passed."""
    s = run.budget.spent
    flops, seconds = run.mark
    run.mark = (s.flops, s.device_seconds)
    speed = utilisation(s.flops - flops, s.device_seconds - seconds, run.where.world, run.peak)
    return {"images": s.images, "flops": s.flops, "device_hours": s.device_seconds / 3600, **speed}


def write_records(run: Run, metrics: dict | None, final: bool) -> None:
    """The step's metrics record (None: none due), with its health signals merged in when they are due;
    health signals due at a step without a metrics record go in a record of their own."""
    health = {}
    if run.health is not None and run.health.due(run.budget.spent.steps, final):
        aside = run.clock.excluded
        with run.clock.aside():  # not training time, no FLOPs
            health = run.health.measure(run.method)
        run.budget.spent.health_seconds += run.clock.excluded - aside
    if metrics is not None:
        run.log.write(metrics | health)
    elif health:
        progress = round(run.budget.progress(), 6)
        run.log.write({"step": run.budget.spent.steps, "progress": progress, **compute_spent(run), **health})


def save(run: Run) -> None:
    """Every process calls it (the loss window is the processes' mean); process 0 writes."""
    window = run.window.saved(run.where)
    if not run.where.main:
        return
    run.log.sync()  # the records up to this step reach the disk before the checkpoint that covers them
    state = {
        "method": run.method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "train_config_hash": run.train_hash,
        "spent": vars(run.budget.spent).copy(),
        "loss": vars(window),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
        "data_on_device": isinstance(run.loader, DeviceBatches),  # the data path a resume keeps
    }
    write_checkpoint(state, run.run_dir)
