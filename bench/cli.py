"""The `bench` command.

    bench sweep sweeps/masks.yaml     # launch a sweep (returns at once; --wait to block); masks.yaml: the same
    bench status sweeps/masks.yaml    # where every run stands
    bench collate sweeps/masks.yaml   # the CSV leaderboard, printed
    bench eval runs/masks/RUN_ID      # (re-)evaluate a run folder, or every run of a sweep folder
    bench cancel sweeps/masks.yaml    # cancel the jobs of a sweep's active runs
    bench train -c my.yaml optim.lr=5e-4 --out runs/scratch/one   # one run, in this process

User mistakes (bad YAML, unknown keys, missing data) print one line on stderr and exit with 2.
A sweep whose runs did not all finish, when it ran them (--executor debug) or waited for them
(--wait), says so in one line and exits with 1. A Ctrl-C in `bench sweep` or `bench train` stops
the jobs it started (their runs resume on the next call) and exits with 130.
"""

import functools
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import BenchError, TrainingFailed

app = typer.Typer(
    help="Pre-train I-JEPA and its baselines under equal compute budgets; evaluate and compare them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RootOption = Annotated[
    Path, typer.Option("--root", envvar="BENCH_ROOT", help="Folder holding one sub-folder per sweep.")
]
TargetArgument = Annotated[str, typer.Argument(help="Sweep file, sweep folder or sweep name.")]
ProfileOption = Annotated[
    Path | None,
    typer.Option(
        "--profile", envvar="BENCH_SLURM_PROFILE", help="SLURM cluster profile (YAML: partition, account, ...)."
    ),
]


def user_errors(fn):
    """Turn a BenchError into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenchError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except TrainingFailed as e:
            typer.echo(f"run failed: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def sweep_file(target: str | Path) -> Path:
    """The sweep file a command names: the path, or sweeps/NAME for a bare name (said on stdout)."""
    from bench.launch.sweepfile import find_sweep_file

    path, fell_back = find_sweep_file(target)
    if fell_back:
        typer.echo(f"sweep file: {path} ({target} is not a file here)")
    return path


def check_folder_option(path: Path, option: str) -> None:
    """A folder the command will create or fill: refused at once when it, or a folder above it, is a
    file, or when a name in it is longer than the file system takes."""
    too_long = next((part for part in path.parts if len(part.encode()) > 255), None)
    if too_long is not None:
        raise BenchError(f"{option}: the name {too_long[:20]}... is longer than the 255 bytes a file system takes")
    blocking = blocking_file(path)
    if blocking is not None:
        raise BenchError(f"{option} {path}: {blocking} is a file; {option} must name a folder")


def blocking_file(path: Path) -> Path | None:
    """What stands in the way of making `path` a folder: the nearest existing one of it and the
    folders above it, when that is not a folder; None when nothing does."""
    nearest = next((p for p in (path, *path.parents) if p.exists()), None)
    return nearest if nearest is not None and not nearest.is_dir() else None


def sweep_dir(target: str, root: Path) -> Path:
    """A sweep file, a sweep folder or a sweep name → the sweep's folder under root."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        from bench.launch.sweepfile import sweep_name

        return root / sweep_name(sweep_file(path))
    folder = path if path.is_dir() else root / target
    if not folder.is_dir():
        raise BenchError(f"no sweep folder {folder} (run `bench sweep FILE` first, or pass --root)")
    return folder


NUMBER = r"[-+]?\d[\d.]*(e[-+]?\d+)?(±[\d.]+)?~?|-|"  # 71.63, +0.8~, 72.6±1.4, 3e+12, - (none)


