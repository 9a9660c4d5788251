"""Evaluate a run folder's checkpoint, and the reference rows that need no training.

    bench eval runs/demo/ijepa-1a2b3c4d5e   # writes eval.json beside the checkpoint
    bench eval runs/demo                    # every finished run of the sweep

Features are extracted once per checkpoint and split into `features/` (bench/evals/features.py);
k-NN, few-shot k-NN, the linear probe and the low-shot probe all read that cache. The
reference rows — raw pixels and a randomly initialised encoder of the run's backbone —
go through the same protocol once per dataset and are cached in the root's `references/`.
"""

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.config import RunConfig, check_version, read_config, training_hash
from bench.data import Split, load_split
from bench.engine import select_device
from bench.errors import BenchError
from bench.evals import features
from bench.evals.knn import knn_top1
from bench.evals.linear import linear_probe
from bench.evals.lowshot import fewshot_knn, lowshot_label, lowshot_probe, simclr_indices, stratified_subset
from bench.methods import build_method, eval_encoder
from bench.rundir import CHECKPOINT, CONFIG, EVAL, SUMMARY, edited_after_training, read_json, write_json

log = logging.getLogger(__name__)

FEATURES = "features"


def lowshot_subsets(cfg: RunConfig, train: Split, y: np.ndarray) -> dict[str, list[np.ndarray]]:
    """SimCLR's list when eval.lowshot_file is set (one draw), else stratified draws per fraction."""
    ev = cfg.eval
    if ev.lowshot_file:
        dataset = train.dataset
        if not hasattr(dataset, "samples"):
            raise BenchError(f"eval.lowshot_file needs an imagefolder dataset, not {cfg.data.name}")
        return {Path(ev.lowshot_file).stem: [simclr_indices(dataset.samples, dataset.classes, ev.lowshot_file)]}
    return {lowshot_label(f): [stratified_subset(y, f, seed) for seed in range(ev.draws)] for f in ev.lowshot}


