"""The one training loop: any registered method, under a compute budget, into one run folder.

    summary = train(cfg, Path("runs/demo/ijepa-1a2b3c4d5e"))

A budget is device-hours (wall-clock of the training loop x devices), FLOPs (counted with
torch's FlopCounterMode on the real step, once per distinct batch shape), optimizer steps
or epochs. The learning rate, weight decay and EMA momentum are functions of the fraction
of the budget spent (bench/schedules.py), so the schedule ends when the budget does.

The run folder holds `config.yaml`, `metrics.jsonl`, `summary.json` and `checkpoint.pt`
(written atomically). Calling `train` again on the same folder resumes from the
checkpoint with the same schedule, data order and masks; compute is summed, never reset.
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

from bench import schedules
from bench.config import BudgetConfig, RunConfig, config_hash, read_config, write_config
from bench.data import Transformed, load_split, train_transform
from bench.errors import BenchError, TrainingFailed
from bench.flops import flop_counter_mode
from bench.methods import augmentation, build_method

log = logging.getLogger(__name__)

CHECKPOINT, SUMMARY, METRICS, CONFIG = "checkpoint.pt", "summary.json", "metrics.jsonl", "config.yaml"


# --- runtime ------------------------------------------------------------------------------


def select_device(cfg: RunConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda was asked for but no CUDA device is visible")
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


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
        return min(self.used() / self.limit, 1.0)

    def done(self) -> bool:
        if self.cfg.kind in ("steps", "epochs"):
            return self.used() >= self.limit
        return self.used() + self.last_cost / 2 >= self.limit

    def fraction_used(self) -> float:
        return self.used() / self.limit


class StepSampler(Sampler):
    """Yields batches of (step, index) for steps start, start+1, ...: the order of epoch e is a
    permutation seeded by (seed, e), so a resumed run sees the same data at the same step."""

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int) -> None:
        if n < batch_size:
            raise BenchError(f"optim.batch_size={batch_size} is larger than the dataset ({n} images)")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start_step
        self.steps_per_epoch = n // batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step, perm, perm_epoch = self.start, None, -1
        while True:
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7_919 + epoch))
                perm_epoch = epoch
            yield [(step, int(j)) for j in perm[i * self.batch_size : (i + 1) * self.batch_size]]
            step += 1


class StepTagged(Dataset):
    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, key: tuple[int, int]):
        step, i = key
        image, label = self.inner[i]
        return step, image, label


class Collate:
    """Stacks a batch and adds the method's per-step inputs (I-JEPA: masks). Picklable for workers."""

    def __init__(self, sampler: Callable[[int, int], dict] | None) -> None:
        self.sampler = sampler

    def __call__(self, samples) -> dict:
        step = samples[0][0]
        batch = {
            "step": step,
            "images": torch.stack([s[1] for s in samples]),
            "labels": torch.tensor([s[2] for s in samples]),
        }
        if self.sampler is not None:
            batch.update(self.sampler(len(samples), step))
        return batch


def param_groups(model: torch.nn.Module) -> list[dict]:
    """No weight decay on biases and 1-D parameters (norms, tokens with one dim)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "apply_wd": True}, {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]


def shape_key(batch: dict) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in batch.items() if isinstance(v, torch.Tensor))


def save_atomic(obj: object, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def parse_record(line: str) -> dict | None:
    """One metrics.jsonl line; None for a line a crash left half-written."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def trim_metrics(path: Path, step: int) -> None:
    """Drop records past the checkpoint's step: those steps were lost and will be trained again."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if (record := parse_record(line)) is not None and record["step"] <= step]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)


def prepare_run_dir(cfg: RunConfig, run_dir: Path) -> None:
    """Create the folder and write the config; refuse to resume a folder made with another config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CONFIG
    if path.is_file():
        if config_hash(read_config(path)) != config_hash(cfg):
            raise BenchError(f"{run_dir} holds a run with a different config; use a new folder")
    else:
        write_config(cfg, path)


# --- the loop -----------------------------------------------------------------------------


