"""Linear probes on cached frozen features: many heads trained at once (dinov2's protocol).

Every (view, lr, weight decay) of the grid gets its own linear head; all heads see the
same mini-batches in one loop, each with its own SGD parameter group and a cosine
schedule. A stratified `val_fraction` of the training labels is held out; the head with
the best validation top-1 is reported on test. With `bn`, features pass a BatchNorm
without affine (MAE's convention); on frozen features its statistics are those of the
training features, so it is applied as that fixed standardisation.

    result = linear_probe({"last_avg": (x_train, x_test)}, y_train, y_test, cfg, seed=0)
    result["top1"], result["best"]  # test top-1 of the best head, and which head it was
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from bench.config import EvalConfig

BATCH = 256


def can_hold_out(y: np.ndarray) -> bool:
    return bool(np.unique(y, return_counts=True)[1].min() >= 2)


def split_val(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit indices, val indices): at least one val and one fit example per class."""
    if not can_hold_out(y):
        raise ValueError("a class has fewer than 2 labels: nothing can be held out for validation")
    classes = len(np.unique(y))
    n_val = min(max(int(round(fraction * len(y))), classes), len(y) - classes)
    fit, val = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=seed)
    return np.sort(fit), np.sort(val)


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(x - mean) / std for x in (train, *others)]


def train_heads(
    views: dict[str, torch.Tensor],
    y_fit: torch.Tensor,
    grid: list[tuple[str, float, float]],
    num_classes: int,
    cfg: EvalConfig,
    seed: int,
) -> list[dict]:
    """Train one head per (view, lr, wd) of `grid` on the fit features views[view]; return the heads.
    The heads of one view run as one batched matmul; each keeps its own SGD parameter group."""
    g = torch.Generator().manual_seed(seed)
    heads = []
    for name, lr, wd in grid:
        layer = torch.nn.Linear(views[name].shape[1], num_classes)
        torch.nn.init.trunc_normal_(layer.weight, std=0.01, generator=g)
        torch.nn.init.zeros_(layer.bias)
        heads.append({"view": name, "lr": lr, "wd": wd, "layer": layer})
    by_view = {name: [h["layer"] for h in heads if h["view"] == name] for name in dict.fromkeys(v for v, _, _ in grid)}
    optimizer = torch.optim.SGD(
        [{"params": h["layer"].parameters(), "lr": h["lr"], "weight_decay": h["wd"]} for h in heads], momentum=0.9
    )
    n = len(y_fit)
    steps = max(cfg.linear_epochs * math.ceil(n / BATCH), cfg.linear_min_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    perm, pos = torch.randperm(n, generator=g), 0
    for _ in range(steps):
        if pos + BATCH > n and pos > 0:  # a new epoch (a subset smaller than a batch is one whole batch)
            perm, pos = torch.randperm(n, generator=g), 0
        batch = perm[pos : pos + BATCH]
        pos += BATCH
        loss = 0.0
        for name, layers in by_view.items():
            w = torch.stack([layer.weight for layer in layers])  # (H, C, D)
            b = torch.stack([layer.bias for layer in layers])  # (H, C)
            logits = torch.einsum("nd,hcd->hnc", views[name][batch], w) + b[:, None]  # (H, n, C)
            y = y_fit[batch].repeat(len(layers))
            loss = loss + F.cross_entropy(logits.flatten(0, 1), y) * len(layers)  # the sum of each head's mean
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return heads


@torch.no_grad()
def top1(layer: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((layer(x).argmax(1) == y).float().mean() * 100.0)


def linear_probe(
    views: dict[str, tuple[np.ndarray, np.ndarray]],
    y_train: np.ndarray,
    y_test: np.ndarray,
    cfg: EvalConfig,
    seed: int = 0,
    num_classes: int | None = None,
    fixed: dict | None = None,
) -> dict:
    """views: name → (train features, test features). Returns the best head's test top-1 and the grid.

    With too few labels to hold any out (a class with < 2), pass `fixed` (a previous probe's
    best {view, lr, wd}): that one head trains on every label and no selection happens.
    """
    num_classes = num_classes or int(max(y_train.max(), y_test.max())) + 1
    if fixed is None:
        fit_idx, val_idx = split_val(y_train, cfg.val_fraction, seed)
        grid = [(name, lr, wd) for name in views for lr in cfg.linear_lrs for wd in cfg.linear_wds]
    else:
        fit_idx, val_idx = np.arange(len(y_train)), np.arange(0)
        grid = [(fixed["view"], fixed["lr"], fixed["wd"])]
    prepared = {}
    for name in dict.fromkeys(v for v, _, _ in grid):
        x_train, x_test = views[name]
        fit, val, test = (
            torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            for a in (x_train[fit_idx], x_train[val_idx], x_test)
        )
        if cfg.linear_bn:
            fit, val, test = standardise(fit, val, test)
        prepared[name] = (fit, val, test)
    y_fit, y_val, y_te = (torch.from_numpy(a).long() for a in (y_train[fit_idx], y_train[val_idx], y_test))
    heads = train_heads({k: v[0] for k, v in prepared.items()}, y_fit, grid, num_classes, cfg, seed)
    rows = []
    for h in heads:
        _, val, test = prepared[h["view"]]
        val_top1 = top1(h["layer"], val, y_val) if len(y_val) else None
        rows.append(
            {
                "view": h["view"],
                "lr": h["lr"],
                "wd": h["wd"],
                "val_top1": val_top1,
                "test_top1": top1(h["layer"], test, y_te),
            }
        )
    best = rows[0] if fixed is not None else max(rows, key=lambda r: r["val_top1"])  # ties: the grid's order
    return {
        "top1": best["test_top1"],
        "best": {k: best[k] for k in ("view", "lr", "wd", "val_top1")},
        "selected": "fixed" if fixed is not None else "val",
        "n_fit": len(fit_idx),
        "n_val": len(val_idx),
        "grid": rows,
    }
