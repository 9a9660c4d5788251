"""The label-free health signals (core/health.py) against values worked out by hand."""

import math

import pytest
import torch

from core.health import encoder_moved, feature_std, rankme, std


def test_rankme_of_known_singular_values():
    """Singular values (3, 1): p = (3/4, 1/4), exp(entropy) = 1 / (0.75^0.75 * 0.25^0.25) = 4 / 3^(3/4)."""
    z = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    assert rankme(z) == pytest.approx(4 / 3**0.75, rel=1e-6)  # 1.7547654
    rotated = torch.linalg.qr(torch.randn(5, 5, generator=torch.Generator().manual_seed(0)))[0]
    z5 = torch.zeros(5, 2)
    z5[:2] = z
    assert rankme(rotated @ z5) == pytest.approx(4 / 3**0.75, rel=1e-6)  # rotations keep the singular values


def test_rankme_is_one_for_rank_one_and_about_d_for_isotropic_embeddings():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(512, 1, generator=g), torch.randn(1, 32, generator=g)
    assert rankme(u @ v) == pytest.approx(1.0, abs=1e-4)
    assert 31.0 < rankme(torch.randn(8192, 32, generator=g)) <= 32.0
    assert rankme(torch.eye(8)) == pytest.approx(8.0, rel=1e-5)  # all singular values equal: exactly D


def test_feature_std_of_two_opposite_points_and_of_a_collapse():
    """Rows e1, e1, -e1, -e1 in 2-D: dim 0's (unbiased) std is sqrt(4/3), dim 1's 0; their mean times
    sqrt(2) is sqrt(2/3). One repeated point: 0. Isotropic embeddings: about 1."""
    z = torch.tensor([[2.0, 0.0], [5.0, 0.0], [-1.0, 0.0], [-3.0, 0.0]])  # normalised to +-e1
    assert feature_std(z) == pytest.approx(math.sqrt(2 / 3), rel=1e-6)
    assert std(z) == pytest.approx(float(torch.tensor([2.0, 5.0, -1.0, -3.0]).std()) / 2, rel=1e-6)
    assert feature_std(torch.ones(16, 8)) == 0.0
    assert feature_std(torch.randn(8192, 64, generator=torch.Generator().manual_seed(1))) == pytest.approx(1, abs=0.02)


def test_encoder_moved_is_the_relative_distance_from_the_initialisation():
    start, now = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        start.weight.copy_(torch.tensor([[3.0, 4.0]]))  # norm 5
        now.weight.copy_(torch.tensor([[3.0, 5.0]]))  # 1 away
    assert encoder_moved(now, start) == pytest.approx(0.2)
    assert encoder_moved(now, {k: v.clone() for k, v in start.named_parameters()}) == pytest.approx(0.2)
    assert encoder_moved(start, start) == 0.0
