"""The EMA target/teacher network shared by every method that bootstraps its targets
(I-JEPA's target encoder; data2vec's teacher).

    teacher = EMATeacher(student)
    teacher.update(student, momentum=ema_momentum(progress))  # after every optimizer step
"""

import copy

import torch
from torch import nn


def ema_momentum(progress: float, start: float, end: float) -> float:
    """Linear ramp from `start` to `end` over the budget (I-JEPA, data2vec: 0.996 → 1.0)."""
    return start + min(max(progress, 0.0), 1.0) * (end - start)


class EMATeacher(nn.Module):
    """A frozen copy of `student` whose weights follow it as an exponential moving average."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(student)
        self.net.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        ema = list(self.net.parameters())
        new = list(student.parameters())
        torch._foreach_mul_(ema, momentum)
        torch._foreach_add_(ema, new, alpha=1.0 - momentum)

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)
