"""SIGReg (LeJEPA, Balestriero & LeCun 2025; shared/reference/lejepa.md §1): how far a batch of embeddings
is from an isotropic standard Gaussian, through the Epps-Pulley test statistic of random 1-D projections.

For one unit direction a and embeddings z_1..z_N, the projections x_n = a.z_n have the empirical
characteristic function phi(t) = mean_n exp(i t x_n); the standard Gaussian's is exp(-t^2/2). The
Epps-Pulley statistic is

    EP = N * integral |phi(t) - exp(-t^2/2)|^2 w(t) dt,   w(t) = exp(-t^2/2),
    |phi(t) - exp(-t^2/2)|^2 = (mean_n cos(t x_n) - exp(-t^2/2))^2 + (mean_n sin(t x_n))^2,

integrated with the trapezoid rule on [-t_max, t_max] (the integrand is even: knots on [0, t_max] with
the end weights dt and the inner ones 2 dt, as the authors' code does; 17 knots, t_max = 3). SIGReg
is EP averaged over the directions (slices, redrawn every step). Under several processes the
characteristic function is the mean over the global batch: the per-process means are all-reduced with
an autograd-aware all-reduce, so every process computes the same statistic and, with
DistributedDataParallel's averaging of gradients, the gradient of one process on the whole batch.
"""

import torch
import torch.distributed as dist


def unit_slices(dim: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random unit directions in R^dim, (dim, count): Gaussian columns, each normalised, on the
    generator's device."""
    a = torch.randn(dim, count, generator=generator, device=generator.device)
    return a / a.norm(dim=0, keepdim=True)


def knots(count: int = 17, t_max: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, weights): `count` knots on [0, t_max] and the weights of the trapezoid rule on
    [-t_max, t_max] folded onto them (dt at the ends, 2 dt inside), times w(t) = exp(-t^2/2)."""
    t = torch.linspace(0, t_max, count)
    dt = t_max / (count - 1)
    weights = torch.full((count,), 2 * dt)
    weights[[0, -1]] = dt
    return t, weights * torch.exp(-t.square() / 2)


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """`x` (a per-process mean) averaged over the processes, through an all-reduce whose backward
    all-reduces the gradient (torch.distributed.nn): a plain all_reduce would cut the gradient's path."""
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM) / dist.get_world_size()


def epps_pulley(x: torch.Tensor, t: torch.Tensor, weights: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """The statistic of each column of projections `x` (..., N, M) → (..., M). With `reduce` (training)
    N is the global batch, the processes' means averaged; without, this process's batch alone."""
    xt = x.unsqueeze(-1) * t  # (..., N, M, T)
    cos, sin = xt.cos().mean(-3), xt.sin().mean(-3)  # (..., M, T)
    processes = world() if reduce else 1
    if processes > 1:
        cos, sin = global_mean(cos), global_mean(sin)
    err = (cos - torch.exp(-t.square() / 2)).square() + sin.square()
    return (err @ weights) * (x.shape[-2] * processes)


def sigreg(
    z: torch.Tensor, slices: torch.Tensor, t: torch.Tensor, weights: torch.Tensor, reduce: bool = True
) -> torch.Tensor:
    """SIGReg of embeddings `z` (V, N, K), one statistic per view: Epps-Pulley of the projections on
    each slice (K, M), averaged over slices and views. A scalar."""
    x = z.float() @ slices.to(z.device, torch.float32)  # (V, N, M)
    return epps_pulley(x, t.to(z.device), weights.to(z.device), reduce).mean()
