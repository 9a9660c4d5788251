"""The one training loop: any registered method, under a compute budget, into one run folder.

    summary = train(cfg, Path("runs/demo/ijepa-1a2b3c4d5e"))

A budget is device-hours (wall-clock of the training loop x devices), FLOPs (counted with
torch's FlopCounterMode on the real step, once per distinct batch shape), optimizer steps
or epochs. The learning rate, weight decay and EMA momentum are functions of the fraction
of the budget spent (bench/train/schedules.py), so the schedule ends when the budget does.

The run folder holds `config.yaml`, `metrics.jsonl`, `summary.json` and `checkpoint.pt`
(written atomically; the one before it is kept as `checkpoint.prev.pt`). Calling `train` again
on the same folder resumes from the checkpoint with the same schedule, data order,
augmentations, masks and loss records; compute is summed, never reset, and the steps a crash
lost are counted apart (`device_hours_lost`). A checkpoint.pt that cannot be read, or does not
fit the run, is renamed aside (`checkpoint.pt.damaged`) and training resumes from the previous
one, saying so; when neither can be read, training stops with one line naming them.

Multi-process training: when torch.distributed is initialised (bench/launch/jobs.py does it from
the SLURM job's tasks), the model is wrapped in DistributedDataParallel and every process
trains on its share of the same global batch (`optim.batch_size`), with masks drawn for
the whole batch, so the run matches a single-process run on that batch, with two exceptions
that follow the official code: I-JEPA's default `ijepa.mask.truncate: process` cuts each
process's masks to the shortest of its own share, as the official per-GPU collator does
(`batch` restores the match), and data2vec 2.0 sums its [cls] loss over each process's own
clones, as fairseq does, so more processes weigh [cls] less. Process 0 writes
the run folder and its clock is the budget's.
"""

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.config.ranges import MAX_STEPS
from bench.config.runfile import training_hash
from bench.config.schema import BudgetConfig, RunConfig
from bench.data.datasets import Transformed, load_split, train_transform
from bench.errors import BenchError, DamagedFile, TrainingFailed
from bench.files import first_line, read_torch_file, save_torch, write_text
from bench.progress import progress_bar
from bench.rundir import (
    CHECKPOINT,
    METRICS,
    PREVIOUS_CHECKPOINT,
    SUMMARY,
    parse_record,
    prepare_run_dir,
    read_json,
    write_json,
)
from bench.train import schedules
from bench.train.flops import flop_counter_mode
from bench.train.methods import augmentation, build_method
from core.clock import Clock
from core.method import METHODS, InputSampler

log = logging.getLogger(__name__)


# --- runtime ------------------------------------------------------------------------------


def select_device(cfg: RunConfig) -> torch.device:
    """The configured device; on CUDA, the GPU of this process's local rank (LOCAL_RANK)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda was asked for but no CUDA device is visible")
    kind = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if kind != "cuda":
        return torch.device(kind)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """This process's rank and the number of processes (1 without torch.distributed)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


class Preempted(Exception):
    """Training stopped at a step boundary because `stop()` asked; the checkpoint holds that step."""


def autocast(device: torch.device, precision: str):
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# --- budget -------------------------------------------------------------------------------


@dataclass
class Spent:
    steps: int = 0
    flops: float = 0.0
    device_seconds: float = 0.0
    images: int = 0
    restarts: int = 0  # resumptions from a checkpoint (preemptions, timeouts, crashes)
    lost_device_seconds: float = 0.0  # steps trained, lost in a crash, trained again: not charged


@dataclass
class LossWindow:
    """The loss since the last metrics record (summed over its steps) and the last record's loss, kept
    in the checkpoint: a record whose window holds a resume averages all of its steps, and a run
    resumed with its budget spent (killed before its summary) still knows its final loss."""

    loss_sum: float = 0.0
    steps: int = 0
    last_loss: float | None = None


