"""The evaluation protocol: feature cache, linear and low-shot probes, label subsets, references."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config.schema import EvalConfig
from bench.data.datasets import load_split
from bench.errors import BenchError
from bench.evals import features, references
from bench.evals import run as evals_run
from bench.evals.linear import linear_probe
from bench.evals.lowshot import (
    fewshot_knn,
    lowshot_probe,
    per_class,
    read_simclr_list,
    simclr_indices,
    stratified_subset,
)
from bench.train.engine import train

from ..conftest import copy_finished

FAST = EvalConfig(linear_lrs=(0.1, 1.0), linear_wds=(0.0,), linear_epochs=5, linear_min_steps=100)


def blobs(n_per_class: int, classes: int, dim: int, spread: float, seed: int):
    g = np.random.default_rng(seed)
    centres = g.normal(size=(classes, dim)) * 5
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + spread * g.normal(size=(len(y), dim))).astype(np.float32), y


def test_linear_probe_separates_separable_features_and_not_shuffled_labels():
    x, y = blobs(200, 5, 16, 0.5, seed=0)
    xt, yt = blobs(50, 5, 16, 0.5, seed=0)
    result = linear_probe({"last_avg": (x, xt)}, y, yt, FAST, seed=0)
    assert result["top1"] >= 99.0
    assert result["n_val"] == 100 and result["n_fit"] == 900  # 10 % held out, stratified
    # labels shuffled on both sides carry nothing the features could predict: chance (20 %)
    xt, yt = blobs(200, 5, 16, 0.5, seed=0)
    g = np.random.default_rng(1)
    chance = linear_probe({"last_avg": (x, xt)}, g.permutation(y), g.permutation(yt), FAST, seed=0)
    assert abs(chance["top1"] - 20.0) < 5.0  # 1000 test labels: one standard deviation is 1.3 points


def test_linear_probe_is_deterministic_and_picks_the_best_view_on_validation():
    x, y = blobs(100, 4, 8, 1.0, seed=2)
    xt, yt = blobs(25, 4, 8, 1.0, seed=2)
    noise = np.random.default_rng(3).normal(size=x.shape).astype(np.float32)
    noise_t = np.random.default_rng(4).normal(size=xt.shape).astype(np.float32)
    views = {"last_cls": (noise, noise_t), "last_avg": (x, xt)}
    a = linear_probe(views, y, yt, FAST, seed=0)
    b = linear_probe(views, y, yt, FAST, seed=0)
    assert a["grid"] == b["grid"]
    assert a["best"]["view"] == "last_avg" and len(a["grid"]) == 4


def test_stratified_subsets_have_exact_counts_and_repeat_per_seed():
    y = np.repeat(np.arange(10), [600, 600, 600, 600, 600, 600, 600, 600, 600, 530])
    idx = stratified_subset(y, 0.01, seed=0)
    assert np.bincount(y[idx]).tolist() == [6] * 9 + [5]  # round(1 % of each class)
    assert np.array_equal(idx, stratified_subset(y, 0.01, seed=0))
    assert not np.array_equal(idx, stratified_subset(y, 0.01, seed=1))
    assert np.bincount(y[per_class(y, 3, seed=0)]).tolist() == [3] * 10


def test_simclr_list_parser_and_imagefolder_selection(tmp_path):
    listing = tmp_path / "1percent.txt"
    listing.write_text("n01440764_10026.JPEG\nn01443537_1029.JPEG\n\n")
    assert read_simclr_list(listing) == {"n01440764_10026.JPEG": "n01440764", "n01443537_1029.JPEG": "n01443537"}
    samples = [
        ("/d/n01440764/n01440764_10026.JPEG", 0),
        ("/d/n01440764/n01440764_1.JPEG", 0),
        ("/d/n01443537/n01443537_1029.JPEG", 1),
    ]
    classes = ["n01440764", "n01443537"]
    assert simclr_indices(samples, classes, listing).tolist() == [0, 2]
    with pytest.raises(BenchError, match="lies in n01443537"):
        simclr_indices(samples, ["n01443537", "n01440764"], listing)
    (tmp_path / "bad.txt").write_text("not-a-simclr-line\n")
    with pytest.raises(BenchError, match="bad.txt:1"):
        read_simclr_list(tmp_path / "bad.txt")


def test_lowshot_reports_mean_and_std_and_falls_back_when_nothing_can_be_held_out():
    x, y = blobs(100, 4, 8, 1.0, seed=5)
    xt, yt = blobs(25, 4, 8, 1.0, seed=5)
    views = {"last_avg": (x, xt)}
    full = linear_probe(views, y, yt, FAST)
    subsets = {"10%": [stratified_subset(y, 0.1, s) for s in range(3)], "1%": [stratified_subset(y, 0.01, 0)]}
    out = lowshot_probe(views, y, yt, FAST, subsets, 4, full)
    assert [d["n_labels"] for d in out["10%"]["draws"]] == [40, 40, 40]
    assert out["10%"]["mean"] == pytest.approx(np.mean([d["top1"] for d in out["10%"]["draws"]]))
    assert out["10%"]["std"] >= 0 and {d["selected"] for d in out["10%"]["draws"]} == {"val"}
    assert out["1%"]["draws"][0]["selected"] == "fixed"  # one label per class: the full probe's head


def test_fewshot_knn_uses_n_per_class():
    x, y = blobs(50, 4, 8, 0.5, seed=6)
    xt, yt = blobs(10, 4, 8, 0.5, seed=6)
    out = fewshot_knn(x, y, xt, yt, EvalConfig(fewshot_n=(1, 5), draws=2))
    assert out["1"]["k"] == 4 and out["5"]["k"] == 20 and len(out["5"]["draws"]) == 2
    assert out["5"]["mean"] > 90


def test_last_layers_views():
    from core.vit import BACKBONES

    enc = BACKBONES.get("vit_nano_patch4")(img_size=16, in_chans=1, cls_token=True).eval()
    x = torch.randn(3, 1, 16, 16)
    layers = enc.last_layers(x, 4)
    assert len(layers) == 4 and torch.allclose(layers[-1], enc(x))
    feats = {"avg": torch.randn(3, 4, 96).half(), "cls": torch.randn(3, 4, 96).half(), "labels": torch.zeros(3)}
    assert features.view(feats, "last4_cls").shape == (3, 384) and features.view(feats, "last_avg").shape == (3, 96)
    assert features.view({"avg": feats["avg"][:, :1]}, "last4_avg") is None


def test_features_are_cached_and_recomputed_when_the_checkpoint_changes(tmp_path, finished_run, monkeypatch):
    copy_finished(finished_run, tmp_path, evaluated=False)  # trained, never evaluated
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = evals_run.evaluate_run(tmp_path)
    assert len(calls) == 2 and (tmp_path / "features" / "train.pt").is_file()
    second = evals_run.evaluate_run(tmp_path)
    assert len(calls) == 2  # both splits from the cache
    assert second["knn"] == first["knn"] and second["linear"]["top1"] == first["linear"]["top1"]
    ckpt = tmp_path / "checkpoint.pt"
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))  # a newer checkpoint
    evals_run.evaluate_run(tmp_path)
    assert len(calls) == 4
    assert set(first) >= {"knn", "knn_fewshot", "linear", "lowshot", "seconds"}
    assert first["lowshot"]["25%"]["draws"][0]["n_labels"] == 128  # a quarter of 512 synthetic images


def test_bf16_extraction_is_autocast_close_to_fp32_and_cached_apart(tmp_path, finished_run, monkeypatch, tiny):
    """eval.precision: bf16 extracts under bf16 autocast (features close to fp32's, not equal); its
    features are cached under their own key, so an fp32 evaluation never reads them."""
    from core.vit import BACKBONES

    enc = BACKBONES.get("vit_nano_patch4")(img_size=16, in_chans=1).eval()
    data = load_split(tiny().data, "test")
    cpu = torch.device("cpu")
    fp32 = features.extract(enc, data, 16, 64, cpu, 4)
    bf16 = features.extract(enc, data, 16, 64, cpu, 4, precision="bf16")
    assert bf16["avg"].shape == fp32["avg"].shape and torch.equal(bf16["labels"], fp32["labels"])
    diff = (bf16["avg"].float() - fp32["avg"].float()).abs()
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.01
    copy_finished(finished_run, tmp_path, evaluated=False)
    evals_run.evaluate_run(tmp_path)  # fp32: caches its features
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text().replace("eval:\n", "eval:\n  precision: bf16\n", 1))
    evals_run.evaluate_run(tmp_path)
    assert calls == ["bf16", "bf16"]  # both splits extracted again, in bf16


def test_eval_precision_is_fp32_or_bf16(tiny):
    with pytest.raises(BenchError, match="eval.precision 'fp16' is not one of fp32, bf16"):
        tiny(**{"eval.precision": "fp16"})


def test_random_encoder_reference_is_computed_once(tmp_path, tiny, monkeypatch):
    cfg = tiny()
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    record = references.reference("random", cfg, tmp_path)
    assert record["reference"] == "random-vit_nano_patch4-ijepa" and len(calls) == 2
    assert references.reference("random", cfg, tmp_path) == record and len(calls) == 2
    assert 0 <= record["linear"]["top1"] <= 100
    # MAE's encoder (its own init, a [cls] token) has its own random row, with [cls] views
    mae = references.reference("random", tiny("mae"), tmp_path)
    assert mae["reference"] == "random-vit_nano_patch4-mae" and len(calls) == 4
    assert "last4_cls" in json.dumps(mae["linear_cls"]) and "linear_cls" not in record  # never in the headline
    assert "last4_cls" not in json.dumps(mae["linear"])


def test_lowshot_file_needs_an_imagefolder(tmp_path, tiny):
    listing = tmp_path / "1percent.txt"
    listing.write_text("n01440764_10026.JPEG\n")
    cfg = tiny(**{"eval.lowshot_file": str(listing)})
    with pytest.raises(BenchError, match="needs an imagefolder"):
        evals_run.lowshot_subsets(cfg, load_split(cfg.data, "train"), np.zeros(1))


def test_imagefolder_lowshot_list_end_to_end(tmp_path, tiny):
    """A tiny ImageNet-style tree and a SimCLR list: the low-shot probe trains on the listed files."""
    for split, per in (("train", 6), ("val", 2)):
        for c, wnid in enumerate(("n01440764", "n01443537")):
            folder = tmp_path / "in" / split / wnid
            folder.mkdir(parents=True)
            for i in range(per):
                Image.new("RGB", (20, 20), (200 * c, 40 * i, 90)).save(folder / f"{wnid}_{i}.JPEG")
    listing = tmp_path / "1percent.txt"
    listing.write_text("n01440764_0.JPEG\nn01440764_1.JPEG\nn01443537_2.JPEG\nn01443537_3.JPEG\n")
    data = {"data.name": "imagefolder", "data.root": str(tmp_path / "in"), "optim.batch_size": 4}  # 12 train images
    cfg = tiny(**data, **{"eval.lowshot_file": str(listing)})
    split = load_split(cfg.data, "train")
    subsets = evals_run.lowshot_subsets(cfg, split, np.array([t for _, t in split.dataset.samples]))
    assert list(subsets) == ["1percent"] and len(subsets["1percent"][0]) == 4
    train_f = {"avg": torch.randn(12, 1, 8), "labels": torch.tensor([t for _, t in split.dataset.samples])}
    test_f = {"avg": torch.randn(4, 1, 8), "labels": torch.tensor([0, 0, 1, 1])}
    record = evals_run.evaluate_features(train_f, test_f, cfg, split)
    assert record["lowshot"]["1percent"]["draws"][0]["n_labels"] == 4


def test_vectorised_heads_step_like_torch_sgd():
    """Each head of Heads follows torch.optim.SGD(momentum=0.9) with its own lr and weight decay."""
    from bench.evals.linear import Heads

    g = torch.Generator().manual_seed(0)
    heads = Heads(6, 3, lrs=[0.1, 0.5], wds=[0.0, 0.01], g=g)
    refs = []
    for i, (lr, wd) in enumerate([(0.1, 0.0), (0.5, 0.01)]):
        layer = torch.nn.Linear(6, 3)
        with torch.no_grad():
            layer.weight.copy_(heads.weight[i])
            layer.bias.copy_(heads.bias[i])
        refs.append((layer, torch.optim.SGD(layer.parameters(), lr=lr, momentum=0.9, weight_decay=wd)))
    x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
    for _ in range(3):
        torch.nn.functional.cross_entropy(heads.logits(x).flatten(0, 1), y.repeat_interleave(2)).mul(2).backward()
        heads.step(1.0)
        for layer, opt in refs:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(layer(x), y).backward()
            opt.step()
    for i, (layer, _) in enumerate(refs):
        torch.testing.assert_close(heads.weight[i].detach(), layer.weight.detach())
        torch.testing.assert_close(heads.bias[i].detach(), layer.bias.detach())


@pytest.mark.parametrize("method, which, scored", [("data2vec", "auto", "student"), ("data2vec", "teacher", "teacher")])
def test_eval_json_names_the_encoder_it_scored(tmp_path, tiny, monkeypatch, method, which, scored):
    """data2vec's default is the student (both official codebases evaluate it); eval.encoder=teacher
    scores the EMA copy. The features come from that encoder's weights, and eval.json says which."""
    cfg = tiny(method, **{"eval.encoder": which})
    train(cfg, tmp_path)
    seen = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda enc, *a, **k: seen.append(enc) or real(enc, *a, **k))
    record = evals_run.evaluate_run(tmp_path)
    assert record["encoder"] == scored
    weights = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["method"]
    prefix = "encoder." if scored == "student" else "teacher.net."
    block = seen[0].state_dict()["blocks.0.mlp.fc2.weight"]
    assert torch.equal(block, weights[prefix + "blocks.0.mlp.fc2.weight"])
    assert not torch.equal(weights["encoder.blocks.0.mlp.fc2.weight"], weights["teacher.net.blocks.0.mlp.fc2.weight"])


