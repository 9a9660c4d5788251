"""Errors a user can cause and fix. The CLI turns them into one line on stderr and exit code 2."""


class BenchError(Exception):
    """A user mistake: bad config, unknown name, missing dataset. The message says what to do."""


class TrainingFailed(RuntimeError):
    """A run that could not finish (NaN loss, ...). The reason is recorded in its summary."""
