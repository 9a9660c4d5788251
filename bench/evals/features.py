"""Frozen features: average-pooled patch tokens of an encoder's last layer, or raw pixels."""

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from bench.data import Split, Transformed, eval_transform


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
def extract(encoder: torch.nn.Module, data: Split, size: int, batch_size: int, device: torch.device):
    """(features (N, D) float32, labels (N,) int64): the encoder's patch tokens, average-pooled."""
    encoder.eval().to(device)
    feats, labels = [], []
    for images, y in eval_batches(data, size, batch_size):
        tokens = encoder.patch_tokens(encoder(images.to(device, non_blocking=True)))  # (B, N, D)
        feats.append(tokens.float().mean(1).cpu())
        labels.append(y)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def pixels(data: Split, size: int, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Normalised raw pixels, flattened: the reference row that needs no model."""
    feats, labels = zip(*((x.flatten(1), y) for x, y in eval_batches(data, size, batch_size)), strict=True)
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()
