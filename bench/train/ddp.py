"""Multi-process training (torch.distributed): the wrapped model, and the one all-reduce per step
through which every process takes the same decisions at the same step."""

import torch

from bench.train.devices import Ranks


def wrap(method: torch.nn.Module, device: torch.device, where: Ranks) -> torch.nn.Module:
    """The module the step calls: `method` itself, or with several processes its DistributedDataParallel
    wrapper, whose gradients are averaged over the processes (the mean over the global batch). On GPUs
    a method's BatchNorm layers (LeJEPA's projector) become SyncBatchNorm, so they normalise over the
    global batch as one process would; torch has no SyncBatchNorm on the CPU, where each process's
    share is normalised alone."""
    if where.world == 1:
        return method
    if device.type == "cuda":
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)  # replaces the layers in place, same state dict
    ids = [device] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(method, device_ids=ids)


def agree(where: Ranks, device, elapsed: float, stopping: bool, save_due: bool, flops: float, loss) -> tuple:
    """One all-reduce per step, so every process takes the same decisions at the same step:
    process 0's clock, stop and checkpoint decisions, the FLOPs of all the processes' shares
    (they can differ: data2vec v1's head runs on each share's masked tokens), and whether any
    process's loss is not finite."""
    mine = [elapsed, float(stopping), float(save_due)] if where.main else [0.0, 0.0, 0.0]
    shared = torch.tensor([*mine, flops, 0.0], dtype=torch.float64, device=device)
    shared[4] = (~torch.isfinite(loss.detach())).double()
    torch.distributed.all_reduce(shared)
    elapsed, stopping, save_due, flops, bad = shared.tolist()
    return elapsed, stopping > 0, save_due > 0, flops, bad > 0


def process_mean(values: torch.Tensor, where: Ranks) -> torch.Tensor:
    """`values` averaged over the processes, in place (unchanged with one process)."""
    if where.world > 1:
        torch.distributed.all_reduce(values)
        values /= where.world
    return values


def barrier(where: Ranks) -> None:
    if where.world > 1:
        torch.distributed.barrier()
