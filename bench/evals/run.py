"""Evaluate a run folder's checkpoint: the whole protocol, to eval.json.

    bench eval runs/demo/ijepa-1a2b3c4d5e   # writes eval.json beside the checkpoint
    bench eval runs/demo                    # every finished run of the sweep

Features are extracted once per checkpoint and split into `features/` (bench/evals/features.py);
k-NN, few-shot k-NN, the linear probe and the low-shot probe all read that cache. A tuning run
(eval.scope: val) gets the validation score alone and never reads the test split. The reference
rows go through the same functions (bench/evals/references.py).
"""

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from bench.config.runfile import training_hash
from bench.config.schema import RunConfig, check_version
from bench.data.datasets import load_split
from bench.data.split import Split, take
from bench.errors import BenchError
from bench.evals import features
from bench.evals.knn import knn_top1
from bench.evals.linear import linear_probe, split_val
from bench.evals.lowshot import (
    draw_per_class,
    fewshot_knn,
    lowshot_label,
    lowshot_probe,
    simclr_indices,
    stratified_subset,
)
from bench.rundir import CHECKPOINT, CONFIG, EVAL, config_changed, is_trained, read_run_config, read_summary, write_json
from bench.train.checkpoint import load_checkpoint
from bench.train.devices import select_device
from bench.train.methods import build_method, eval_encoder
from core.health import encoder_moved

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


VAL_K = 20  # the validation score: k-NN top-1 at k = 20
VAL_SEED = 0  # one held-out split for every run, so that tuning runs are compared on the same images


