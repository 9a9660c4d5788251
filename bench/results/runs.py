"""Reading a sweep's run folders, once and checked: what the tables are made of.

`run_dirs` finds the run folders; `read_runs` reads each one's config, summary, state and
evaluation and says why it leaves any out (a damaged file, another version of the code, a
config.yaml changed after training): never a silent mix. `eval_columns` flattens an eval.json
record into the columns of the tables; `health_curves` reads the health signals' records.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BenchError, DamagedFile

if TYPE_CHECKING:  # the config modules import the methods, so torch: bench status does without them
    from bench.config.schema import RunConfig
    from bench.runstate import QueueView

from bench.rundir import (
    EVAL,
    METRICS,
    RUN_FILES,
    config_changed,
    is_number,
    parse_record,
    read_json,
    read_run_config,
    read_summary,
)


def run_dirs(sweep_dir: Path) -> list[Path]:
    """The run folders of a sweep folder: each sub-folder with a config.yaml, or with another file a run
    writes (a run whose config.yaml was lost: reading it says so, rather than the run vanishing)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and any((p / name).exists() for name in RUN_FILES))


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


HEALTH = "health/"  # the prefix of the health signals' keys in metrics.jsonl (bench/train/health.py)


def health_curves(sweep_dir: Path, names) -> list[dict]:
    """The health records of the named runs of a sweep folder (their metrics.jsonl), as rows: run,
    step, flops and each signal without its prefix. A run without health records (trained before
    training logged them, or with `health.every: 0`) adds none; nor does a name that is no run folder."""
    rows = []
    for name in names:
        path = Path(sweep_dir) / str(name) / METRICS
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            record = parse_record(line)
            if record is None or not any(k.startswith(HEALTH) for k in record):
                continue
            signals = {k.removeprefix(HEALTH): v for k, v in record.items() if k.startswith(HEALTH)}
            rows.append({"run": str(name), "step": record["step"], "flops": record.get("flops"), **signals})
    return rows


@dataclass
class RunFiles:
    """What the tables read of one run folder, read once and checked."""

    run_dir: Path
    config: "RunConfig"
    summary: dict  # summary.json ({} before training ends)
    state: dict  # runstate.run_state: where it stands, as `bench status` says
    evaluation: dict  # eval.json's columns


def read_runs(
    sweep_dir: Path, dirs: list[Path] | None = None, queue: "QueueView | None" = None
) -> tuple[list[RunFiles], list[str]]:
    """The runs of a sweep folder (or `dirs`, some of them) that can be tabled, and why the others were
    left out: one line per damaged run, naming its file, and one per kind — made by another version
    of jepa-bench, or config.yaml changed since the run was made (rundir.config_changed). Never a
    silent mix: those numbers mean something else. `queue`: as for results/status.py's status_table."""
    from bench.config.schema import CONFIG_VERSION
    from bench.runstate import run_state

    dirs = run_dirs(sweep_dir) if dirs is None else dirs
    runs, damaged, other_version, edited = [], [], [], []
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


def tabled_runs(sweep_dir: Path, queue: "QueueView | None" = None) -> tuple[list[RunFiles], list[str]]:
    """read_runs over a sweep folder, refused with one error when it holds no run folder or no run that
    can be tabled; the runs, and one line for each run or kind of run left out."""
    dirs = run_dirs(sweep_dir)
    if not dirs:
        raise BenchError(f"no runs under {sweep_dir}")
    runs, left_out = read_runs(sweep_dir, dirs, queue)
    if not runs:
        more = f" (and {len(left_out) - 1} more reason(s))" if len(left_out) > 1 else ""
        raise BenchError(f"no run under {sweep_dir} can be tabled: {left_out[0]}{more}")
    return runs, left_out
