"""The `bench` command.

    bench sweep sweeps/masks.yaml     # launch a sweep (returns at once; --wait to block)
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


def sweep_dir(target: str, root: Path) -> Path:
    """A sweep file, a sweep folder or a sweep name → the sweep's folder under root."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        from bench.sweep import load_sweep

        return root / load_sweep(path).name
    folder = path if path.is_dir() else root / target
    if not folder.is_dir():
        raise BenchError(f"no sweep folder {folder} (run `bench sweep FILE` first, or pass --root)")
    return folder


def print_table(table, title: str | None = None) -> None:
    """A rich table on a terminal; plain text elsewhere (pipes, logs, greps)."""
    import sys

    import pandas as pd

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    if sys.stdout.isatty():
        from rich.console import Console
        from rich.measure import Measurement
        from rich.table import Table

        rich_table = Table(title=title, header_style="bold")
        for column in table.columns:
            rich_table.add_column(
                str(column), justify="right" if pd.api.types.is_numeric_dtype(table[column]) else "left"
            )
        for row in table.itertuples(index=False):
            rich_table.add_row(*(cell(v) for v in row))
        console = Console()
        width = Measurement.get(console, console.options.update(max_width=10_000), rich_table).maximum
        Console(width=max(width, console.width)).print(rich_table)  # wider than the terminal rather than cut
        return
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 40):
        typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))


@app.command()
@user_errors
def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep YAML, e.g. sweeps/masks.yaml.")],
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
    from bench import slurm
    from bench.launch import EXECUTORS, LaunchOptions, launch
    from bench.launch import wait as wait_for
    from bench.sweep import load_sweep

    spec = load_sweep(file)
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

    from bench.launch import cancel as cancel_runs
    from bench.launch import submitted_here
    from bench.results import run_dirs

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

    from bench.launch import Queue, run_state

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
    """Show a table of a sweep's runs and their states."""
    from bench.results import status_table

    table = status_table(sweep_dir(target, root))
    if table.empty:
        raise BenchError(f"no runs under {sweep_dir(target, root)}")
    print_table(table)


@app.command()
@user_errors
def cancel(
    target: TargetArgument,
    root: RootOption = Path("runs"),
) -> None:
    """Cancel the jobs of a sweep's active runs; `bench sweep` later resumes them from their checkpoints."""
    from bench.launch import cancel as cancel_runs
    from bench.results import run_dirs

    folder = sweep_dir(target, root)
    cancelled = cancel_runs(run_dirs(folder), folder)
    typer.echo(f"{folder.name}: {len(cancelled)} run(s) cancelled")


def results_path(out: Path) -> Path:
    """--out must stay inside results/: a typo must not write tables over arbitrary files."""
    results = Path("results").resolve()
    if not out.resolve().is_relative_to(results):
        raise BenchError(f"--out {out} is outside the results folder {results}")
    return out


