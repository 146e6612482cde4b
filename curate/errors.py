"""The errors a user can cause, each printed as one clear line by the CLI (never a bare traceback)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ThresherError(Exception):
    """Base of every error the CLI reports as one line and exit code 2."""


class ConfigError(ThresherError):
    """The resolved configuration is invalid: names the key and the valid choices."""


class InputError(ThresherError):
    """An input row or file is malformed and `input.on_error=fail` is set: names file, position and field."""


class OutputError(ThresherError):
    """The output directory cannot be used (in use, or holds a different run)."""


@contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """For a command-line entry point: a ThresherError is printed as one line, exit code 2."""
    try:
        yield
    except ThresherError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