class Budget:
    """Compute spent against a budget; `progress()` is the fraction spent, in the budget's unit.

    Steps and epochs are whole numbers of steps, so they are met exactly. FLOP and
    device-hour budgets stop at the step boundary closest to the budget: the run stops
    when one more step would overshoot by more than stopping now undershoots, so the
    error is at most half a step.
    """

    def __init__(self, cfg: BudgetConfig, steps_per_epoch: int, spent: Spent | None = None) -> None:
        self.cfg = cfg
        self.spent = spent or Spent()
        self.last_cost = 0.0  # the latest step's cost in the budget's unit: the estimate of the next
        self.limit = cfg.value
        if cfg.kind == "epochs":
            self.limit = math.ceil(cfg.value * steps_per_epoch)
        elif cfg.kind == "device_hours":
            self.limit = cfg.value * 3600.0
        elif cfg.kind == "steps":
            self.limit = math.ceil(cfg.value)

    def used(self) -> float:
        s = self.spent
        return {"steps": s.steps, "epochs": s.steps, "flops": s.flops, "device_hours": s.device_seconds}[self.cfg.kind]

    def progress(self) -> float:
        return min(self.fraction_used(), 1.0)

    def done(self) -> bool:
        if self.cfg.kind in ("steps", "epochs"):
            return self.used() >= self.limit
        return self.used() + self.last_cost / 2 >= self.limit

    def check_length(self) -> None:
        """A FLOP or time budget is bounded in steps once a step's cost is known: refuse one that needs
        more than MAX_STEPS at the latest step's cost (steps and epochs are bounded by validate)."""
        if self.cfg.kind in ("flops", "device_hours") and self.last_cost > 0:
            steps = self.spent.steps + (self.limit - self.used()) / self.last_cost
            if steps > MAX_STEPS:
                raise TrainingFailed(
                    f"budget.value={self.cfg.value:g} {self.cfg.kind} is about {steps:.2g} steps of this run, "
                    f"more than the {MAX_STEPS:.0e} a run may take"
                )

    def fraction_used(self) -> float:
        return self.used() / self.limit if self.limit > 0 else 1.0


