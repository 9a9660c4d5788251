import os

# Before torch loads OpenMP: threads that wait sleep instead of spinning. On a busy machine (other test
# processes, a subprocess training beside pytest) spinning threads made a 4-step training 10x slower;
# the numbers are the same either way (the work is split the same way). Subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from bench.config.validate import build_config  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

# No test logs to W&B unless it asks to (jobs submitted to SLURM inherit this too).
os.environ["WANDB_MODE"] = "disabled"


# The evaluation protocol cut down to seconds: few probe steps, a small lr grid, 2 draws.
TINY_EVAL = {
    "knn_k": [1, 5],
    "batch_size": 64,
    "fewshot_n": [2],
    "linear_lrs": [0.1, 1.0],
    "linear_wds": [0.0],
    "linear_epochs": 2,
    "linear_min_steps": 30,
    "lowshot": [0.25],
    "draws": 2,
}

# Per-method sizes for a unit test on the nano ViT (4 blocks of width 96, 4x4 patch grid).
TINY_METHODS = {
    "ijepa": {},
    "mae": {"mae": {"decoder_depth": 1, "decoder_width": 48, "decoder_heads": 3}},
    "data2vec": {
        "data2vec": {"num_clones": 2, "decoder_dim": 48, "decoder_layers": 2, "decoder_groups": 3, "top_k": 3}
    },
    "data2vec_v1": {"data2vec_v1": {"min_block": 4, "top_k": 3}},
    "lejepa": {"lejepa": {"local_views": 2, "local_size": 8, "proj_hidden": 64, "proj_dim": 16, "slices": 64}},
}


def tiny_config(method: str = "ijepa", **overrides):
    """A run small enough for a unit test: nano ViT on 16-px synthetic images."""
    base = {
        "method": method,
        **TINY_METHODS[method],
        "backbone": "vit_nano_patch4",
        "data": {"name": "synthetic", "image_size": 16},
        "optim": {"batch_size": 16},
        "log_every": 2,
        "ijepa": {
            "predictor_depth": 1,
            "predictor_width": 48,
            "mask": {"num_targets": 2, "min_keep": 0, "target_scale": [0.15, 0.2]},
        },
        "budget": {"kind": "steps", "value": 4},
        "eval": TINY_EVAL,
    }
    return build_config(base, [f"{k}={v}" for k, v in overrides.items()])


@pytest.fixture
def tiny():
    return tiny_config


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One tiny I-JEPA run (tiny_config()), trained and evaluated once for the whole session, for tests
    that only need a finished run. Read it as it is; a test that writes to it copies it first:
    shutil.copytree(finished_run, tmp_path / "run")."""
    from bench.evals.run import evaluate_run
    from bench.train.engine import train

    run = tmp_path_factory.mktemp("finished") / "ijepa-run"
    train(tiny_config(), run)
    evaluate_run(run)
    return run


def copy_finished(run: Path, to: Path, evaluated: bool = True) -> Path:
    """A copy of a finished run (timestamps kept); evaluated=False leaves out its evaluation and the
    feature caches: a trained run that was never evaluated."""
    ignore = None if evaluated else shutil.ignore_patterns("eval.json", "features")
    shutil.copytree(run, to, ignore=ignore, dirs_exist_ok=True)
    return to


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


needs_fashion_mnist = pytest.mark.skipif(not FASHION_MNIST.is_file(), reason="dataset-fashion-mnist not installed")


# A record's keys measured with the wall clock: two runs of the same config differ in them, nothing else.
TIMED = ("device_hours", "flops_per_s", "mfu")


def untimed(record: dict) -> dict:
    """A metrics record without its wall-clock keys (TIMED)."""
    return {k: v for k, v in record.items() if k not in TIMED}


def train_preempted(cfg, run_dir, monkeypatch, die_at_save: int) -> dict:
    """Train, die while writing checkpoint number `die_at_save` (a preemption), then resume."""
    from bench.train import checkpoint, engine

    real_save, saves = checkpoint.save_torch, {"n": 0}

    def save_then_die(obj, path, **kwargs):
        saves["n"] += 1
        if saves["n"] == die_at_save:
            raise KeyboardInterrupt("preempted")
        real_save(obj, path, **kwargs)

    monkeypatch.setattr(checkpoint, "save_torch", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        engine.train(cfg, run_dir)
    monkeypatch.setattr(checkpoint, "save_torch", real_save)
    return engine.train(cfg, run_dir)


# A sweep's base for CLI and launch tests: the tiny I-JEPA above, as sweep YAML keys.
TINY_BASE = {
    "backbone": "vit_nano_patch4",
    "data": {"name": "synthetic", "image_size": 16},
    "optim.batch_size": 16,
    "log_every": 2,
    "ijepa": {"predictor_depth": 1, "predictor_width": 48, "mask": {"num_targets": 2, "min_keep": 0}},
    "eval": TINY_EVAL,
}


def write_sweep(path, **changes):
    spec = {"name": "t", "budget": {"kind": "steps", "value": 3}, "base": TINY_BASE, "seeds": [0]}
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec))
    return path


def invoke(*args):
    from bench.cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def bad_template(tmp_path_factory):
    """A finished tiny sweep that the bad-input corpus (tests/badinputs.py) copies into each case."""
    from .badinputs import make_template

    return make_template(tmp_path_factory.mktemp("template"))
