"""Frozen features, extracted once per checkpoint and split and cached on disk.

One forward pass keeps the last `n_layers` blocks' normed outputs, average-pooled over the
patches and, where the encoder has one, the [cls] token. Every evaluation reads *views*
of that cache: `last_avg` (I-JEPA's protocol, k-NN's default), `last_cls`, `last4_avg`,
`last4_cls` (the last 4 layers concatenated, dinov2's linear protocol). Augmentation is
therefore off during probing (the fast path on small hardware, shared/reference/evals.md).

    feats = cached(run_dir / "features" / "train.pt", key, lambda: extract(encoder, split, ...))
    x = view(feats, "last4_avg")  # (N, 4D) float32, or None if the view does not apply
"""

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from bench.data.split import Split
from bench.data.transforms import Transformed, eval_transform
from bench.errors import BenchError, DamagedFile
from bench.files import read_torch_file, save_torch
from bench.progress import progress_bar

log = logging.getLogger(__name__)


def eval_batches(data: Split, size: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic eval-transformed batches; in-memory datasets are transformed a batch at a time."""
    transform = eval_transform(data, size)
    if data.in_memory:  # one tensor op per batch instead of one per image
        images, labels = data.dataset.images, data.dataset.labels
        for i in range(0, len(labels), batch_size):
            yield transform(images[i : i + batch_size]), labels[i : i + batch_size]
    else:
        yield from DataLoader(Transformed(data, transform), batch_size=batch_size, shuffle=False)


@torch.no_grad()
def extract(
    encoder: torch.nn.Module,
    data: Split,
    size: int,
    batch_size: int,
    device: torch.device,
    n_layers: int,
    precision: str = "fp32",
) -> dict[str, torch.Tensor]:
    """{"avg": (N, L, D), "cls": (N, L, D) where the encoder has [cls], "labels": (N,)}, float16:
    the last L = min(n_layers, depth) blocks' normed outputs, pooled; computed under bf16 autocast
    when `precision` is bf16 (eval.precision)."""
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    encoder.eval().to(device)
    n_layers = min(n_layers, len(encoder.blocks))
    has_cls = encoder.cls_token is not None
    avg, cls, labels = [], [], []
    with progress_bar(f"features of {len(data)} images", len(data)) as show:
        for images, y in eval_batches(data, size, batch_size):
            with bf16:
                pooled_avg, pooled_cls = pooled(encoder, images.to(device, non_blocking=True), n_layers)
            avg.append(pooled_avg.half().cpu())
            if has_cls:
                cls.append(pooled_cls.half().cpu())
            labels.append(y)
            show(sum(len(t) for t in labels))
    out = {"avg": torch.cat(avg), "labels": torch.cat(labels)}
    if has_cls:
        out["cls"] = torch.cat(cls)
    return out


def pooled(encoder: torch.nn.Module, images: torch.Tensor, n_layers: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The last `n_layers` blocks' normed outputs of `images`: patch tokens average-pooled (B, L, D),
    float32, and the [cls] token (B, L, D), or None where the encoder has none."""
    layers = torch.stack(encoder.last_layers(images, n_layers), 1)  # (B, L, T, D)
    has_cls = encoder.cls_token is not None
    patches = layers[:, :, 1:] if has_cls else layers
    return patches.float().mean(2), layers[:, :, 0] if has_cls else None


def pixels(data: Split, size: int, batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Normalised raw pixels, flattened, as a one-layer `avg` view: the reference row that needs no model."""
    feats, labels = zip(*((x.flatten(1), y) for x, y in eval_batches(data, size, batch_size)), strict=True)
    return {"avg": torch.cat(feats).unsqueeze(1), "labels": torch.cat(labels)}


def view(feats: dict[str, torch.Tensor], name: str) -> np.ndarray | None:
    """A view (N, D) float32 of cached features; None when it does not apply (no [cls], too few layers)."""
    layers, pool = name.split("_")
    if pool not in feats:
        return None
    x = feats[pool]
    if layers == "last4":
        if x.shape[1] < 4:
            return None
        x = x[:, -4:].flatten(1)
    else:
        x = x[:, -1]
    return x.float().numpy()


def views(train: dict, test: dict, names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name → (train view, test view) for each named view that applies to these features."""
    out = {}
    for name in dict.fromkeys(names):
        x = view(train, name)
        if x is not None:
            out[name] = (x, view(test, name))
    return out


def labels(feats: dict[str, torch.Tensor]) -> np.ndarray:
    return feats["labels"].numpy()


def cached(path: Path, key: dict, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Features saved at `path` under the same key (checkpoint stamp, data, layers), else computed
    and saved atomically. A changed checkpoint or protocol changes the key and recomputes; so does a
    cache file that cannot be read (a crash, a full disk), saying so. A folder in its place is one
    clear error, before anything is computed."""

    if path.parent.exists() and not path.parent.is_dir():
        raise DamagedFile(f"{path.parent} is not a folder: move it away so that features can be cached there")
    if path.exists() and not path.is_file():
        raise DamagedFile(f"{path} is not a file: move it away so that features can be cached there")
    stamp = json.dumps(key, sort_keys=True)
    if path.is_file():
        try:
            saved = read_torch_file(path)
        except DamagedFile as e:
            log.warning("%s; computing the features again", e)
            saved = {}
        if not (isinstance(saved, dict) and isinstance(saved.get("features", {}), dict)):
            log.warning("%s is not a feature cache; computing the features again", path)
        elif saved.get("key") == stamp and "features" in saved:
            log.info("features from cache %s", path)
            return saved["features"]
    feats = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch({"key": stamp, "features": feats}, path)
    except OSError as e:
        raise BenchError(
            f"could not write the feature cache {path} ({e.strerror or e}): free disk space and run again"
        ) from e
    return feats
