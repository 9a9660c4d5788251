"""Linear probes on cached frozen features: many heads trained at once (dinov2's protocol).

Every (view, lr, weight decay) of the grid gets its own linear head; all heads see the
same mini-batches in one loop, the heads of one view as one matmul (`Heads`), each with
its own lr and weight decay under one cosine schedule. A stratified `val_fraction` of the
training labels is held out; the head with the best validation top-1 is reported on
test. With `eval.linear_bn`, features pass a BatchNorm without affine (MAE's convention);
on frozen features its statistics are those of the training features, so it is applied
as that fixed standardisation.

    result = linear_probe({"last_avg": (x_train, x_test)}, y_train, y_test, cfg, seed=0)
    result["top1"], result["best"]  # test top-1 of the best head, and which head it was
"""

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from bench.config.schema import EvalConfig

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


class Heads:
    """H linear heads over one view's features, trained as one matmul: weight (H, C, D), bias (H, C).

    SGD with momentum 0.9, vectorised over the heads so that each keeps its own lr and weight
    decay (torch's optimizers take one lr per tensor; one tensor per head made a step 10x
    slower): the same update as torch.optim.SGD's — d = g + wd w; m = 0.9 m + d; w -= lr m.
    """

    def __init__(self, dim: int, num_classes: int, lrs: list[float], wds: list[float], g: torch.Generator) -> None:
        h = len(lrs)
        self.weight = torch.empty(h, num_classes, dim)
        torch.nn.init.trunc_normal_(self.weight, std=0.01, generator=g)
        self.bias = torch.zeros(h, num_classes)
        self.params = [self.weight.requires_grad_(), self.bias.requires_grad_()]
        self.momentum = [torch.zeros_like(p) for p in self.params]
        self.lr, self.wd = torch.tensor(lrs), torch.tensor(wds)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(n, D) → (n, H, C)."""
        h, c, d = self.weight.shape
        return F.linear(x, self.weight.view(h * c, d), self.bias.view(h * c)).view(-1, h, c)

    @torch.no_grad()
    def step(self, scale: float) -> None:
        for p, m in zip(self.params, self.momentum, strict=True):
            shape = (-1,) + (1,) * (p.ndim - 1)
            m.mul_(0.9).add_(p.grad + self.wd.view(shape) * p)
            p.sub_(scale * self.lr.view(shape) * m)
            p.grad = None


@contextmanager
def one_thread():
    """The probes' matmuls are small: one CPU thread beats several, and never fights a
    training job for the cores (two threads on two busy cores made the probe 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def train_heads(
    views: dict[str, torch.Tensor],
    y_fit: torch.Tensor,
    grid: list[tuple[str, float, float]],
    num_classes: int,
    cfg: EvalConfig,
    seed: int,
) -> dict[str, tuple[Heads, list[int]]]:
    """Train one head per (view, lr, wd) of `grid` on the fit features views[view], cosine lr.
    Returns view → (its heads, their positions in `grid`)."""
    g = torch.Generator().manual_seed(seed)
    heads = {}
    for name in dict.fromkeys(v for v, _, _ in grid):
        where = [i for i, (v, _, _) in enumerate(grid) if v == name]
        lrs, wds = [grid[i][1] for i in where], [grid[i][2] for i in where]
        heads[name] = (Heads(views[name].shape[1], num_classes, lrs, wds, g), where)
    n = len(y_fit)
    steps = max(cfg.linear_epochs * math.ceil(n / BATCH), cfg.linear_min_steps)
    perm, pos = torch.randperm(n, generator=g), 0
    for step in range(steps):
        if pos + BATCH > n and pos > 0:  # a new epoch (a subset smaller than a batch is one whole batch)
            perm, pos = torch.randperm(n, generator=g), 0
        batch = perm[pos : pos + BATCH]
        pos += BATCH
        for name, (h, where) in heads.items():
            logits = h.logits(views[name][batch])  # (n, H, C)
            y = y_fit[batch].repeat_interleave(len(where))
            loss = F.cross_entropy(logits.flatten(0, 1), y) * len(where)  # the sum of each head's mean
            loss.backward()
            h.step(0.5 * (1 + math.cos(math.pi * step / steps)))
    return heads


@torch.no_grad()
def top1(heads: Heads, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Top-1 (%) of every head."""
    if len(y) == 0:
        return [None] * len(heads.lr)
    return ((heads.logits(x).argmax(2) == y[:, None]).float().mean(0) * 100.0).tolist()


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
    with one_thread():
        trained = train_heads({k: v[0] for k, v in prepared.items()}, y_fit, grid, num_classes, cfg, seed)
    rows = [None] * len(grid)
    for name, (heads, where) in trained.items():
        _, val, test = prepared[name]
        for i, v, t in zip(where, top1(heads, val, y_val), top1(heads, test, y_te), strict=True):
            rows[i] = {"view": name, "lr": grid[i][1], "wd": grid[i][2], "val_top1": v, "test_top1": t}
    best = rows[0] if fixed is not None else max(rows, key=lambda r: r["val_top1"])  # ties: the grid's order
    return {
        "top1": best["test_top1"],
        "best": {k: best[k] for k in ("view", "lr", "wd", "val_top1")},
        "selected": "fixed" if fixed is not None else "val",
        "n_fit": len(fit_idx),
        "n_val": len(val_idx),
        "grid": rows,
    }
