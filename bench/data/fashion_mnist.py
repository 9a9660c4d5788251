"""Fashion-MNIST: the IDX gz files of Debian's ``dataset-fashion-mnist`` (60k train / 10k test,
28x28 grey); ``data.root`` points elsewhere."""

import gzip
from pathlib import Path

import numpy as np
import torch

from bench.data.split import DATASETS, SCANS, DataSpec, Split, TensorImages
from bench.errors import BenchError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): magic (2 zero bytes, dtype code, ndim), dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise BenchError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_files(cfg: DataSpec, split: str) -> tuple[Path, Path]:
    root = Path(cfg.root or FASHION_MNIST_ROOT)
    prefix = "train" if split == "train" else "t10k"
    images, labels = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.is_file() or not labels.is_file():
        raise BenchError(
            f"Fashion-MNIST not found in {root}: install it with `apt-get install dataset-fashion-mnist` "
            "or pass data.root=DIR holding the IDX gz files"
        )
    return images, labels


def idx_length(path: Path) -> int:
    """The first dimension of an IDX file (its number of items), from its header alone."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(8)
    except (OSError, EOFError) as e:  # gzip raises BadGzipFile (an OSError) or EOFError on a damaged file
        raise BenchError(f"{path} cannot be read ({e}): install the dataset again") from None
    if len(head) < 8 or head[:3] != b"\x00\x00\x08":
        raise BenchError(f"{path} is not an IDX file of unsigned bytes: install the dataset again")
    return int.from_bytes(head[4:8], "big")


@SCANS.register("fashion-mnist")
def scan_fashion_mnist(cfg: DataSpec) -> int:
    sizes = {}
    for split in ("train", "test"):
        images, labels = fashion_mnist_files(cfg, split)
        sizes[split] = idx_length(labels)
        if idx_length(images) != sizes[split] or not sizes[split]:
            raise BenchError(f"{images} and {labels} do not hold the same number of images: install the dataset again")
    return sizes["train"]


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg: DataSpec, split: str) -> Split:
    images, labels = fashion_mnist_files(cfg, split)
    x = torch.from_numpy(read_idx(images).copy()).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    return Split(TensorImages(x, y), 10, 1, (0.2860,), (0.3530,), in_memory=True)
