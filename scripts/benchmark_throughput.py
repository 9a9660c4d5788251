"""Training throughput of I-JEPA on this machine: images/s, FLOPs per image, achieved FLOP/s.

Each preset trains for a few steps through the real engine (data loading, masks, forward,
backward, optimizer, EMA) and reads the engine's own metrics: FLOPs from torch's
FlopCounterMode on the real step, time from the loop's wall clock. The first logging
interval (FLOP counting, warm-up) is left out of the rate.

    python scripts/benchmark_throughput.py                 # CPU presets -> results/throughput.csv
    python scripts/benchmark_throughput.py --device cuda   # the same on a GPU (bf16 autocast)
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from bench.config.validate import build_config
from bench.rundir import METRICS
from bench.train.devices import device_name, select_device
from bench.train.engine import train

SMALL = {"ijepa": {"predictor_depth": 2, "predictor_width": 96}}
PRESETS = {
    # the demo's model: Fashion-MNIST resized to 32 px, 8x8 patch grid (28 px, 7x7, before issue 11)
    "fmnist-nano": {"backbone": "vit_nano_patch4", "optim.batch_size": 128, **SMALL},
    "fmnist-tiny": {"backbone": "vit_tiny_patch4", "optim.batch_size": 128},
    # ImageNet geometry (224 px, 14x14 grid, official masks) on synthetic 1-channel images
    "in224-base": {
        "backbone": "vit_base_patch16",
        "data": {"name": "synthetic", "image_size": 224},
        "optim.batch_size": 8,
        "ijepa.mask.min_keep": 10,
        "ijepa.mask.mode": "official",
    },
}


def measure(name: str, overrides: dict, steps: int, device: str) -> dict:
    budget = {"kind": "steps", "value": steps}
    # training alone: no health measurements (they are off the budget's clock, but not off the wall's)
    cfg = build_config({**overrides, "budget": budget, "log_every": 2, "device": device, "health": {"every": 0}})
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp))
        records = [json.loads(line) for line in (Path(tmp) / METRICS).read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # the step records (a health record has none)
    first, last = records[0], records[-1]
    images = last["images"] - first["images"]
    seconds = (last["device_hours"] - first["device_hours"]) * 3600
    flops = last["flops"] - first["flops"]
    return {
        "preset": name,
        "device": device_name(select_device(cfg)),
        "method": cfg.method,
        "backbone": cfg.backbone,
        "image_size": cfg.data.image_size,
        "batch_size": cfg.optim.batch_size,
        "precision": "bf16" if select_device(cfg).type == "cuda" else "fp32",
        "threads": torch.get_num_threads(),
        "steps_timed": last["step"] - first["step"],
        "images_per_s": images / seconds,
        "gflops_per_image": flops / images / 1e9,
        "achieved_gflops_per_s": flops / seconds / 1e9,
        "date": time.strftime("%Y-%m-%d"),
        "host": platform.node(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--out", type=Path, default=Path("results/throughput.csv"))
    args = parser.parse_args()
    command = "python " + " ".join(sys.argv)
    rows = []
    for name in args.presets:
        row = measure(name, PRESETS[name], args.steps, args.device) | {"command": command}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    if args.out.is_file():  # keep other devices' rows; replace this device's
        old = pd.read_csv(args.out)
        old = old[~(old["device"].isin(table["device"]) & old["preset"].isin(table["preset"]))]
        table = pd.concat([old, table], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
