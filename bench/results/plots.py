"""Plots of a sweep's summary (bench/results/summary.py `summarize`): PNG and SVG, matplotlib only.

- `compute_plot`: accuracy against compute used, a line per configuration through its
  budgets, error bars over seeds, reference rows as grey lines, each its own dash and shade
  (the I-JEPA paper's Fig. 1); beside it, each configuration's gain over its own initialisation.
  A sweep whose compute spans less than a decade (one budget) gets ticks at round values
  around its points instead of a log axis without a labelled tick.
- `ablation_bars`: a bar per configuration at one budget (the masking ablations), error bars
  over seeds, reference rows as in `compute_plot`.
- `health_plot`: each run's label-free health signals (metrics.jsonl) against the FLOPs spent;
  `rankme_plot`: final RankMe against the probe's accuracy over the trained runs, with Spearman's ρ.

    figure = compute_plot(summary, "linear", "flops")
    save(figure, Path("results/methods_compute"))   # methods_compute.png and .svg
"""

import math
from pathlib import Path

import pandas as pd

from bench.results.summary import labels

METRIC_NAMES = {"linear": "linear probe", "knn@20": "k-NN (k=20)", "linear_1%": "1 %-label probe"}
COMPUTE_NAMES = {"flops": "compute used (FLOPs)", "device_hours": "compute used (device-hours)"}


def _figure(width: float = 6.4, height: float = 4.4, panels: int | None = None):
    """(figure, axes): one axes, or a list of `panels` side by side."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a cluster node
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels or 1, figsize=(width, height), constrained_layout=True, squeeze=False)
    return fig, (list(axes[0]) if panels else axes[0][0])


# Reference lines: grey, so that they never pass for a configuration (C0, C1, ... and their dotted
# inits); a dash per line and, past three lines, a darker or lighter shade, so that no two look alike.
REFERENCE_DASHES = ("--", ":", "-.")
REFERENCE_GREYS = ("0.35", "0.6", "0.1")


def reference_style(i: int) -> dict:
    """The line style of the i-th reference row: distinct for the first 9."""
    dash, shade = REFERENCE_DASHES[i % 3], REFERENCE_GREYS[(i // 3) % 3]
    return {"linestyle": dash, "color": shade, "linewidth": 1.2}


def _references(ax, summary: pd.DataFrame, metric: str, vertical: bool = False) -> None:
    refs = summary[summary["seeds"].isna()] if "seeds" in summary else summary.iloc[0:0]
    refs = refs[refs[metric].notna()] if metric in refs else refs.iloc[0:0]
    line = ax.axvline if vertical else ax.axhline
    for i, (_, ref) in enumerate(refs.iterrows()):
        line(ref[metric], label=ref["method"], **reference_style(i))


def tick_label(value: float) -> str:
    """3e12 or 2.5e12 rather than 3000000000000; 0.02 as it is."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{value:g}" if -3 <= int(exponent) <= 3 else f"{float(mantissa):g}e{int(exponent)}"


MARGIN = 1.3  # a log axis over less than a decade reaches this factor beyond its points on each side
# the coarsest of these that gives three ticks: 1, 2, 5; then 1, 2, ... 9; then 1, 1.5, ... 9.5
MANTISSAS = ((1, 2, 5), tuple(range(1, 10)), tuple(m / 2 for m in range(2, 20)))


