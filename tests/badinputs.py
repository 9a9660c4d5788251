"""The bad-input corpus's machinery: a case is data (a command line, the files it meets, the one line
it must print), and one check runs every case the same way.

    Bad(["status", "t"], "state.json", setup=lambda tmp: (run_dir(tmp) / "state.json").write_text("{"))

`check(case, tmp)` copies a finished tiny sweep into `tmp` (sweep file `tmp/s.yaml`, name `t`, one
trained and evaluated run under `tmp/runs/t/`, `tmp/results/` for --out), lets `setup` damage or add
files, runs `bench ARGS` there with `--root runs` where the command takes one, and asserts the exit
code, exactly one line on stderr holding `message`, and that no file under `tmp` was written, changed
or removed.
"""

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .conftest import invoke, write_sweep

ROOTED = ("sweep", "status", "collate", "report", "cancel")  # the commands with a --root option


@dataclass
class Bad:
    args: list[str]  # after `bench`; "{tmp}" becomes the case's folder, "{run}" the template run's id
    message: str  # a substring of the one line on stderr
    setup: Callable[[Path], None] | None = None  # writes or damages files under the case's folder
    code: int = 2
    root: bool = True  # add `--root runs` to a command that takes it


def run_dir(tmp: Path) -> Path:
    """The finished run of the template sweep."""
    (run,) = sorted((tmp / "runs" / "t").glob("ijepa-*"))
    return run


def make_template(folder: Path) -> Path:
    """A sweep `t` with one trained and evaluated tiny I-JEPA run (debug executor, seconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        write_sweep(folder / "s.yaml")
        result = invoke("sweep", "s.yaml", "--executor", "debug", "--root", "runs")
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(cwd)
    (folder / "results").mkdir()
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder → the hash of its bytes (folders too, so a new empty one shows)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        out[key] = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def check(case: Bad, template: Path, tmp: Path, monkeypatch) -> None:
    shutil.copytree(template, tmp, dirs_exist_ok=True, symlinks=True)
    monkeypatch.chdir(tmp)
    if case.setup is not None:
        case.setup(tmp)
    run_id = run_dir(template).name  # the template's run, whatever setup adds or removes
    args = [str(a).replace("{tmp}", str(tmp)).replace("{run}", run_id) for a in case.args]
    if case.root and args and args[0] in ROOTED and "--root" not in args:
        args += ["--root", "runs"]
    before = snapshot(tmp)
    result = invoke(*args)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and case.message in lines[0], result.stderr
    assert snapshot(tmp) == before, "the command wrote, changed or removed files"