def train(cfg: RunConfig, run_dir: Path) -> dict:
    """Train until the budget is spent (resuming if a checkpoint exists); return the summary."""
    run_dir = Path(run_dir)
    prepare_run_dir(cfg, run_dir)
    done = read_json(run_dir / SUMMARY)
    if done and done.get("status") == "done":
        return done

    device = select_device(cfg)
    torch.manual_seed(cfg.seed)
    data = load_split(cfg.data, "train")
    method = build_method(cfg, data.channels).to(device)
    crop_scale, hflip = augmentation(cfg)
    optimizer = torch.optim.AdamW(param_groups(method), lr=cfg.optim.lr, betas=cfg.optim.betas)

    spent = Spent()
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        method.load_state_dict(ckpt["method"])
        optimizer.load_state_dict(ckpt["optimizer"])
        spent = Spent(**ckpt["spent"])
        torch.set_rng_state(ckpt["rng"])  # augmentation draws continue where they stopped
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:  # so do draws on the GPU (data2vec's noise)
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        log.info("resuming %s at step %d", run_dir, spent.steps)

    trim_metrics(run_dir / METRICS, spent.steps)
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, start_step=spent.steps)
    budget = Budget(cfg.budget, sampler.steps_per_epoch, spent)
    loader = DataLoader(
        StepTagged(Transformed(data, train_transform(data, cfg.data.image_size, crop_scale, hflip))),
        batch_sampler=sampler,
        collate_fn=Collate(method.input_sampler()),
        num_workers=cfg.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.data.num_workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),  # keep the global RNG for augmentation only
    )
    summary = {
        "status": "running",
        "budget": {"kind": cfg.budget.kind, "value": cfg.budget.value},
        "device": {"kind": device_name(device), "count": world_size()},
    }
    try:
        last = run_loop(cfg, method, optimizer, loader, budget, device, run_dir)
    except TrainingFailed as e:
        summary.update(status="failed", reason=str(e), compute=compute_summary(budget, len(data)))
        write_json(summary, run_dir / SUMMARY)
        raise
    summary.update(status="done", compute=compute_summary(budget, len(data)), final_loss=last)
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
    }


def run_loop(cfg, method, optimizer, loader, budget: Budget, device, run_dir: Path) -> float | None:
    with (run_dir / METRICS).open("a") as metrics:
        return _loop(cfg, method, optimizer, loader, budget, device, run_dir, metrics)


def _loop(cfg, method, optimizer, loader, budget: Budget, device, run_dir: Path, metrics) -> float | None:
    flops_per_shape: dict[tuple, float] = {}
    devices = world_size()
    lr_scale = schedules.lr_scale(cfg.optim, devices)
    loss_sum, loss_n, last_loss = torch.zeros((), device=device), 0, None
    last_ckpt = time.perf_counter()
    excluded = 0.0  # checkpoint writes and FLOP-counting overhead are not training time
    plain_seconds, plain_steps = 0.0, 0  # time of steps run without the FLOP counter
    t0 = time.perf_counter()
    seconds0 = budget.spent.device_seconds
    batches = iter(loader)
    method.train()
    while not budget.done():
        progress = budget.progress()
        lr = schedules.learning_rate(progress, cfg.optim) * lr_scale
        wd = schedules.weight_decay(progress, cfg.optim)
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
                out = method(batch)
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

        s = budget.spent
        before = budget.used()
        s.steps += 1
        s.images += len(labels) * devices
        s.flops += flops_per_shape[key] * devices
        s.device_seconds = seconds0 + (time.perf_counter() - t0 - excluded) * devices
        budget.last_cost = budget.used() - before
        # 3. EMA (after the step, at the progress reached)
        momentum = method.after_step(budget.progress())
        loss_sum += loss.detach()
        loss_n += 1

        final = budget.done()
        if s.steps % cfg.log_every == 0 or final:
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
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            loss_sum.zero_()
            loss_n = 0
        if final or time.perf_counter() - last_ckpt > cfg.checkpoint_every_s:
            t_ckpt = time.perf_counter()
            if not math.isfinite(float(loss.detach())):
                raise TrainingFailed(f"loss is {float(loss.detach())} at step {s.steps}")
            save_atomic(
                {
                    "method": method.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "spent": vars(s).copy(),
                    "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                },
                run_dir / CHECKPOINT,
            )
            last_ckpt = time.perf_counter()
            excluded += last_ckpt - t_ckpt
    return last_loss