def print_table(table, title: str | None = None) -> None:
    """A rich table on a terminal; plain text elsewhere (pipes, logs, greps). Numbers, and columns of
    numbers written as text, are right-aligned; cells are shown as they are (`[student]` is not markup)."""
    import sys

    import pandas as pd

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    if sys.stdout.isatty():
        from rich import box
        from rich.console import Console
        from rich.measure import Measurement
        from rich.table import Table
        from rich.text import Text

        # a rule under the header only, two spaces between columns (a space of padding, a blank rule)
        rich_table = Table(
            title=title, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), pad_edge=False
        )
        for column in table.columns:
            values = table[column]
            numbers = pd.api.types.is_numeric_dtype(values) or values.astype(str).str.fullmatch(NUMBER).all()
            rich_table.add_column(Text(str(column)), justify="right" if numbers else "left")
        for row in table.itertuples(index=False):
            rich_table.add_row(*(Text(cell(v)) for v in row))
        console = Console()
        width = Measurement.get(console, console.options.update(max_width=10_000), rich_table).maximum
        Console(width=max(width, console.width)).print(rich_table)  # wider than the terminal rather than cut
        return
    shown = table.copy()
    for column in table.columns:  # names and words left-aligned, as rich does (pandas right-aligns all)
        values = table[column]
        if not pd.api.types.is_numeric_dtype(values) and not values.astype(str).str.fullmatch(NUMBER).all():
            text = values.map(cell)
            width = max(len(str(column)), text.str.len().max())
            shown[column] = text.str.ljust(width)
            shown = shown.rename(columns={column: str(column).ljust(width)})
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 40):
        typer.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))


@app.command()
@user_errors
def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep YAML, e.g. sweeps/masks.yaml (or masks.yaml: found in sweeps/).")],
    root: RootOption = Path("runs"),
    executor: Annotated[
        str | None, typer.Option(help="local | debug | slurm (default: the sweep's, else slurm when sbatch is here)")
    ] = None,
    profile: ProfileOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until every run has finished.")] = False,
    parallel: Annotated[int, typer.Option(help="Local executor: runs trained at the same time.")] = 1,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Resubmit failed runs too.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs; launch nothing.")] = False,
) -> None:
    """Expand a sweep into runs and launch those not done yet (never one twice)."""
    from bench.launch import slurm
    from bench.launch.executors import EXECUTORS, LaunchOptions
    from bench.launch.submit import launch
    from bench.launch.submit import wait as wait_for
    from bench.launch.sweep import load_sweep

    if parallel < 1:
        raise BenchError(f"--parallel must be >= 1, got {parallel}")
    check_folder_option(root, "--root")
    spec = load_sweep(sweep_file(file))
    if (root / spec.name).exists() and not (root / spec.name).is_dir():
        raise BenchError(f"{root / spec.name} is a file where sweep {spec.name}'s folder goes: move it or pass --root")
    name = executor or spec.executor or ("slurm" if slurm.available() else "local")
    EXECUTORS.get(name)  # an unknown executor fails here, with the valid ones, before anything runs
    options = LaunchOptions(parallel=parallel, slurm=slurm.slurm_config(spec.slurm, profile))
    if dry_run:
        runs, waiting = spec.ready(root)
        for run in runs:
            typer.echo(f"{run.run_id}  {run.role}  {run.axes}  seed={run.config.seed}")
        if waiting:
            typer.echo(f"{waiting} (configuration, budget) pair(s) wait for their tuning runs to be scored")
        return
    where = root / spec.name
    launched: set[str] = set()
    mine: dict[str, Path] = {}  # the runs this call submitted: each must end done
    try:
        while True:  # tuned sweeps: the headline runs appear once their tuning runs are scored
            runs, waiting = spec.ready(root)
            submitted = launch(spec, root, name, options, retry_failed)
            launched |= {run.run_id for run in runs}
            mine |= {run_id: where / run_id for run_id, _ in submitted}
            if spec.abandoned:
                typer.echo(
                    f"sweep {spec.name}: {spec.abandoned} configuration(s) dropped: all their tuning runs failed"
                )
            jobs = sorted(
                {job[k] for _, job in submitted for k in ("job_id", "eval_job_id") if k in job and name != "debug"}
            )
            shown = f" (jobs {', '.join(jobs[:4])}{' ...' if len(jobs) > 4 else ''})" if jobs else ""
            then = f"; {waiting} configuration(s) wait for their tuning runs to be scored" if waiting else ""
            typer.echo(
                f"sweep {spec.name}: {len(submitted)} run(s) launched on {name}{shown}, "
                f"{max(len(runs) - len(submitted), 0)} skipped{then} -> {where}"
            )
            if not wait:
                if name == "debug":  # it ran them: it can say how they ended
                    check_ended(spec.name, mine, file, root)
                if waiting:
                    typer.echo("run `bench sweep` again once they are scored, or pass --wait")
                return
            wait_for(spec, root)
            now, still = spec.ready(root)
            if not {run.run_id for run in now} - launched:  # nothing new became ready
                if still:
                    raise BenchError(
                        f"sweep {spec.name}: {still} configuration(s) have tuning runs that ended unscored"
                    )
                break
    except KeyboardInterrupt:
        interrupted(spec.name, where, file, root)
    check_ended(spec.name, mine, file, root)
    typer.echo(f"sweep {spec.name}: finished")


