"""Datasets, registered by name, and the transforms a method's config asks for.

- ``fashion-mnist``: the IDX gz files of Debian's ``dataset-fashion-mnist`` (60k train /
  10k test, 28x28 grey); ``data.root`` points elsewhere.
- ``imagefolder``: ImageNet layout, ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``;
  ``data.subset`` restricts train to a SimCLR-style list such as ``1percent.txt``.
- ``synthetic``: small class-structured random images, for unit tests only.

Each dataset also registers a *scan* (`SCANS`): what `bench sweep` and `bench train` check before
anything is launched, without decoding more than one image per class — the files are there, every
split and class holds a readable image — and the size of the training split (a batch larger than
it is refused). `check_dataset` runs it once per dataset per process: a sweep of 1,000 runs on one
dataset scans it once.
"""

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms import v2

from bench.config.schema import DataConfig
from bench.errors import BenchError
from core.method import Augmentation
from core.registry import Registry

DATASETS: Registry = Registry("dataset")
SCANS: Registry[Callable[[DataConfig], int]] = Registry("dataset scan")  # name -> checks, train split size
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class Split:
    """One split: a dataset of (image, label) pairs and what a model needs to know about it."""

    dataset: Dataset
    num_classes: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_memory: bool  # images already a uint8 tensor (N, C, H, W): no decoding needed

    def __len__(self) -> int:
        return len(self.dataset)


class TensorImages(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels  # (N, C, H, W) uint8, (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


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


def fashion_mnist_files(cfg: DataConfig, split: str) -> tuple[Path, Path]:
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
def scan_fashion_mnist(cfg: DataConfig) -> int:
    sizes = {}
    for split in ("train", "test"):
        images, labels = fashion_mnist_files(cfg, split)
        sizes[split] = idx_length(labels)
        if idx_length(images) != sizes[split] or not sizes[split]:
            raise BenchError(f"{images} and {labels} do not hold the same number of images: install the dataset again")
    return sizes["train"]


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig, split: str) -> Split:
    images, labels = fashion_mnist_files(cfg, split)
    x = torch.from_numpy(read_idx(images).copy()).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(read_idx(labels).astype(np.int64))
    return Split(TensorImages(x, y), 10, 1, (0.2860,), (0.3530,), in_memory=True)


def read_subset(path: Path) -> set[str]:
    """SimCLR's 1percent.txt / 10percent.txt: one file name per line, e.g. n04235860_14959.JPEG."""
    if not path.is_file():
        raise BenchError(f"subset file {path} does not exist (data.subset expects e.g. 1percent.txt)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BenchError(f"subset file {path} is not UTF-8 text (it lists file names, one a line)") from None
    names = {line.strip() for line in text.splitlines() if line.strip()}
    if not names:
        raise BenchError(f"subset file {path} is empty")
    return names


def imagefolder_dir(cfg: DataConfig, split: str) -> Path:
    if cfg.root is None:
        raise BenchError("the imagefolder dataset needs data.root=DIR (with train/ and val/ class folders)")
    folder = Path(cfg.root) / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise BenchError(f"{folder} does not exist: data.root must hold train/ and val/ class folders")
    if split == "train" and cfg.subset and not Path(cfg.subset).is_file():
        raise BenchError(f"subset file {cfg.subset} does not exist (data.subset expects e.g. 1percent.txt)")
    return folder


class UnreadableImage(BenchError):
    """An image file PIL cannot decode, met while training or evaluating: the run fails with this one
    line. torch's DataLoader re-raises a worker's exception as its class called with the worker's
    whole traceback; the original line, the traceback's last, is kept."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        last = (message.strip().splitlines() or [""])[-1]
        super().__init__(last[len(marker) :] if last.startswith(marker) else message)


def load_image(path: str) -> Image.Image:
    """torchvision's pil_loader (RGB), a damaged file reported by name."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        why = "PIL cannot identify it" if isinstance(e, UnidentifiedImageError) else str(e)
        raise UnreadableImage(f"{path} is not a readable image ({why}): replace or remove it") from None


@SCANS.register("imagefolder")
def scan_imagefolder(cfg: DataConfig) -> int:
    """Both splits hold the same class folders, every class at least one image, and one image of each
    class decodes; the training split's size (after data.subset)."""
    classes, samples = {}, {}
    for split in ("train", "test"):
        folder = imagefolder_dir(cfg, split)
        try:
            classes[split], index = find_classes(folder)
        except FileNotFoundError:
            raise BenchError(
                f"{folder} holds no class folders: data.root must hold train/<class>/ and val/<class>/"
            ) from None
        samples[split] = make_dataset(folder, index, IMG_EXTENSIONS, allow_empty=True)
        found = {label for _, label in samples[split]}
        empty = [c for c in classes[split] if index[c] not in found]
        if empty:
            raise BenchError(
                f"{folder / empty[0]} holds no image ({', '.join(IMG_EXTENSIONS)}): remove the folder or add its images"
            )
        first = {}
        for path, label in samples[split]:
            first.setdefault(label, path)
        for path in first.values():
            load_image(path)
    if classes["train"] != classes["test"]:
        odd = sorted(set(classes["train"]) ^ set(classes["test"]))[0]
        raise BenchError(
            f"{cfg.root}: train/ and val/ hold different class folders (e.g. {odd}): their labels would not match"
        )
    if not cfg.subset:
        return len(samples["train"])
    keep = read_subset(Path(cfg.subset))
    kept = sum(Path(path).name in keep for path, _ in samples["train"])
    if not kept:
        raise BenchError(f"none of the files listed in {cfg.subset} are under {imagefolder_dir(cfg, 'train')}")
    return kept


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataConfig, split: str) -> Split:
    folder = imagefolder_dir(cfg, split)
    try:
        ds = tvd.ImageFolder(str(folder), loader=load_image)
    except FileNotFoundError as e:  # no class folder, or one without images: changed since the sweep was checked
        raise BenchError(f"{folder}: {e}") from None
    if split == "train" and cfg.subset:
        keep = read_subset(Path(cfg.subset))
        ds.samples = [s for s in ds.samples if Path(s[0]).name in keep]
        ds.targets = [t for _, t in ds.samples]
        ds.imgs = ds.samples
        if not ds.samples:
            raise BenchError(f"none of the files listed in {cfg.subset} are under {folder}")
    return Split(ds, len(ds.classes), 3, IMAGENET_MEAN, IMAGENET_STD, in_memory=False)


