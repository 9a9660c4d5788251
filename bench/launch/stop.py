"""Stopping a run's processes on this machine: only a process proven the run's (bench/processes.py:
host, pid and identity) is ever signalled. A run asked to stop ends its training at a step boundary
with a checkpoint where it can (SIGINT), so `bench sweep` resumes it; what still lives after GRACE_S
is killed.
"""

import os
import signal
import time

from bench.processes import pid_alive, recorded_process

GRACE_S = 20.0  # a local job asked to stop finishes its step, checkpoints and closes its W&B run within this


def signal_process(record: dict, sig: int) -> bool:
    """Send `sig` to the process a record names, only when it is provably that process; True when sent.
    Through a pidfd where the kernel has them: the process checked is the one signalled, even if it
    ends and its pid is reused in between."""
    process = recorded_process(record)
    if process is None or process["pid"] == os.getpid():
        return False
    pid = process["pid"]
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # a kernel before 5.3: check, then signal by pid
        fd = None
    try:
        if not pid_alive(record):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def kill_job(controller: dict) -> None:
    """SIGKILL a local job: the process group its controller leads (the controller, the training
    process and its data-loading workers), or the controller alone when it leads none."""
    if not pid_alive(controller):
        return
    pid = controller["process"]["pid"]  # pid_alive proved it well formed
    try:
        if os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, signal.SIGKILL)
            return
    except ProcessLookupError:
        return
    signal_process(controller, signal.SIGKILL)


def stop_local(workers: list[dict], controllers: list[dict]) -> None:
    """Stop local jobs: SIGINT to each training process (it ends its step with a checkpoint, records
    itself interrupted and closes its W&B run), then, after at most GRACE_S, SIGKILL to whatever of the
    jobs still lives. Only processes proven to be the runs' are signalled."""
    asked = [w for w in workers if signal_process(w, signal.SIGINT)]
    end = time.time() + GRACE_S
    while asked and time.time() < end and any(pid_alive(r) for r in asked + controllers):
        time.sleep(0.1)
    for controller in controllers:
        kill_job(controller)
    for worker in workers:
        signal_process(worker, signal.SIGKILL)