def val_indices(y: np.ndarray, n: int | None) -> np.ndarray:
    """`n` of the training images, stratified, the same for every run; all of them when n is None."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    return draw_per_class(y, lambda n_c: min(n_c, max(2, round(n * n_c / len(y)))), VAL_SEED)


def val_score(train: dict, cfg: RunConfig, subset: bool = True) -> dict:
    """k-NN top-1 (k=20, the headline k-NN view) from the rest of `eval.val_images` training images onto
    a stratified `val_fraction` of them: the score tuning selects by. Reads nothing but training
    images. `subset=False`: `train` holds those images already (a tuning run extracts only them)."""
    ev = cfg.eval
    x, y = features.view(train, ev.knn_view), features.labels(train)
    if subset:
        idx = val_indices(y, ev.val_images)
        x, y = x[idx], y[idx]
    fit, val = split_val(y, ev.val_fraction, VAL_SEED)
    top1 = knn_top1(x[fit], y[fit], x[val], y[val], (VAL_K,), ev.temperature)[VAL_K]
    return {f"knn@{VAL_K}": top1, "view": ev.knn_view, "n_fit": len(fit), "n_val": len(val)}


def split_labels(split: Split) -> np.ndarray:
    dataset = split.dataset
    for name in ("labels", "targets"):  # in-memory datasets, torchvision's ImageFolder
        if hasattr(dataset, name):
            return np.asarray(getattr(dataset, name))
    return np.array([y for _, y in dataset])


def val_images(split: Split, n: int | None) -> Split:
    """The split restricted to val_indices (a tuning run's evaluation extracts only these)."""
    idx = val_indices(split_labels(split), n)
    if len(idx) == len(split):
        return split
    return take(split, idx.tolist())


def evaluate_features(train: dict, test: dict, cfg: RunConfig, train_split: Split) -> dict:
    """Every evaluation of the protocol on cached features → the eval.json record. The headline
    k-NN, linear and low-shot numbers read the same views for every method (eval.linear_views,
    pooled patch tokens); a [cls] probe (eval.extra_views) is reported apart as `linear_cls`."""
    ev = cfg.eval
    y_train, y_test = features.labels(train), features.labels(test)
    num_classes = train_split.num_classes
    seconds = {}

    names = (ev.knn_view, *ev.linear_views, *ev.extra_views)
    views = features.views(train, test, names)  # each built once
    t0 = time.perf_counter()
    knn_view = ev.knn_view
    x_train, x_test = views[knn_view]
    top1 = knn_top1(x_train, y_train, x_test, y_test, ev.knn_k, ev.temperature)
    fewshot = fewshot_knn(x_train, y_train, x_test, y_test, ev)
    seconds["knn"] = time.perf_counter() - t0

    extra = {name: views[name] for name in ev.extra_views if name in views}
    views = {name: views[name] for name in ev.linear_views if name in views}
    t0 = time.perf_counter()
    linear = linear_probe(views, y_train, y_test, ev, seed=cfg.seed, num_classes=num_classes)
    linear_cls = linear_probe(extra, y_train, y_test, ev, seed=cfg.seed, num_classes=num_classes) if extra else None
    seconds["linear"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subsets = lowshot_subsets(cfg, train_split, y_train)
    lowshot = lowshot_probe(views, y_train, y_test, ev, subsets, num_classes, linear)
    seconds["lowshot"] = time.perf_counter() - t0
    record = {
        "val": val_score(train, cfg),
        "knn": {"top1": {str(k): v for k, v in top1.items()}, "temperature": ev.temperature, "view": knn_view},
        "knn_fewshot": fewshot,
        "linear": linear,
        "lowshot": lowshot,
        "feature_dim": int(x_train.shape[1]),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "seconds": seconds,
    }
    if linear_cls is not None:
        record["linear_cls"] = linear_cls
    return record


def extract_splits(make_encoder, cfg: RunConfig, folder: Path, stamp: dict) -> tuple[dict, dict, Split]:
    """(train features, test features, train split), from the cache in `folder` when its stamp matches.
    `make_encoder(channels)` builds the encoder, on the first cache miss only; the test split
    is read only on a miss too. eval.train_images / test_images: a stratified subset of each."""
    sizes = {"train": cfg.eval.train_images, "test": cfg.eval.test_images}
    splits = {"train": val_images(load_split(cfg.data, "train"), sizes["train"])}  # val_images: any stratified subset
    device = select_device(cfg)
    encoder = {}

    def compute(split: str):
        if split not in splits:
            splits[split] = val_images(load_split(cfg.data, split), sizes[split])
        if make_encoder is None:
            return features.pixels(splits[split], cfg.data.image_size)
        if "net" not in encoder:
            encoder["net"] = make_encoder(splits["train"].channels)
        t0 = time.perf_counter()
        ev = cfg.eval
        out = features.extract(
            encoder["net"], splits[split], cfg.data.image_size, ev.batch_size, device, ev.n_layers, ev.precision
        )
        log.info("%s features of %s: %.0f images/s", split, folder, len(out["labels"]) / (time.perf_counter() - t0))
        return out

    key = stamp | {"data": asdict(cfg.data), "n_layers": cfg.eval.n_layers}
    if cfg.eval.precision != "fp32":  # set only when it is not the default, so existing caches stay valid
        key |= {"precision": cfg.eval.precision}
    # a subset is part of the key only when set, so that the caches of full evaluations stay valid
    train, test = (
        features.cached(
            folder / FEATURES / f"{s}.pt",
            key | {"split": s} | ({"images": sizes[s]} if sizes[s] is not None else {}),
            lambda s=s: compute(s),
        )
        for s in ("train", "test")
    )
    return train, test, splits["train"]


def trained_config(run_dir: Path) -> RunConfig:
    """The config a finished run was trained with; one clear error when the run is not finished, one of
    its files is damaged, it was made by an older jepa-bench, or its config.yaml is not the one it was
    made with (rundir.config_changed): a run named by its id (`bench sweep`'s folders) must still hash
    to it, eval section included; a folder of another name (`bench train --out`) must keep the training
    settings it was trained with, and may change its eval section to be evaluated again. An eval.json
    that is not a file is refused here too, before anything is evaluated."""
    summary = read_summary(run_dir)
    if not (run_dir / CHECKPOINT).is_file() or not is_trained(summary):
        raise BenchError(f"{run_dir} has no finished training to evaluate (run `bench sweep` or `bench train` first)")
    cfg = read_run_config(run_dir)
    check_version(cfg, str(run_dir))
    changed = config_changed(run_dir, cfg)
    if changed:
        raise BenchError(f"{run_dir / CONFIG} was changed after training: {changed}")
    record = run_dir / EVAL
    if record.exists() and not record.is_file():  # found before the evaluation, not when writing its result
        raise BenchError(f"{record} is not a file: delete it, evaluation writes it again")
    return cfg


def evaluate_run(run_dir: Path) -> dict:
    """The full protocol on the encoder `eval.encoder` names (auto: the one the method's official
    code evaluates — I-JEPA's EMA target encoder, the student of MAE and the data2vecs), to eval.json,
    which names it. Refused before anything is computed or written when `trained_config` refuses
    (unfinished, damaged, another version, config.yaml changed since training): bench eval and the
    job's evaluation after training both come through here."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {CONFIG})")
    ckpt_path = run_dir / CHECKPOINT
    cfg = trained_config(run_dir)
    with torch.device("meta"):
        encoder_name = eval_encoder(build_method(cfg, 1), cfg.eval.encoder)[0]

    loaded = {}

    def make_encoder(channels: int):  # loaded once: for the features (on a cache miss) and for `moved`
        if "net" not in loaded:
            method = build_method(cfg, channels)
            load_checkpoint(run_dir, method, training_hash(cfg))
            loaded["net"] = eval_encoder(method, cfg.eval.encoder)[1]
        return loaded["net"]

    stat = ckpt_path.stat()
    t0 = time.perf_counter()
    stamp = {"checkpoint": [stat.st_size, stat.st_mtime_ns], "encoder": encoder_name}
    if cfg.eval.scope == "val":  # a tuning run: the validation score alone; the test split is never read
        split = val_images(load_split(cfg.data, "train"), cfg.eval.val_images)
        ev, device = cfg.eval, select_device(cfg)
        encoder = make_encoder(split.channels)
        feats = features.extract(encoder, split, cfg.data.image_size, ev.batch_size, device, ev.n_layers, ev.precision)
        record = {"encoder": encoder_name, "val": val_score(feats, cfg, subset=False)}
        record["seconds"] = {"features": time.perf_counter() - t0}
    else:
        train, test, split = extract_splits(make_encoder, cfg, run_dir, stamp)
        seconds = time.perf_counter() - t0
        record = {"encoder": encoder_name} | evaluate_features(train, test, cfg, split)
        record["seconds"]["features"] = seconds
    record["moved"] = encoder_moved(make_encoder(split.channels), initial_encoder(cfg, split.channels))
    record["checkpoint_mtime"] = stat.st_mtime
    write_json(record, run_dir / EVAL)
    shown = record.get("linear", {}).get("top1")
    log.info("%s: val k-NN %.2f, linear %s, moved %.3f", run_dir, record["val"]["knn@20"], shown, record["moved"])
    return record


def initial_encoder(cfg: RunConfig, channels: int):
    """The evaluated encoder as the run began: the engine seeds with cfg.seed, then builds the method."""
    torch.manual_seed(cfg.seed)
    return eval_encoder(build_method(cfg, channels), cfg.eval.encoder)[1]
