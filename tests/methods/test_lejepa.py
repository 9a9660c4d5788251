"""LeJEPA against written-out references (shared/reference/lejepa.md): the Epps-Pulley statistic
against a direct numerical integration, SIGReg's behaviour on Gaussian, collapsed and non-Gaussian
embeddings, the statistic of two processes against one's on the same global batch, the gradient of
both terms, the multi-crop data path, the FLOPs of the slices, and an exact resume."""

import json
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import integrate

from baselines.lejepa import LeJEPA
from baselines.sigreg import epps_pulley, knots, sigreg, unit_slices
from bench.data.datasets import load_split
from bench.data.views import Views
from bench.train.engine import train
from bench.train.loader import Collate, StepSampler, StepTagged
from bench.train.methods import augmentation, build_method

from ..conftest import tiny_config, train_preempted, untimed


def ep_by_quadrature(x: np.ndarray, t_max: float = 3.0) -> float:
    """N * integral over [-t_max, t_max] of |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt, by adaptive quadrature."""

    def integrand(t: float) -> float:
        real = np.cos(t * x).mean() - math.exp(-(t**2) / 2)
        imag = np.sin(t * x).mean()
        return (real**2 + imag**2) * math.exp(-(t**2) / 2)

    return len(x) * integrate.quad(integrand, -t_max, t_max, limit=200)[0]


def ep_by_trapezoid(x: np.ndarray, count: int = 17, t_max: float = 3.0) -> float:
    """The same integral by the trapezoid rule on `2 count - 1` knots over [-t_max, t_max], written out."""
    t = np.linspace(-t_max, t_max, 2 * count - 1)
    values = [
        ((np.cos(s * x).mean() - math.exp(-(s**2) / 2)) ** 2 + np.sin(s * x).mean() ** 2) * math.exp(-(s**2) / 2)
        for s in t
    ]
    dt = t[1] - t[0]
    return len(x) * dt * (sum(values) - (values[0] + values[-1]) / 2)


@pytest.mark.parametrize("kind", ["gaussian", "shifted", "uniform"])
def test_epps_pulley_equals_the_integral_it_approximates(kind):
    rng = np.random.default_rng(0)
    x = {
        "gaussian": rng.standard_normal(300),
        "shifted": rng.standard_normal(300) * 0.5 + 1.0,
        "uniform": rng.uniform(-math.sqrt(3), math.sqrt(3), 300),
    }[kind]
    t, weights = knots(17, 3.0)
    ours = float(epps_pulley(torch.tensor(x, dtype=torch.float64)[:, None], t.double(), weights.double())[0])
    assert ours == pytest.approx(ep_by_trapezoid(x), rel=1e-6)  # the folded grid is the trapezoid rule (w in float32)
    assert ours == pytest.approx(ep_by_quadrature(x), rel=0.02)  # and 17 knots are close to the integral


def test_sigreg_is_near_zero_for_gaussians_and_large_for_collapse_or_other_shapes():
    """For Gaussian embeddings N |phi_N - phi|^2 has mean 1 - exp(-t^2) (up to 1/N), so the statistic's
    mean is the integral of (1 - exp(-t^2)) exp(-t^2/2) on [-3, 3], about 1.06, whatever N; anything else
    grows with N (here 4,096). Uniform in 32 dimensions is not a test: its 1-D projections are
    nearly Gaussian (the central limit theorem), which is why a scale mixture and a 1-D uniform are used."""
    g = torch.Generator().manual_seed(0)
    slices, t, w = unit_slices(32, 256, g), *knots()
    h0 = integrate.quad(lambda s: (1 - math.exp(-(s**2))) * math.exp(-(s**2) / 2), -3, 3)[0]
    n = 4096
    embeddings = {
        "gaussian": torch.randn(1, n, 32, generator=g),
        "collapsed": torch.randn(1, 1, 32, generator=g) + 0.01 * torch.randn(1, n, 32, generator=g),
        "low_rank": torch.randn(1, n, 2, generator=g) @ torch.randn(2, 32, generator=g) / 2,  # partial collapse
        "too_wide": 2 * torch.randn(1, n, 32, generator=g),
        "shifted": torch.randn(1, n, 32, generator=g) + 0.5,
        "scale_mixture": torch.randn(1, n, 32, generator=g) * (0.3 + (torch.rand(1, n, 1, generator=g) < 0.5)),
    }
    values = {name: float(sigreg(z, slices, t, w)) for name, z in embeddings.items()}
    assert values.pop("gaussian") == pytest.approx(h0, rel=0.5)
    assert min(values.values()) > 100 * h0, values
    uniform = (torch.rand(1, n, 1, generator=g) - 0.5) * math.sqrt(12)  # unit variance, flat
    one_d = unit_slices(1, 16, g)
    assert float(sigreg(uniform, one_d, t, w)) > 50 * float(sigreg(torch.randn(1, n, 1, generator=g), one_d, t, w))


