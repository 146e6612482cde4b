"""Logging: every module logs through `logging.getLogger(__name__)`; a run keeps its logs in files.

While a run or a task is in progress, `log_to_file` adds a file handler to the root logger, so
what Thresher's modules log at INFO and above (and what other libraries log at WARNING and above)
lands in the run's `logs/` folder: `run.log` for the driver, one file per task for the workers
(wherever they run, Ray actors included). The command line adds `console_warnings`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curate.redact import redact_text

PACKAGES = ("curate", "train")
FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats records with credentials inside URLs masked (`curate.redact`)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class RunLogHandler(logging.FileHandler):
    """A run's log file. If the disk fills up or the file cannot be written, the run reports that
    itself (one line); the logging module's own traceback on stderr is not wanted on top."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # the last lines could not be flushed to a full disk
            pass


@contextmanager
def log_to_file(path: Path, mode: str = "a") -> Iterator[Path]:
    """Send log records to `path` for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RunLogHandler(path, mode=mode, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    for package in PACKAGES:  # our INFO records reach the handler; other libraries stay at WARNING
        if logging.getLogger(package).level == logging.NOTSET:
            logging.getLogger(package).setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def console_warnings() -> None:
    """Show Thresher's warnings on stderr (the command line; library users configure logging themselves).
    Added once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: record.levelno < logging.ERROR)  # errors: the command line prints them
    handler.setFormatter(RedactingFormatter("%(levelname)s: %(message)s"))
    for package in PACKAGES:
        logger = logging.getLogger(package)
        if not any(getattr(h, "thresher_console", False) for h in logger.handlers):
            handler.thresher_console = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
