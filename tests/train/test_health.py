"""The health signals in training (bench/train/health.py): when they are measured, that they change
nothing of the training, that a resumed run logs the same ones, and the methods' own diagnostics."""

import json

import pytest
import torch

from bench.data.datasets import load_split
from bench.train.engine import train
from bench.train.health import HEALTH, fixed_batch, health_signals, initial_parameters
from bench.train.methods import build_method

from ..conftest import TINY_METHODS, tiny_config, train_preempted, untimed

SIGNALS = {"health/rankme", "health/feature_std", "health/std", "health/moved"}


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def health_of(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.startswith(HEALTH)}


def test_health_is_measured_at_step_0_every_n_steps_and_at_the_last(tmp_path):
    cfg = tiny_config(**{"budget.value": 7, "log_every": 2, "health.every": 3})
    summary = train(cfg, tmp_path)
    got = records(tmp_path)
    assert [(r["step"], "loss" in r, HEALTH + "rankme" in r) for r in got] == [
        (0, False, True),  # the initialisation: a record of its own
        (2, True, False),
        (3, False, True),  # between two metrics records: of its own
        (4, True, False),
        (6, True, True),  # merged into the step's metrics record
        (7, True, True),  # the last step
    ]
    assert set(health_of(got[0])) == SIGNALS | {"health/target_std"}  # I-JEPA's own diagnostic
    assert got[0]["health/moved"] == 0.0 and got[0]["flops"] == 0.0 and got[0]["images"] == 0
    assert got[-1]["health/moved"] > 0
    assert summary["health"] == {k.removeprefix(HEALTH): v for k, v in health_of(got[-1]).items()}
    assert summary["health_seconds"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["health"] == summary["health"]


@pytest.mark.parametrize("method", ["ijepa", "data2vec"])
def test_health_on_trains_exactly_as_health_off(tmp_path, method):
    """Record for record (the health keys and records aside) and weight for weight."""
    train(tiny_config(method, **{"budget.value": 5, "log_every": 1, "health.every": 2}), tmp_path / "on")
    train(tiny_config(method, **{"budget.value": 5, "log_every": 1, "health.every": 0}), tmp_path / "off")
    on, off = records(tmp_path / "on"), records(tmp_path / "off")
    assert not any(health_of(r) for r in off)
    assert "health" not in json.loads((tmp_path / "off" / "summary.json").read_text())
    kept = [{k: v for k, v in untimed(r).items() if not k.startswith(HEALTH)} for r in on if "loss" in r]
    assert kept == [untimed(r) for r in off]
    w_on = torch.load(tmp_path / "on" / "checkpoint.pt", weights_only=False)
    w_off = torch.load(tmp_path / "off" / "checkpoint.pt", weights_only=False)
    assert torch.equal(w_on["rng"], w_off["rng"])
    for k in w_off["method"]:
        assert torch.equal(w_on["method"][k], w_off["method"][k]), k


@pytest.mark.slow  # two trainings and a resume
def test_a_resumed_run_logs_the_health_of_the_uninterrupted_one(tmp_path, monkeypatch):
    cfg = tiny_config(**{"budget.value": 8, "checkpoint_every_s": 0, "log_every": 3, "health.every": 2})
    train(cfg, tmp_path / "straight")
    summary = train_preempted(cfg, tmp_path / "resumed", monkeypatch, die_at_save=4)  # step 4 logged, lost
    assert summary["compute"]["restarts"] == 1
    straight, resumed = records(tmp_path / "straight"), records(tmp_path / "resumed")
    assert [r["step"] for r in straight] == [r["step"] for r in resumed] == [0, 2, 3, 4, 6, 8]
    for a, b in zip(straight, resumed, strict=True):
        assert health_of(a).keys() == health_of(b).keys()
        for k, v in health_of(a).items():  # θ_0 is the initialisation, not the checkpoint resumed from
            assert b[k] == pytest.approx(v, rel=1e-5, abs=1e-7), (a["step"], k)
    assert summary["health"] == pytest.approx(
        json.loads((tmp_path / "straight" / "summary.json").read_text())["health"]
    )


def test_a_zero_budget_run_measures_its_initialisation_once(tmp_path, monkeypatch):
    cfg = tiny_config(**{"budget.value": 0})
    summary = train(cfg, tmp_path)
    (only,) = records(tmp_path)
    assert only["step"] == 0 and only["health/moved"] == 0.0 and summary["health"]["moved"] == 0.0
    (tmp_path / "summary.json").unlink()  # killed before its summary: resumed spent, measured again never
    assert train(cfg, tmp_path)["health"] == summary["health"]
    assert len(records(tmp_path)) == 1


def test_the_fixed_batch_is_the_seeds_and_leaves_the_random_state_alone():
    cfg = tiny_config(**{"health.images": 20})
    data = load_split(cfg.data, "train")
    state = torch.get_rng_state()
    a = fixed_batch(cfg, data)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (20, 1, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, fixed_batch(cfg, data))
    assert not torch.equal(a, fixed_batch(tiny_config(**{"health.images": 20, "seed": 1}), data))


def test_the_signals_see_a_collapse():
    """An encoder whose every output is one vector: RankMe 1, feature_std 0; a teacher likewise: target_std 0."""
    cfg = tiny_config()
    torch.manual_seed(0)
    method = build_method(cfg, 1)
    images = fixed_batch(cfg, load_split(cfg.data, "train"))
    initial = initial_parameters(method, cfg)
    fresh = health_signals(method, cfg, images, initial, torch.device("cpu"))
    # (average-pooled tokens of a fresh ViT on noise images are close together: feature_std 0.03)
    assert fresh["health/rankme"] > 1.5 and fresh["health/feature_std"] > 0.01 and fresh["health/target_std"] > 0.1
    with torch.no_grad():  # the teacher (I-JEPA's evaluated encoder) outputs its final norm's bias alone
        method.target.net.norm.weight.zero_()
        method.target.net.norm.bias.copy_(torch.linspace(-1, 1, method.target.net.embed_dim))
    collapsed = health_signals(method, cfg, images, initial, torch.device("cpu"))
    assert collapsed["health/rankme"] == pytest.approx(1.0, abs=1e-3)
    assert collapsed["health/feature_std"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["health/target_std"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["health/moved"] > 0
    assert method.training  # the mode it had


@pytest.mark.parametrize("method", list(TINY_METHODS))
def test_each_method_says_its_own_diagnostics(method):
    torch.manual_seed(0)
    model = build_method(tiny_config(method), 1)
    out = model.diagnostics(torch.randn(4, 1, 16, 16))
    # MAE has no teacher; LeJEPA's own signal is SIGReg's statistic of its projections
    assert set(out) == {"mae": set(), "lejepa": {"sigreg"}}.get(method, {"target_std"})
    assert all(v > 0 for v in out.values())


def test_bench_health_backfills_what_training_logged_at_its_last_step(tmp_path, finished_run):
    """A run trained before health existed (its summary without `health`) gets the values training logs."""
    import shutil

    from ..conftest import invoke

    logged = json.loads((finished_run / "summary.json").read_text())["health"]
    assert logged == {k.removeprefix(HEALTH): v for k, v in health_of(records(finished_run)[-1]).items()}
    run = tmp_path / "runs" / "old"
    shutil.copytree(finished_run, run)
    old = json.loads((run / "summary.json").read_text())
    del old["health"], old["health_seconds"]
    (run / "summary.json").write_text(json.dumps(old))
    result = invoke("health", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("1 run(s) given health signals, 0 had them already\n")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["health"] == pytest.approx(logged, rel=1e-6, abs=1e-9)
    assert summary == old | {"health": summary["health"]}  # nothing else changed
    again = invoke("health", run)
    assert again.exit_code == 0 and again.output == "0 run(s) given health signals, 1 had them already\n"


@pytest.mark.slow  # two trainings
def test_a_run_killed_before_its_first_checkpoint_logs_step_0_once(tmp_path, monkeypatch):
    """Without a checkpoint a restart trains from step 0 again: the records of the lost attempt,
    step 0's health record included, go first (else step 0 would be logged twice)."""
    cfg = tiny_config(**{"budget.value": 3, "checkpoint_every_s": 0, "log_every": 1})
    train(cfg, tmp_path / "straight")
    train_preempted(cfg, tmp_path / "killed", monkeypatch, die_at_save=1)  # dies writing step 1's checkpoint
    straight, killed = records(tmp_path / "straight"), records(tmp_path / "killed")
    assert [r["step"] for r in killed] == [r["step"] for r in straight] == [0, 1, 2, 3]
    assert killed[0]["health/rankme"] == straight[0]["health/rankme"]
