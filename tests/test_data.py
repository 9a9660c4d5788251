import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config import DataConfig
from bench.data import Augmentation, load_split, read_idx, read_subset, train_transform
from bench.errors import BenchError

from .conftest import needs_fashion_mnist


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
    x = train_transform(part, 16, Augmentation((0.3, 1.0)))(part.dataset[0][0])
    assert x.shape == (3, 16, 16)


def test_subset_naming_no_present_file_is_an_error(tmp_path):
    make_imagefolder(tmp_path)
    subset = tmp_path / "1percent.txt"
    subset.write_text("n09_0.JPEG\n")
    with pytest.raises(BenchError, match="none of the files"):
        load_split(DataConfig(name="imagefolder", root=str(tmp_path), subset=str(subset)), "train")
