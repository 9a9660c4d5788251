"""What the commands share: their common arguments and options, the checks an argument gets before
anything runs, and the one way a user mistake ends a command (one line on stderr, exit code 2)."""

import functools
from pathlib import Path
from typing import Annotated

import typer

from bench.errors import BenchError, TrainingFailed
from bench.launch.slurm import PROFILE_ENV

RootOption = Annotated[
    Path, typer.Option("--root", envvar="BENCH_ROOT", help="Folder holding one sub-folder per sweep.")
]
TargetArgument = Annotated[str, typer.Argument(help="Sweep file, sweep folder or sweep name.")]
ProfileOption = Annotated[
    Path | None,
    typer.Option("--profile", envvar=PROFILE_ENV, help="SLURM cluster profile (YAML: partition, account, ...)."),
]
MetricOption = Annotated[
    str,
    typer.Option(
        help="Accuracy column the tables are sorted and ranked by, and the compute table and plots show: "
        "linear, knn@20, linear_1%, ..."
    ),
]
ReferencesOption = Annotated[bool, typer.Option(help="Add the raw-pixel and random-encoder reference rows.")]


def user_errors(fn):
    """Turn a BenchError into one line on stderr and exit code 2; a failed training into one line and 1."""

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
