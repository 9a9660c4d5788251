"""Where a run computes: the device of this process, its rank among the processes, the precision,
and the compiled model (`compile: true`).

Small on purpose: evaluation imports `select_device` from here without the training loop."""

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from bench.config.schema import RunConfig
from bench.errors import BenchError


def select_device(cfg: RunConfig) -> torch.device:
    """The configured device; on CUDA, the GPU of this process's local rank (LOCAL_RANK)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device=cuda was asked for but no CUDA device is visible")
    kind = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if kind != "cuda":
        return torch.device(kind)
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    torch.cuda.set_device(device)
    return device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


ONE_PROCESS = Ranks()


def ranks() -> Ranks:
    """This process's rank and the number of processes (1 without torch.distributed)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return ONE_PROCESS


def autocast(device: torch.device, precision: str):
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# torch.compile's backend for `compile: true`: inductor (generated kernels); tests on CPU set a lighter one
COMPILE_BACKEND = "inductor"


def compiled(model: torch.nn.Module, cfg: RunConfig) -> torch.nn.Module | None:
    """`model` through torch.compile when the config asks (None otherwise). The compiled module shares
    `model`'s parameters, so the optimizer, the EMA and the checkpoint (the method's own state_dict, no
    `_orig_mod.` keys) see one set of weights; the step calls it except on the steps whose FLOPs are
    counted (bench/train/clock.py), which FlopCounterMode cannot see inside a compiled graph. Random
    draws inside a compiled forward (data2vec 2.0's decoder noise) come from inductor's generator, not
    torch's: the same distribution, other values than an eager run's."""
    return torch.compile(model, backend=COMPILE_BACKEND) if cfg.compile else None