def interrupted(name: str, where: Path, file: Path, root: Path) -> None:
    """A Ctrl-C in `bench sweep`: stop the jobs this call submitted (as `bench cancel` does), record the
    runs that had started as interrupted, say so in one line and exit 130."""
    import signal

    from bench.launch.submit import cancel as cancel_runs
    from bench.launch.submit import submitted_here
    from bench.results.tables import run_dirs

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave jobs half-stopped
    try:
        if ours := submitted_here(run_dirs(where)):
            cancel_runs(ours, where, reason="interrupted")
    finally:  # processes started later from this one (a test's, a caller's) must not inherit the ignoring
        signal.signal(signal.SIGINT, previous)
    typer.echo(
        f"interrupted: sweep {name}'s jobs are stopped; `bench sweep {file} --root {root}` resumes its runs",
        err=True,
    )
    raise typer.Exit(130)


def check_ended(name: str, mine: dict[str, Path], file: Path, root: Path) -> None:
    """After running or waiting for a sweep's runs: exit 1 with one line unless every one of them is done."""
    from collections import Counter

    from bench.launch.queue import Queue
    from bench.runstate import run_state

    queue = Queue()
    ended = Counter(run_state(d, queue)["state"] for d in mine.values())
    bad = {state: n for state, n in sorted(ended.items()) if state != "done"}
    if bad:
        kinds = ", ".join(f"{n} {state}" for state, n in bad.items())
        typer.echo(
            f"sweep {name}: {sum(bad.values())} of {len(mine)} run(s) did not finish ({kinds}); "
            f"`bench status {file} --root {root}` says why",
            err=True,
        )
        raise typer.Exit(1)


@app.command()
@user_errors
def status(
    target: TargetArgument,
    root: RootOption = Path("runs"),
) -> None:
    """Show a table of a sweep's runs and their states (a run with a damaged file reads `damaged`; exit 2)."""
    from bench.results.tables import status_table

    folder = sweep_dir(target, root)
    table = status_table(folder)
    if table.empty:
        raise BenchError(f"no runs under {folder}")
    print_table(table)
    damaged = table.attrs["damaged"]
    if damaged:  # every healthy run is shown above; the damage is said once, and the exit code says it too
        more = f" (and {len(damaged) - 1} other damaged run(s) in the table)" if len(damaged) > 1 else ""
        raise BenchError(damaged[0] + more)


@app.command()
@user_errors
def cancel(
    target: TargetArgument,
    root: RootOption = Path("runs"),
) -> None:
    """Cancel the jobs of a sweep's active runs; `bench sweep` later resumes them from their checkpoints."""
    from bench.launch.submit import cancel as cancel_runs
    from bench.results.tables import run_dirs

    folder = sweep_dir(target, root)
    cancelled = cancel_runs(run_dirs(folder), folder)
    typer.echo(f"{folder.name}: {len(cancelled)} run(s) cancelled")


def results_path(out: Path) -> Path:
    """--out must stay inside results/: a typo must not write tables over arbitrary files."""
    results = Path("results").resolve()
    if not out.resolve().is_relative_to(results):
        raise BenchError(f"--out {out} is outside the results folder {results}")
    return out


def check_writable(path: Path, folder: bool) -> None:
    """`path` can be written as a file (folder=False) or a folder: nothing of the other kind is in the
    way, at the path or above it. Checked before anything is computed."""
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise BenchError(f"{path} is {kind}, where a {'folder' if folder else 'file'} is to be written; move it")
    above = blocking_file(path.parent)
    if above is not None:
        raise BenchError(f"{above} is a file, where the folder of {path} is to be made; move it")


