"""Results are data: pure functions over run folders → tables.

`status_table` says where each run of a sweep stands; `collate` makes the leaderboard, a
row per run (method, backbone, the config keys that differ between the sweep's runs,
budget, compute used, k-NN top-1 per k, seed) plus the raw-pixel reference row. A run with a
damaged file reads `damaged` in the first and is left out of the second (`read_runs` says why),
next to every healthy run; so is, from the tables, a run whose config.yaml is no longer the one
it was made with.

Each run has a role: `headline` (the rows the comparison is about), `tuning` (a sweep's search,
scored on validation only: no test numbers; its compute is reported apart, `tuning_flops`) or
`init` (budget 0: the method's random initialisation through the same protocol). A headline
run's gain over its own initialisation is paired by seed (`gain_linear` = its linear top-1
minus that of its method's init run of the same seed); `summarize` gives its mean and std over
seeds and calls a gain within noise when |mean| <= 2 std. Within a budget, configurations are
ranked by the headline metric and adjacent ones whose per-seed values a Welch t-test does not
separate (p >= 0.05) are tied (`ranking`).

`leaderboards` gives the tables the files hold (every column); `narrow_board` the one a terminal
shows, 100 characters wide: per configuration its budget, steps, k-NN, linear, 1 % and the gains.
"""

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench.config.schema import CONFIG_VERSION, RunConfig, to_dict
from bench.errors import BenchError, DamagedFile
from bench.rundir import (
    CONFIG,
    EVAL,
    METRICS,
    RUN_FILES,
    config_changed,
    is_number,
    last_record,
    read_json,
    read_run_config,
    read_summary,
)

if TYPE_CHECKING:
    from bench.launch.queue import Queue

FIXED_COLUMNS = ("method", "backbone", "seed", "budget.kind", "budget.value", "eval.scope")
GAIN_METRICS = ("knn@20", "linear", "linear_1%")
NOISE_STDS = 2.0  # a gain is within noise when |mean| <= 2 std over seeds
TIE_P = 0.05  # adjacent configurations are tied when Welch's t-test gives p >= 0.05
BARELY_MOVED = 0.05  # an evaluated encoder whose weights moved < 5 % of their norm from its init


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The run folders of a sweep folder: each sub-folder with a config.yaml, or with another file a run
    writes (a run whose config.yaml was lost: reading it says so, rather than the run vanishing)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and any((p / name).exists() for name in RUN_FILES))


STATUS_COLUMNS = ("run", "state", "job", "queue", "step", "progress", "loss", "knn@20", "error")


def status_table(sweep_dir: Path) -> pd.DataFrame:
    """A row per run: its state (SLURM's view of its job beside it), progress, loss, k-NN@20 and,
    for a failed or crashed run, the last line of its error. A run with a damaged file (not JSON,
    the wrong shape, config.yaml missing) reads `damaged`, the file named in `error`, and the
    others are shown as ever; `attrs["damaged"]` holds each damaged run's one-line message. The
    configs are not parsed here (a thousand runs in well under a second): collate and eval check them."""
    from bench.launch.queue import Queue

    queue, rows, damaged = Queue(), [], []
    for run_dir in run_dirs(sweep_dir):
        try:
            rows.append(status_row(run_dir, queue))
        except DamagedFile as e:
            damaged.append(str(e))
            rows.append({"run": run_dir.name, "state": "damaged", "error": str(e).replace(f"{run_dir}{os.sep}", "")})
    table = pd.DataFrame(rows, columns=list(STATUS_COLUMNS))
    table.attrs["damaged"] = damaged
    return table


