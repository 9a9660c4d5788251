import errno
import json
import shutil
import struct
import zipfile

import pytest
import torch

from bench.config.schema import OptimConfig
from bench.errors import BenchError, DamagedFile, TrainingFailed
from bench.train import checkpoint, clock, engine, schedules
from bench.train.engine import param_groups, train
from bench.train.loop import Preempted
from core.clock import Clock, scale_momentum
from ijepa.model import IJEPA

from ..badinputs import Bad
from ..conftest import copy_finished, invoke, tiny_config, train_preempted, untimed


def metrics(run_dir, health: bool = False):
    """The run's metrics records with a loss; `health`: every record, those of the health signals alone too."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if health or "loss" in r]


def test_schedules_are_functions_of_progress():
    cfg = OptimConfig(lr=1e-3, start_lr=2e-4, final_lr=1e-6, warmup=0.2, weight_decay=0.04, final_weight_decay=0.4)
    assert schedules.learning_rate(0.0, cfg) == pytest.approx(2e-4)
    assert schedules.learning_rate(0.1, cfg) == pytest.approx(6e-4)
    assert schedules.learning_rate(0.2, cfg) == pytest.approx(1e-3)
    assert schedules.learning_rate(0.6, cfg) == pytest.approx((1e-3 + 1e-6) / 2)
    assert schedules.learning_rate(1.0, cfg) == pytest.approx(1e-6)
    lrs = [schedules.learning_rate(p / 100, cfg) for p in range(20, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert schedules.weight_decay(0.0, cfg) == pytest.approx(0.04)
    assert schedules.weight_decay(0.5, cfg) == pytest.approx(0.22)
    assert schedules.weight_decay(1.0, cfg) == pytest.approx(0.4)


def test_recipes_keep_the_papers_ratios_to_their_run_length():
    """budget: the schedules read the fraction of the budget; paper: step / the paper's run length. An EMA
    momentum keeps its time constant's ratio to the run length (1/(1-m) updates), not its value."""
    cfg = OptimConfig()  # I-JEPA: 40 of 300 warm-up epochs, 2e-4 -> 1e-3 at batch 2048, per 256 images
    assert cfg.warmup == pytest.approx(40 / 300)
    assert (cfg.start_lr, cfg.lr) == pytest.approx((2.5e-5, 1.25e-4))
    budget = Clock(progress=20 / 300, step=50, recipe="budget", paper_updates=187_500)
    assert schedules.learning_rate(budget.position(), cfg) == pytest.approx((2.5e-5 + 1.25e-4) / 2)  # half-way
    paper = Clock(progress=0.9, step=12_500, recipe="paper", paper_updates=187_500)  # 20 epochs of 625
    assert paper.position() == pytest.approx(20 / 300)
    assert schedules.learning_rate(paper.position(), cfg) == pytest.approx((2.5e-5 + 1.25e-4) / 2)
    # 0.9998 is 5,000 updates: at a hundredth of the run length, 50 updates -> 0.98; shorter than one
    # update, the teacher is the student (0)
    assert scale_momentum(0.9998, 0.01) == pytest.approx(0.98)
    assert scale_momentum(0.9998, 1e-4) == 0.0
    assert scale_momentum(1.0, 1e-4) == 1.0
    assert scale_momentum(0.996, 1.0) == pytest.approx(0.996)  # the paper's own length: unchanged


@pytest.mark.parametrize(
    "method, per_256",
    [("ijepa", 1e-3 * 256 / 2048), ("mae", 1.5e-4), ("data2vec", 1e-3), ("data2vec_v1", 2e-3 * 256 / 2048)],
)
def test_one_learning_rate_rule_for_every_method(method, per_256):
    """Every paper's rate per 256 images, scaled linearly to the run's batch, times the tuned lr_factor."""
    from bench.config.validate import build_config

    cfg = build_config({"method": method, "optim": {"batch_size": 128}})
    assert cfg.optim.lr == pytest.approx(per_256) and cfg.optim.lr_batch == 256
    assert cfg.optim.lr * schedules.lr_scale(cfg.optim) == pytest.approx(per_256 / 2)
    tuned = build_config({"method": method, "optim": {"batch_size": 512, "lr_factor": 4}})
    assert tuned.optim.lr * schedules.lr_scale(tuned.optim) == pytest.approx(per_256 * 8)


