import gzip
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from bench.config.schema import DataConfig
from bench.data.datasets import DATASETS, SCANS, check_dataset, load_split
from bench.data.fashion_mnist import read_idx
from bench.data.imagefolder import UnreadableImage, read_subset
from bench.data.transforms import Transformed, eval_transform
from bench.data.views import Views, image_generator
from bench.errors import BenchError
from core.method import Augmentation

from ..conftest import needs_fashion_mnist


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def fake_fashion_mnist(root, n=20):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_idx_reader_and_data_root(tmp_path):
    fake_fashion_mnist(tmp_path)
    images = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    split = load_split(DataConfig(root=str(tmp_path)), "train")
    assert len(split) == 20 and split.num_classes == 10 and split.channels == 1
    image, label = split.dataset[3]
    assert image.shape == (1, 28, 28) and label == 3


def test_missing_dataset_says_what_to_do(tmp_path):
    with pytest.raises(BenchError, match="apt-get install dataset-fashion-mnist"):
        load_split(DataConfig(root=str(tmp_path)), "train")
    with pytest.raises(BenchError, match="does not exist"):
        load_split(DataConfig(root=str(tmp_path / "nowhere")), "train")
    with pytest.raises(BenchError, match="needs data.root"):
        load_split(DataConfig(name="imagefolder"), "train")


@needs_fashion_mnist
def test_fashion_mnist_from_the_debian_package():
    train, test = load_split(DataConfig(), "train"), load_split(DataConfig(), "test")
    assert len(train) == 60000 and len(test) == 10000
    assert sorted(torch.bincount(train.dataset.labels).tolist()) == [6000] * 10


def make_imagefolder(root, classes=("n01", "n02"), per_class=3):
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 30), color=(i * 40, 10, 200)).save(root / split / c / f"{c}_{i}.JPEG")


def test_imagefolder_with_a_simclr_subset_file(tmp_path):
    make_imagefolder(tmp_path)
    subset = tmp_path / "1percent.txt"
    subset.write_text("n01_0.JPEG\nn02_2.JPEG\n\n")
    assert read_subset(subset) == {"n01_0.JPEG", "n02_2.JPEG"}
    full = load_split(DataConfig(name="imagefolder", root=str(tmp_path)), "train")
    part = load_split(DataConfig(name="imagefolder", root=str(tmp_path), subset=str(subset)), "train")
    val = load_split(DataConfig(name="imagefolder", root=str(tmp_path), subset=str(subset)), "test")
    assert len(full) == 6 and len(part) == 2 and len(val) == 6
    assert sorted(part.dataset.targets) == [0, 1]
    views = Views.of(part, 16, Augmentation((0.3, 1.0)))
    image = TF.pil_to_tensor(part.dataset[0][0])
    x = views.apply(image, views.draw(image_generator(0, 0, 0), *image.shape[-2:]))
    assert x.shape == (3, 16, 16)


def test_subset_naming_no_present_file_is_an_error(tmp_path):
    make_imagefolder(tmp_path)
    subset = tmp_path / "1percent.txt"
    subset.write_text("n09_0.JPEG\n")
    with pytest.raises(BenchError, match="none of the files"):
        load_split(DataConfig(name="imagefolder", root=str(tmp_path), subset=str(subset)), "train")


# --- checked before launch: the scan of each dataset (bench/data/datasets.py SCANS) -------------------------


def imagefolder_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="imagefolder", root=str(root), **kw)


def test_every_dataset_has_a_scan():
    assert DATASETS.names() == SCANS.names()


def test_a_scan_gives_the_training_split_size_without_decoding_it(tmp_path):
    make_imagefolder(tmp_path, per_class=3)
    assert check_dataset(imagefolder_cfg(tmp_path)) == 6
    subset = tmp_path / "1percent.txt"
    subset.write_text("n01_0.JPEG\n")
    assert check_dataset(imagefolder_cfg(tmp_path, subset=str(subset))) == 1
    (tmp_path / "fm").mkdir()
    fake_fashion_mnist(tmp_path / "fm", n=20)
    assert check_dataset(DataConfig(root=str(tmp_path / "fm"))) == 20
    assert check_dataset(DataConfig(name="synthetic")) == len(load_split(DataConfig(name="synthetic"), "train"))


def corrupt(path):
    path.write_bytes(b"not an image")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: shutil.rmtree(r / "val"), "val does not exist: data.root must hold train/ and val/"),
        (lambda r: [shutil.rmtree(c) for c in (r / "val").iterdir()], "val holds no class folders"),
        (lambda r: (r / "train" / "n03").mkdir(), "train/n03 holds no image (.jpg"),
        (lambda r: [p.unlink() for p in (r / "val" / "n02").iterdir()], "val/n02 holds no image"),
        (lambda r: corrupt(r / "train" / "n02" / "n02_0.JPEG"), "train/n02/n02_0.JPEG is not a readable image"),
        (lambda r: shutil.move(r / "val" / "n02", r / "val" / "n09"), "train/ and val/ hold different class folders"),
    ],
    ids=["no val split", "no class folder", "empty class", "class without images", "corrupt image", "other classes"],
)
def test_an_imagefolder_is_checked_before_anything_runs(tmp_path, damage, message):
    make_imagefolder(tmp_path)
    damage(tmp_path)
    with pytest.raises(BenchError) as error:
        check_dataset(imagefolder_cfg(tmp_path))
    assert message in str(error.value)


def test_a_damaged_fashion_mnist_is_one_line(tmp_path):
    fake_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(BenchError, match="t10k-labels-idx1-ubyte.gz cannot be read"):
        check_dataset(DataConfig(root=str(tmp_path)))


def test_a_subset_for_another_dataset_or_not_utf8_is_refused(tmp_path):
    subset = tmp_path / "1percent.txt"
    subset.write_bytes(b"caf\xe9.JPEG\n")
    with pytest.raises(BenchError, match="applies to the imagefolder dataset only"):
        check_dataset(DataConfig(name="synthetic", subset=str(subset)))
    make_imagefolder(tmp_path / "img")
    with pytest.raises(BenchError, match="is not UTF-8 text"):
        check_dataset(imagefolder_cfg(tmp_path / "img", subset=str(subset)))


@pytest.mark.parametrize("workers", [0, 1])
def test_a_corrupt_image_met_while_training_is_one_line_naming_it(tmp_path, workers):
    """The scan decodes one image per class; another one damaged fails the job with its name, from a
    data-loader worker too (which re-raises with the worker's traceback as the message)."""
    make_imagefolder(tmp_path)
    bad = tmp_path / "train" / "n01" / "n01_2.JPEG"
    corrupt(bad)
    check_dataset(imagefolder_cfg(tmp_path))  # the first image of each class is fine
    split = load_split(imagefolder_cfg(tmp_path), "train")
    loader = DataLoader(Transformed(split, eval_transform(split, 16)), batch_size=6, num_workers=workers)
    with pytest.raises(UnreadableImage) as error:
        next(iter(loader))
    assert str(error.value) == f"{bad} is not a readable image (PIL cannot identify it): replace or remove it"
