"""`bench collate` (a sweep's leaderboards, written and printed) and `bench report` (leaderboards,
plots and a page; a W&B Report too with --wandb)."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.arguments import (
    MetricOption,
    ReferencesOption,
    RootOption,
    TargetArgument,
    check_writable,
    results_path,
    sweep_dir,
    user_errors,
)
from bench.cli.display import print_table
from bench.errors import BenchError


def sweep_tables(folder: Path, root: Path, references: bool, metric: str) -> dict:
    """The leaderboards of a sweep folder, each run left out said on stderr. The runs are read and
    --metric checked against them before any reference row is computed (under root/references), so
    that a typo leaves nothing behind."""
    from bench.evals.references import reference_rows
    from bench.launch.queue import Queue
    from bench.results.collate import add_references, run_table
    from bench.results.leaderboards import check_metric, leaderboards
    from bench.results.runs import tabled_runs

    runs, left_out = tabled_runs(folder, Queue())
    for why in left_out:
        typer.echo(f"skipping {why}", err=True)
    table = run_table(runs, metric)
    check_metric(table, metric, folder.name)
    refs = reference_rows([run.config for run in runs], root / "references") if references else None
    return leaderboards(add_references(table, refs), metric)


@user_errors
def collate(
    target: TargetArgument,
    root: RootOption = Path("runs"),
    out: Annotated[
        Path | None, typer.Option(help="Also write the tables here: NAME.csv, NAME_summary.csv, ... (inside results/).")
    ] = None,
    references: ReferencesOption = True,
    metric: MetricOption = "linear",
) -> None:
    """Write the sweep's leaderboards (runs, mean ± std per configuration, compute against accuracy;
    CSV and Markdown) into the sweep folder, and print the leaderboard: per configuration its budget,
    steps, k-NN, linear and 1 % top-1 and the gains over its init (the wide tables are the files).
    Runs are sorted, and configurations ranked, by --metric."""
    from bench.results.board import narrow_board
    from bench.results.leaderboards import leaderboard_files, write_leaderboards

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
    board = narrow_board(tables["summary"], metric)
    print_table(board)
    if "note" in board.attrs:
        typer.echo(board.attrs["note"])
    typer.echo(f"every column and run: {stems[-1]}{{.csv,_summary.csv,_compute.csv,.md}}")


@user_errors
def report(
    target: TargetArgument,
    root: RootOption = Path("runs"),
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (inside results/); default SWEEP/report.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="md | html (self-contained).")] = "md",
    references: ReferencesOption = True,
    metric: MetricOption = "linear",
    wandb: Annotated[bool, typer.Option("--wandb", help="Also build a W&B Report (needs WANDB_MODE=online).")] = False,
) -> None:
    """Write a report of a sweep: leaderboards, accuracy-against-compute plots and configuration bars, the
    runs' health signals against compute and final RankMe against accuracy; with --wandb, also a W&B
    Report over the sweep's W&B runs."""
    from bench.results.report import publish_wandb_report, write_report
    from bench.results.runs import health_curves

    if fmt not in ("md", "html"):
        raise BenchError(f"--format must be md or html, got {fmt!r}")
    if out is not None:  # checked before anything is computed or written
        results_path(out)
    folder = sweep_dir(target, root)
    dest = out or folder / "report"
    check_writable(dest, folder=True)
    tables = sweep_tables(folder, root, references, metric)
    curves = health_curves(folder, tables["runs"]["run"])
    path = write_report(tables, dest, folder.name, metric, fmt, curves)
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