def test_a_zero_budget_run_is_its_initialisation(tmp_path, tiny):
    from bench.evals.run import initial_encoder
    from bench.train.methods import build_method, eval_encoder
    from core.health import encoder_moved

    cfg = tiny(**{"budget.value": 0, "seed": 3})
    summary = train(cfg, tmp_path / "init")
    assert summary["status"] == "done" and summary["compute"]["steps"] == 0
    method = build_method(cfg, 1)
    method.load_state_dict(torch.load(tmp_path / "init" / "checkpoint.pt", weights_only=True)["method"])
    assert encoder_moved(eval_encoder(method)[1], initial_encoder(cfg, 1)) == 0.0
    assert encoder_moved(eval_encoder(method)[1], initial_encoder(tiny(seed=4), 1)) > 0.5  # another seed


def test_no_weight_decay_on_biases_and_1d_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    decay, no_decay = param_groups(model)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0


def test_step_budget_is_exact_and_the_schedule_ends_with_it(tmp_path, tiny):
    summary = train(tiny(**{"budget.value": 6}), tmp_path)
    assert summary["status"] == "done"
    assert summary["compute"]["steps"] == 6 and summary["compute"]["budget_used"] == 1.0
    assert summary["compute"]["images_seen"] == 6 * 16
    last = metrics(tmp_path)[-1]
    assert last["progress"] == 1.0 and last["ema"] == 1.0
    for name in ("config.yaml", "summary.json", "checkpoint.pt"):
        assert (tmp_path / name).is_file()


def test_epoch_budget(tmp_path, tiny):
    summary = train(tiny(**{"budget.kind": "epochs", "budget.value": 0.25}), tmp_path)
    # 512 synthetic images, batch 16: 32 steps an epoch
    assert summary["compute"]["steps"] == 8
    assert summary["compute"]["epochs"] == pytest.approx(0.25)


@pytest.mark.slow  # two runs, 60 steps
def test_flop_budget_within_2_percent(tmp_path, tiny):
    probe = train(tiny(**{"budget.value": 1}), tmp_path / "probe")
    per_step = probe["compute"]["flops"]
    assert per_step > 0
    summary = train(tiny(**{"budget.kind": "flops", "budget.value": 60 * per_step}), tmp_path / "run")
    assert summary["compute"]["budget_used"] == pytest.approx(1.0, abs=0.02)
    assert 40 <= summary["compute"]["steps"] <= 90  # masks vary per batch, and so do FLOPs per step


def test_flop_counter_counts_attention_on_cpu():
    """A ViT forward counts exactly its hand count, attention included (torch has no CPU formula)."""
    from bench.train.flops import flop_counter_mode
    from core.vit import BACKBONES

    model = BACKBONES.get("vit_nano_patch4")(img_size=28, in_chans=1)
    b, n, d, depth, patch_pixels = 2, 49, 96, 4, 16
    # per block: qkv 6nd², proj 2nd², mlp 16nd², q·k and attn·v 2·2n²d; plus the patch embedding
    expected = b * (depth * (24 * n * d * d + 4 * n * n * d) + 2 * n * d * patch_pixels)
    with flop_counter_mode() as counter:
        model(torch.randn(b, 1, 28, 28))
    assert counter.get_total_flops() == expected


