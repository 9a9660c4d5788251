"""How a command shows a table: rich on a terminal, plain aligned text in pipes and logs."""

import typer

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
