"""Speed: the peak table and MFU (bench/peaks.py), each record's and each summary's FLOP/s and MFU,
`compile: true`, the fused attention of the backbones, and on a GPU the same FLOPs as on the CPU."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch._dynamo import lookup_backend

from bench.peaks import PEAKS, Peak, peak_of, utilisation
from bench.train import devices, loop
from bench.train.engine import train
from core.vit import BACKBONES

from ..conftest import TINY_METHODS, tiny_config, untimed

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
T = 1e12


@pytest.mark.parametrize(
    "name, part, tflops",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756),
        ("NVIDIA H100 NVL", "H100 NVL", 835.5),
        ("NVIDIA H200", "H200 SXM", 989.5),
        ("NVIDIA H200 NVL", "H200 NVL", 835.5),
        ("NVIDIA GH200 480GB", "GH200", 989.5),
        ("NVIDIA B200", "B200", 2250),
        ("NVIDIA A100-SXM4-80GB", "A100", 312),
        ("NVIDIA A100-PCIE-40GB", "A100", 312),
        ("NVIDIA A10", "A10", 125),
        ("NVIDIA L4", "L4", 121),
        ("NVIDIA L40S", "L40S", 362.05),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 165.2),
        ("NVIDIA GeForce RTX 3090", "GeForce RTX 3090", 71),
        ("Tesla V100-SXM2-32GB", "V100 SXM2", 125),
        ("Tesla V100-PCIE-16GB", "V100 PCIe", 112),
    ],
)
def test_each_device_name_finds_its_dense_peak(name, part, tflops):
    peak = peak_of(name)
    assert peak.part == part and peak.flops_per_s == pytest.approx(tflops * T)
    assert peak.precision == ("fp16" if "V100" in name else "bf16")


@pytest.mark.parametrize("name", ["cpu", "NVIDIA A10G", "NVIDIA L40", "NVIDIA T4", "AMD Instinct MI300X"])
def test_the_cpu_and_unknown_devices_have_no_peak(name):
    assert peak_of(name) is None


def test_every_entry_is_reachable():
    """No entry is hidden by one before it (GH200 before H200, A10G before A10, PCIe before SXM)."""
    for needles, peak in PEAKS:
        assert peak_of(" ".join(needles)) is peak


def test_utilisation_is_flops_over_wall_seconds_and_over_the_processes_peak():
    # 8e12 FLOPs in 4 device-seconds on 2 processes: 2 s of wall clock, 4e12 FLOP/s, 2e12 a device
    assert utilisation(8e12, 4.0, 2, Peak("X", 4e12)) == {"flops_per_s": 4e12, "mfu": 0.5}
    assert utilisation(8e12, 4.0, 2, None) == {"flops_per_s": 4e12, "mfu": None}
    assert utilisation(0.0, 0.0, 1, Peak("X", 2e12)) == {"flops_per_s": None, "mfu": None}


def read(run_dir) -> tuple[list[dict], dict]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return records, json.loads((run_dir / "summary.json").read_text())


def test_records_and_summary_carry_flops_per_s_and_mfu(tmp_path, monkeypatch):
    """Each record: the FLOPs over the training seconds since the record before; the summary: over the
    whole run. On a device in the table (its name faked here) MFU is that over its peak."""
    monkeypatch.setattr(loop, "device_name", lambda device: "NVIDIA H100 80GB HBM3")
    train(tiny_config(**{"budget.value": 5, "log_every": 2}), tmp_path)
    records, summary = read(tmp_path)
    assert records[0]["step"] == 0 and records[0]["flops_per_s"] is None  # the initialisation's health record
    before = records[0]
    for r in records[1:]:
        seconds = (r["device_hours"] - before["device_hours"]) * 3600
        assert r["flops_per_s"] == pytest.approx((r["flops"] - before["flops"]) / seconds, rel=1e-6)
        assert r["mfu"] == pytest.approx(r["flops_per_s"] / 989.4e12)
        before = r
    compute = summary["compute"]
    assert compute["flops_per_s"] == pytest.approx(compute["flops"] / (compute["device_hours"] * 3600))
    assert compute["mfu"] is None and compute["peak_flops_per_s"] is None  # the summary's device is the CPU's


def test_on_the_cpu_mfu_is_none_and_the_flop_rate_is_still_there(tmp_path):
    train(tiny_config(**{"budget.value": 2}), tmp_path)
    records, summary = read(tmp_path)
    assert all(r["mfu"] is None for r in records)
    assert records[-1]["flops_per_s"] > 0 and summary["compute"]["flops_per_s"] > 0
    assert summary["compute"]["mfu"] is None and summary["compute"]["peak_flops_per_s"] is None


def test_compile_is_a_config_field_that_keeps_old_run_ids():
    from bench.rundir import run_id

    plain = tiny_config()
    assert plain.compile is False
    assert run_id(tiny_config(compile=False)) == run_id(plain) != run_id(tiny_config(compile=True))


@pytest.mark.slow  # two trainings, one through torch.compile (aot_eager)
@pytest.mark.parametrize("method", ["mae", "data2vec"])  # fixed batch shapes: every step after the first compiled
def test_a_compiled_run_records_what_the_eager_run_does(tmp_path, monkeypatch, method):
    """torch.compile (with aot_eager here: inductor needs minutes of C++ compiling on this CPU) on every
    step but the counted one: the same losses and exactly the same FLOPs; checkpoints keep plain keys."""
    graphs, calls = [], []
    aot = lookup_backend("aot_eager")

    def backend(gm, inputs):
        graphs.append(gm)
        return aot(gm, inputs)

    real = loop.compiled

    def counting(model, cfg):
        module = real(model, cfg)
        return None if module is None else lambda batch: calls.append(1) or module(batch)

    monkeypatch.setattr(devices, "COMPILE_BACKEND", backend)
    monkeypatch.setattr(loop, "compiled", counting)
    cfg = {"budget.value": 4, "log_every": 1, "health.every": 0}
    train(tiny_config(method, **cfg), tmp_path / "eager")
    assert not graphs and not calls
    train(tiny_config(method, compile=True, **cfg), tmp_path / "compiled")
    assert graphs and len(calls) == 3  # steps 2-4; step 1 (its FLOPs counted) ran eagerly
    eager, compiled = read(tmp_path / "eager")[0], read(tmp_path / "compiled")[0]
    assert [r["flops"] for r in compiled] == [r["flops"] for r in eager]
    for a, b in zip(eager, compiled, strict=True):
        assert untimed(a).keys() == untimed(b).keys()
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    state = torch.load(tmp_path / "compiled" / "checkpoint.pt", weights_only=False)["method"]
    assert state.keys() == torch.load(tmp_path / "eager" / "checkpoint.pt", weights_only=False)["method"].keys()
    assert not any("_orig_mod" in k for k in state)


@pytest.mark.parametrize("backbone", ["vit_nano_patch4", "vit_base_patch16"])
def test_the_backbones_attention_is_fused(backbone, monkeypatch):
    """timm's Attention takes F.scaled_dot_product_attention (flash / memory-efficient kernels on GPUs),
    not its explicit softmax(q k^T) v, in every block."""
    encoder = BACKBONES.get(backbone)(img_size=32, in_chans=3)
    attns = [block.attn for block in encoder.blocks]
    assert attns and all(a.fused_attn for a in attns)
    calls, real = [], F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    encoder(torch.randn(2, 3, 32, 32))
    assert len(calls) == len(attns)


# --- on a GPU ------------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_a_cuda_bf16_step_counts_the_flops_of_a_cpu_fp32_step(tmp_path, method):
    """The same steps (same masks, same shapes) count the same FLOPs whatever the device's attention
    kernel (flops.py gives the CPU kernel the CUDA kernels' formulas). Both on the CPU data path: the
    device path's batched masks would give other mask lengths, so other shapes."""
    cfg = {"budget.value": 2, "health.every": 0, "data.on_device": False}
    cpu = train(tiny_config(method, device="cpu", precision="fp32", **cfg), tmp_path / "cpu")
    cuda = train(tiny_config(method, device="cuda", precision="bf16", **cfg), tmp_path / "cuda")
    assert cuda["compute"]["flops"] == pytest.approx(cpu["compute"]["flops"], rel=1e-9)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.skipif(
    torch.cuda.is_available() and peak_of(torch.cuda.get_device_name()) is None, reason="a device not in the table"
)
def test_a_cuda_run_on_a_known_device_reports_its_mfu(tmp_path):
    train(tiny_config(device="cuda", **{"budget.value": 4, "log_every": 2}), tmp_path)
    records, summary = read(tmp_path)
    peak = peak_of(torch.cuda.get_device_name())
    assert summary["compute"]["peak_flops_per_s"] == peak.flops_per_s
    assert 0 < summary["compute"]["mfu"] < 1
    assert all(0 < r["mfu"] < 1 for r in records if r["step"] > 0)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("method", [m for m in TINY_METHODS if m != "data2vec_v1"])  # v1: z[masked], M per batch
def test_a_cuda_forward_never_waits_for_the_gpu(tmp_path, monkeypatch, method):
    """No host synchronisation in a method's forward (the loss is read only at records and checkpoints,
    the clock synchronises once a step): torch's sync debug mode raises on any."""
    from contextlib import contextmanager

    real = loop.autocast

    @contextmanager
    def strict(device, precision):
        with real(device, precision):
            torch.cuda.set_sync_debug_mode("error")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(0)

    monkeypatch.setattr(loop, "autocast", strict)
    train(tiny_config(method, device="cuda", **{"budget.value": 2, "health.every": 0}), tmp_path)


@pytest.mark.gpu
@needs_cuda
def test_bf16_attention_takes_the_flash_kernel_on_cuda():
    """With SDPA restricted to FlashAttention, a bf16 forward and backward of ViT-B/16 at 224 px runs
    (it raises when no flash kernel fits: head dim 64, bf16, no explicit mask)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    encoder = BACKBONES.get("vit_base_patch16")(img_size=224, in_chans=3).cuda()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.autocast("cuda", dtype=torch.bfloat16):
        encoder(torch.randn(4, 3, 224, 224, device="cuda")).float().mean().backward()


@pytest.mark.gpu
@needs_cuda
def test_an_inductor_compiled_cuda_run_counts_the_eager_runs_flops(tmp_path):
    """The real path: inductor on a GPU. MAE draws nothing inside its forward, so the losses agree to bf16's
    precision; the FLOPs (counted on the eager first step) exactly."""
    cfg = {"device": "cuda", "budget.value": 4, "log_every": 1, "health.every": 0}
    train(tiny_config("mae", **cfg), tmp_path / "eager")
    train(tiny_config("mae", compile=True, **cfg), tmp_path / "compiled")
    eager, compiled = read(tmp_path / "eager")[0], read(tmp_path / "compiled")[0]
    assert [r["flops"] for r in compiled] == [r["flops"] for r in eager]
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=2e-2)