def sweep_tables(target: str, root: Path, references: bool, metric: str) -> tuple[Path, dict]:
    from bench.config import CONFIG_VERSION, read_config
    from bench.evals.run import reference
    from bench.results import collate as make_table
    from bench.results import leaderboards, run_dirs
    from bench.rundir import edited_after_training

    folder = sweep_dir(target, root)
    dirs = run_dirs(folder)
    if not dirs:
        raise BenchError(f"no runs under {folder}")
    configs = [read_config(d / "config.yaml") for d in dirs]
    # never a silent mix: runs made by another version of the code, or whose training settings were
    # edited after training, are left out with one line each kind
    for why, bad in (
        (
            f"made by another jepa-bench (config version other than {CONFIG_VERSION})",
            lambda d, c: c.version != CONFIG_VERSION,
        ),
        ("whose config.yaml was changed after training", edited_after_training),
    ):
        left_out = [d for d, c in zip(dirs, configs, strict=True) if bad(d, c)]
        if left_out:
            typer.echo(
                f"skipping {len(left_out)} run(s) of {folder} {why}: their numbers mean something else", err=True
            )
            configs = [c for d, c in zip(dirs, configs, strict=True) if d not in left_out]
            dirs = [d for d in dirs if d not in left_out]
    if not dirs:
        raise BenchError(f"no run under {folder} can be tabled (see above); run the sweep again")
    refs = {}
    if references:  # raw pixels, and each evaluated encoder as its method initialises it (unless the sweep
        # has its own init runs, budget 0, one per seed: random_init)
        scored = [c for c in configs if c.eval.scope == "full"] or configs  # tuning runs see no test split
        refs = {"pixels": reference("pixels", scored[0], root / "references")}
        with_init = {(c.backbone, c.method) for c in scored if c.budget.value == 0}
        kinds = {(c.backbone, c.method): c for c in scored if (c.backbone, c.method) not in with_init}
        backbones = {backbone for backbone, _ in kinds}
        for (backbone, method), cfg in sorted(kinds.items()):
            where = f"{method}, {backbone}" if len(backbones) > 1 else method
            name = "random" if len(kinds) == 1 else f"random ({where})"
            refs[name] = reference("random", cfg, root / "references")
    table = make_table(folder, refs, dirs)
    if metric not in table:
        raise BenchError(f"no run of {folder.name} has a {metric!r} result yet (evaluate them: bench eval)")
    return folder, leaderboards(table, metric)


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
    CSV and Markdown) into the sweep folder, and print them."""
    from bench.results import write_leaderboards

    if out is not None and out.suffix != ".csv":
        raise BenchError(f"--out {out} must name a CSV file in the results folder, e.g. results/masks.csv")
    if out is not None:
        results_path(out)
    folder, tables = sweep_tables(target, root, references, metric)
    write_leaderboards(tables, folder / "leaderboard", folder.name, metric)
    if out is not None:
        write_leaderboards(tables, out.with_suffix(""), folder.name, metric)
    print_table(tables["runs"])
    typer.echo("")
    print_table(tables["compute"])


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
    from bench.report import publish_wandb_report, write_report

    if fmt not in ("md", "html"):
        raise BenchError(f"--format must be md or html, got {fmt!r}")
    if out is not None:
        results_path(out)
    folder, tables = sweep_tables(target, root, references, metric)
    path = write_report(tables, out or folder / "report", folder.name, metric, fmt)
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
    """Evaluate finished runs: k-NN, few-shot k-NN, linear and low-shot probes (writes eval.json)."""
    from bench import slurm
    from bench.evals.run import evaluate_run, trained_config
    from bench.launch import (
        EXECUTORS,
        LaunchOptions,
        Queue,
        Task,
        run_state,
        setup_logging,
        submit,
        sweep_lock,
        trained,
    )
    from bench.results import run_dirs
    from bench.rundir import CONFIG

    setup_logging()
    if not target.exists():
        raise BenchError(f"{target} does not exist")
    dirs = [target] if (target / CONFIG).is_file() else run_dirs(target)
    if not dirs:
        raise BenchError(f"{target} holds no run folders")
    if executor is not None:
        EXECUTORS.get(executor)
        folder = target.parent if target in dirs and len(dirs) == 1 else target
        options = LaunchOptions(slurm=slurm.slurm_config(None, profile), name=f"bench-{folder.name}")
        with sweep_lock(folder):  # a run a job owns, or one not trained yet, is left alone
            queue = Queue()
            ready = [d for d in dirs if not run_state(d, queue)["active"] and trained(d)]
            if not ready:
                raise BenchError(f"none of the {len(dirs)} run(s) is trained and free of a running job")
            tasks = [Task(trained_config(d), d, train=False) for d in ready]
            jobs = submit(tasks, folder / "submitit", executor, options)
        ids = sorted({job.get("eval_job_id") or job.get("job_id") for job in jobs})
        skipped = f", {len(dirs) - len(ready)} skipped (training or owned by a job)" if len(ready) < len(dirs) else ""
        typer.echo(
            f"evaluation of {len(ready)} run(s) submitted on {executor}: job(s) {', '.join(map(str, ids))}{skipped}"
        )
        return
    for run_dir in dirs:
        record = evaluate_run(run_dir)
        knn = "  ".join(f"k={k}: {v:.2f}" for k, v in record["knn"]["top1"].items())
        typer.echo(f"{run_dir}: k-NN {knn}; linear {record['linear']['top1']:.2f}")


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
    from bench.config import build_config, load_yaml
    from bench.launch import Job, Queue, Task, run_state
    from bench.rundir import SUBMISSION, read_json

    cfg = build_config(load_yaml(config) if config else {}, overrides or [])
    for path in (out, *out.parents):  # the nearest existing path must be a folder
        if path.exists():
            if not path.is_dir():
                raise BenchError(f"--out {out}: {path} is a file, not a folder; name a run folder")
            break
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
    from bench.results import eval_columns

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
    from bench.backbones import BACKBONES
    from bench.data import DATASETS
    from bench.launch import EXECUTORS
    from bench.methods import METHODS

    for registry in (METHODS, BACKBONES, DATASETS, EXECUTORS):
        typer.echo(f"{registry.kind}s: {', '.join(registry.names())}")


def main() -> None:
    app()
