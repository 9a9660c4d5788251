"""A row per configuration: the mean and std over seeds, the gains, the ranking.

`summarize` gives each configuration's mean and std over its seeds and calls a gain within noise
when |mean| <= 2 std. Within a budget, configurations are ranked by the chosen metric and
adjacent ones whose per-seed values a Welch t-test does not separate (p >= 0.05) are tied.
`labels` names each configuration in tables and legends.
"""

import json
import math

import numpy as np
import pandas as pd

from bench.results.collate import GAIN_METRICS
from bench.rundir import TrainingStatus

NOISE_STDS = 2.0  # a gain is within noise when |mean| <= 2 std over seeds
TIE_P = 0.05  # adjacent configurations are tied when Welch's t-test gives p >= 0.05
BARELY_MOVED = 0.05  # an evaluated encoder whose weights moved < 5 % of their norm from its init
# A trained encoder whose embeddings of the fixed batch (bench/train/health.py) collapsed: feature_std
# (the tables' `feature_spread`; SimSiam's collapse measure, 1 for embeddings spread over the sphere, 0 for
# one point) below 0.02, or RankMe below 1.2 (1: one direction). Both sit below a random initialisation:
# average-pooled last-layer tokens share one large direction, so every method's fresh encoder reads
# feature_std 0.054-0.055 and RankMe 1.50-1.51 on Fashion-MNIST at 32 px (ViT-nano/4, `bench health` on
# runs/demo), and a trained data2vec 2.0 that probes well stays there (0.054, 1.44). The flag marks an
# encoder that concentrated its embeddings well past its initialisation: the demo's I-JEPA (0.0094, 1.12).
COLLAPSED_FEATURE_STD = 0.02
COLLAPSED_RANKME = 1.2


def welch_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Welch's t-test p-value (unequal variances); nan with fewer than 2 values a side."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def rank(summary: pd.DataFrame, per_seed: list[list[float]], metric: str) -> pd.DataFrame:
    """Rank the headline configurations of each budget by `metric` (mean over seeds) and test each
    against the next one down: `p_next` (Welch on `per_seed`, each row's values over its seeds) and
    `tied_next` (p >= TIE_P, or too few seeds)."""
    summary = summary.copy()
    summary["rank"], summary["p_next"], summary["tied_next"] = np.nan, np.nan, None
    if metric not in summary or "role" not in summary:
        return summary
    heads = summary[(summary["role"] == "headline") & summary[metric].notna()]
    for _, rows in heads.groupby("budget", sort=False):
        order = rows.sort_values(metric, ascending=False).index.tolist()
        values = [per_seed[i] for i in order]
        for r, i in enumerate(order):
            summary.loc[i, "rank"] = r + 1
            if r + 1 < len(order):
                p = welch_p(values[r], values[r + 1])
                summary.loc[i, "p_next"] = p
                summary.loc[i, "tied_next"] = bool(not p < TIE_P)
    return summary


NOT_AVERAGED = ("run", "seed", "status", "role", "linear_view", "knn_T", "budget_used")


