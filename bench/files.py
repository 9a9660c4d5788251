"""Files this tool writes, written one way: atomically and durably (`write_atomic`), so that a reader,
or a crash, sees the old file or the new one, never part of one; and torch files read back with
every way they can be damaged turned into one DamagedFile line. torch is imported only where a torch
file is written or read: `bench status` imports this module and stays fast."""

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from bench.errors import DamagedFile


def write_atomic(path: Path, write: Callable[[BinaryIO], None], keep: Path | None = None, sync: bool = True) -> None:
    """`write(file)` into a temporary file beside `path`, then renamed over `path`. `sync`: fsynced first,
    so that a machine crash cannot leave the renamed file empty (checkpoints, caches: worth 1-2 ms a
    file; the small JSON and YAML files a submission writes by the thousand are not). `keep`: the
    file it replaces is moved there at the moment it is replaced. A failed write (OSError: a full disk,
    a quota) leaves no temporary file and every old file as it was."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:  # through a Python file, a full disk is an OSError, not torch's RuntimeError
            write(f)
            if sync:
                f.flush()
                os.fsync(f.fileno())  # else a machine crash can leave the renamed file empty
    except BaseException:
        tmp.unlink(missing_ok=True)  # the space it took: the error message has to be written somewhere
        raise
    if keep is not None and path.exists():
        os.replace(path, keep)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Atomically, without fsync: JSON, YAML, CSV, Markdown (a crash loses at most this write)."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")), sync=False)


def save_torch(obj: object, path: Path, keep: Path | None = None) -> None:
    """torch.save through write_atomic."""
    import torch

    write_atomic(path, lambda f: torch.save(obj, f), keep=keep)


# torch.load's errors on a file that is not (all of) a torch file, as measured on truncated, emptied,
# overwritten and bit-flipped checkpoints: the zip reader's RuntimeError and OSError (EINVAL on a
# truncated archive), EOFError, and the weights-only unpickler's UnpicklingError, KeyError, IndexError
# and ValueError (UnicodeDecodeError) on bytes that are not a pickle. OSError also covers a folder and
# a file this user may not read.
UNREADABLE = (OSError, RuntimeError, EOFError, ValueError, KeyError, IndexError, pickle.UnpicklingError)


def read_torch_file(path: Path) -> object:
    """What a torch file this tool wrote holds (weights only, on the CPU); DamagedFile, naming the file
    and why, when it cannot be read. A zip checksum catches the bytes torch reads without checking."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        with zipfile.ZipFile(path) as archive:  # the format torch.save writes; its reader skips the CRCs
            corrupt = archive.testzip()
    except UNREADABLE + (zipfile.BadZipFile,) as e:
        raise DamagedFile(f"{path} is damaged ({unreadable(path, e)})") from None
    if corrupt is not None:
        raise DamagedFile(f"{path} is damaged (a checksum fails: {corrupt})")
    return obj


def unreadable(path: Path, error: BaseException) -> str:
    """Why torch.load could not read `path`, in a few words."""
    if path.is_dir():
        return "a folder, not a file"
    if isinstance(error, PermissionError):
        return "not readable: permission denied"
    if isinstance(error, EOFError) or (path.is_file() and path.stat().st_size == 0):
        return "empty or truncated"
    if isinstance(error, RuntimeError | OSError):  # the zip reader: a truncated or overwritten archive
        return f"truncated or corrupt: {first_line(error)}"
    return "not a torch file"


def first_line(error: BaseException, skip_header: bool = False, limit: int = 160) -> str:
    """An error's first line, shortened, for a one-line message; `skip_header`: its second, where the
    first only says what failed (load_state_dict's 'Error(s) in loading state_dict for IJEPA:')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    text = lines[1] if skip_header and len(lines) > 1 else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
