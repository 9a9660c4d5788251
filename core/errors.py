"""The error a user can cause and fix (bad config, unknown name): the CLI turns it into one line on
stderr and exit code 2. Defined here so that methods and registries raise it without importing the
harness; bench/errors.py adds the harness's own kinds."""


class BenchError(Exception):
    """A user mistake: bad config, unknown name, missing dataset. The message says what to do."""