def status_row(run_dir: Path, queue: "Queue") -> dict:
    """One run's row of status_table; DamagedFile when one of the files it reads is damaged."""
    from bench.runstate import run_state

    if not (run_dir / CONFIG).is_file():
        read_run_config(run_dir)  # says which file is missing
    read_summary(run_dir)
    state = run_state(run_dir, queue)  # reads state.json and job.json through their checked readers
    metrics = last_record(run_dir / METRICS)
    evaluation = read_eval(run_dir)
    job = state.get("eval_job_id") if state["state"] in ("evaluating", "trained") else state.get("job_id")
    return {
        "run": run_dir.name,
        "state": state["state"],
        "job": job or state.get("job_id", ""),
        "queue": state.get("queue", ""),
        "step": metrics["step"] if metrics else 0,
        "progress": round(metrics["progress"], 3) if is_number(metrics.get("progress")) else 0.0,
        "loss": metrics["loss"] if is_number(metrics.get("loss")) else None,
        "knn@20": evaluation.get("knn@20"),
        "error": state.get("error", "") if state["state"] in ("failed", "crashed") else "",
    }


def read_eval(run_dir: Path) -> dict:
    """eval.json's columns (eval_columns); {} when there is none; DamagedFile when it is not an
    evaluation record (a key missing, a number that is not one)."""
    path = run_dir / EVAL
    record = read_json(path) or {}
    try:
        columns = eval_columns(record)
    except (KeyError, TypeError, AttributeError):  # what indexing a record of another shape raises
        columns = None
    texts = ("encoder", "linear_view")
    if columns is None or not all(is_number(v) for k, v in columns.items() if k not in texts):
        raise DamagedFile(f"{path} is damaged (not an evaluation record): run `bench eval {run_dir}` to redo it")
    return columns


@dataclass
class RunFiles:
    """What the tables read of one run folder, read once and checked."""

    run_dir: Path
    config: RunConfig
    summary: dict  # summary.json ({} before training ends)
    state: dict  # runstate.run_state: where it stands, as `bench status` says
    evaluation: dict  # eval.json's columns


def read_runs(sweep_dir: Path, dirs: list[Path] | None = None) -> tuple[list[RunFiles], list[str]]:
    """The runs of a sweep folder (or `dirs`, some of them) that can be tabled, and why the others were
    left out: one line per damaged run, naming its file, and one per kind — made by another version
    of jepa-bench, or config.yaml changed since the run was made (rundir.config_changed). Never a
    silent mix: those numbers mean something else."""
    from bench.launch.queue import Queue
    from bench.runstate import run_state

    dirs = run_dirs(sweep_dir) if dirs is None else dirs
    queue, runs, damaged, other_version, edited = Queue(), [], [], [], []
    for run_dir in dirs:
        try:
            cfg = read_run_config(run_dir)
            if cfg.version != CONFIG_VERSION:
                other_version.append(run_dir)
            elif config_changed(run_dir, cfg):
                edited.append(run_dir)
            else:
                summary = read_summary(run_dir) or {}
                runs.append(RunFiles(run_dir, cfg, summary, run_state(run_dir, queue), read_eval(run_dir)))
        except DamagedFile as e:
            damaged.append(f"run {run_dir.name}: {e}")
    kinds = (
        (other_version, f"made by another jepa-bench (config version other than {CONFIG_VERSION})"),
        (edited, "whose config.yaml was changed after training"),
    )
    left_out = [f"{len(d)} run(s) of {sweep_dir} {why}: their numbers mean something else" for d, why in kinds if d]
    return runs, damaged + left_out


def flat_config(cfg: RunConfig) -> dict:
    """The run's resolved config as {dotted key: value} (lists for tuples)."""
    flat: dict = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    full = json.loads(json.dumps(asdict(cfg)))  # ADDED_LATER fields too, so their values show
    own = to_dict(cfg).keys()  # the run's own method section only
    walk({k: v for k, v in full.items() if k in own}, "")
    return flat


def varying_keys(configs: list[dict]) -> list[str]:
    """Config keys that take more than one value among the runs that have them: what a sweep varied
    (and, across methods, where their recipes differ)."""
    keys = dict.fromkeys(k for c in configs for k in c if k not in FIXED_COLUMNS)
    return [k for k in keys if len({json.dumps(c[k]) for c in configs if k in c}) > 1]


