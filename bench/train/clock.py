"""The budget's clock and FLOP meter: wall-clock seconds of training since this session began, less
checkpoint writes, the health signals and the FLOP counter's overhead; each batch shape's FLOPs, counted with torch's
FlopCounterMode on its first step (the real step: forward and backward of what trains, forward of
any EMA teacher)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

from bench.train.flops import flop_counter_mode


def shape_key(batch: dict) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in batch.items() if isinstance(v, torch.Tensor))


class StepClock:
    def __init__(self, seconds0: float) -> None:
        self.seconds0 = seconds0  # device-seconds spent before this session (a resumed run's)
        self.last_checkpoint = time.perf_counter()
        self.excluded = 0.0  # checkpoint writes and FLOP-counting overhead are not training time
        self.plain_seconds, self.plain_steps = 0.0, 0  # time of steps run without the FLOP counter
        self.flops_per_shape: dict[tuple, float] = {}
        self.t0 = time.perf_counter()

    def start(self, batch: dict):
        """A step on `batch` begins: a context that counts its FLOPs when its shape is new."""
        self.key = shape_key(batch)
        self.counter = flop_counter_mode() if self.key not in self.flops_per_shape else None
        self.t_step = time.perf_counter()
        return self.counter if self.counter is not None else nullcontext()

    @property
    def counting(self) -> bool:
        """This step's FLOPs are being counted (it must run eagerly: the counter cannot see compiled graphs)."""
        return self.counter is not None

    def stop(self, device: torch.device) -> tuple[float, float]:
        """The step ended: (training seconds of this session so far, the step's FLOPs). On CUDA this is
        the step's one host synchronisation: the clock must see the GPU's work, not the host's queueing
        of it (a loss is read on the host only at a record or checkpoint, records.py)."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - self.t_step
        if self.counter is not None:
            self.flops_per_shape[self.key] = float(self.counter.get_total_flops())
            if self.plain_steps:  # charge a counted step at the mean plain step, not at the counter's overhead
                self.excluded += max(seconds - self.plain_seconds / self.plain_steps, 0.0)
        else:
            self.plain_seconds, self.plain_steps = self.plain_seconds + seconds, self.plain_steps + 1
        return time.perf_counter() - self.t0 - self.excluded, self.flops_per_shape[self.key]

    def checkpoint_due(self, every_s: float) -> bool:
        return time.perf_counter() - self.last_checkpoint > every_s

    @contextmanager
    def checkpointing(self) -> Iterator[None]:
        """A checkpoint write: not training time."""
        with self.aside():
            yield
        self.last_checkpoint = time.perf_counter()

    @contextmanager
    def aside(self) -> Iterator[None]:
        """Work beside training (the health signals): not training time."""
        start = time.perf_counter()
        yield
        self.excluded += time.perf_counter() - start
