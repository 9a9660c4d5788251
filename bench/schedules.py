"""Schedules as functions of progress ∈ [0, 1], the fraction of the budget spent.

A resumed run needs no fast-forward and a changed budget needs no new epoch count: the
schedule ends exactly when the budget does, whatever the budget's unit.
"""

import math

from bench.config import OptimConfig


def learning_rate(progress: float, cfg: OptimConfig) -> float:
    """Linear warm-up from start_lr to lr over `warmup` of the budget, then cosine to final_lr."""
    p = min(max(progress, 0.0), 1.0)
    if p < cfg.warmup:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * p / cfg.warmup
    q = (p - cfg.warmup) / (1.0 - cfg.warmup)
    return cfg.final_lr + (cfg.lr - cfg.final_lr) * 0.5 * (1.0 + math.cos(math.pi * q))


def weight_decay(progress: float, cfg: OptimConfig) -> float:
    """Cosine ramp from weight_decay to final_weight_decay (I-JEPA: 0.04 → 0.4)."""
    p = min(max(progress, 0.0), 1.0)
    return cfg.final_weight_decay + (cfg.weight_decay - cfg.final_weight_decay) * 0.5 * (1.0 + math.cos(math.pi * p))


def lr_scale(cfg: OptimConfig) -> float:
    """MAE's rule: lrs given per `lr_batch` images scale with the global batch (1 when lr_batch is 0)."""
    return cfg.batch_size / cfg.lr_batch if cfg.lr_batch else 1.0