def run_row(run: RunFiles, config: dict, keys: list[str]) -> dict:
    """A run's row. `status`: how its training ended (summary.json: done, failed) once it has; before
    that, where it stands as `bench status` says (new, submitted, running, ..., and failed or crashed
    for a run that ended before its first step), with the reason in `error`."""
    compute = run.summary.get("compute", {})
    row = {"run": run.run_dir.name, "method": config["method"], "backbone": config["backbone"]}
    row |= {k: config.get(k) for k in keys}
    row |= {
        "budget_kind": config["budget.kind"],
        "budget": config["budget.value"],
        "steps": compute.get("steps"),
        "device_hours": compute.get("device_hours"),
        "flops": compute.get("flops"),
        "images_seen": compute.get("images_seen"),
        "epochs": compute.get("epochs"),
        "budget_used": compute.get("budget_used"),
    }
    row |= run.evaluation
    role = "tuning" if config.get("eval.scope") == "val" else "init" if config["budget.value"] == 0 else "headline"
    if "status" in run.summary:
        status, error = run.summary["status"], run.summary.get("reason") or run.state.get("error", "")
    else:
        status, error = run.state["state"], run.state.get("error", "")
    error = error if status in ("failed", "crashed") else ""
    row |= {"seed": config["seed"], "role": role, "status": status, "error": error}
    return row


def reference_row(name: str, record: dict) -> dict:
    return {"run": name, "method": name} | eval_columns(record) | {"status": "reference"}


def eval_columns(record: dict) -> dict:
    """The encoder scored (student or teacher), k-NN top-1 per k and its T (always say which k and T
    a number used), few-shot k-NN, the linear probe's test top-1, and each low-shot probe's mean and
    std over its draws."""
    knn = record.get("knn", {})
    columns = {"encoder": record["encoder"]} if "encoder" in record else {}
    if "val" in record:  # the validation score tuning selects by (never test)
        columns["val_knn@20"] = record["val"]["knn@20"]
    columns |= {f"knn@{k}": v for k, v in knn.get("top1", {}).items()}
    if "temperature" in knn:
        columns["knn_T"] = knn["temperature"]
    for n, r in record.get("knn_fewshot", {}).items():
        columns[f"knn_{n}shot"] = r["mean"]
    if "linear" in record:
        columns["linear"] = record["linear"]["top1"]
        columns["linear_view"] = record["linear"]["best"]["view"]
    for label, r in record.get("lowshot", {}).items():
        columns[f"linear_{label}"] = r["mean"]
        columns[f"linear_{label}_std"] = r["std"]
    if "linear_cls" in record:  # the [cls] probe of the methods that have one: an extra column, never the headline
        columns["linear_cls"] = record["linear_cls"]["top1"]
    if "moved" in record:
        columns["moved"] = record["moved"]
    return columns


def collate(
    sweep_dir: Path, references: dict[str, dict] | None = None, runs: list[RunFiles] | None = None
) -> pd.DataFrame:
    """Leaderboard of a sweep folder (or of `runs`, as read_runs gives them), best k-NN@20 first,
    reference rows last. Runs read_runs leaves out are not in it."""
    runs = read_runs(sweep_dir)[0] if runs is None else runs
    return add_references(run_table(runs), references)


def run_table(runs: list[RunFiles]) -> pd.DataFrame:
    """A row per run with its gains, best k-NN@20 first; attrs["varied"]: the keys the runs differ in."""
    configs = [flat_config(run.config) for run in runs]
    keys = varying_keys(configs)
    rows = [run_row(run, c, keys) for run, c in zip(runs, configs, strict=True)]
    table = pd.DataFrame(rows)
    table.attrs["varied"] = keys
    table = add_gains(table)
    if "knn@20" in table:
        table = table.sort_values("knn@20", ascending=False, na_position="last")
    return table


def add_references(table: pd.DataFrame, references: dict[str, dict] | None) -> pd.DataFrame:
    """run_table's table with the reference rows last, and the attrs the summaries group by."""
    keys = table.attrs["varied"]
    refs = pd.DataFrame([reference_row(name, rec) for name, rec in (references or {}).items()])
    if len(refs):
        table = pd.concat([table, refs], ignore_index=True)
    table = table.reset_index(drop=True)
    tuning = table[table.get("role", pd.Series(dtype=str)) == "tuning"]
    table.attrs["tuned"] = [k for k in keys if k in tuning and tuning[k].astype(str).nunique() > 1]
    scored = ["encoder"] if "encoder" in table else []  # the encoder each evaluation scored
    table.attrs["group"] = [
        "method",
        "backbone",
        *keys,
        *scored,
        "budget_kind",
        "budget",
    ]  # a configuration, bar its seed
    return table