def readable_log_ticks(ax, values) -> None:
    """A log x axis over less than a decade (a sweep with one budget) has no power of ten to label,
    and its minor labels pile up: the axis reaches MARGIN beyond the points on each side and labels
    round values within it (1e12, 2e12, 5e12; 8e11, 9e11, 1e12; 2.5e12, 3e12, 3.5e12)."""
    from matplotlib.ticker import NullLocator

    values = [float(v) for v in values if pd.notna(v) and 0 < float(v) < math.inf]
    if not values or max(values) / min(values) >= 10:
        return
    low, high = min(values) / MARGIN, max(values) * MARGIN
    decades = range(math.floor(math.log10(low)), math.floor(math.log10(high)) + 1)
    for mantissas in MANTISSAS:
        ticks = [m * 10.0**e for e in decades for m in mantissas if low <= m * 10.0**e <= high]
        if len(ticks) >= 3:
            break
    ax.set_xlim(low, high)
    ax.set_xticks(ticks, [tick_label(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def compute_plot(summary: pd.DataFrame, metric: str = "linear", x: str = "flops"):
    """Top-1 against compute used: a line per configuration through its budgets, error bars over seeds.
    Where the sweep has init runs (budget 0), each method's initialisation is a dotted line of its
    colour, and a second panel shows the gain over it (paired by seed, error bars its std; a hollow
    marker: within noise, |gain| <= 2 std)."""
    runs = summary[summary["seeds"].notna()].copy()
    runs["label"] = labels(summary)[runs.index]
    gain = f"gain_{metric}"
    with_gains = gain in runs and runs[gain].notna().any()
    fig, axes = _figure(11.5 if with_gains else 6.4, 4.4, panels=2 if with_gains else 1)
    ax = axes[0]
    trained = runs[runs["budget"] > 0]
    for i, (label, rows) in enumerate(trained.groupby("label", sort=False)):
        rows = rows.sort_values(x)
        yerr = rows.get(f"{metric}_std")
        color = f"C{i}"
        ax.errorbar(
            rows[x],
            rows[metric],
            yerr=None if yerr is None else yerr.fillna(0),
            marker="o",
            capsize=3,
            label=label,
            color=color,
        )
        first = rows.iloc[0]
        same = [runs[k] == first[k] for k in ("method", "backbone", "encoder") if k in runs]
        init = runs[(runs["budget"] == 0) & pd.concat(same, axis=1).all(axis=1)]
        if len(init) and pd.notna(init[metric].iloc[0]):
            ax.axhline(init[metric].iloc[0], color=color, linestyle=":", linewidth=1)
        if with_gains:
            g = rows[gain]
            axes[1].errorbar(rows[x], g, yerr=rows[f"{gain}_std"].fillna(0), capsize=3, color=color, label=label)
            noise = rows.get(f"{gain}_noise", pd.Series(False, index=rows.index)).fillna(False).astype(bool)
            axes[1].scatter(rows[x][~noise], g[~noise], color=color, zorder=3)
            axes[1].scatter(rows[x][noise], g[noise], facecolors="white", edgecolors=color, zorder=3)
    _references(ax, summary, metric)
    name = METRIC_NAMES.get(metric, metric)
    for a in axes:
        a.set_xscale("log")
        readable_log_ticks(a, trained[x])
        a.set_xlabel(COMPUTE_NAMES.get(x, x))
        a.grid(alpha=0.3)
    ax.set_ylabel(f"{name} top-1 (%)")
    ax.set_title(f"{name} against compute" + (" (dotted: init)" if with_gains else ""))
    if with_gains:
        axes[1].axhline(0.0, color="0.3", linewidth=1)
        axes[1].set_ylabel(f"gain over own init ({name}, points)")
        axes[1].set_title("gain over own init (hollow: within noise)")
    handles, names = ax.get_legend_handles_labels()  # the configurations and the reference lines
    axes[-1].legend(handles, names, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside, not over
    return fig


def ablation_bars(summary: pd.DataFrame, metric: str = "linear", budget: float | None = None):
    """A horizontal bar per configuration at one budget (default: the largest), best on top, error
    bars over seeds. The axis starts a little below the lowest bar or reference line, so
    differences of a point stay visible."""
    runs = summary[summary["seeds"].notna()].copy()
    runs["label"] = labels(summary)[runs.index]
    budget = runs["budget"].max() if budget is None else budget
    runs = runs[runs["budget"] == budget]
    runs = runs.sort_values(metric, ascending=True)
    fig, ax = _figure(8.0, max(3.0, 0.35 * len(runs) + 1.5))
    std = runs.get(f"{metric}_std")
    ax.barh(range(len(runs)), runs[metric], xerr=None if std is None else std.fillna(0), capsize=3, color="C0")
    ax.set_yticks(range(len(runs)), runs["label"], fontsize="small")
    refs = summary.loc[summary["seeds"].isna(), metric].dropna() if metric in summary else pd.Series(dtype=float)
    _references(ax, summary, metric, vertical=True)
    low = min([*runs[metric].dropna(), *refs]) if len(runs) else 0.0
    ax.set_xlim(left=max(0.0, 5 * (low // 5) - 5))
    ax.set_xlabel(f"{METRIC_NAMES.get(metric, metric)} top-1 (%)")
    ax.set_ylabel("configuration")
    kind = runs["budget_kind"].iloc[0] if len(runs) else ""
    ax.set_title(f"{METRIC_NAMES.get(metric, metric)} by configuration at {budget:g} {kind}")
    ax.grid(axis="x", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="lower right")
    return fig


HEALTH_SIGNALS = ("rankme", "feature_std", "moved", "target_std", "sigreg")


def health_plot(curves: pd.DataFrame, runs: pd.DataFrame):
    """Each health signal (a panel each: RankMe, feature std, distance moved, the methods' own) against
    the FLOPs spent when it was measured, a line per run in its method's colour. The x axis is linear
    up to the smallest positive FLOPs and logarithmic beyond, so step 0 (no FLOPs yet) shows."""
    signals = [c for c in HEALTH_SIGNALS if c in curves and curves[c].notna().any()]
    methods = runs.set_index("run")["method"].to_dict() if "run" in runs else {}
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(methods.get(r, r) for r in curves["run"]))}
    fig, axes = _figure(3.6 * len(signals) + 1.6, 3.6, panels=len(signals))
    positive = curves.loc[curves["flops"] > 0, "flops"]
    for ax, signal in zip(axes, signals, strict=True):
        for run, rows in curves[curves[signal].notna()].groupby("run", sort=False):
            method = methods.get(run, run)
            ax.plot(rows["flops"], rows[signal], marker=".", color=colours[method], alpha=0.7, label=method)
        if len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xlabel(COMPUTE_NAMES["flops"])
        ax.set_title(signal)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    unique = dict(zip(names, handles, strict=True))  # one entry per method
    axes[-1].legend(unique.values(), unique.keys(), fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


def rankme_plot(runs: pd.DataFrame, metric: str = "linear"):
    """Final RankMe (x) against `metric` (y) over the sweep's trained runs (headline, budget > 0), a
    point per run in its method's colour, Spearman's rank correlation over all of them in the title."""
    from scipy import stats

    trained = runs[(runs["budget"] > 0) & runs["rankme"].notna() & runs[metric].notna()]
    if "role" in trained:
        trained = trained[trained["role"] == "headline"]
    rho, p = stats.spearmanr(trained["rankme"], trained[metric]) if len(trained) > 2 else (math.nan, math.nan)
    fig, ax = _figure()
    for i, (method, rows) in enumerate(trained.groupby("method", sort=False)):
        ax.scatter(rows["rankme"], rows[metric], color=f"C{i}", label=method)
    ax.set_xlabel("RankMe at the end of training")
    ax.set_ylabel(f"{METRIC_NAMES.get(metric, metric)} top-1 (%)")
    ax.set_title(
        f"RankMe against {METRIC_NAMES.get(metric, metric)}: Spearman ρ = {rho:.2f} (p = {p:.2g}, n = {len(trained)})"
    )
    ax.grid(alpha=0.3)
    if len(trained):
        ax.legend(fontsize="small")
    return fig


def save(fig, stem: Path) -> list[Path]:
    """Write STEM.png and STEM.svg; return their paths."""
    import matplotlib.pyplot as plt

    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths
