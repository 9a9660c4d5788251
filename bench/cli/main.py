"""The `bench` app: one registration line per command (the commands live in the modules beside this)."""

import typer

from bench.cli import evaluate, leaderboards, registries, status, sweep, train

app = typer.Typer(
    help="Pre-train I-JEPA and its baselines under equal compute budgets; evaluate and compare them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(sweep.sweep)
app.command()(status.status)
app.command()(status.cancel)
app.command()(leaderboards.collate)
app.command()(leaderboards.report)
app.command("eval")(evaluate.evaluate)
app.command()(evaluate.health)
app.command()(train.train)
app.command("list")(registries.list_registries)


def main() -> None:
    app()


if __name__ == "__main__":  # python -m bench.cli.main (scripts/gpu_check.sh, where no console script is installed)
    main()
