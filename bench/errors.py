"""Errors a user can cause and fix. The CLI turns them into one line on stderr and exit code 2."""

from core.errors import BenchError

__all__ = ["BenchError", "DamagedFile", "TrainingFailed"]


class DamagedFile(BenchError):
    """A file the tool wrote (summary.json, state.json, job.json, eval.json, a checkpoint, a cache) that
    can no longer be read: truncated, not JSON, the wrong shape. The message names the file."""


class TrainingFailed(RuntimeError):
    """A run that could not finish (NaN loss, ...). The reason is recorded in its summary."""