def evaluate_features(train: dict, test: dict, cfg: RunConfig, train_split: Split) -> dict:
    """Every evaluation of the protocol on cached features → the eval.json record."""
    ev = cfg.eval
    y_train, y_test = features.labels(train), features.labels(test)
    num_classes = train_split.num_classes
    seconds = {}

    views = features.views(train, test, (ev.knn_view, "last_avg", *ev.linear_views))  # each built once
    t0 = time.perf_counter()
    knn_view = ev.knn_view if ev.knn_view in views else "last_avg"
    x_train, x_test = views[knn_view]
    top1 = knn_top1(x_train, y_train, x_test, y_test, ev.knn_k, ev.temperature)
    fewshot = fewshot_knn(x_train, y_train, x_test, y_test, ev)
    seconds["knn"] = time.perf_counter() - t0

    views = {name: views[name] for name in ev.linear_views if name in views}
    t0 = time.perf_counter()
    linear = linear_probe(views, y_train, y_test, ev, seed=cfg.seed, num_classes=num_classes)
    seconds["linear"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subsets = lowshot_subsets(cfg, train_split, y_train)
    lowshot = lowshot_probe(views, y_train, y_test, ev, subsets, num_classes, linear)
    seconds["lowshot"] = time.perf_counter() - t0
    return {
        "knn": {"top1": {str(k): v for k, v in top1.items()}, "temperature": ev.temperature, "view": knn_view},
        "knn_fewshot": fewshot,
        "linear": linear,
        "lowshot": lowshot,
        "feature_dim": int(x_train.shape[1]),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "seconds": seconds,
    }


def extract_splits(make_encoder, cfg: RunConfig, folder: Path, stamp: dict) -> tuple[dict, dict, Split]:
    """(train features, test features, train split), from the cache in `folder` when its stamp matches.
    `make_encoder(channels)` builds the encoder, on the first cache miss only; the test split
    is read only on a miss too."""
    splits = {"train": load_split(cfg.data, "train")}
    device = select_device(cfg)
    encoder = {}

    def compute(split: str):
        if split not in splits:
            splits[split] = load_split(cfg.data, split)
        if make_encoder is None:
            return features.pixels(splits[split], cfg.data.image_size)
        if "net" not in encoder:
            encoder["net"] = make_encoder(splits["train"].channels)
        t0 = time.perf_counter()
        out = features.extract(
            encoder["net"], splits[split], cfg.data.image_size, cfg.eval.batch_size, device, cfg.eval.n_layers
        )
        log.info("%s features of %s: %.0f images/s", split, folder, len(out["labels"]) / (time.perf_counter() - t0))
        return out

    key = stamp | {"data": asdict(cfg.data), "n_layers": cfg.eval.n_layers}
    train, test = (
        features.cached(folder / FEATURES / f"{s}.pt", key | {"split": s}, lambda s=s: compute(s))
        for s in ("train", "test")
    )
    return train, test, splits["train"]


def trained_config(run_dir: Path) -> RunConfig:
    """The config a finished run was trained with; one clear error when the run is not finished, was
    made by an older jepa-bench, or the training part of its config.yaml no longer hashes to what
    training recorded (the eval section may change: that is a re-evaluation)."""
    summary = read_json(run_dir / SUMMARY)
    if not (run_dir / CHECKPOINT).is_file() or not summary or summary.get("status") != "done":
        raise BenchError(f"{run_dir} has no finished training to evaluate (run `bench sweep` or `bench train` first)")
    cfg = read_config(run_dir / CONFIG)
    check_version(cfg, str(run_dir))
    if edited_after_training(run_dir, cfg):
        raise BenchError(
            f"{run_dir / CONFIG} was changed after training (the hash of its training settings, "
            f"{training_hash(cfg)}, is not the {summary['train_config_hash']} it was trained with); restore it, "
            "or train the changed config in a new folder"
        )
    return cfg


def evaluate_run(run_dir: Path) -> dict:
    """The full protocol on the encoder `eval.encoder` names (auto: the one the method's official
    code evaluates — I-JEPA's EMA target encoder, the student of MAE and the data2vecs), to eval.json,
    which names it."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {CONFIG})")
    ckpt_path = run_dir / CHECKPOINT
    cfg = trained_config(run_dir)
    with torch.device("meta"):
        encoder_name = eval_encoder(build_method(cfg, 1), cfg.eval.encoder)[0]

    def make_encoder(channels: int):
        method = build_method(cfg, channels)
        method.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True)["method"])
        return eval_encoder(method, cfg.eval.encoder)[1]

    stat = ckpt_path.stat()
    t0 = time.perf_counter()
    stamp = {"checkpoint": [stat.st_size, stat.st_mtime_ns], "encoder": encoder_name}
    train, test, split = extract_splits(make_encoder, cfg, run_dir, stamp)
    seconds = time.perf_counter() - t0
    record = {"encoder": encoder_name} | evaluate_features(train, test, cfg, split)
    record["seconds"]["features"] = seconds
    record["checkpoint_mtime"] = stat.st_mtime
    write_json(record, run_dir / EVAL)
    log.info("%s: k-NN top-1 %s, linear %.2f", run_dir, record["knn"]["top1"], record["linear"]["top1"])
    return record


def reference(name: str, cfg: RunConfig, cache_dir: Path) -> dict:
    """A reference row through the same protocol, computed once per dataset (and encoder) and cached:
    `pixels` (normalised raw pixels) or `random` (the encoder the run is evaluated on, as its method
    builds it before any training, seed 0). Methods initialise differently (MAE: Xavier; I-JEPA:
    truncated normal, std 0.02, without residual rescale; data2vec 2.0: normal, std 0.02, [cls] from
    N(0, 1); data2vec v1: truncated normal with the residual rescale) and some add a [cls] token, so
    each method has its own random row."""
    protocol = {"data": asdict(cfg.data), "eval": asdict(cfg.eval)}
    if name == "random":
        protocol["backbone"] = cfg.backbone
        protocol["method"] = cfg.method
    digest = hashlib.sha1(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:10]
    label = f"{name}-{cfg.backbone}-{cfg.method}" if name == "random" else name
    folder = Path(cache_dir) / f"{label}-{cfg.data.name}-{digest}"
    cached = read_json(folder / EVAL)
    if cached is not None:
        return cached

    def make_encoder(channels: int):
        torch.manual_seed(0)
        return eval_encoder(build_method(cfg, channels), cfg.eval.encoder)[1]  # at init: teacher = student

    train, test, split = extract_splits(make_encoder if name == "random" else None, cfg, folder, {"reference": name})
    record = evaluate_features(train, test, cfg, split) | {"dataset": cfg.data.name, "reference": label}
    write_json(record, folder / EVAL)
    return record
