"""Label-free health signals of a representation: pure functions of an embedding matrix or of two
encoders, shared by training (bench/train/health.py logs them) and the harness's other readers.

- `rankme`: RankMe (Garrido et al., ICML 2023, "RankMe: Assessing the downstream performance of
  pretrained self-supervised representations by their rank"): exp of the entropy of the singular
  values of the (N, D) embeddings normalised to sum 1, with the paper's eps 1e-7. Between 1 (rank 1)
  and min(N, D) (every direction used equally).
- `feature_std`: the per-dimension std of the L2-normalised embeddings, averaged over the dimensions,
  times sqrt(D): about 1 for embeddings spread over the sphere, 0 when they collapse to one point
  (SimSiam's collapse measure, Chen & He, CVPR 2021, section 4.1); `std`: the same on the raw embeddings.
- `encoder_moved`: ||theta - theta_0|| / ||theta_0|| over an encoder's parameters.
"""

import math

import torch

RANKME_EPS = 1e-7


@torch.no_grad()
def rankme(z: torch.Tensor) -> float:
    """RankMe of embeddings `z` (N, D), computed in float64."""
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum() + RANKME_EPS
    return math.exp(float(-(p * p.log()).sum()))


@torch.no_grad()
def feature_std(z: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised rows of `z` (N, D), times sqrt(D)."""
    z = torch.nn.functional.normalize(z.double(), dim=1)
    return float(z.std(0).mean()) * math.sqrt(z.shape[1])


@torch.no_grad()
def std(z: torch.Tensor) -> float:
    """Mean per-dimension std of `z` (N, D) as it is (not normalised): the scale the dimensions spread at."""
    return float(z.double().std(0).mean())


@torch.no_grad()
def encoder_moved(encoder: torch.nn.Module, initial: torch.nn.Module | dict[str, torch.Tensor]) -> float:
    """How far training moved the encoder: ||theta - theta_0|| / ||theta_0|| over all its parameters.
    `initial`: the encoder at its initialisation, or its named parameters."""
    start = initial if isinstance(initial, dict) else dict(initial.named_parameters())
    now = dict(encoder.named_parameters())
    diff = sum(float((now[k].float().cpu() - start[k].float().cpu()).pow(2).sum()) for k in start)
    norm = sum(float(p.float().pow(2).sum()) for p in start.values())
    return (diff / norm) ** 0.5 if norm > 0 else 0.0