@pytest.mark.parametrize("groups", [1, 16])
def test_conv_backward_counts_twice_the_forward_grouped_or_not(groups):
    """torch's formula charges a grouped conv's weight gradient `groups` times too much."""
    from bench.train.flops import flop_counter_mode

    conv = torch.nn.Conv2d(96, 96, 3, padding=1, groups=groups)
    x = torch.randn(8, 96, 7, 7, requires_grad=True)
    forward = 2 * 8 * 49 * 96 * (96 // groups) * 9  # multiply-adds x 2
    with flop_counter_mode() as counter:
        conv(x).sum().backward()
    assert counter.get_total_flops() == 3 * forward


def test_step_flops_cover_target_context_and_predictor(tmp_path, tiny):
    summary = train(tiny(**{"budget.value": 1}), tmp_path)
    b, n, d, depth = 16, 16, 96, 4
    target_forward = b * depth * (24 * n * d * d + 4 * n * n * d)
    assert summary["compute"]["flops"] > 1.2 * target_forward  # + context fwd/bwd + predictor fwd/bwd


class FakeClock:
    """perf_counter that advances a fixed tick per call: device-hour accounting without OS jitter."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 1000.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.slow  # a time budget: 1.5 s of fake clock is many steps
def test_device_hour_budget_within_2_percent(tmp_path, tiny, monkeypatch):
    monkeypatch.setattr(clock, "time", FakeClock(0.01))
    seconds = 1.5
    summary = train(tiny(**{"budget.kind": "device_hours", "budget.value": seconds / 3600}), tmp_path)
    assert summary["compute"]["device_hours"] * 3600 == pytest.approx(seconds, rel=0.02)
    assert summary["compute"]["budget_used"] == pytest.approx(1.0, abs=0.02)
    assert summary["device"] == {"kind": "cpu", "count": 1}
    last = metrics(tmp_path)[-1]
    assert last["progress"] == pytest.approx(1.0, abs=0.02)


@pytest.mark.slow  # the real clock: 6 s of training
def test_device_hour_budget_on_the_real_clock(tmp_path, tiny):
    """Wall-clock budgets stop near the budget on a real (possibly busy) machine."""
    seconds = 6.0
    summary = train(tiny(**{"budget.kind": "device_hours", "budget.value": seconds / 3600}), tmp_path)
    assert summary["compute"]["device_hours"] * 3600 == pytest.approx(seconds, rel=0.25)


@pytest.mark.slow  # three trainings a case
@pytest.mark.parametrize("log_every", [1, 3])
def test_resume_continues_the_same_schedule(tmp_path, tiny, monkeypatch, log_every):
    cfg = tiny(**{"budget.value": 8, "checkpoint_every_s": 0, "log_every": log_every})
    train(cfg, tmp_path / "straight")

    # dies while writing its 4th checkpoint: step 4 is logged but lost
    summary = train_preempted(cfg, tmp_path / "resumed", monkeypatch, die_at_save=4)

    assert summary["compute"]["steps"] == 8
    straight, resumed = metrics(tmp_path / "straight"), metrics(tmp_path / "resumed")
    # steps logged after the last checkpoint of the lost attempt are not doubled
    assert [m["step"] for m in resumed] == [m["step"] for m in straight]
    assert [m["step"] for m in resumed] == sorted({*range(log_every, 9, log_every), 8})
    for a, b in zip(straight, resumed, strict=True):
        assert a["lr"] == b["lr"] and a["ema"] == b["ema"] and a["flops"] == b["flops"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    w1 = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["method"]
    w2 = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["method"]
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-5, atol=1e-6)


def test_finished_run_is_not_retrained(tmp_path, tiny):
    cfg = tiny()
    first = train(cfg, tmp_path)
    mtime = (tmp_path / "checkpoint.pt").stat().st_mtime
    assert train(cfg, tmp_path) == first
    assert (tmp_path / "checkpoint.pt").stat().st_mtime == mtime


def test_other_config_in_same_folder_is_refused(tmp_path, tiny, finished_run):
    copy_finished(finished_run, tmp_path)  # trained with tiny()
    with pytest.raises(BenchError, match="different config"):
        train(tiny(**{"optim.lr": 0.5}), tmp_path)


def test_nan_loss_fails_the_run_with_its_reason(tmp_path, tiny, monkeypatch):
    def nan_forward(self, batch):
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    monkeypatch.setattr(IJEPA, "forward", nan_forward)
    with pytest.raises(TrainingFailed, match="nan"):
        train(tiny(), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and "nan" in summary["reason"]
    assert not (tmp_path / "checkpoint.pt").exists()  # NaN weights are never checkpointed


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_step_budget(tmp_path, tiny):
    summary = train(tiny(**{"device": "cuda", "precision": "auto"}), tmp_path)
    assert summary["status"] == "done" and summary["device"]["kind"] != "cpu"
    assert summary["compute"]["flops"] > 0


# --- damaged checkpoints and resume bookkeeping ------------------------------------------------

RESUME = {"budget.value": 8, "checkpoint_every_s": 0, "log_every": 3}  # a checkpoint every step


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted run: what every resumed run must equal, record for record."""
    run = tmp_path_factory.mktemp("straight")
    return run, train(tiny_config(**RESUME), run)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """The same run pre-empted after step 3: checkpoint.pt at step 3, checkpoint.prev.pt at step 2,
    and a metrics record at step 3 (log_every 3) that a resume from step 2 must drop."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    asks = iter(range(1, 100))
    with pytest.raises(Preempted):
        train(tiny_config(**RESUME), run, stop=lambda: next(asks) == 3)
    return run


def copy_run(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def steps_of(path) -> int:
    return torch.load(path, weights_only=True)["spent"]["steps"]


def assert_same_run(run, straight):
    """Records, final loss and weights equal to the uninterrupted run's."""
    reference, summary = straight
    assert [(m["step"], m["loss"]) for m in metrics(run)] == [(m["step"], m["loss"]) for m in metrics(reference)]
    assert json.loads((run / "summary.json").read_text())["final_loss"] == summary["final_loss"] is not None
    ours = torch.load(run / "checkpoint.pt", weights_only=True)["method"]
    for key, value in torch.load(reference / "checkpoint.pt", weights_only=True)["method"].items():
        assert torch.equal(ours[key], value), key


def flip_a_data_byte(path) -> None:
    """Change one byte inside the largest tensor's bytes: torch.load reads it without a word."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def resaved(path, change) -> None:
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)


def other_shapes(ckpt):  # a checkpoint of another model (as before checkpoints named their config)
    del ckpt["train_config_hash"]
    ckpt["method"]["encoder.patch_embed.proj.bias"] = torch.zeros(48)


# damage -> the words the warning (and the error, where nothing is left) must say
DAMAGES = {
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "is damaged (truncated or corrupt"),
    "empty": (lambda p: p.write_bytes(b""), "is damaged (empty or truncated)"),
    "not a torch file": (lambda p: p.write_text("checkpoint\n"), "is damaged (not a torch file"),
    "a folder": (lambda p: p.unlink() or p.mkdir(), "is damaged (a folder, not a file)"),
    "a flipped byte": (flip_a_data_byte, "is damaged (a checksum fails: archive/data/"),
    "no optimizer": (lambda p: resaved(p, lambda c: c.pop("optimizer")), "is damaged (it has no optimizer)"),
    "another config's": (
        lambda p: resaved(p, lambda c: c.update(train_config_hash="0123456789")),
        "was trained with another config (hash 0123456789",
    ),
    "another model's": (lambda p: resaved(p, other_shapes), "does not fit this run's model (size mismatch for"),
}


def fresh(cfg):
    from bench.train.methods import build_method

    method = build_method(cfg, 1)
    return method, torch.optim.AdamW(param_groups(method), lr=1e-3)


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_set_aside_and_the_previous_one_resumed(damage, stopped, tmp_path, caplog):
    from bench.config.runfile import training_hash

    run = copy_run(stopped, tmp_path)
    spoil, words = DAMAGES[damage]
    spoil(run / "checkpoint.pt")
    kept = (run / "checkpoint.pt").read_bytes() if (run / "checkpoint.pt").is_file() else None
    cfg = tiny_config(**RESUME)
    method, optimizer = fresh(cfg)
    ckpt = checkpoint.resume_checkpoint(run, method, optimizer, training_hash(cfg), main=True)
    assert ckpt["spent"]["steps"] == 2
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"{run / 'checkpoint.pt'} {words}" in line
    assert line.endswith(
        "; resuming from checkpoint.prev.pt at step 2 (the damaged file is kept as checkpoint.pt.damaged)"
    )
    assert not (run / "checkpoint.pt").exists() and (run / "checkpoint.prev.pt").is_file()
    aside = run / "checkpoint.pt.damaged"
    assert (aside.read_bytes() == kept) if kept is not None else aside.is_dir()  # kept as it was


@pytest.mark.parametrize("damage", ["truncated", "another model's"])
def test_training_resumed_from_the_previous_checkpoint_equals_an_uninterrupted_run(
    damage, stopped, straight, tmp_path, caplog
):
    run = copy_run(stopped, tmp_path)
    DAMAGES[damage][0](run / "checkpoint.pt")
    summary = train(tiny_config(**RESUME), run)
    assert summary["compute"]["steps"] == 8 and summary["compute"]["restarts"] == 1
    assert "resuming from checkpoint.prev.pt at step 2" in caplog.text
    # the record at step 3 (after checkpoint.prev.pt) was dropped and made again, averaging steps 1-3
    assert_same_run(run, straight)
    assert steps_of(run / "checkpoint.prev.pt") == 7 and (run / "checkpoint.pt.damaged").is_file()


def test_a_second_damaged_checkpoint_is_kept_beside_the_first(stopped, tmp_path):
    from bench.config.runfile import training_hash

    run = copy_run(stopped, tmp_path)
    (run / "checkpoint.pt.damaged").write_text("an earlier one")
    (run / "checkpoint.pt").write_bytes(b"")
    cfg = tiny_config(**RESUME)
    checkpoint.resume_checkpoint(run, *fresh(cfg), training_hash(cfg), main=True)
    assert (run / "checkpoint.pt.damaged").read_text() == "an earlier one"
    assert (run / "checkpoint.pt.damaged.1").read_bytes() == b""


def test_a_checkpoint_missing_after_a_crash_between_renames_resumes_from_the_previous_one(stopped, tmp_path, caplog):
    from bench.config.runfile import training_hash

    run = copy_run(stopped, tmp_path)
    (run / "checkpoint.pt").unlink()
    cfg = tiny_config(**RESUME)
    assert checkpoint.resume_checkpoint(run, *fresh(cfg), training_hash(cfg), main=True)["spent"]["steps"] == 2
    assert f"{run / 'checkpoint.pt'} is missing; resuming from checkpoint.prev.pt at step 2" in caplog.text


@pytest.mark.parametrize(
    "latest, previous, words",
    [
        ("empty", None, "checkpoint.pt is damaged (empty or truncated) and there is no checkpoint.prev.pt to resume"),
        ("truncated", "empty", "checkpoint.prev.pt is damaged (empty or truncated): restore one of them, or move both"),
        (
            None,
            "not a torch file",
            "checkpoint.prev.pt is damaged (not a torch file) and there is no checkpoint.pt",
        ),
    ],
)
def test_no_readable_checkpoint_stops_training_with_one_line_and_touches_nothing(
    latest, previous, words, stopped, tmp_path
):
    from ..badinputs import snapshot

    run = copy_run(stopped, tmp_path)
    for name, damage in (("checkpoint.pt", latest), ("checkpoint.prev.pt", previous)):
        (DAMAGES[damage][0] if damage else lambda p: p.unlink())(run / name)
    before = snapshot(run)
    with pytest.raises(DamagedFile) as error:
        train(tiny_config(**RESUME), run)  # never a silent restart from step 0
    assert words in str(error.value) and "\n" not in str(error.value)
    assert "from step 0" in str(error.value)
    assert snapshot(run) == before  # nothing renamed, deleted or trimmed


def test_bench_train_on_a_run_whose_only_checkpoint_is_damaged_says_so_in_one_line(stopped, tmp_path):
    """Through the CLI: exit 2, one line; the checkpoints and records stay as they were (the launcher's
    state.json records the failure)."""
    from ..badinputs import snapshot

    run = copy_run(stopped, tmp_path)
    (run / "checkpoint.prev.pt").unlink()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04")
    before = {k: v for k, v in snapshot(run).items() if k != "state.json"}
    result = invoke("train", "--config", run / "config.yaml", "--out", run, "--no-eval")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "checkpoint.pt is damaged" in lines[0] and "no checkpoint.prev.pt" in lines[0]
    assert {k: v for k, v in snapshot(run).items() if k != "state.json"} == before


def test_a_kill_between_the_final_checkpoint_and_the_summary_keeps_the_final_loss(straight, tmp_path, monkeypatch):
    def killed(obj, path):
        raise KeyboardInterrupt("killed before the summary")

    cfg = tiny_config(**RESUME)
    monkeypatch.setattr(engine, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "run")
    monkeypatch.undo()
    assert steps_of(tmp_path / "run" / "checkpoint.pt") == 8 and not (tmp_path / "run" / "summary.json").exists()
    summary = train(cfg, tmp_path / "run")  # the budget is spent: no step, only the summary
    assert summary["status"] == "done" and summary["final_loss"] == straight[1]["final_loss"]
    assert_same_run(tmp_path / "run", straight)


def test_a_record_whose_window_holds_a_resume_averages_all_of_it(straight, tmp_path, monkeypatch):
    # dies writing the 5th checkpoint: resumes at step 4, inside the window of the record at step 6
    summary = train_preempted(tiny_config(**RESUME), tmp_path / "run", monkeypatch, die_at_save=5)
    assert summary["compute"]["restarts"] == 1
    assert_same_run(tmp_path / "run", straight)  # the record at step 6 averages steps 4, 5 and 6


def test_a_full_disk_fails_the_run_and_keeps_its_last_checkpoint(straight, tmp_path, monkeypatch):
    real_save, saves = torch.save, {"n": 0}

    def disk_full_at_the_5th(obj, f, *args, **kwargs):
        saves["n"] += 1
        if saves["n"] == 5:
            f.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", disk_full_at_the_5th)
    with pytest.raises(TrainingFailed, match=f"could not write {run / 'checkpoint.pt'} \\(No space left on device\\)"):
        train(tiny_config(**RESUME), run)
    monkeypatch.undo()
    assert steps_of(run / "checkpoint.pt") == 4 and not list(run.glob("*.tmp"))
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    train(tiny_config(**RESUME), run)  # space freed: it resumes where the last checkpoint left it
    assert_same_run(run, straight)


def test_trimming_drops_lines_a_crash_cut_and_refuses_a_folder(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [json.dumps({"step": s, "device_hours": s / 3600}) for s in (1, 2, 3)]
    path.write_bytes(
        ("\n".join(records[:2]) + '\nnull\n{"step": 2.5}\n\xff\n' + records[2] + '\n{"step": 4, "lo').encode("latin-1")
    )
    assert checkpoint.trim_metrics(path, 2) == pytest.approx(3.0)  # the device-seconds of the last dropped record
    assert path.read_text() == "\n".join(records[:2]) + "\n"
    path.unlink()
    path.mkdir()
    with pytest.raises(DamagedFile, match="metrics.jsonl is not a file"):
        checkpoint.trim_metrics(path, 2)


# --- the bad-input corpus: damaged checkpoints and feature caches -------------------------------


def in_run(name, spoil):
    """A corpus setup: `spoil` the file `name` of the template's run."""
    from ..badinputs import run_dir

    return lambda tmp: spoil(run_dir(tmp) / name)


def replaced_by_folder(path):
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.mkdir()


def replaced_by_file(path):
    shutil.rmtree(path)
    path.write_text("")


EVAL = ["eval", "{tmp}/runs/t"]
BAD_ENGINE = {
    "eval of a truncated checkpoint": Bad(
        EVAL, "checkpoint.pt is damaged (truncated or corrupt", in_run("checkpoint.pt", DAMAGES["truncated"][0])
    ),
    "eval of an empty checkpoint": Bad(
        EVAL,
        "checkpoint.pt is damaged (empty or truncated): restore it, or delete its run folder to redo it",
        in_run("checkpoint.pt", DAMAGES["empty"][0]),
    ),
    "eval of a checkpoint that is not a torch file": Bad(
        EVAL, "checkpoint.pt is damaged (not a torch file)", in_run("checkpoint.pt", DAMAGES["not a torch file"][0])
    ),
    "eval of a checkpoint with a flipped byte": Bad(
        EVAL, "checkpoint.pt is damaged (a checksum fails", in_run("checkpoint.pt", flip_a_data_byte)
    ),
    "eval of a checkpoint without its model": Bad(
        EVAL,
        "checkpoint.pt is damaged (it has no method)",
        in_run("checkpoint.pt", lambda p: resaved(p, lambda c: c.pop("method"))),
    ),
    "eval of another config's checkpoint": Bad(
        EVAL, "checkpoint.pt was trained with another config", in_run("checkpoint.pt", DAMAGES["another config's"][0])
    ),
    "eval with a folder in place of the feature cache": Bad(
        EVAL, "train.pt is not a file: move it away", in_run("features/train.pt", replaced_by_folder)
    ),
    "eval with a file in place of the features folder": Bad(
        EVAL, "features is not a folder: move it away", in_run("features", replaced_by_file)
    ),
}


# --- every part of the method's output is recorded, resumed exactly -------------------------------


def test_the_window_averages_every_part_and_resumes_from_its_checkpointed_sums():
    from bench.train.devices import ONE_PROCESS
    from bench.train.records import LossWindow, Window

    cpu = torch.device("cpu")
    outs = [{"loss": torch.tensor(float(i)), "patch_loss": torch.tensor(2.0 * i)} for i in (1, 2, 3, 4)]
    with pytest.raises(TypeError, match=r"'mask' of \(3,\): every part of its output must be one number"):
        Window(LossWindow(), cpu).add(outs[0] | {"mask": torch.zeros(3)})  # a part would be lost: said at once
    straight = Window(LossWindow(), cpu)
    for out in outs[:2]:
        straight.add(out)
    resumed = Window(LossWindow(**vars(straight.saved(ONE_PROCESS))), cpu)  # as a checkpoint holds it
    for out in outs[2:]:
        straight.add(out)
        resumed.add(out)
    assert straight.close(ONE_PROCESS) == resumed.close(ONE_PROCESS) == {"loss": 2.5, "parts/patch_loss": 5.0}
    old = Window(LossWindow(loss_sum=3.0, steps=2), cpu)  # a checkpoint from before parts were recorded
    old.add(outs[2])
    assert old.close(ONE_PROCESS) == {"loss": 2.0}  # no part for a window that began before the resume
    old.add(outs[3])
    assert old.close(ONE_PROCESS) == {"loss": 4.0, "parts/patch_loss": 8.0}


def test_a_resumed_run_records_the_parts_an_uninterrupted_one_does(tmp_path, monkeypatch):
    cfg = tiny_config("data2vec", **{"budget.value": 4, "checkpoint_every_s": 0, "log_every": 3})
    train(cfg, tmp_path / "straight")
    train_preempted(cfg, tmp_path / "resumed", monkeypatch, die_at_save=3)  # resumes at step 2, mid-window
    straight, resumed = metrics(tmp_path / "straight"), metrics(tmp_path / "resumed")
    assert [r["step"] for r in resumed] == [3, 4]
    for a, b in zip(straight, resumed, strict=True):
        assert untimed(a) == untimed(b)
        assert {"parts/patch_loss", "parts/cls_loss"} <= set(a)
