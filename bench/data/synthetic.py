"""Small class-structured random images, for unit tests only."""

import torch

from bench.data.split import DATASETS, SCANS, DataSpec, Split, TensorImages

SYNTHETIC_SIZES = {"train": 512, "test": 128}


@SCANS.register("synthetic")
def scan_synthetic(cfg: DataSpec) -> int:
    return SYNTHETIC_SIZES["train"]


@DATASETS.register("synthetic")
def synthetic(cfg: DataSpec, split: str) -> Split:
    """Four classes, each a fixed random pattern plus noise; for tests only."""
    n = SYNTHETIC_SIZES[split]
    s = cfg.image_size
    protos = torch.rand(4, 1, s, s, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1 if split == "train" else 2)
    y = torch.arange(n) % 4
    x = (0.7 * protos[y] + 0.3 * torch.rand(n, 1, s, s, generator=g)) * 255
    return Split(TensorImages(x.to(torch.uint8), y), 4, 1, (0.5,), (0.25,), in_memory=True)
