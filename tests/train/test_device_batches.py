"""The device-resident data path (bench/train/device_batches.py), here on the CPU (and on CUDA where there
is one): when it is taken, that its batches are functions of the step, that they hold the CPU path's
crops, that processes' shares join into one process's batch, and that a pre-empted run resumes exactly."""

import json
from dataclasses import replace

import pytest
import torch

from bench.data.datasets import load_split
from bench.data.views import TOP, WIDTH, Views
from bench.errors import BenchError
from bench.train.device_batches import DeviceBatches, Draws, resident
from bench.train.devices import ONE_PROCESS, Ranks
from bench.train.engine import train
from bench.train.loader import StepSampler, StepTagged, training_loader
from bench.train.loop import Preempted
from bench.train.methods import augmentation, build_method

from ..conftest import TINY_METHODS, tiny_config

CPU = torch.device("cpu")
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")],
    ),
]


def test_which_runs_make_their_batches_on_the_device(tmp_path):
    cfg = tiny_config()
    data = load_split(cfg.data, "train")
    assert not resident(cfg, data, CPU)  # auto: on CUDA only
    assert resident(cfg, data, CPU, resumed=True) and not resident(
        cfg, data, CPU, resumed=False
    )  # a resume keeps its path
    assert not resident(tiny_config(**{"data.on_device": False}), data, CPU, resumed=True)  # a setting wins
    assert resident(tiny_config(**{"data.on_device": True}), data, CPU)
    assert not resident(tiny_config(**{"data.on_device": False}), data, CPU)
    on_files = replace(data, in_memory=False)  # a dataset that decodes files per image (imagefolder)
    assert not resident(cfg, on_files, CPU)
    with pytest.raises(BenchError, match="data.on_device needs a dataset held in memory") as e:
        resident(tiny_config(**{"data.on_device": True}), on_files, CPU)
    assert "\n" not in str(e.value)


def batches(cfg, device, start: int, count: int, ranks: Ranks = ONE_PROCESS) -> list[dict]:
    data = load_split(cfg.data, "train")
    method = build_method(cfg, data.channels)
    sampler = StepSampler(len(data), cfg.optim.batch_size, cfg.seed, start, ranks)
    loader = training_loader(cfg, data, method, sampler, ranks, torch.device(device))
    it = iter(loader)
    return [next(it) for _ in range(count)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_device_batches_are_functions_of_the_step_and_hold_the_cpu_paths_crops(method, device):
    cfg = tiny_config(method, **{"data.on_device": True})
    first = batches(cfg, device, 0, 3)
    again = batches(cfg, device, 2, 1)[0]  # a run resumed at step 2
    assert first[2].keys() == again.keys() and again["step"] == 2
    for key, value in again.items():
        if key != "step":
            assert value.device.type == device and torch.equal(value, first[2][key]), key
    cpu_path = batches(tiny_config(method), "cpu", 2, 1)[0]
    for key in ("images", "local_images", "labels"):
        if key in cpu_path:  # the same crops of the same images, to uint8 rounding (in normalised units)
            assert again[key].shape == cpu_path[key].shape, key
            diff = (again[key].cpu() - cpu_path[key]).abs().float()
            assert diff.mean() < 0.02 and diff.max() < 0.3, (key, float(diff.max()))
    masks = set(again) - {"step", "images", "local_images", "labels"}
    assert masks == set(cpu_path) - {"step", "images", "local_images", "labels"}
    for key in masks:  # the batched sampler's masks: the exact sampler's shapes and kinds
        assert again[key].dtype == cpu_path[key].dtype and again[key].ndim == cpu_path[key].ndim, key


@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_two_processes_device_batches_join_into_one_process_batch(method):
    extra = {"ijepa.mask.truncate": "batch"} if method == "ijepa" else {}
    cfg = tiny_config(method, **{"data.on_device": True, **extra})
    whole = batches(cfg, "cpu", 5, 1)[0]
    parts = [batches(cfg, "cpu", 5, 1, Ranks(r, 2))[0] for r in range(2)]
    sampler = build_method(cfg, 1).input_sampler(CPU)
    dims = getattr(sampler, "batch_dims", {})
    for key, value in whole.items():
        if key == "step":
            continue
        dim = dims.get(key, 0)
        if dim is None:
            assert all(torch.equal(p[key], value) for p in parts), key
        else:
            assert torch.equal(torch.cat([p[key] for p in parts], dim), value), key


def records(run) -> list[tuple]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("loss"), r["flops"]) for r in lines]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_a_run_on_device_batches_resumed_equals_an_uninterrupted_one(method, device, tmp_path):
    cfg = tiny_config(
        method, **{"data.on_device": True, "device": device, "budget.value": 6, "log_every": 1, "health.every": 0}
    )
    train(cfg, tmp_path / "straight")
    asks = iter(range(1, 100))
    with pytest.raises(Preempted):
        train(cfg, tmp_path / "resumed", stop=lambda: next(asks) == 3)
    train(cfg, tmp_path / "resumed")
    straight = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert straight["data_on_device"] and resumed["data_on_device"]
    if device == "cpu":  # bit for bit
        assert records(tmp_path / "resumed") == records(tmp_path / "straight")
        for key, value in straight["method"].items():
            assert torch.equal(resumed["method"][key], value), key
        return
    # CUDA without deterministic algorithms (scripts/check_resume.py turns them on): the same batches
    # and FLOPs, losses and weights to the kernels' rounding
    for (step, loss, flops), (step2, loss2, flops2) in zip(
        records(tmp_path / "resumed"), records(tmp_path / "straight"), strict=True
    ):
        assert step == step2 and flops == flops2 and (loss == loss2 or loss == pytest.approx(loss2, rel=1e-3))
    for key, value in straight["method"].items():
        torch.testing.assert_close(resumed["method"][key], value, rtol=1e-3, atol=1e-4)


def test_the_device_path_is_what_training_reads():
    data = load_split(tiny_config().data, "train")
    cfg = tiny_config(**{"data.on_device": True})
    loader = training_loader(cfg, data, build_method(cfg, 1), StepSampler(len(data), 16, 0, 0), ONE_PROCESS, CPU)
    assert isinstance(loader, DeviceBatches)


def test_loader_workers_draw_the_same_parameters():
    """With data.num_workers the draws are made in worker processes: the same batches."""
    cfg = tiny_config("lejepa", **{"data.on_device": True})
    in_process = batches(cfg, "cpu", 2, 2)
    in_workers = batches(tiny_config("lejepa", **{"data.on_device": True, "data.num_workers": 2}), "cpu", 2, 2)
    for a, b in zip(in_process, in_workers, strict=True):
        assert a.keys() == b.keys() and all(k == "step" or torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["mae", "lejepa"])
def test_the_two_paths_crop_the_same_boxes(method):
    """The device path's parameter loader and the CPU path's dataset draw the same parameters for the
    same (seed, step, image): crop boxes, flips and colour draws, every view."""
    cfg = tiny_config(method)
    data = load_split(cfg.data, "train")
    views = Views.of(data, cfg.data.image_size, augmentation(cfg))
    cpu_path = StepTagged(data, views, cfg.seed)
    device_path = Draws(views, cfg.seed, data)
    for step, i in [(0, 3), (7, 100), (40, 511)]:
        image = data.dataset.images[i]
        drawn = cpu_path.draw(step, i, image)
        assert device_path[(step, i)][:2] == (step, i)
        for ours, theirs in zip(device_path[(step, i)][2], drawn, strict=True):
            assert torch.equal(ours[:, TOP : WIDTH + 1], theirs[:, TOP : WIDTH + 1]) and torch.equal(ours, theirs)
