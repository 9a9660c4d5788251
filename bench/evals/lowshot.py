"""Few labels: stratified subsets, SimCLR's ImageNet lists, and the evaluations that use them.

- Low-shot probe: the linear probe trained on a fraction of the train labels — for
  ImageNet SimCLR's `1percent.txt` (one file name per line, `n04235860_14959.JPEG`, the
  class is the text before `_`), elsewhere a stratified draw per class with a seed,
  reported as mean ± std over several draws.
- Few-shot k-NN: n labelled images per class as the k-NN's training set (dinov2).
"""

from pathlib import Path

import numpy as np

from bench.config.schema import EvalConfig
from bench.errors import BenchError
from bench.evals.knn import knn_top1
from bench.evals.linear import can_hold_out, linear_probe


def draw_per_class(y: np.ndarray, size, seed: int) -> np.ndarray:
    """size(n_c) indices of each class c, drawn without replacement with `seed`, sorted."""
    rng = np.random.default_rng(seed)
    members = (np.flatnonzero(y == c) for c in np.unique(y))
    return np.sort(np.concatenate([rng.choice(m, size=size(len(m)), replace=False) for m in members]))


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Exactly max(1, round(fraction x n_c)) indices of each class c, drawn with `seed`, sorted."""
    return draw_per_class(y, lambda n_c: max(1, round(fraction * n_c)), seed)


def per_class(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n indices of each class (all of a class that has fewer), drawn with `seed`, sorted."""
    return draw_per_class(y, lambda n_c: min(n, n_c), seed)


def read_simclr_list(path: Path) -> dict[str, str]:
    """SimCLR's 1percent.txt / 10percent.txt → {file name: class folder (wnid)}."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"low-shot list {path} does not exist (expects SimCLR's 1percent.txt)")
    names = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if "_" not in name:
            raise BenchError(f"{path}:{number}: {name!r} is not a SimCLR list entry like n04235860_14959.JPEG")
        names[name] = name.split("_", 1)[0]
    if not names:
        raise BenchError(f"low-shot list {path} is empty")
    return names


def simclr_indices(samples: list[tuple[str, int]], classes: list[str], path: Path) -> np.ndarray:
    """Indices of an ImageFolder's samples named in SimCLR's list; the folder must match the wnid."""
    names = read_simclr_list(path)
    picked = []
    for i, (file, label) in enumerate(samples):
        wnid = names.get(Path(file).name)
        if wnid is None:
            continue
        if classes[label] != wnid:
            raise BenchError(f"{file} is listed in {path} under class {wnid} but lies in {classes[label]}/")
        picked.append(i)
    if not picked:
        raise BenchError(f"none of the files listed in {path} are in the training split")
    return np.array(picked)


def summary(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def lowshot_probe(
    views, y_train, y_test, cfg: EvalConfig, subsets: dict[str, list[np.ndarray]], num_classes: int, full: dict
) -> dict:
    """subsets: label (e.g. "1%") → one index array per draw. Returns {label: {mean, std, draws}}.
    A subset with a class of < 2 labels cannot hold out a validation split: it trains the head
    that the full-label probe `full` selected (recorded as selected: fixed)."""
    out = {}
    for label, draws in subsets.items():
        results = []
        for seed, idx in enumerate(draws):
            sub = {name: (x_train[idx], x_test) for name, (x_train, x_test) in views.items()}
            fixed = None if can_hold_out(y_train[idx]) else full["best"]
            r = linear_probe(sub, y_train[idx], y_test, cfg, seed=seed, num_classes=num_classes, fixed=fixed)
            results.append(
                {"seed": seed, "n_labels": len(idx), "top1": r["top1"], "best": r["best"], "selected": r["selected"]}
            )
        out[label] = summary([r["top1"] for r in results]) | {"draws": results}
    return out


def fewshot_knn(x_train, y_train, x_test, y_test, cfg: EvalConfig) -> dict:
    """{n: {mean, std, k, draws}}: k-NN with n training images per class, k = min(20, n x classes)."""
    out = {}
    for n in cfg.fewshot_n:
        tops, k = [], None
        for seed in range(cfg.draws):
            idx = per_class(y_train, n, seed)
            k = min(20, len(idx))
            tops.append(knn_top1(x_train[idx], y_train[idx], x_test, y_test, (k,), cfg.temperature)[k])
        out[str(n)] = summary(tops) | {"k": k, "draws": tops}
    return out


def lowshot_label(fraction: float) -> str:
    return f"{fraction * 100:g}%"