def sweep_runs(folder: Path) -> list:
    """The runs of a sweep folder that can be tabled (results.read_runs). Never a silent mix: runs with
    a damaged file, made by another version of the code, or whose config.yaml was edited after
    training are left out, with one line on stderr for each damaged run and each kind."""
    from bench.results.tables import read_runs, run_dirs

    dirs = run_dirs(folder)
    if not dirs:
        raise BenchError(f"no runs under {folder}")
    runs, left_out = read_runs(folder, dirs)
    if not runs:
        more = f" (and {len(left_out) - 1} more reason(s))" if len(left_out) > 1 else ""
        raise BenchError(f"no run under {folder} can be tabled: {left_out[0]}{more}")
    for why in left_out:
        typer.echo(f"skipping {why}", err=True)
    return runs


def reference_rows(configs: list, root: Path) -> dict[str, dict]:
    """Raw pixels, and each evaluated encoder as its method initialises it unless the sweep has its own
    init runs (budget 0, one per seed: random_init); computed once per distinct encoder and cached
    in root/references across sweeps (bench/evals/run.py `reference`)."""
    from bench.evals.run import reference

    scored = [c for c in configs if c.eval.scope == "full"] or configs  # tuning runs see no test split
    refs = {"pixels": reference("pixels", scored[0], root / "references")}
    with_init = {(c.backbone, c.method) for c in scored if c.budget.value == 0}
    kinds = {(c.backbone, c.method): c for c in scored if (c.backbone, c.method) not in with_init}
    backbones = {backbone for backbone, _ in kinds}
    for (backbone, method), cfg in sorted(kinds.items()):
        where = f"{method}, {backbone}" if len(backbones) > 1 else method
        name = "random" if len(kinds) == 1 else f"random ({where})"
        refs[name] = reference("random", cfg, root / "references")
    return refs


def sweep_tables(folder: Path, root: Path, references: bool, metric: str) -> dict:
    """The leaderboards of a sweep folder. The runs are read and --metric checked against them before
    any reference row is computed (under root/references), so that a typo leaves nothing behind."""
    from bench.results.tables import add_references, check_metric, leaderboards, run_table

    runs = sweep_runs(folder)
    table = run_table(runs)
    check_metric(table, metric, folder.name)
    refs = reference_rows([run.config for run in runs], root) if references else None
    return leaderboards(add_references(table, refs), metric)


MetricOption = Annotated[
    str, typer.Option(help="Accuracy column of the compute table and plots: linear, knn@20, linear_1%.")
]


@app.command()
@user_errors
def collate(
    target: TargetArgument,
    root: RootOption = Path("runs"),
    out: Annotated[
        Path | None, typer.Option(help="Also write the tables here: NAME.csv, NAME_summary.csv, ... (inside results/).")
    ] = None,
    references: Annotated[bool, typer.Option(help="Add the raw-pixel and random-encoder reference rows.")] = True,
    metric: MetricOption = "linear",
) -> None:
    """Write the sweep's leaderboards (runs, mean ± std per configuration, compute against accuracy;
    CSV and Markdown) into the sweep folder, and print the leaderboard: per configuration its budget,
    steps, k-NN, linear and 1 % top-1 and the gains over its init (the wide tables are the files)."""
    from bench.results.tables import leaderboard_files, narrow_board, write_leaderboards

    if out is not None:  # every argument is checked before anything is computed or written
        if out.suffix != ".csv":
            raise BenchError(f"--out {out} must name a CSV file in the results folder, e.g. results/masks.csv")
        results_path(out)
    folder = sweep_dir(target, root)
    stems = [folder / "leaderboard"] + ([out.with_suffix("")] if out is not None else [])
    for path in (path for stem in stems for path in leaderboard_files(stem)):
        check_writable(path, folder=False)
    tables = sweep_tables(folder, root, references, metric)
    for stem in stems:
        write_leaderboards(tables, stem, folder.name, metric)
    board = narrow_board(tables["summary"])
    print_table(board)
    if "note" in board.attrs:
        typer.echo(board.attrs["note"])
    typer.echo(f"every column and run: {stems[-1]}{{.csv,_summary.csv,_compute.csv,.md}}")


