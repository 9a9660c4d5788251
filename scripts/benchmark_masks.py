"""Milliseconds per batch of each method's per-batch inputs: the exact sampler (`input_sampler()`, what
the CPU data path runs) against the batched one (`input_sampler(device)`), at the study's geometry
(8x8 grid: 32 px, patch 4; batch 128) and ViT-B/16's at 224 px (14x14; batch 256).

    python scripts/benchmark_masks.py --device cpu --threads 1 --out results/masks_speed.csv
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.lejepa import Slices  # noqa: E402
from baselines.masking import BlockMask, InverseBlockKeep, RandomKeep  # noqa: E402
from core.method import InputSampler  # noqa: E402
from ijepa.config import MaskConfig  # noqa: E402
from ijepa.masks import MaskGenerator  # noqa: E402
from ijepa.model import MaskInputs  # noqa: E402

# (geometry, batch): the study's and ViT-B/16's
GEOMETRIES = (((8, 8), 128), ((14, 14), 256))


def samplers(grid: tuple[int, int]) -> dict[str, InputSampler]:
    """Each method's exact sampler at its settings for this grid (the study's at 8x8, the papers' at 14x14)."""
    study = grid == (8, 8)
    ijepa = MaskConfig(mode="unbiased", min_keep=3) if study else MaskConfig()
    return {
        "ijepa": MaskInputs(MaskGenerator(grid, ijepa, seed=0)),
        "mae": RandomKeep(grid, 0.75, seed=0),
        "data2vec": InverseBlockKeep(grid, 0.8, 3, 16, seed=0),
        "data2vec_v1": BlockMask(grid, 120 / 196, 5 if study else 16, seed=0),
        "lejepa": Slices(64, 1024, seed=0),
    }


def ms_per_batch(sampler: InputSampler, batch: int, steps: int) -> float:
    """The median over `steps` steps, after one warm-up (on CUDA: synchronised)."""
    times = []
    for step in range(steps + 1):
        t = time.perf_counter()
        out = sampler(batch, step)
        if any(v.is_cuda for v in out.values()):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 1000 * sorted(times[1:])[steps // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="where the batched samplers draw")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for grid, batch in GEOMETRIES:
        for method, exact in samplers(grid).items():
            row = {"method": method, "grid": f"{grid[0]}x{grid[1]}", "batch": batch}
            row["exact_ms"] = round(ms_per_batch(exact, batch, args.steps), 2)
            row["batched_ms"] = round(ms_per_batch(exact.on(device), batch, args.steps), 2)
            row["speedup"] = round(row["exact_ms"] / row["batched_ms"], 1)
            rows.append(row | {"device": str(device), "threads": torch.get_num_threads()})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).assign(cpu=platform.processor() or platform.machine())
    if args.out:
        table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
