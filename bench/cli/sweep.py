"""`bench sweep`: expand a sweep into runs and launch those not done yet; with --wait, block until
they end (and, for a tuned sweep, launch its headline runs once their tuning runs are scored)."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.arguments import ProfileOption, RootOption, check_folder_option, sweep_file, user_errors
from bench.errors import BenchError


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
        list_runs(spec, root)
        return
    try:
        mine = launch_rounds(spec, root, name, options, retry_failed, wait, file)
    except KeyboardInterrupt:
        interrupted(spec.name, root / spec.name, file, root)
    if mine is None:  # it did not wait
        return
    check_ended(spec.name, mine, file, root)
    typer.echo(f"sweep {spec.name}: finished")


def list_runs(spec, root: Path) -> None:
    """--dry-run: a line per run that is ready to launch, and how many wait for their tuning runs."""
    runs, waiting = spec.ready(root)
    for run in runs:
        typer.echo(f"{run.run_id}  {run.role}  {run.axes}  seed={run.config.seed}")
    if waiting:
        typer.echo(f"{waiting} (configuration, budget) pair(s) wait for their tuning runs to be scored")


def launch_rounds(spec, root: Path, name: str, options, retry_failed: bool, wait: bool, file: Path):
    """Launch the runs that are ready; with `wait`, wait for them and go again while that makes new runs
    ready (a tuned sweep's headline runs appear once their tuning runs are scored). The runs this
    call submitted, by id (each must end done); None when it returned without waiting."""
    from bench.launch.submit import launch
    from bench.launch.submit import wait as wait_for

    where, launched, mine = root / spec.name, set(), {}
    while True:
        runs, waiting = spec.ready(root)
        submitted = launch(spec, root, name, options, retry_failed)
        launched |= {run.run_id for run in runs}
        mine |= {run_id: where / run_id for run_id, _ in submitted}
        say_launched(spec, name, len(runs), submitted, waiting, where)
        if not wait:
            if name == "debug":  # it ran them: it can say how they ended
                check_ended(spec.name, mine, file, root)
            if waiting:
                typer.echo("run `bench sweep` again once they are scored, or pass --wait")
            return None
        wait_for(spec, root)
        now, still = spec.ready(root)
        if not {run.run_id for run in now} - launched:  # nothing new became ready
            if still:
                raise BenchError(f"sweep {spec.name}: {still} configuration(s) have tuning runs that ended unscored")
            return mine


def say_launched(spec, name: str, ready: int, submitted: list, waiting: int, where: Path) -> None:
    """One round's line: how many runs were launched, on which executor and jobs, and how many skipped."""
    if spec.abandoned:
        typer.echo(f"sweep {spec.name}: {spec.abandoned} configuration(s) dropped: all their tuning runs failed")
    jobs = sorted({job[k] for _, job in submitted for k in ("job_id", "eval_job_id") if k in job and name != "debug"})
    shown = f" (jobs {', '.join(jobs[:4])}{' ...' if len(jobs) > 4 else ''})" if jobs else ""
    then = f"; {waiting} configuration(s) wait for their tuning runs to be scored" if waiting else ""
    typer.echo(
        f"sweep {spec.name}: {len(submitted)} run(s) launched on {name}{shown}, "
        f"{max(ready - len(submitted), 0)} skipped{then} -> {where}"
    )


def interrupted(name: str, where: Path, file: Path, root: Path) -> None:
    """A Ctrl-C in `bench sweep`: stop the jobs this call submitted (as `bench cancel` does), record the
    runs that had started as interrupted, say so in one line and exit 130."""
    import signal

    from bench.launch.submit import cancel as cancel_runs
    from bench.launch.submit import submitted_here
    from bench.results.runs import run_dirs
    from bench.runstate import RunState

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave jobs half-stopped
    try:
        if ours := submitted_here(run_dirs(where)):
            cancel_runs(ours, where, reason=RunState.INTERRUPTED)
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
    from bench.runstate import RunState, run_state

    queue = Queue()
    ended = Counter(run_state(d, queue)["state"] for d in mine.values())
    bad = {state: n for state, n in sorted(ended.items()) if state != RunState.DONE}
    if bad:
        kinds = ", ".join(f"{n} {state}" for state, n in bad.items())
        typer.echo(
            f"sweep {name}: {sum(bad.values())} of {len(mine)} run(s) did not finish ({kinds}); "
            f"`bench status {file} --root {root}` says why",
            err=True,
        )
        raise typer.Exit(1)
