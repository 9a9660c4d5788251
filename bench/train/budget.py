"""Compute spent against a run's budget: optimizer steps, epochs, FLOPs or device-hours.

The learning rate, weight decay and EMA momentum are functions of `Budget.progress()`, the
fraction spent (bench/train/schedules.py), so the schedule ends when the budget does."""

import math
from dataclasses import dataclass

from bench.config.ranges import MAX_STEPS
from bench.config.schema import BudgetConfig
from bench.errors import TrainingFailed


@dataclass
class Spent:
    steps: int = 0
    flops: float = 0.0
    device_seconds: float = 0.0
    images: int = 0
    restarts: int = 0  # resumptions from a checkpoint (preemptions, timeouts, crashes)
    lost_device_seconds: float = 0.0  # steps trained, lost in a crash, trained again: not charged
    health_seconds: float = 0.0  # process 0's time measuring health signals (bench/train/health.py): not charged


class Budget:
    """Compute spent against a budget; `progress()` is the fraction spent, in the budget's unit.

    Steps and epochs are whole numbers of steps, so they are met exactly. FLOP and
    device-hour budgets stop at the step boundary closest to the budget: the run stops
    when one more step would overshoot by more than stopping now undershoots, so the
    error is at most half a step.
    """

    def __init__(self, cfg: BudgetConfig, steps_per_epoch: int, spent: Spent | None = None) -> None:
        self.cfg = cfg
        self.spent = spent or Spent()
        self.last_cost = 0.0  # the latest step's cost in the budget's unit: the estimate of the next
        self.limit = cfg.value
        if cfg.kind == "epochs":
            self.limit = math.ceil(cfg.value * steps_per_epoch)
        elif cfg.kind == "device_hours":
            self.limit = cfg.value * 3600.0
        elif cfg.kind == "steps":
            self.limit = math.ceil(cfg.value)

    def used(self) -> float:
        s = self.spent
        return {"steps": s.steps, "epochs": s.steps, "flops": s.flops, "device_hours": s.device_seconds}[self.cfg.kind]

    def progress(self) -> float:
        return min(self.fraction_used(), 1.0)

    def done(self) -> bool:
        if self.cfg.kind in ("steps", "epochs"):
            return self.used() >= self.limit
        return self.used() + self.last_cost / 2 >= self.limit

    def charge(self, images: int, flops: float, device_seconds: float) -> None:
        """One step more: its images and FLOPs added, the device-seconds since the run began set."""
        s, before = self.spent, self.used()
        s.steps += 1
        s.images += images
        s.flops += flops
        s.device_seconds = device_seconds
        self.last_cost = self.used() - before
        self.check_length()

    def check_length(self) -> None:
        """A FLOP or time budget is bounded in steps once a step's cost is known: refuse one that needs
        more than MAX_STEPS at the latest step's cost (steps and epochs are bounded by validate)."""
        if self.cfg.kind in ("flops", "device_hours") and self.last_cost > 0:
            steps = self.spent.steps + (self.limit - self.used()) / self.last_cost
            if steps > MAX_STEPS:
                raise TrainingFailed(
                    f"budget.value={self.cfg.value:g} {self.cfg.kind} is about {steps:.2g} steps of this run, "
                    f"more than the {MAX_STEPS:.0e} a run may take"
                )

    def fraction_used(self) -> float:
        return self.used() / self.limit if self.limit > 0 else 1.0

    def summary(self, n_train: int) -> dict:
        """summary.json's `compute`: what the run spent."""
        s = self.spent
        return {
            "steps": s.steps,
            "flops": s.flops,
            "device_hours": s.device_seconds / 3600.0,
            "images_seen": s.images,
            "epochs": s.images / n_train,
            "budget_used": self.fraction_used(),
            "restarts": s.restarts,
            "device_hours_lost": s.lost_device_seconds / 3600.0,
        }
