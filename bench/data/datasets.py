"""The datasets, loaded by name (`load_split`) and checked before launch (`check_dataset`). Each is
a module of its own that registers itself in bench/data/split.py's registries; importing this
module registers them all. The transforms are in bench/data/transforms.py.

- ``fashion-mnist`` (fashion_mnist.py): the IDX gz files of Debian's ``dataset-fashion-mnist``
  (60k train / 10k test, 28x28 grey); ``data.root`` points elsewhere.
- ``imagefolder`` (imagefolder.py): ImageNet layout, ``ROOT/train/<class>/*`` and
  ``ROOT/val/<class>/*``; ``data.subset`` restricts train to a SimCLR-style list such as ``1percent.txt``.
- ``synthetic`` (synthetic.py): small class-structured random images, for unit tests only.

Each dataset also registers a *scan* (`SCANS`): what `bench sweep` and `bench train` check before
anything is launched, without decoding more than one image per class — the files are there, every
split and class holds a readable image — and the size of the training split (a batch larger than
it is refused). `check_dataset` runs it once per dataset per process: a sweep of 1,000 runs on one
dataset scans it once.
"""

from pathlib import Path

from bench.data import fashion_mnist, imagefolder, synthetic  # noqa: F401  (importing a dataset's module registers it)
from bench.data.split import DATASETS, SCANS, DataSpec, Split
from bench.errors import BenchError


def check_available(cfg: DataSpec) -> None:
    """Fail fast, before anything is launched, when a dataset's files are not where the config says."""
    DATASETS.get(cfg.name)
    if cfg.root is not None and not Path(cfg.root).exists():
        raise BenchError(f"data.root {cfg.root} does not exist")
    if cfg.root is not None and not Path(cfg.root).is_dir():
        raise BenchError(f"data.root {cfg.root} is a file; it must name the dataset's folder")
    for split in ("train", "test"):
        if cfg.name == "fashion-mnist":
            fashion_mnist.fashion_mnist_files(cfg, split)
        elif cfg.name == "imagefolder":
            imagefolder.imagefolder_dir(cfg, split)


def check_dataset(cfg: DataSpec) -> int:
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


def load_split(cfg: DataSpec, split: str) -> Split:
    check_available(cfg)
    return DATASETS.get(cfg.name)(cfg, split)