class StepSampler(Sampler):
    """Yields batches of (step, index) for steps start, start+1, ...: the order of epoch e is a
    permutation seeded by (seed, e), so a resumed run sees the same data at the same step.
    Process `rank` of `world` gets its contiguous share of each global batch."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, ranks: Ranks = Ranks()) -> None:
        if n < batch_size:
            raise BenchError(f"optim.batch_size={batch_size} is larger than the dataset ({n} images)")
        if batch_size % ranks.world:
            raise BenchError(f"optim.batch_size={batch_size} does not split evenly over {ranks.world} processes")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start_step
        self.steps_per_epoch = n // batch_size
        self.local = batch_size // ranks.world
        self.offset = ranks.rank * self.local

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, perm, perm_epoch = self.start, None, -1
        while True:
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7_919 + epoch))
                perm_epoch = epoch
            start = i * self.batch_size + self.offset
            yield [(step, int(j)) for j in perm[start : start + self.local]]
            step += 1


class StepTagged(Dataset):
    """(step, index) -> (step, image, label), the augmentation drawn from a generator seeded by
    (seed, step, index): the same image gets the same crop at the same step whatever process or
    data-loader worker loads it, so resumed and multi-process runs see what one process would."""

    def __init__(self, inner: Dataset, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key: tuple[int, int]):
        step, i = key
        with torch.random.fork_rng(devices=[]):  # torchvision's transforms draw from the global generator
            torch.manual_seed((self.seed * 1_000_003 + step) * 1_000_033 + i)
            image, label = self.inner[i]
        return step, image, label


class Collate:
    """Stacks a batch and adds the method's per-step inputs (I-JEPA: masks). Picklable for workers.

    The inputs are drawn for the global batch and process `rank` keeps its share: the sampler's
    `process_share` (core/method.py InputSampler: cut along its `batch_dims`, or its own cut)."""

    def __init__(self, sampler: InputSampler | None, ranks: Ranks = Ranks()) -> None:
        self.sampler, self.ranks = sampler, ranks

    def __call__(self, samples) -> dict:
        step = samples[0][0]
        batch = {
            "step": step,
            "images": torch.stack([s[1] for s in samples]),
            "labels": torch.tensor([s[2] for s in samples]),
        }
        if self.sampler is not None:
            rank, world = self.ranks.rank, self.ranks.world
            batch.update(self.sampler.process_share(len(samples) * world, step, rank, world))
        return batch


def param_groups(model: torch.nn.Module) -> list[dict]:
    """No weight decay on biases and 1-D parameters (norms), nor on the parameters the method names
    in `no_weight_decay()` (data2vec v1's [cls], as BEiT's code exempts it)."""
    exempt = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name in exempt else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def shape_key(batch: dict) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in batch.items() if isinstance(v, torch.Tensor))


# --- checkpoints --------------------------------------------------------------------------

CHECKPOINT_KEYS = ("method", "optimizer", "spent", "rng")


def write_checkpoint(state: dict, run_dir: Path) -> None:
    """checkpoint.pt, the one it replaces kept as checkpoint.prev.pt: a checkpoint damaged after it
    was written (a crash before the disk had it, a copy cut short) costs the steps since the
    previous one, not the run. Never more than two on disk: the older previous one goes first, as
    checkpoint.pt was written (fsync) or read back whole by this process, so it is a sound fallback."""
    latest, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    try:
        if latest.is_file():
            previous.unlink(missing_ok=True)
        save_torch(state, latest, keep=previous)
    except OSError as e:
        raise TrainingFailed(
            f"could not write {latest} ({e.strerror or e}): free disk space and run again; "
            "it resumes from the last checkpoint"
        ) from e


def restore(
    path: Path, method: torch.nn.Module, config_hash: str, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Load the checkpoint at `path` into `method` (and `optimizer`) and return it; DamagedFile, naming
    the file, when it cannot be read, lacks a part, was trained with another config (`config_hash`:
    the run's training_hash) or does not fit this run's model."""
    ckpt = read_torch_file(path)
    needed = CHECKPOINT_KEYS if optimizer is not None else CHECKPOINT_KEYS[:1]
    missing = [k for k in needed if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise DamagedFile(f"{path} is damaged (it has no {', '.join(missing)})")
    written_by = ckpt.get("train_config_hash", config_hash)  # checkpoints from before it was recorded: unchecked
    if written_by != config_hash:  # copied from another run: its weights may even fit this model
        raise DamagedFile(f"{path} was trained with another config (hash {written_by}, not this run's {config_hash})")
    try:
        method.load_state_dict(ckpt["method"])
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
            Spent(**ckpt["spent"])  # the fields this version knows
            LossWindow(**ckpt.get("loss", {}))
            if not isinstance(ckpt["rng"], torch.Tensor) or ckpt["rng"].dtype != torch.uint8:
                raise TypeError("its rng state is not a byte tensor")
    except torch.OutOfMemoryError:  # a RuntimeError, but the device's fault, not the file's
        raise
    except (RuntimeError, ValueError, KeyError, TypeError) as e:  # what load_state_dict and the dataclasses raise
        raise DamagedFile(f"{path} does not fit this run's model ({first_line(e, skip_header=True)})") from None
    return ckpt


def load_checkpoint(run_dir: Path, method: torch.nn.Module, config_hash: str) -> dict:
    """Evaluation's reader: the run's checkpoint.pt, loaded into `method`; DamagedFile (one line) when
    it cannot be. Never checkpoint.prev.pt: that is not the trained model."""
    path = Path(run_dir) / CHECKPOINT
    try:
        return restore(path, method, config_hash)
    except DamagedFile as e:
        raise DamagedFile(f"{e}: restore it, or delete its run folder to redo it") from None


def resume_checkpoint(
    run_dir: Path, method: torch.nn.Module, optimizer: torch.optim.Optimizer, config_hash: str, main: bool
) -> dict | None:
    """Training's reader: the checkpoint to resume from, loaded into `method` and `optimizer`; None when
    the run has none. A damaged checkpoint.pt is moved aside (kept, never deleted: it is the user's to
    inspect) and training resumes from checkpoint.prev.pt, saying so; when neither can be read,
    DamagedFile names them and nothing is touched. `main`: this process may rename files."""
    latest, previous = run_dir / CHECKPOINT, run_dir / PREVIOUS_CHECKPOINT
    if not latest.exists() and not previous.exists():
        return None
    damage = None
    if latest.exists():
        try:
            return restore(latest, method, config_hash, optimizer)
        except DamagedFile as e:
            damage = e
    fix = "restore it, or move it aside to train the run again from step 0"
    if not previous.exists():
        raise DamagedFile(f"{damage} and there is no {PREVIOUS_CHECKPOINT} to resume from: {fix}")
    try:
        ckpt = restore(previous, method, config_hash, optimizer)
    except DamagedFile as e:
        if damage is None:
            raise DamagedFile(f"{e} and there is no {CHECKPOINT}: {fix}") from None
        raise DamagedFile(
            f"{damage}, and {e}: restore one of them, or move both aside to train the run again from step 0"
        ) from None
    step = ckpt["spent"].get("steps", 0)
    if damage is None:  # a crash between the two renames of write_checkpoint
        if main:
            log.warning("%s is missing; resuming from %s at step %d", latest, previous.name, step)
        return ckpt
    if main:  # else the next checkpoint would move the damaged file over this sound one
        aside = set_aside(latest)
        log.warning(
            "%s; resuming from %s at step %d (the damaged file is kept as %s)", damage, previous.name, step, aside.name
        )
    return ckpt


def set_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.damaged (.damaged.1, ... if that exists), never over another."""
    aside, n = path.with_name(path.name + ".damaged"), 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged.{n}")
    os.replace(path, aside)
    return aside


def trim_metrics(path: Path, step: int) -> float:
    """Drop records past the checkpoint's step: those steps were lost and will be trained again.
    Returns the device-seconds the last dropped record had counted (0 when none was dropped)."""
    if path.exists() and not path.is_file():
        raise DamagedFile(f"{path} is not a file: move it away so that training can log its metrics there")
    if not path.is_file():
        return 0.0
    # a line a crash cut (or any line that is not a record) is dropped with the lost steps
    lines = path.read_bytes().decode(errors="replace").splitlines(keepends=True)
    records = [parse_record(line) for line in lines]
    kept = [line for line, r in zip(lines, records, strict=True) if r is not None and r["step"] <= step]
    dropped = [r for r in records if r is not None and r["step"] > step]
    if len(kept) != len(lines):
        write_text(path, "".join(kept))
    return float(dropped[-1].get("device_hours", 0.0)) * 3600.0 if dropped else 0.0


# --- the loop -----------------------------------------------------------------------------


def train(
    cfg: RunConfig, run_dir: Path, stop: Callable[[], bool] | None = None, on_log: Callable[[dict], None] | None = None
) -> dict:
    """Train until the budget is spent (resuming if a checkpoint exists); return the summary.

    `stop` is asked after every step; when it says True the step is checkpointed and
    `Preempted` raised (bench/launch/jobs.py turns SLURM's pre-emption signal into it). `on_log`
    receives every record written to metrics.jsonl (bench/tracking.py sends them to W&B)."""
    run_dir = Path(run_dir)
    where = ranks()
    if where.main:
        prepare_run_dir(cfg, run_dir)
    done = read_json(run_dir / SUMMARY)
    if done and done.get("status") == "done":
        return done

    device = select_device(cfg)
    torch.manual_seed(cfg.seed)
    data = load_split(cfg.data, "train")
    method = build_method(cfg, data.channels).to(device)
    optimizer = torch.optim.AdamW(param_groups(method), lr=cfg.optim.lr, betas=cfg.optim.betas)

    spent, window = Spent(), LossWindow()
    train_hash = training_hash(cfg)
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
        torch.manual_seed((cfg.seed * 1_000_003 + where.rank) * 7_919 + spent.steps)

    if where.main:
        counted = trim_metrics(run_dir / METRICS, spent.steps)
        spent.lost_device_seconds += max(counted - spent.device_seconds, 0.0)
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, spent.steps, where)
    budget = Budget(cfg.budget, sampler.steps_per_epoch, spent)
    loader = DataLoader(
        StepTagged(Transformed(data, train_transform(data, cfg.data.image_size, augmentation(cfg))), cfg.seed),
        batch_sampler=sampler,
        collate_fn=Collate(method.input_sampler(), where),
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.data.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    summary = {
        "status": "running",
        "train_config_hash": train_hash,  # evaluation refuses a config.yaml whose training part changed
        "budget": {"kind": cfg.budget.kind, "value": cfg.budget.value},
        "device": {"kind": device_name(device), "count": where.world},
    }
    try:
        last = run_loop(cfg, method, optimizer, loader, budget, window, device, run_dir, stop, on_log)
    except TrainingFailed as e:
        summary.update(status="failed", reason=str(e), compute=compute_summary(budget, len(data)))
        if where.main:
            write_json(summary, run_dir / SUMMARY)
        raise
    summary.update(status="done", compute=compute_summary(budget, len(data)), final_loss=last)
    if where.main:
        write_json(summary, run_dir / SUMMARY)
        log.info("run %s done: %s", run_dir, summary["compute"])
    return summary


def compute_summary(budget: Budget, n_train: int) -> dict:
    s = budget.spent
    return {
        "steps": s.steps,
        "flops": s.flops,
        "device_hours": s.device_seconds / 3600.0,
        "images_seen": s.images,
        "epochs": s.images / n_train,
        "budget_used": budget.fraction_used(),
        "restarts": s.restarts,
        "device_hours_lost": s.lost_device_seconds / 3600.0,
    }


def run_loop(
    cfg, method, optimizer, loader, budget: Budget, window: LossWindow, device, run_dir: Path, stop=None, on_log=None
):
    if not ranks().main:  # process 0 writes the run folder
        return _loop(
            cfg, method, optimizer, loader, budget, window, device, run_dir, None, stop, None, lambda done: None
        )
    description = f"training {run_dir.name} ({cfg.budget.kind} budget)"
    with (run_dir / METRICS).open("a") as metrics, progress_bar(description, 1.0) as show:
        return _loop(cfg, method, optimizer, loader, budget, window, device, run_dir, metrics, stop, on_log, show)


def _loop(cfg, method, optimizer, loader, budget: Budget, window, device, run_dir: Path, metrics, stop, on_log, show):
    where = ranks()
    dist = torch.distributed
    model = method
    if where.world > 1:  # gradients averaged over the processes: the mean over the global batch
        ids = [device] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(method, device_ids=ids)
    flops_per_shape: dict[tuple, float] = {}
    devices = where.world
    lr_scale = schedules.lr_scale(cfg.optim)
    paper_updates = METHODS.get(cfg.method).paper_run.updates

    def clock() -> Clock:
        return Clock(budget.progress(), budget.spent.steps, cfg.recipe, paper_updates)

    # the loss summed over this process's steps since the last record; resumed from the checkpoint
    loss_sum = torch.tensor(window.loss_sum, device=device)
    loss_n, last_loss = window.steps, window.last_loss
    last_ckpt = time.perf_counter()
    excluded = 0.0  # checkpoint writes and FLOP-counting overhead are not training time
    plain_seconds, plain_steps = 0.0, 0  # time of steps run without the FLOP counter
    t0 = time.perf_counter()
    seconds0 = budget.spent.device_seconds
    train_hash = training_hash(cfg)  # what each checkpoint was trained with (restore refuses another's)

    def save() -> None:
        """Every process calls it (the loss window is the processes' mean); process 0 writes."""
        partial = loss_sum.detach().clone()
        if where.world > 1:  # each process restarts from the mean: the record's all-reduce then sums it back
            dist.all_reduce(partial)
            partial /= where.world
        if not where.main:
            return
        if metrics is not None:  # the records up to this step reach the disk before the checkpoint that covers them
            os.fsync(metrics.fileno())
        state = {
            "method": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "train_config_hash": train_hash,
            "spent": vars(budget.spent).copy(),
            "loss": vars(LossWindow(float(partial), loss_n, last_loss)),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }
        write_checkpoint(state, run_dir)

    if budget.done():
        if budget.spent.steps == 0:  # a zero budget: the initialisation is the result
            save()
        return last_loss  # resumed with the budget spent (killed before the summary): the final record's loss
    batches = iter(loader)
    method.train()
    while not budget.done():
        position = clock().position()
        lr = schedules.learning_rate(position, cfg.optim) * lr_scale
        wd = schedules.weight_decay(position, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
            if group["apply_wd"]:
                group["weight_decay"] = wd
        batch = next(batches)
        if batch.pop("step") != budget.spent.steps:  # data order and masks are indexed by step
            raise RuntimeError("data loader is out of step with the optimizer")
        labels = batch.pop("labels")
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        key = shape_key(batch)
        counted = key not in flops_per_shape
        counter = flop_counter_mode() if counted else nullcontext()
        t_step = time.perf_counter()

        with counter:
            # 1. forward
            with autocast(device, cfg.precision):
                out = model(batch)
            loss = out["loss"]
            # 2. backward
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if cfg.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.optim.clip_grad)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the clock must see the GPU's work, not the host's
        step_seconds = time.perf_counter() - t_step
        if counted:
            flops_per_shape[key] = float(counter.get_total_flops())
            if plain_steps:  # charge a counted step at the mean plain step, not at the counter's overhead
                excluded += max(step_seconds - plain_seconds / plain_steps, 0.0)
        else:
            plain_seconds, plain_steps = plain_seconds + step_seconds, plain_steps + 1

        elapsed, step_flops = time.perf_counter() - t0 - excluded, flops_per_shape[key]
        stopping = stop is not None and stop()
        save_due = time.perf_counter() - last_ckpt > cfg.checkpoint_every_s
        bad = not math.isfinite(float(loss.detach())) if where.world == 1 and (save_due or stopping) else False
        if where.world > 1:
            elapsed, stopping, save_due, step_flops, bad = agree(
                where, device, elapsed, stopping, save_due, step_flops, loss
            )
        s = budget.spent
        before = budget.used()
        s.steps += 1
        s.images += len(labels) * devices
        s.flops += step_flops
        s.device_seconds = seconds0 + elapsed * devices
        budget.last_cost = budget.used() - before
        budget.check_length()
        # 3. EMA (after the step, at the progress reached)
        momentum = method.after_step(clock())
        show(budget.progress())
        loss_sum += loss.detach()
        loss_n += 1

        final = budget.done()
        if s.steps % cfg.log_every == 0 or final:
            if where.world > 1:
                dist.all_reduce(loss_sum)
                loss_sum /= where.world
            last_loss = float(loss_sum) / loss_n
            if not math.isfinite(last_loss):
                raise TrainingFailed(f"loss is {last_loss} at step {s.steps}")
            record = {
                "step": s.steps,
                "progress": round(budget.progress(), 6),
                "loss": last_loss,
                "lr": lr,
                "wd": wd,
                "ema": momentum,
                "images": s.images,
                "flops": s.flops,
                "device_hours": s.device_seconds / 3600,
            }
            if metrics is not None:
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
            if on_log is not None:
                on_log(record)
            loss_sum.zero_()
            loss_n = 0
        if final and where.world == 1:
            bad = not math.isfinite(float(loss.detach()))
        if bad and (final or save_due or stopping):  # never checkpoint a diverged model
            value = float(loss.detach()) if where.world == 1 else "not finite on a process"
            raise TrainingFailed(f"loss is {value} at step {s.steps}")
        if stopping and not final:
            save()
            if where.world > 1:
                dist.barrier()  # the checkpoint is on disk before any process leaves
            raise Preempted(f"stopped at step {s.steps}")
        if final or save_due:
            t_ckpt = time.perf_counter()
            save()
            last_ckpt = time.perf_counter()
            excluded += last_ckpt - t_ckpt
    return last_loss


def agree(where: Ranks, device, elapsed: float, stopping: bool, save_due: bool, flops: float, loss) -> tuple:
    """One all-reduce per step, so every process takes the same decisions at the same step:
    process 0's clock, stop and checkpoint decisions, the FLOPs of all the processes' shares
    (they can differ: data2vec v1's head runs on each share's masked tokens), and whether any
    process's loss is not finite."""
    mine = [elapsed, float(stopping), float(save_due)] if where.main else [0.0, 0.0, 0.0]
    shared = torch.tensor([*mine, flops, 0.0], dtype=torch.float64, device=device)
    shared[4] = (~torch.isfinite(loss.detach())).double()
    torch.distributed.all_reduce(shared)
    elapsed, stopping, save_due, flops, bad = shared.tolist()
    return elapsed, stopping > 0, save_due > 0, flops, bad > 0
