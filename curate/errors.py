"""The errors a user can cause, each printed as one clear line by the CLI (never a bare traceback)."""

from __future__ import annotations

import errno
import os
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


# The machine's errors a user fixes (space, quota, permissions, a read-only or failing disk):
# one line naming the path and the cause, never a traceback.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ENOTDIR,
    errno.EISDIR,
}


def environment_error(error: BaseException, where: object) -> OutputError | None:
    """An OutputError (one line: the path and the cause) for an OSError of the machine's making
    (full disk, no permission, read-only); None for anything else. `where` names the path when the
    error does not (pyarrow's errors carry no file name)."""
    if not isinstance(error, OSError) or error.errno not in ENVIRONMENT_ERRNOS:
        return None
    return OutputError(f"{error.filename or where}: {os.strerror(error.errno)}")


@contextmanager
def naming(path: object) -> Iterator[None]:
    """Name `path` in an OSError raised in the block that names no file (pyarrow's do not)."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


@contextmanager
def user_errors_as_one_line() -> Iterator[None]:
    """For a command-line entry point: a ThresherError is printed as one line, exit code 2."""
    try:
        yield
    except ThresherError as error:
        from curate.redact import redact_text

        print(f"error: {redact_text(str(error))}", file=sys.stderr)
        sys.exit(2)