@app.command()
@user_errors
def report(
    target: TargetArgument,
    root: RootOption = Path("runs"),
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (inside results/); default SWEEP/report.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md | html (self-contained).")] = "md",
    references: Annotated[bool, typer.Option(help="Add the raw-pixel and random-encoder reference rows.")] = True,
    metric: MetricOption = "linear",
    wandb: Annotated[bool, typer.Option("--wandb", help="Also build a W&B Report (needs WANDB_MODE=online).")] = False,
) -> None:
    """Write a report of a sweep: leaderboards, accuracy-against-compute plots and configuration bars;
    with --wandb, also a W&B Report over the sweep's W&B runs."""
    from bench.results.report import publish_wandb_report, write_report

    if fmt not in ("md", "html"):
        raise BenchError(f"--format must be md or html, got {fmt!r}")
    if out is not None:  # checked before anything is computed or written
        results_path(out)
    folder = sweep_dir(target, root)
    dest = out or folder / "report"
    check_writable(dest, folder=True)
    tables = sweep_tables(folder, root, references, metric)
    path = write_report(tables, dest, folder.name, metric, fmt)
    typer.echo(f"report of {folder.name}: {path}")
    if wandb:
        url = publish_wandb_report(tables, folder.name, metric)
        if url is None:
            typer.echo(
                f"W&B is offline: the local report above is the report. To build the W&B one, upload the runs "
                f"(wandb sync {folder}/*/wandb/offline-run-*) and run this again with WANDB_MODE=online."
            )
        else:
            typer.echo(f"W&B report: {url}")


@app.command("eval")
@user_errors
def evaluate(
    target: Annotated[Path, typer.Argument(help="A run folder, or a sweep folder to evaluate all its runs.")],
    executor: Annotated[
        str | None, typer.Option(help="Submit the evaluation as its own job (local | debug | slurm); default: here.")
    ] = None,
    profile: ProfileOption = None,
) -> None:
    """Evaluate finished runs: k-NN, few-shot k-NN, linear and low-shot probes (writes eval.json).

    Every run is checked before any is evaluated: a damaged file (eval.json aside: evaluating rewrites
    it) or a config.yaml changed since training refuses the whole call, with one line; runs of a
    sweep folder that are not trained yet are skipped. A run named by its id (bench sweep's folders)
    is scored with the config its id is the hash of: to score it with other eval settings, copy its
    folder under a name of your own, edit the copy's eval section and evaluate the copy."""
    from bench.evals.run import evaluate_run, trained_config
    from bench.launch import slurm
    from bench.launch.executors import EXECUTORS, LaunchOptions
    from bench.launch.job import setup_logging
    from bench.launch.submit import submit_evaluations
    from bench.results.tables import run_dirs
    from bench.rundir import RUN_FILES, RunDir, read_run_config, read_state, read_submission, read_summary

    setup_logging()
    if not target.exists():
        raise BenchError(f"{target} does not exist")
    if any((target / name).exists() for name in RUN_FILES):  # a run folder (its config.yaml may be lost)
        dirs = [target]
    else:
        dirs = run_dirs(target)
    if not dirs:
        raise BenchError(f"{target} holds no run folders")
    if executor is not None:
        EXECUTORS.get(executor)
    for run_dir in dirs:  # damage anywhere refuses the whole call, before anything is evaluated or submitted
        read_run_config(run_dir)
        read_state(run_dir)
        read_submission(run_dir)
        read_summary(run_dir)
    # one run: trained_config says why not
    finished = [d for d in dirs if RunDir(d).trained()] if len(dirs) > 1 else dirs
    if not finished:
        raise BenchError(f"none of the {len(dirs)} run(s) under {target} is trained yet")
    configs = {d: trained_config(d) for d in finished}  # a config changed since training refuses the call too
    unfinished = f", {len(dirs) - len(finished)} not trained yet" if len(finished) < len(dirs) else ""
    if executor is not None:
        folder = target.parent if target in dirs and len(dirs) == 1 else target
        options = LaunchOptions(slurm=slurm.slurm_config(None, profile))
        submitted = submit_evaluations(configs, folder, executor, options)  # a run a job owns is left alone
        if not submitted:
            raise BenchError(f"none of the {len(dirs)} run(s) is trained and free of a running job")
        ids = sorted({job.get("eval_job_id") or job.get("job_id") for _, job in submitted})
        owned = len(finished) - len(submitted)
        skipped = f", {owned} skipped (owned by a job)" if owned else ""
        typer.echo(
            f"evaluation of {len(submitted)} run(s) submitted on {executor}: job(s) {', '.join(map(str, ids))}"
            f"{skipped}{unfinished}"
        )
        return
    for run_dir in finished:
        record = evaluate_run(run_dir)
        if "knn" not in record:  # a tuning run: scored on the validation split alone
            typer.echo(f"{run_dir}: validation k-NN@20 {record['val']['knn@20']:.2f}")
            continue
        knn = "  ".join(f"k={k}: {v:.2f}" for k, v in record["knn"]["top1"].items())
        typer.echo(f"{run_dir}: k-NN {knn}; linear {record['linear']['top1']:.2f}")
    if unfinished:
        typer.echo(f"{len(finished)} run(s) evaluated{unfinished}")


