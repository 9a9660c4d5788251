"""`bench train`: one run in this process, under its budget, then its evaluation."""

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.arguments import check_folder_option, user_errors
from bench.errors import BenchError


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
    from bench.config.validate import build_config
    from bench.config.yamlio import load_yaml
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
    from bench.results.runs import eval_columns

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