def test_an_old_or_edited_run_folder_is_refused_with_one_line(tmp_path, tiny, finished_run):
    """Issue 11 changed what a config means: a run folder written before config versions (no
    `version` in config.yaml) or whose config.yaml was edited after training is never evaluated."""
    from bench.config.runfile import write_config

    cfg = tiny()
    copy_finished(finished_run, tmp_path, evaluated=False)  # trained (tiny()), never evaluated
    config = tmp_path / "config.yaml"
    text = config.read_text()
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("version:")) + "\n")
    with pytest.raises(BenchError, match="older jepa-bench \\(config version 1"):
        evals_run.evaluate_run(tmp_path)
    with pytest.raises(BenchError, match="older jepa-bench"):
        train(cfg, tmp_path)  # nor resumed
    write_config(tiny(**{"optim.lr": 0.5}), config)  # edited after training
    with pytest.raises(BenchError, match="changed after training"):
        evals_run.evaluate_run(tmp_path)
    config.write_text(text)
    assert evals_run.evaluate_run(tmp_path)["encoder"] == "teacher"  # I-JEPA: the target encoder
    write_config(tiny(**{"eval.encoder": "student"}), config)  # the eval section may change: a re-evaluation
    assert evals_run.evaluate_run(tmp_path)["encoder"] == "student"


