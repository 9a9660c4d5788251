"""How long the evaluation protocol takes for one checkpoint, and faiss k-NN against scikit-learn's.

    python scripts/benchmark_evals.py runs/baselines/ijepa-b08abf4015 --out results/eval_speed.csv

Times feature extraction (images/s over train + test), the weighted k-NN at every k through
faiss, scikit-learn's brute-force KNeighborsClassifier on the same normalised features and
the same largest k, few-shot k-NN, the linear probe and the low-shot probe. The features
are extracted afresh (the cache is not read), so the figure is what a new checkpoint costs.
"""

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch
from sklearn.neighbors import KNeighborsClassifier

from bench.config.runfile import read_config
from bench.data.datasets import load_split
from bench.evals import features
from bench.evals.knn import knn_top1, normalize
from bench.evals.linear import linear_probe
from bench.evals.lowshot import fewshot_knn, lowshot_probe
from bench.evals.run import lowshot_subsets
from bench.rundir import CHECKPOINT, CONFIG
from bench.train.devices import select_device
from bench.train.methods import build_method, eval_encoder


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("--out", type=Path, help="append a row to this CSV")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = read_config(args.run / CONFIG)
    ev = cfg.eval
    device = select_device(cfg)
    train, test = load_split(cfg.data, "train"), load_split(cfg.data, "test")
    method = build_method(cfg, train.channels)
    method.load_state_dict(torch.load(args.run / CHECKPOINT, map_location="cpu", weights_only=True)["method"])
    encoder = eval_encoder(method, cfg.eval.encoder)[1]

    def extract_both():
        return [
            features.extract(encoder, s, cfg.data.image_size, ev.batch_size, device, ev.n_layers) for s in (train, test)
        ]

    (ftr, fte), t_extract = timed(extract_both)
    ytr, yte = features.labels(ftr), features.labels(fte)
    xtr, xte = features.view(ftr, ev.knn_view), features.view(fte, ev.knn_view)

    top1, t_knn = timed(lambda: knn_top1(xtr, ytr, xte, yte, ev.knn_k, ev.temperature))
    kmax = max(ev.knn_k)
    sk = KNeighborsClassifier(n_neighbors=kmax, algorithm="brute", weights="distance", n_jobs=args.threads)
    sk_pred, t_sklearn = timed(lambda: sk.fit(normalize(xtr), ytr).predict(normalize(xte)))
    _, t_fewshot = timed(lambda: fewshot_knn(xtr, ytr, xte, yte, ev))
    views = features.views(ftr, fte, ev.linear_views)
    linear, t_linear = timed(lambda: linear_probe(views, ytr, yte, ev, seed=cfg.seed, num_classes=train.num_classes))
    subsets = lowshot_subsets(cfg, train, ytr)
    lowshot, t_lowshot = timed(lambda: lowshot_probe(views, ytr, yte, ev, subsets, train.num_classes, linear))

    row = {
        "run": args.run.name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": args.threads,
        "n_train": len(ytr),
        "n_test": len(yte),
        "knn_dim": xtr.shape[1],
        "extract_images_per_s": (len(ytr) + len(yte)) / t_extract,
        "extract_s": t_extract,
        "knn_s": t_knn,
        "sklearn_knn_s": t_sklearn,
        "faiss_speedup": t_sklearn / t_knn,
        "fewshot_knn_s": t_fewshot,
        "linear_s": t_linear,
        "linear_heads": len(linear["grid"]),
        "lowshot_s": t_lowshot,
        "evals_total_s": t_knn + t_fewshot + t_linear + t_lowshot,
        "with_features_s": t_extract + t_knn + t_fewshot + t_linear + t_lowshot,
        f"knn@{kmax}": top1[kmax],
        f"sklearn_knn@{kmax}": float((sk_pred == yte).mean() * 100),
        "linear": linear["top1"],
    }
    for key, value in row.items():
        print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    if args.out:
        new = not args.out.is_file()
        with args.out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})


if __name__ == "__main__":
    main()
