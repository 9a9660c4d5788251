"""Training throughput per method and backbone on one device: images/s of the full training step
(forward, backward, optimizer, EMA), FLOPs per image, achieved FLOP/s and MFU (bench/peaks.py).

What it times is what training runs: the config through bench.config.validate.build_config, the method
through bench.train.methods.build_method, AdamW with engine.py's parameter groups, the step's autocast
(bench/train/devices.py) and, with --compile, torch.compile. The batches (images and the method's inputs
from its input_sampler: masks, LeJEPA's slices) are made beforehand by the training loader on synthetic
1-channel images, on the device (the device path on CUDA), three of them, which the steps cycle
through: the data path is not timed (scripts/benchmark_data.py times it). FLOPs come from the FLOP
counter (bench/train/flops.py) on one eager step per batch shape, as training counts them. Each row
is printed as it is measured and appended to --out.

Backbones: `nano32` is sweeps/compute.yaml's small-data geometry (ViT-nano/4 at 32 px, the sweep's base
method settings: scripts/benchmark_data.py BASE); `base224` is ViT-B/16 at 224 px with each method's
default (paper) settings.

    python scripts/benchmark_throughput.py --device cpu --backbones nano32 --batch 128 --steps 3
    python scripts/benchmark_throughput.py --device cpu --backbones base224 --batch 4 --steps 2
    python scripts/benchmark_throughput.py --device cuda --compile   # bf16 on CUDA (precision auto)
"""

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark_data import BASE  # noqa: E402

from bench.config.validate import build_config  # noqa: E402
from bench.data.datasets import load_split  # noqa: E402
from bench.peaks import peak_of  # noqa: E402
from bench.train.devices import ONE_PROCESS, autocast, device_name  # noqa: E402
from bench.train.engine import param_groups  # noqa: E402
from bench.train.flops import flop_counter_mode  # noqa: E402
from bench.train.loader import StepSampler, training_loader  # noqa: E402
from bench.train.methods import build_method  # noqa: E402
from core.clock import Clock  # noqa: E402
from core.method import METHODS  # noqa: E402

SMALL = {k: v for k, v in BASE.items() if k != "backbone"}
BACKBONES = {  # in the order measured: ViT-B first, so a run cut short still has it
    "base224": {"backbone": "vit_base_patch16", "data": {"name": "synthetic", "image_size": 224}},
    "nano32": {"backbone": "vit_nano_patch4", "data": {"name": "synthetic", "image_size": 32}, **SMALL},
}
BATCH = {"nano32": {"cpu": 128, "cuda": 512}, "base224": {"cpu": 8, "cuda": 64}}  # --batch overrides them
DISTINCT = 3  # batches made; the timed steps cycle through them
ALL_METHODS = ("ijepa", "mae", "data2vec", "data2vec_v1", "lejepa")
COLUMNS = [
    "device", "precision", "compile", "method", "backbone", "image_size", "batch_size", "steps",
    "images_per_s", "ms_per_step", "gflops_per_image", "tflops_per_s", "mfu", "peak_mem_gib",
    "threads", "date", "command",
]  # fmt: skip


def batches(cfg, method, n: int, device: torch.device) -> list[dict]:
    """`n` training batches, the first DISTINCT of steps 0, 1, ... as the loader makes them on the
    device (on CUDA the device path: the synthetic split is held in memory), repeated in turn."""
    data = load_split(cfg.data, "train")
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, 0)
    made = []
    for batch in training_loader(cfg, data, method, sampler, ONE_PROCESS, device):
        batch.pop("step"), batch.pop("labels")
        made.append({k: v.to(device) for k, v in batch.items()})
        if len(made) == min(n, DISTINCT):
            return [made[i % len(made)] for i in range(n)]
    raise RuntimeError(f"the synthetic split holds fewer than {DISTINCT} batches of {cfg.optim.batch_size}")


def shape_key(batch: dict) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in batch.items())