def counted(feats):
    """A compute function for features.cached that counts its calls."""
    calls = []
    return calls, lambda: calls.append(1) or feats


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "is damaged (truncated or corrupt"),  # a crash mid-write
        (lambda p: p.write_bytes(b""), "is damaged (empty or truncated)"),
        (lambda p: p.write_text("features"), "is damaged (not a torch file)"),
        (lambda p: torch.save(["not", "a", "cache"], p), "is not a feature cache"),
    ],
    ids=["truncated", "empty", "text", "another object"],
)
def test_a_damaged_feature_cache_is_computed_again_saying_so(tmp_path, caplog, damage, words):
    path, key = tmp_path / "features" / "train.pt", {"checkpoint": [1, 2]}
    feats = {"avg": torch.randn(5, 1, 3), "labels": torch.arange(5)}
    calls, compute = counted(feats)
    features.cached(path, key, compute)
    damage(path)
    again = features.cached(path, key, compute)
    assert len(calls) == 2 and torch.equal(again["avg"], feats["avg"])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"{path} {words}") and warning.endswith("; computing the features again")
    assert torch.equal(features.cached(path, key, compute)["avg"], feats["avg"]) and len(calls) == 2  # sound again


def test_a_folder_in_the_feature_caches_place_is_one_error_before_any_work(tmp_path):
    from bench.errors import DamagedFile

    calls, compute = counted({"avg": torch.zeros(1, 1, 1), "labels": torch.zeros(1)})
    (tmp_path / "features" / "train.pt").mkdir(parents=True)
    with pytest.raises(DamagedFile, match="train.pt is not a file: move it away"):
        features.cached(tmp_path / "features" / "train.pt", {}, compute)
    (tmp_path / "other").write_text("")
    with pytest.raises(DamagedFile, match="other is not a folder: move it away"):
        features.cached(tmp_path / "other" / "train.pt", {}, compute)
    assert calls == [] and sorted(p.name for p in tmp_path.rglob("*")) == ["features", "other", "train.pt"]


def test_a_feature_cache_that_cannot_be_written_is_one_error(tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    calls, compute = counted({"avg": torch.zeros(1, 1, 1), "labels": torch.zeros(1)})
    with pytest.raises(BenchError, match="could not write the feature cache .*train.pt \\(No space left on device\\)"):
        features.cached(tmp_path / "train.pt", {}, compute)
    assert list(tmp_path.iterdir()) == []  # no half-written temporary file left behind