def add_gains(table: pd.DataFrame) -> pd.DataFrame:
    """gain_<metric> of each headline run: its metric minus that of the init run of the same method,
    backbone, evaluated encoder and seed (the weights it started from, through the same protocol)."""
    if "role" not in table or not (table["role"] == "init").any():
        return table
    shape = [k for k in table.attrs.get("varied", []) if k.startswith("data.")]  # init runs exist per data.*
    keys = [k for k in ("method", "backbone", "encoder", "seed", *shape) if k in table]
    inits = table[(table["role"] == "init") & (table["status"] == "done")].drop_duplicates(keys)
    metrics = [m for m in GAIN_METRICS if m in table]
    merged = table[keys].merge(inits[keys + metrics], on=keys, how="left", suffixes=("", "_init"))
    for m in metrics:
        gain = table[m].to_numpy(dtype=float) - merged[m].to_numpy(dtype=float)
        table[f"gain_{m}"] = np.where(table["role"] == "headline", gain, np.nan)
    return table


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
    runs = table[table["status"] == "done"].copy()  # a run still training or failed has no final compute
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


def compute_table(summary: pd.DataFrame, metric: str = "linear") -> pd.DataFrame:
    """Compute against accuracy: a row per budget (budget 0: each method's initialisation), a column
    per configuration — mean ± std over seeds, then in brackets the gain over its own init with its
    std ("within noise" when |gain| <= 2 std; "barely moved" when the encoder's weights moved < 5 %) —,
    one per reference row, and the ranking of the budget ("a > b = c": b and c not separated by
    Welch's t-test at p < 0.05)."""
    runs = summary[summary["seeds"].notna()].copy()
    runs["label"] = labels(summary)[runs.index]
    gain = f"gain_{metric}"

    def cell(row) -> str:
        if pd.isna(row[metric]):
            return ""
        std = row.get(f"{metric}_std")
        text = f"{row[metric]:.2f} ± {std:.2f}" if pd.notna(std) else f"{row[metric]:.2f}"
        if pd.notna(row.get(gain)):
            g_std = row.get(f"{gain}_std")
            text += f" ({row[gain]:+.2f}" + (f" ± {g_std:.2f}" if pd.notna(g_std) else "")
            text += ", within noise)" if row.get(f"{gain}_noise") is True else ")"
        if row.get("barely_moved") is True:
            text += " barely moved"
        return text

    runs["cell"] = runs.apply(cell, axis=1)
    kind = runs["budget_kind"].iloc[0] if len(runs) else "budget"
    inits = runs[runs["role"] == "init"] if "role" in runs else runs.iloc[0:0]
    runs = runs.drop(inits.index)
    table = runs.pivot_table(index="budget", columns="label", values="cell", aggfunc="first", sort=False)
    if len(inits):  # budget 0: each configuration's column shows its method's init
        keys = [k for k in ("method", "backbone", "encoder") if k in runs]
        of = runs.drop_duplicates("label").set_index("label")[keys]
        cells = {}
        for label in table.columns:
            match = inits[(inits[keys] == of.loc[label, keys]).all(axis=1)]
            cells[label] = match["cell"].iloc[0] if len(match) else None
        table = pd.concat([pd.DataFrame(cells, index=[0.0]), table])
        table.index.name = "budget"
    table = table.sort_index()
    if "rank" in runs and runs["rank"].notna().any():
        table["ranking"] = [ranking(runs[(runs["budget"] == b) & runs["rank"].notna()]) for b in table.index]
    table = table.reset_index().rename(columns={"budget": f"budget ({kind})"})
    for _, ref in summary[summary["seeds"].isna()].iterrows():
        table[ref["method"]] = f"{ref[metric]:.2f}" if metric in ref and pd.notna(ref[metric]) else ""
    table.columns.name = None
    return table


