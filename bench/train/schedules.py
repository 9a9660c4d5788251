"""The optimizer's schedules as functions of where a run stands (core/clock.py's `Clock.position()`):
the fraction of the budget spent under `recipe: budget`, of the paper's run under `recipe: paper`.

A warm-up of 40 of a paper's 300 epochs is the first 13.3 % of any run; a resumed run needs no
fast-forward and a changed budget needs no new epoch count. EMA momenta, the methods' own schedule,
are read from the same clock (core/clock.py).
"""

import math

from bench.config.schema import OptimConfig


def learning_rate(position: float, cfg: OptimConfig) -> float:
    """Linear warm-up from start_lr to lr over `warmup` of the schedule, then cosine to final_lr
    (per `lr_batch` images, before `lr_scale`)."""
    p = min(max(position, 0.0), 1.0)
    if p < cfg.warmup:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * p / cfg.warmup
    q = (p - cfg.warmup) / (1.0 - cfg.warmup)
    return cfg.final_lr + (cfg.lr - cfg.final_lr) * 0.5 * (1.0 + math.cos(math.pi * q))


def weight_decay(position: float, cfg: OptimConfig) -> float:
    """Cosine ramp from weight_decay to final_weight_decay (I-JEPA: 0.04 → 0.4)."""
    p = min(max(position, 0.0), 1.0)
    return cfg.final_weight_decay + (cfg.weight_decay - cfg.final_weight_decay) * 0.5 * (1.0 + math.cos(math.pi * p))


def lr_scale(cfg: OptimConfig) -> float:
    """The one learning-rate rule: rates given per `lr_batch` images scale linearly with the global
    batch (1 when lr_batch is 0), times the tuned `lr_factor`."""
    return (cfg.batch_size / cfg.lr_batch if cfg.lr_batch else 1.0) * cfg.lr_factor
