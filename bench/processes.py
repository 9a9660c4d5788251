"""Which process is a run's: a process is named by its host, pid and identity (start time since boot
and boot id, from Linux's /proc). A pid that an unrelated process holds now reads as the run's process
having ended. Read by the run states (bench/runstate.py) and by the launcher when it stops a run; no
signal is sent from here.
"""

import functools
import os
import socket
from pathlib import Path

PROC = Path("/proc")


def process_identity(pid: int) -> dict | None:
    """What tells a process from a later one given the same pid: the pid, its start time (clock ticks
    after boot, /proc/PID/stat field 22) and the boot's id; no two processes of a machine share all
    three. (Not its command line: an exec changes it, and a process read as it starts shows its parent's
    or none, so a controller read just after it started would later look like another process.) None
    when no such process lives (a zombie counts as ended: it only waits for its parent to reap it)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        boot = boot_id()
    except OSError:  # no such process (or no /proc: see pid_alive)
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces and ')'
    if fields[0] in ("Z", "X"):
        return None
    return {"pid": pid, "start": int(fields[19]), "boot": boot}


@functools.cache
def boot_id() -> str:
    """This boot's id: read once, it does not change while this process lives."""
    return (PROC / "sys/kernel/random/boot_id").read_text().strip()


@functools.cache
def own_identity(pid: int) -> dict | None:
    """This process's identity (keyed by pid: a forked child computes its own)."""
    return process_identity(pid)


def me() -> dict:
    """What a writer records about itself: its pid and identity."""
    return {"pid": os.getpid(), "process": own_identity(os.getpid())}


def recorded_process(record: dict) -> dict | None:
    """The process identity a record holds; None when it holds none (an older version's) or a malformed one."""
    process = record.get("process")
    return process if isinstance(process, dict) and isinstance(process.get("pid"), int) else None


def pid_alive(state: dict) -> bool | None:
    """Whether the process a record names (`host`, and `process`: its identity, else a bare `pid` from
    an older version) is alive and still that process. A pid held by another process now reads as
    False: the run's process has ended. None when this machine cannot tell: another host, no pid, no
    /proc, or a bare pid that is alive but cannot be proven the run's."""
    recorded = recorded_process(state)
    pid = recorded["pid"] if recorded else state.get("pid")
    if state.get("host") != socket.gethostname() or not isinstance(pid, int) or not (PROC / "self/stat").is_file():
        return None
    now = process_identity(pid)
    if now is None:
        return False
    return all(recorded.get(key) == value for key, value in now.items()) if recorded else None