def summarize(table: pd.DataFrame, metric: str = "linear") -> pd.DataFrame:
    """A row per configuration (method, backbone, what the sweep varied, budget): the mean and the
    std over its seeds of every accuracy and compute column, and how many seeds stand behind it;
    for headline rows the gains over their init (paired by seed), whether each is within noise,
    the compute the tuning spent (`tuning_flops`, `tuning_device_hours`: every tuning run of the
    method, shared by its budgets), and the ranking within each budget. Tuning runs are not
    configurations here (the runs table keeps them); reference rows are kept as they are."""
    group = [c for c in table.attrs.get("group", ["method"]) if c in table]
    if "role" in table:
        group = [*group, "role"]
    runs = table[table["status"] == TrainingStatus.DONE].copy()  # a run still training or failed has no final compute
    # a diverged tuning run spent its compute too (its summary records it)
    tuning = table[(table["role"] == "tuning") & table["flops"].notna()] if "role" in table else runs.iloc[0:0]
    if "role" in runs:
        runs = runs[runs["role"] != "tuning"]
    if metric in runs:  # trained but not evaluated yet: not a result
        runs = runs[runs[metric].notna()]
    refs = table[table["status"] == "reference"]
    refs = refs[[c for c in refs.columns if not c.endswith("_std")]]  # their std is over draws, not seeds
    metrics = [
        c
        for c in runs.columns
        if c not in (*group, *NOT_AVERAGED) and not c.endswith("_std") and pd.api.types.is_numeric_dtype(runs[c])
    ]
    for c in group:  # lists (tuples in the config) cannot be grouped on
        runs[c] = runs[c].map(lambda v: json.dumps(v) if isinstance(v, list) else v)
    by_config = runs.groupby(group, dropna=False, sort=False)
    grouped = by_config[metrics]
    means, stds = grouped.mean(), grouped.std(ddof=1)
    out = means.copy()
    for c in metrics:
        out.insert(out.columns.get_loc(c) + 1, f"{c}_std", stds[c])
    out["seeds"] = grouped.size()
    out = out.reset_index()
    per_seed = by_config[metric].agg(lambda s: s.dropna().tolist()).tolist() if metric in metrics else []
    for m in GAIN_METRICS:
        if f"gain_{m}" in out:
            out[f"gain_{m}_noise"] = (out[f"gain_{m}"].abs() <= NOISE_STDS * out[f"gain_{m}_std"]).where(
                out[f"gain_{m}"].notna() & out[f"gain_{m}_std"].notna()
            )
    if "moved" in out:
        out["barely_moved"] = (out["moved"] < BARELY_MOVED).where(out["moved"].notna() & (out["budget"] > 0))
    if "rankme" in out or "feature_spread" in out:
        out["collapsed"] = collapsed(out)
    if len(tuning):
        cost = tuning.groupby(["method", "backbone"])[["flops", "device_hours"]].sum()
        keys = list(zip(out["method"], out["backbone"], strict=True))
        headline = out["role"] == "headline"
        for c in ("flops", "device_hours"):
            out[f"tuning_{c}"] = [cost[c].get(k) if h else np.nan for k, h in zip(keys, headline, strict=True)]
    out = rank(out, per_seed, metric)
    out = pd.concat([out, refs[[c for c in refs.columns if c in out.columns or c == "method"]]], ignore_index=True)
    out.attrs["group"] = group
    out.attrs["tuned"] = table.attrs.get("tuned", [])
    return out


def collapsed(out: pd.DataFrame) -> pd.Series:
    """True where a trained configuration's mean feature_spread or RankMe is below its collapse threshold;
    unknown (NA) where it has neither, or is an init run (budget 0: nothing trained to collapse)."""
    nan = pd.Series(math.nan, index=out.index)
    std, rank_ = out.get("feature_spread", nan), out.get("rankme", nan)
    flag = (std < COLLAPSED_FEATURE_STD) | (rank_ < COLLAPSED_RANKME)
    return flag.where((std.notna() | rank_.notna()) & (out["budget"] > 0))


def labels(summary: pd.DataFrame) -> pd.Series:
    """Each configuration's name in a table or a legend: the method, the encoder scored in brackets
    (`data2vec [student]`), and the keys that vary among that method's own runs (a mask setting, a
    clone count), not the budget."""
    hidden = ("method", "encoder", "budget", "budget_kind", "role", *summary.attrs.get("tuned", []))
    group = [c for c in summary.attrs.get("group", ["method"]) if c not in hidden]
    runs = summary[summary["seeds"].notna()] if "seeds" in summary else summary
    if "role" in runs:  # init runs keep only the keys their weights depend on: they name no setting
        runs = runs[runs["role"] != "init"]
    varied = {
        m: [c for c in group if c in rows and rows[c].astype(str).nunique() > 1] for m, rows in runs.groupby("method")
    }

    def value(v) -> str:
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    def label(row) -> str:
        method = row["method"]
        extra = [f"{c.removeprefix(f'{method}.')}={value(row[c])}" for c in varied.get(method, [])]
        name = f"{method} [{row['encoder']}]" if isinstance(row.get("encoder"), str) else str(method)
        return f"{name} ({', '.join(extra)})" if extra else name

    return summary.apply(label, axis=1)