def _two_processes(rank: int, port: int, z: torch.Tensor, slices, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        local = z.chunk(2, dim=1)[rank].clone().requires_grad_(True)
        t, w = knots()
        value = sigreg(local, slices, t, w)
        value.backward()
        out[rank] = (float(value), local.grad / 2)  # DistributedDataParallel averages the processes' gradients
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes: 8 s
def test_two_processes_compute_the_statistic_and_gradient_of_one_on_the_global_batch():
    """Each process holds half the batch; the autograd all-reduce gives both the whole batch's statistic,
    and the processes' gradients, averaged as DDP does, are the single process's (lightly#1920)."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(3, 64, 16, generator=g)  # (V, N, K)
    slices = unit_slices(16, 32, g)
    whole = z.clone().requires_grad_(True)
    t, w = knots()
    expected = sigreg(whole, slices, t, w)
    expected.backward()
    expected = expected.detach()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_two_processes, args=(port, z, slices, out), nprocs=2)
    for rank in range(2):
        value, grad = out[rank]
        assert value == pytest.approx(expected.item(), rel=1e-5)
        torch.testing.assert_close(grad, whole.grad.chunk(2, dim=1)[rank], rtol=1e-4, atol=1e-7)


def test_both_terms_send_gradient_to_the_encoder_and_the_projector():
    cfg = tiny_config("lejepa")
    torch.manual_seed(0)
    model: LeJEPA = build_method(cfg, 1)
    batch = {
        "images": torch.randn(8, 2, 1, 16, 16),
        "local_images": torch.randn(8, 2, 1, 8, 8),
        "slices": unit_slices(16, 64, torch.Generator().manual_seed(0)),
    }
    for term in ("pred_loss", "sigreg"):
        model.zero_grad()
        z = model.projections(batch)
        if term == "pred_loss":
            value = (z - z[:2].mean(0)).square().mean()
        else:
            value = sigreg(z, batch["slices"], model.t, model.weights)
        value.backward()
        for part in (model.encoder.blocks[0].attn.qkv.weight, model.encoder.cls_token, model.projector[0].weight):
            assert part.grad is not None and part.grad.abs().sum() > 0, term
    assert model.encoders() == {"student": model.encoder} and model.evaluated == "student"  # the probe reads the ViT
    out = model(batch)
    expected = cfg.lejepa.lam * out["sigreg"] + (1 - cfg.lejepa.lam) * out["pred_loss"]
    assert out["loss"].item() == pytest.approx(float(expected), rel=1e-6)


def test_the_views_are_drawn_per_seed_step_and_image():
    """Each image's 2 global and 2 local views at (seed, step) are the same whoever loads them and
    differ at another step; the global views have the run's size, the local ones lejepa.local_size."""
    cfg = tiny_config("lejepa")
    data = load_split(cfg.data, "train")
    dataset = StepTagged(data, Views.of(data, 16, augmentation(cfg)), seed=3)
    model = build_method(cfg, 1)

    def batch(step: int) -> dict:
        keys = next(iter(StepSampler(len(data), 16, seed=3, start_step=step)))
        return Collate(model.input_sampler())([dataset[k] for k in keys])

    a, b, c = batch(5), batch(5), batch(6)
    assert a["images"].shape == (16, 2, 1, 16, 16) and a["local_images"].shape == (16, 2, 1, 8, 8)
    for key in ("images", "local_images", "slices"):
        assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key]), key
    assert not torch.equal(a["images"][:, 0], a["images"][:, 1])  # two crops of each image, not one twice
    torch.testing.assert_close(a["slices"].norm(dim=0), torch.ones(64))


def test_the_counted_flops_include_the_slices_projection(tmp_path):
    """Doubling the slices adds the projection z @ A of every view (2 V N K M FLOPs forward, the same
    again for its gradient to z; the slices take none), and nothing else."""
    flops = {}
    for m in (64, 128):
        cfg = tiny_config("lejepa", **{"lejepa.slices": m, "budget.value": 1})
        flops[m] = train(cfg, tmp_path / str(m))["compute"]["flops"]
    v, n, k = 4, 16, 16
    assert flops[128] - flops[64] == pytest.approx(2 * 2 * v * n * k * 64, rel=1e-9)


def strip(line: str) -> dict:
    """A record without its wall-clock."""
    return untimed(json.loads(line))


def test_a_preempted_lejepa_run_resumes_exactly(tmp_path, monkeypatch):
    cfg = tiny_config("lejepa", log_every=1, **{"budget.value": 6, "checkpoint_every_s": 0})
    whole = train(cfg, tmp_path / "whole")
    resumed = train_preempted(cfg, tmp_path / "resumed", monkeypatch, die_at_save=4)
    assert resumed["compute"]["steps"] == whole["compute"]["steps"] == 6
    a = (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()
    b = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [strip(line) for line in a] == [strip(line) for line in b]
    wa = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["method"]
    wb = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["method"]
    for key, value in wa.items():
        assert torch.equal(value, wb[key]), key