def ranking(rows: pd.DataFrame) -> str:
    """'a > b = c': best first; '=' where the two neighbours are not separated (Welch, p >= 0.05)."""
    rows = rows.sort_values("rank")
    text = ""
    for i, (_, row) in enumerate(rows.iterrows()):
        text += row["label"]
        if i + 1 < len(rows):
            text += " = " if row["tied_next"] else " > "
    return text


def accuracy_columns(table: pd.DataFrame) -> list[str]:
    """The columns of a runs table a --metric may name: top-1 accuracies (k-NN per k, few-shot k-NN,
    the linear, [cls] and low-shot probes, the validation score), not their std, view or temperature."""
    other = ("knn_T", "linear_view")
    return [
        c
        for c in table.columns
        if c.startswith(("knn", "val_knn", "linear")) and c not in other and not c.endswith("_std")
    ]


def check_metric(table: pd.DataFrame, metric: str, sweep: str) -> None:
    """One clear error unless `metric` is an accuracy column that some run of the sweep has a value of:
    checked on the runs alone, before any reference row is computed."""
    known = accuracy_columns(table)
    if metric in known and table[metric].notna().any():
        return
    if metric in known or metric in GAIN_METRICS:
        raise BenchError(f"no run of {sweep} has a {metric!r} result yet (evaluate them: bench eval)")
    choices = ", ".join(dict.fromkeys([*GAIN_METRICS, *known]))
    raise BenchError(f"--metric {metric!r} is not an accuracy column of {sweep}; choose one of: {choices}")


BOARD_METRICS = {"knn@20": "k-NN@20", "linear": "linear", "linear_1%": "1 %"}
BOARD_WIDTH = 100  # a terminal's width, with room to spare on most
NOISE_MARK = "~"


def narrow_board(summary: pd.DataFrame, width: int = BOARD_WIDTH) -> pd.DataFrame:
    """The leaderboard a terminal shows, at most `width` characters a line: a row per configuration —
    its name, budget, steps, k-NN@20, linear and 1 % top-1 (mean ± std over seeds) and the gain of
    each over its method's own init (Δ, mean over seeds; `~` where within noise) — then each
    method's init (budget `init`) and the reference rows. Names too long for the width are shortened
    in the middle. The wide tables (every column, the gains' std, full names) are the CSV and
    Markdown files; `board.attrs["note"]` says what Δ and ~ mean."""
    rows = summary.copy()
    rows["configuration"] = labels(summary) if "seeds" in rows else rows["method"]
    configs = rows[rows["seeds"].notna()] if "seeds" in rows else rows.iloc[0:0]
    refs = rows.drop(configs.index)
    init = configs["role"] == "init" if "role" in configs else pd.Series(False, index=configs.index)
    order = [c for c in ("rank", "linear") if c in configs]
    heads = configs[~init].sort_values(["budget", *order], ascending=[True, *[c == "rank" for c in order]])
    metrics = [m for m in BOARD_METRICS if m in rows and rows[m].notna().any()]
    spread = any(f"{m}_std" in configs and configs[f"{m}_std"].notna().any() for m in metrics)

    def number(value, std=None, sign: str = "") -> str:
        if pd.isna(value):
            return "-"
        if pd.notna(std):
            return f"{value:{sign}.1f}±{std:.1f}"
        return f"{value:{sign}.1f}" if spread else f"{value:{sign}.2f}"

    def line(row, budget: str) -> dict:
        out = {"configuration": row["configuration"], "budget": budget}
        out["steps"] = "-" if pd.isna(row.get("steps")) else f"{row['steps']:.0f}"
        for m in metrics:
            out[BOARD_METRICS[m]] = number(row[m], row.get(f"{m}_std"))
        for m in metrics:
            gain = row.get(f"gain_{m}")
            cell = "" if pd.isna(gain) else number(gain, sign="+")
            out[f"Δ{BOARD_METRICS[m]}"] = cell + (NOISE_MARK if row.get(f"gain_{m}_noise") is True else "")
        return out

    lines = [line(r, f"{r['budget']:g}") for _, r in heads.iterrows()]
    lines += [line(r, "init") for _, r in configs[init].iterrows()]
    lines += [line(r, "-") for _, r in refs.iterrows()]
    board = pd.DataFrame(lines)
    if board.empty:
        return board
    board = board[[c for c in board.columns if not c.startswith("Δ") or board[c].ne("").any()]]
    # two characters between columns (rich's padding; plain text needs one)
    others = sum(max(len(c), board[c].str.len().max()) + 2 for c in board.columns if c != "configuration")
    room = max(width - others, len("configuration"))
    board["configuration"] = board["configuration"].map(lambda name: shorten(name, room))
    notes = []
    if any(c.startswith("Δ") for c in board.columns):
        notes.append("Δ: gain over the method's own init, paired by seed")
    if board.apply(lambda col: col.str.endswith(NOISE_MARK)).any().any():
        notes.append(f"{NOISE_MARK}: within noise, |gain| <= {NOISE_STDS:g} std over seeds")
    if notes:
        board.attrs["note"] = "; ".join(notes)
    return board