@app.command()
@user_errors
def train(
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. optim.lr=5e-4.")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML with the differences.")] = None,
    out: Annotated[Path, typer.Option(help="Run folder (resumes if it holds a checkpoint).")] = Path("runs/train"),
    evaluate: Annotated[
        bool,
        typer.Option(
            "--eval/--no-eval", help="Evaluate after training: k-NN, few-shot k-NN, linear and low-shot probes."
        ),
    ] = True,
) -> None:
    """Train one run in this process, under its budget, then evaluate it."""
    from bench.config.schema import build_config, load_yaml
    from bench.launch.job import Job, Task
    from bench.launch.queue import Queue
    from bench.rundir import SUBMISSION, read_json
    from bench.runstate import run_state

    check_folder_option(out, "--out")
    cfg = build_config(load_yaml(config) if config else {}, overrides or [])
    if out.is_dir():
        state = run_state(out, Queue())  # a damaged state.json or job.json refuses here
        if state["active"]:
            raise BenchError(f"{out} is {state['state']} in a job of its own: wait for it, or stop it (bench cancel)")
    # a sweep's run folder: this session speaks for its latest submission, so the run reads as it ends here
    token = (read_json(out / SUBMISSION) or {}).get("token")
    try:
        summaries = Job([Task(cfg, out, evaluate=evaluate)], token)()
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {out} keeps its checkpoint; the same command resumes it", err=True)
        raise typer.Exit(130) from None
    if not summaries:
        typer.echo(f"{out}: already done")
        return
    typer.echo(trained_line(out, summaries[0]))


def trained_line(out: Path, summary: dict) -> str:
    """`bench train`'s last word: status, compute, and the evaluation's headline numbers."""
    from bench.results.tables import eval_columns

    compute = summary.get("compute", {})
    line = (
        f"{out}: {summary.get('status')}, {compute.get('steps')} steps, {compute.get('flops', 0):.3g} FLOPs, "
        f"{compute.get('device_hours', 0):.3g} device-hours"
    )
    if "eval" not in summary:
        return line
    columns = eval_columns(summary["eval"])
    knn = [k for k in columns if k.startswith("knn@")]
    shown = ["knn@20" if "knn@20" in columns else knn[-1]] if knn else []
    shown += [k for k in columns if k == "linear" or (k.startswith("linear_") and k.endswith("%"))]
    numbers = ", ".join(f"{k.replace('knn', 'k-NN').replace('_', ' ')} {columns[k]:.1f}" for k in shown)
    return f"{line}; {numbers} (top-1 %, {out / 'eval.json'})"


@app.command("list")
def list_registries() -> None:
    """List the registered methods, backbones, datasets and executors."""
    from bench.data.datasets import DATASETS
    from bench.launch.executors import EXECUTORS
    from bench.train.methods import METHODS
    from core.vit import BACKBONES

    for registry in (METHODS, BACKBONES, DATASETS, EXECUTORS):
        typer.echo(f"{registry.kind}s: {', '.join(registry.names())}")


def main() -> None:
    app()