SYNTHETIC_SIZES = {"train": 512, "test": 128}


@SCANS.register("synthetic")
def scan_synthetic(cfg: DataConfig) -> int:
    return SYNTHETIC_SIZES["train"]


@DATASETS.register("synthetic")
def synthetic(cfg: DataConfig, split: str) -> Split:
    """Four classes, each a fixed random pattern plus noise; for tests only."""
    n = SYNTHETIC_SIZES[split]
    s = cfg.image_size
    protos = torch.rand(4, 1, s, s, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1 if split == "train" else 2)
    y = torch.arange(n) % 4
    x = (0.7 * protos[y] + 0.3 * torch.rand(n, 1, s, s, generator=g)) * 255
    return Split(TensorImages(x.to(torch.uint8), y), 4, 1, (0.5,), (0.25,), in_memory=True)


def check_available(cfg: DataConfig) -> None:
    """Fail fast, before anything is launched, when a dataset's files are not where the config says."""
    DATASETS.get(cfg.name)
    if cfg.root is not None and not Path(cfg.root).exists():
        raise BenchError(f"data.root {cfg.root} does not exist")
    if cfg.root is not None and not Path(cfg.root).is_dir():
        raise BenchError(f"data.root {cfg.root} is a file; it must name the dataset's folder")
    for split in ("train", "test"):
        if cfg.name == "fashion-mnist":
            fashion_mnist_files(cfg, split)
        elif cfg.name == "imagefolder":
            imagefolder_dir(cfg, split)


def check_dataset(cfg: DataConfig) -> int:
    """check_available, then the dataset's scan (SCANS); the training split's size. Once per dataset
    (name, root, subset; the paths resolved, as a process may change folders) per process."""
    key = (cfg.name, *(str(Path(p).resolve()) if p is not None else None for p in (cfg.root, cfg.subset)))
    if key not in _scanned:
        check_available(cfg)
        if cfg.subset and cfg.name != "imagefolder":
            raise BenchError(f"data.subset applies to the imagefolder dataset only, not {cfg.name}")
        _scanned[key] = SCANS.get(cfg.name)(cfg)
    return _scanned[key]


_scanned: dict[tuple, int] = {}


def load_split(cfg: DataConfig, split: str) -> Split:
    check_available(cfg)
    return DATASETS.get(cfg.name)(cfg, split)


INTERPOLATIONS = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def train_transform(data: Split, size: int, aug: Augmentation = Augmentation()) -> v2.Compose:
    ops = [v2.ToImage()]
    if aug.color_jitter and data.channels == 3:  # BEiT's order: jitter, flip, crop
        ops.append(v2.ColorJitter(aug.color_jitter, aug.color_jitter, aug.color_jitter))
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    interpolation = INTERPOLATIONS[aug.interpolation]
    ops.append(v2.RandomResizedCrop(size, scale=aug.crop_scale, interpolation=interpolation, antialias=True))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
    return v2.Compose(ops)


def eval_transform(data: Split, size: int) -> v2.Compose:
    resize = [] if data.in_memory else [v2.Resize(int(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    ops = [v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
    if data.in_memory:
        ops.insert(1, v2.Resize(size, antialias=True))
    return v2.Compose(ops)


class Transformed(Dataset):
    def __init__(self, data: Split, transform: v2.Compose) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.data.dataset[i]
        return self.transform(image), label
