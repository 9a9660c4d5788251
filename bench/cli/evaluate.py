"""`bench eval`: evaluate finished runs, here or as jobs of their own (--executor); `bench health`: the
health signals of finished runs trained before training logged them."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.arguments import ProfileOption, user_errors
from bench.errors import BenchError


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
    from bench.evals.run import evaluate_run
    from bench.launch.executors import EXECUTORS
    from bench.launch.job import setup_logging

    setup_logging()
    dirs = run_folders(target)
    if executor is not None:
        EXECUTORS.get(executor)
    finished, configs = trained_runs(target, dirs)
    unfinished = f", {len(dirs) - len(finished)} not trained yet" if len(finished) < len(dirs) else ""
    if executor is not None:
        folder = target.parent if target in dirs and len(dirs) == 1 else target
        ready, ids = submit(folder, configs, executor, profile, len(dirs))
        owned = len(finished) - len(ready)
        skipped = f", {owned} skipped (owned by a job)" if owned else ""
        typer.echo(
            f"evaluation of {len(ready)} run(s) submitted on {executor}: job(s) {', '.join(map(str, ids))}"
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


@user_errors
def health(
    target: Annotated[Path, typer.Argument(help="A run folder, or a sweep folder for all its runs.")],
) -> None:
    """Write the end-of-training health signals (RankMe, feature std, distance moved, the method's own)
    into summary.json of finished runs that have none, computed from their checkpoints as training
    computes them at its last step. Runs that have them are skipped; so are runs of a sweep folder
    that are not trained yet. Checked like `bench eval`: damage refuses the whole call, with one line."""
    from bench.launch.job import setup_logging
    from bench.rundir import SUMMARY, read_summary, write_json
    from bench.train.health import backfill

    setup_logging()
    dirs = run_folders(target)
    finished, configs = trained_runs(target, dirs)
    had = 0
    for run_dir in finished:
        summary = read_summary(run_dir)
        if "health" in summary:
            had += 1
            continue
        summary["health"] = backfill(run_dir, configs[run_dir])
        write_json(summary, run_dir / SUMMARY)
        shown = ", ".join(f"{k} {v:.3g}" for k, v in summary["health"].items())
        typer.echo(f"{run_dir}: {shown}")
    typer.echo(f"{len(finished) - had} run(s) given health signals, {had} had them already")


def run_folders(target: Path) -> list[Path]:
    """The run folders `bench eval` names: the target itself when it is a run folder (its config.yaml
    may be lost), else the run folders of the sweep folder it is."""
    from bench.results.runs import run_dirs
    from bench.rundir import RUN_FILES

    if not target.exists():
        raise BenchError(f"{target} does not exist")
    if any((target / name).exists() for name in RUN_FILES):
        dirs = [target]
    else:
        dirs = run_dirs(target)
    if not dirs:
        raise BenchError(f"{target} holds no run folders")
    return dirs


def trained_runs(target: Path, dirs: list[Path]) -> tuple[list[Path], dict]:
    """The trained runs among `dirs` and the config each was trained with. Damage anywhere, or a config
    changed since training, refuses the whole call before anything is evaluated or submitted."""
    from bench.evals.run import trained_config
    from bench.rundir import is_trained, read_run_config, read_state, read_submission, read_summary

    summaries = {}
    for run_dir in dirs:
        read_run_config(run_dir)
        read_state(run_dir)
        read_submission(run_dir)
        summaries[run_dir] = read_summary(run_dir)
    # one run: trained_config says why it cannot be evaluated
    finished = [d for d in dirs if is_trained(summaries[d])] if len(dirs) > 1 else dirs
    if not finished:
        raise BenchError(f"none of the {len(dirs)} run(s) under {target} is trained yet")
    return finished, {d: trained_config(d) for d in finished}


def submit(folder: Path, configs: dict, executor: str, profile: Path | None, total: int) -> tuple[list, list]:
    """--executor: an evaluation job for every trained run no job owns (launch's one submission path);
    the runs submitted and the job ids."""
    from bench.launch import slurm
    from bench.launch.executors import LaunchOptions
    from bench.launch.submit import submit_evaluations

    submitted = submit_evaluations(configs, folder, executor, LaunchOptions(slurm=slurm.slurm_config(None, profile)))
    if not submitted:
        raise BenchError(f"none of the {total} run(s) is trained and free of a running job")
    ids = sorted({job.get("eval_job_id") or job.get("job_id") for _, job in submitted})
    return [task.run_dir for task, _ in submitted], ids