class Trainer:
    """The training step of bench/train/loop.py, without its accounting."""

    def __init__(self, cfg, method: torch.nn.Module, device: torch.device, compile_: bool) -> None:
        self.cfg, self.method, self.device = cfg, method, device
        self.optimizer = torch.optim.AdamW(param_groups(method), lr=cfg.optim.lr, betas=cfg.optim.betas)
        self.model = torch.compile(method) if compile_ else method
        self.paper_updates = METHODS.get(cfg.method).paper_run.updates
        self.steps = 0

    def step(self, batch: dict, model: torch.nn.Module | None = None) -> None:
        with autocast(self.device, self.cfg.precision):  # 1. forward
            out = (model or self.model)(batch)
        self.optimizer.zero_grad(set_to_none=True)  # 2. backward
        out["loss"].backward()
        if self.cfg.optim.clip_grad:  # 3. optimizer
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.cfg.optim.clip_grad)
        self.optimizer.step()
        self.steps += 1  # 4. EMA, half-way through a run
        self.method.after_step(Clock(0.5, self.steps, self.cfg.recipe, self.paper_updates))

    def count(self, batch: dict) -> float:
        """One step's FLOPs, eagerly (the counter cannot see inside a compiled graph)."""
        with flop_counter_mode() as counter:
            self.step(batch, self.method)
        return float(counter.get_total_flops())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method_name: str, backbone: str, args, device: torch.device) -> dict:
    batch_size = args.batch or BATCH[backbone]
    if isinstance(batch_size, dict):
        batch_size = batch_size[device.type]
    spec = {**BACKBONES[backbone], "method": method_name, "precision": args.precision}
    cfg = build_config(spec, [f"optim.batch_size={batch_size}", f"device={device.type}"])
    torch.manual_seed(cfg.seed)
    method = build_method(cfg, 1).to(device)
    method.train()
    trainer = Trainer(cfg, method, device, args.compile)
    data = batches(cfg, method, args.warmup + args.steps, device)
    flops = {}
    for batch in data:  # every shape's FLOPs, counted once (these steps train too: warm-up)
        if shape_key(batch) not in flops:
            flops[shape_key(batch)] = trainer.count(batch)
    for batch in data[: args.warmup]:  # compiles (--compile), warms the kernels and allocator
        trainer.step(batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t = time.perf_counter()
    for batch in data[args.warmup :]:
        trainer.step(batch)
    sync(device)
    seconds = time.perf_counter() - t
    timed = data[args.warmup :]
    images = batch_size * len(timed)
    total = sum(flops[shape_key(b)] for b in timed)
    peak = peak_of(device_name(device))
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "device": device_name(device),
        "precision": "bf16" if isinstance(autocast(device, cfg.precision), torch.autocast) else "fp32",
        "compile": args.compile,
        "method": method_name,
        "backbone": cfg.backbone,
        "image_size": cfg.data.image_size,
        "batch_size": batch_size,
        "steps": len(timed),
        "images_per_s": images / seconds,
        "ms_per_step": seconds / len(timed) * 1e3,
        "gflops_per_image": total / images / 1e9,
        "tflops_per_s": total / seconds / 1e12,
        "mfu": total / seconds / peak.flops_per_s if peak else None,
        "peak_mem_gib": mem,
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


def append(row: dict, out: Path) -> None:
    """Append `row` to the CSV (a file with other columns is started anew)."""
    fresh = not out.is_file() or out.read_text().splitlines()[:1] != [",".join(COLUMNS)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w" if fresh else "a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if fresh:
            writer.writeheader()
        writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="train through torch.compile (inductor)")
    parser.add_argument("--batch", type=int, default=None, help="images a step (default: per backbone and device)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--methods", nargs="*", default=list(ALL_METHODS), choices=ALL_METHODS)
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--out", type=Path, default=Path("results/throughput.csv"))
    args = parser.parse_args()
    kind = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(kind)
    command = "python " + " ".join(sys.argv)
    print(f"{device_name(device)}, {platform.machine()}, {torch.get_num_threads()} threads", flush=True)
    for backbone in args.backbones:
        for method in args.methods:
            row = measure(method, backbone, args, device) | {"command": command}
            append(row, args.out)
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items() if k != "command"}
            print(shown, flush=True)


if __name__ == "__main__":
    main()
