"""`bench status` (where every run of a sweep stands) and `bench cancel` (stop its active runs' jobs)."""

from pathlib import Path

import typer

from bench.cli.arguments import RootOption, TargetArgument, sweep_dir, user_errors
from bench.cli.display import print_table
from bench.errors import BenchError


@user_errors
def status(
    target: TargetArgument,
    root: RootOption = Path("runs"),
) -> None:
    """Show a table of a sweep's runs and their states (a run with a damaged file reads `damaged`; exit 2)."""
    from bench.launch.queue import Queue
    from bench.results.status import status_table

    folder = sweep_dir(target, root)
    table = status_table(folder, Queue())
    if table.empty:
        raise BenchError(f"no runs under {folder}")
    print_table(table)
    damaged = table.attrs["damaged"]
    if damaged:  # every healthy run is shown above; the damage is said once, and the exit code says it too
        more = f" (and {len(damaged) - 1} other damaged run(s) in the table)" if len(damaged) > 1 else ""
        raise BenchError(damaged[0] + more)


@user_errors
def cancel(
    target: TargetArgument,
    root: RootOption = Path("runs"),
) -> None:
    """Cancel the jobs of a sweep's active runs; `bench sweep` later resumes them from their checkpoints."""
    from bench.launch.submit import cancel as cancel_runs
    from bench.results.runs import run_dirs

    folder = sweep_dir(target, root)
    cancelled = cancel_runs(run_dirs(folder), folder)
    typer.echo(f"{folder.name}: {len(cancelled)} run(s) cancelled")