def shorten(text: str, room: int) -> str:
    """`text` cut in the middle to `room` characters ("ijepa [tea…ets=4)"); as it is when it fits."""
    if len(text) <= room:
        return text
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]


def to_markdown(table: pd.DataFrame) -> str:
    cells = table.astype(object).where(table.notna(), None)  # tabulate leaves NaN as "nan"
    return cells.to_markdown(index=False, floatfmt=".4g", missingval="")


def leaderboards(table: pd.DataFrame, metric: str = "linear") -> dict[str, pd.DataFrame]:
    """The tables of a sweep: a row per run, a row per configuration (mean ± std over seeds), and
    compute against accuracy (rows: budget, columns: configuration); reference rows in each."""
    summary = summarize(table, metric)
    return {"runs": table, "summary": summary, "compute": compute_table(summary, metric)}


SUMMARY_COLUMNS = (
    "knn@20",
    "linear",
    "linear_1%",
    "linear_cls",
    "gain_knn@20",
    "gain_linear",
    "gain_linear_1%",
    "moved",
    "device_hours",
    "flops",
    "images_seen",
    "epochs",
    "tuning_flops",
    "tuning_device_hours",
)


def markdown_report(tables: dict[str, pd.DataFrame], title: str, metric: str, plots: list[str] = ()) -> str:
    """The tables as Markdown, with the plots they come with."""
    summary = tables["summary"]
    keep = [c for c in summary.columns if c in (*summary.attrs.get("group", ()), "seeds")]
    keep += [c for name in SUMMARY_COLUMNS for c in (name, f"{name}_std") if c in summary.columns]
    keep += [c for c in ("gain_linear_noise", "barely_moved", "rank", "p_next", "tied_next") if c in summary.columns]
    parts = [f"# {title}", "", f"## Compute against accuracy ({metric}, mean ± std over seeds)", ""]
    parts += [to_markdown(tables["compute"]), ""]
    parts += [f"![{Path(p).stem}]({p})" for p in plots] + ([""] if plots else [])
    parts += ["## Configurations (mean and std over seeds; reference rows have none)", ""]
    parts += [to_markdown(summary[keep]), "", "## Runs", "", to_markdown(tables["runs"]), ""]
    return "\n".join(parts)


def leaderboard_files(stem: Path) -> list[Path]:
    """STEM.csv (runs), STEM_summary.csv, STEM_compute.csv and STEM.md."""
    names = (f"{stem.name}.csv", f"{stem.name}_summary.csv", f"{stem.name}_compute.csv", f"{stem.name}.md")
    return [stem.with_name(name) for name in names]


def write_leaderboards(tables: dict[str, pd.DataFrame], stem: Path, title: str, metric: str) -> list[Path]:
    """STEM.csv (runs), STEM_summary.csv, STEM_compute.csv and STEM.md; their paths."""
    paths = leaderboard_files(stem)
    write_csv(tables["runs"], paths[0])
    write_csv(tables["summary"], paths[1])
    write_csv(tables["compute"], paths[2])
    paths[3].write_text(markdown_report(tables, title, metric))
    return paths


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """6 significant digits: integers print as integers even in columns with empty cells."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, float_format="%.6g")
