"""Progress bars (rich) for long work: training with the budget spent and the time left, and
feature extraction. Shown only when stderr is a terminal, so job logs stay plain text."""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(description: str, total: float) -> Iterator[Callable[[float], None]]:
    """Yields `show(done)`; `done` out of `total` (a budget fraction, a number of images)."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True)) as bars:
        task = bars.add_task(description, total=total)
        yield lambda done: bars.update(task, completed=done)
