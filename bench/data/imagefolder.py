"""ImageNet layout, ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*``; ``data.subset`` restricts
train to a SimCLR-style list such as ``1percent.txt``."""

from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torchvision import datasets as tvd
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from bench.data.split import DATASETS, SCANS, DataSpec, Split
from bench.errors import BenchError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


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


def imagefolder_dir(cfg: DataSpec, split: str) -> Path:
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
def scan_imagefolder(cfg: DataSpec) -> int:
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
def imagefolder(cfg: DataSpec, split: str) -> Split:
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
