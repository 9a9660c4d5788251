"""The training data path's speed on this machine, per method, without any model: what the loader
delivers (images/s, one process, `data.num_workers` 0) on the CPU path (per image) and on the device
path run on this CPU (`data.on_device: true`: a batch's views at once, the batched mask samplers), what
drawing one image's augmentation parameters costs (from its (seed, step, image) generator), and what the
method's per-batch inputs (masks, LeJEPA's slices) cost with the exact and the batched samplers, at the
study's geometry (Fashion-MNIST at 32 px, batch 128, ViT-nano/4).

    python scripts/benchmark_data.py --out results/data_path.csv
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.config.validate import build_config  # noqa: E402
from bench.data.datasets import load_split  # noqa: E402
from bench.data.views import Views, image_generator  # noqa: E402
from bench.train.devices import ONE_PROCESS  # noqa: E402
from bench.train.loader import StepSampler, training_loader  # noqa: E402
from bench.train.methods import augmentation, build_method  # noqa: E402

# the parts of sweeps/compute.yaml's base that shape the inputs
BASE = {
    "backbone": "vit_nano_patch4",
    "ijepa": {"predictor_depth": 2, "predictor_width": 96},
    "mae": {"decoder_depth": 2, "decoder_width": 96, "decoder_heads": 3},
    "data2vec": {"decoder_dim": 96},
    "data2vec_v1": {"top_k": 2, "min_block": 5},
    "lejepa": {"proj_hidden": 512},
}
METHODS = ("ijepa", "mae", "data2vec", "data2vec_v1", "lejepa")


def seconds(fn, repeat: int) -> float:
    """The median time of `fn()` over `repeat` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def measure(method: str, path: str, batches: int) -> dict:
    """One method's data path: `cpu` (per image in the loader, the exact samplers in its collate) or
    `device` (data.on_device on this CPU: a batch's views at once, the batched samplers)."""
    cfg = build_config({**BASE, "method": method, "data": {"on_device": path == "device"}})
    data = load_split(cfg.data, "train")
    model = build_method(cfg, data.channels)
    cpu = torch.device("cpu")
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, 0)
    batches_iter = iter(training_loader(cfg, data, model, sampler, ONE_PROCESS, cpu))
    next(batches_iter)  # warm-up: the first epoch's permutation, the transforms' first calls
    t = time.perf_counter()
    for _ in range(batches):
        batch = next(batches_iter)
    loader_s = (time.perf_counter() - t) / batches
    views = Views.of(data, cfg.data.image_size, augmentation(cfg))
    draw_s = seconds(lambda: views.draw(image_generator(cfg.seed, 1, 7), 28, 28), 200)
    inputs = model.input_sampler(cpu if path == "device" else None)
    input_s = seconds(lambda: inputs(cfg.optim.batch_size, 3), 20) if inputs is not None else 0.0
    shapes = {k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "labels"}
    return {
        "method": method,
        "path": path,
        "batch_size": cfg.optim.batch_size,
        "image_size": cfg.data.image_size,
        "inputs": "; ".join(f"{k} {'x'.join(map(str, s))}" for k, s in shapes.items()),
        "loader_images_per_s": round(cfg.optim.batch_size / loader_s, 1),
        "loader_ms_per_batch": round(loader_s * 1e3, 2),
        "draw_us_per_image": round(draw_s * 1e6, 1),
        "inputs_ms_per_batch": round(input_s * 1e3, 2),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/data_path.csv"))
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for method in METHODS:
        for path in ("cpu", "device"):
            rows.append(measure(method, path, args.batches))
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
