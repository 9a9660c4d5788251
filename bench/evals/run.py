"""Evaluate a run folder's checkpoint, and the reference rows that need no training.

bench eval runs/demo/ijepa-1a2b3c4d5e   # writes eval.json beside the checkpoint
"""

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bench.config import RunConfig, read_config
from bench.data import load_split
from bench.engine import CHECKPOINT, CONFIG, SUMMARY, read_json, select_device, write_json
from bench.errors import BenchError
from bench.evals import features
from bench.evals.knn import knn_top1
from bench.methods import build_method

log = logging.getLogger(__name__)

EVAL = "eval.json"


def knn_record(train, test, cfg: RunConfig, seconds: float) -> dict:
    (xtr, ytr), (xte, yte) = train, test
    t0 = time.perf_counter()
    top1 = knn_top1(xtr, ytr, xte, yte, cfg.eval.knn_k, cfg.eval.temperature)
    return {
        "knn": {"top1": {str(k): v for k, v in top1.items()}, "temperature": cfg.eval.temperature},
        "feature_dim": int(xtr.shape[1]),
        "n_train": len(ytr),
        "n_test": len(yte),
        "seconds": {"features": seconds, "knn": time.perf_counter() - t0},
    }


def evaluate_run(run_dir: Path) -> dict:
    """k-NN of the method's eval encoder (I-JEPA: the target encoder), written to eval.json."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {CONFIG})")
    ckpt_path = run_dir / CHECKPOINT
    summary = read_json(run_dir / SUMMARY)
    if not ckpt_path.is_file() or not summary or summary.get("status") != "done":
        raise BenchError(f"{run_dir} has no finished training to evaluate (run `bench sweep` or `bench train` first)")
    cfg = read_config(run_dir / CONFIG)
    device = select_device(cfg)
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    method = build_method(cfg, train.channels)
    method.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=True)["method"])
    encoder = method.eval_encoder()
    t0 = time.perf_counter()
    feats = [features.extract(encoder, s, cfg.data.image_size, cfg.eval.batch_size, device) for s in (train, test)]
    record = knn_record(*feats, cfg, time.perf_counter() - t0)
    record["checkpoint_mtime"] = ckpt_path.stat().st_mtime
    write_json(record, run_dir / EVAL)
    log.info("%s: k-NN top-1 %s", run_dir, record["knn"]["top1"])
    return record


def pixel_reference(cfg: RunConfig, cache_dir: Path) -> dict:
    """Raw pixels through the same k-NN: computed once per dataset and cached in cache_dir."""
    protocol = json.dumps({"data": asdict(cfg.data), "eval": asdict(cfg.eval)}, sort_keys=True)
    key = f"pixels-{cfg.data.name}-{hashlib.sha1(protocol.encode()).hexdigest()[:10]}"
    path = Path(cache_dir) / f"{key}.json"
    cached = read_json(path)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    feats = [features.pixels(load_split(cfg.data, s), cfg.data.image_size) for s in ("train", "test")]
    record = knn_record(*feats, cfg, time.perf_counter() - t0)
    record["dataset"] = cfg.data.name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, path)
    return record
