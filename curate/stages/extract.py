"""HTML to main text: trafilatura (FineWeb's extractor) or resiliparse (fast), with a CPU-time
limit per page that needs no thread and no process."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import pyarrow as pa

from curate.stages.base import RowResult, RowStage, split_by_reason, with_columns

logger = logging.getLogger(__name__)

BACKENDS = ("trafilatura", "resiliparse")


class ExtractionTimeout(BaseException):
    """Raised inside the extractor when its CPU time is up. A BaseException, like
    KeyboardInterrupt, so the libraries' own `except Exception` blocks let it through."""


class CpuTimeLimit:
    """Interrupts a call once this process has spent `seconds` of CPU time in it.

    `setitimer(ITIMER_PROF)` counts the process's CPU time (user and system), not wall time, so
    other processes on a busy machine do not bring a page closer to its limit; when it expires,
    the kernel sends SIGPROF and the handler raises `ExtractionTimeout` in the extracting code at
    its next Python instruction (a C call in progress, such as lxml parsing a page, finishes
    first: `max_html_chars` bounds that). No thread or process is started. Signal handlers can
    only be installed from the main thread: elsewhere `install` returns False and calls run
    without a limit.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.armed = False
        self.previous: Any = None
        self.installed = False

    def expired(self, signum: int, frame: FrameType | None) -> None:
        if self.armed:
            raise ExtractionTimeout

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False
        self.previous = signal.signal(signal.SIGPROF, self.expired)
        self.installed = True
        return True

    def uninstall(self) -> None:
        if self.installed:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, self.previous)
            self.installed = False

    def run(self, function: Callable[[str], str | None], html: str) -> tuple[str | None, bool]:
        """(result, timed_out)."""
        if not self.installed:
            return function(html), False
        try:
            try:
                self.armed = True
                signal.setitimer(signal.ITIMER_PROF, self.seconds)
                return function(html), False
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
                self.armed = False
        except ExtractionTimeout:  # also when SIGPROF lands between the call's return and the disarm
            return None, True


@dataclass
class Extract(RowStage):
    """Extract the main text of HTML pages (`text` holds the page; afterwards, its text).

    Backends: `trafilatura` (default; FineWeb's and RefinedWeb's choice: best F1 on the Article
    Extraction Benchmark) and `resiliparse` (about 10x faster, somewhat lower precision; DCLM's
    choice). Each takes its own options, named as the library names them:
    - trafilatura (`trafilatura.extract`): `favor_precision`, `favor_recall`, `include_comments`,
      `include_tables`, `include_links`, `deduplicate`. Defaults: FineWeb's (datatrove's
      Trafilatura step: favor_precision, no comments, deduplicate), the library's for the rest.
    - resiliparse (`extract_plain_text`): `main_content`, `comments`, `links`, `alt_texts`,
      `list_bullets`, `preserve_formatting`. Defaults: the library's, but `main_content=true`
      (DCLM), no comments (as the trafilatura defaults) and no image alt texts (descriptions of
      pictures, not running text): F1 0.933 on the Article Extraction Benchmark's pages here,
      against 0.904 with the library's own defaults.

    A page is dropped when nothing is extracted (`extract_empty`), when its extraction takes
    more than `cpu_timeout_s` seconds of CPU time (`extract_timeout`; datatrove's default limit,
    1 s, counted in CPU time rather than wall time so that the drops do not depend on the load of
    the machine), when it is longer than `max_html_chars` (`html_too_large`; trafilatura's own
    MAX_FILE_SIZE, checked first so a huge page is never parsed), or when the library raises
    (`extract_error`). Dropped rows keep an empty `text`; their `id` and `meta.offset` find the
    record in its WARC file. The HTML is not carried on unless `keep_html` (then in `html`, for
    kept and dropped rows).

    trafilatura's `deduplicate` remembers text segments across pages (a per-process cache of 4096
    segments; one seen more than twice is left out), so a page's text depends on the pages read
    before it. The cache is cleared at the start of every task: a page's text then depends only
    on the pages before it in its task, which the task plan fixes — the same with any number of
    workers (datatrove keeps the cache over a task too).
    """

    config_name: ClassVar[str] = "extract"
    requires: ClassVar[tuple[str, ...]] = ("text",)

    backend: str = "trafilatura"
    # trafilatura's options
    favor_precision: bool = True
    favor_recall: bool = False
    include_comments: bool = False
    include_tables: bool = True
    include_links: bool = False
    deduplicate: bool = True
    # resiliparse's options
    main_content: bool = True
    comments: bool = False
    links: bool = False
    alt_texts: bool = False
    list_bullets: bool = True
    preserve_formatting: bool = True
    # both
    cpu_timeout_s: float = 1.0
    max_html_chars: int = 20_000_000
    keep_html: bool = False

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: '{self.backend}' is not one of: {', '.join(BACKENDS)}")
        if self.cpu_timeout_s <= 0:
            raise ValueError("cpu_timeout_s: must be > 0")
        if self.max_html_chars <= 0:
            raise ValueError("max_html_chars: must be > 0")
        if self.favor_precision and self.favor_recall:
            raise ValueError("favor_recall: cannot be set together with favor_precision")

    def provided_columns(self) -> dict[str, pa.DataType]:
        return {"html": pa.string()} if self.keep_html else {}

    def __post_init__(self) -> None:
        self._extract: Callable[[str], str | None] | None = None
        self._limit: CpuTimeLimit | None = None

    def setup(self) -> None:
        self._extract = self.extractor()
        self._limit = CpuTimeLimit(self.cpu_timeout_s)
        limited = self._limit.install()
        if not limited:
            logger.warning("extract: not in the main thread, so pages run without the CPU-time limit")
        self.stat_set(time_limit="cpu time (SIGPROF)" if limited else "none (not the main thread)")

    def start_task(self, task: int) -> None:
        if self.backend == "trafilatura":  # its `deduplicate` memory starts afresh with each task
            from trafilatura.meta import reset_caches

            reset_caches()

    def teardown(self) -> None:
        if self._limit is not None:
            self._limit.uninstall()
        self._extract = self._limit = None

    def extractor(self) -> Callable[[str], str | None]:
        """The library call with this stage's options: what the extraction benchmark compares to."""
        if self.backend == "trafilatura":
            import trafilatura

            return lambda html: trafilatura.extract(
                html,
                favor_precision=self.favor_precision,
                favor_recall=self.favor_recall,
                include_comments=self.include_comments,
                include_tables=self.include_tables,
                include_links=self.include_links,
                deduplicate=self.deduplicate,
            )
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        return lambda html: extract_plain_text(
            HTMLTree.parse(html),
            main_content=self.main_content,
            comments=self.comments,
            links=self.links,
            alt_texts=self.alt_texts,
            list_bullets=self.list_bullets,
            preserve_formatting=self.preserve_formatting,
        )

    def extract_page(self, html: str | None) -> tuple[str, str | None]:
        """(text, drop reason or None)."""
        assert self._extract is not None and self._limit is not None, "setup() loads the extractor"
        if not html:
            return "", "extract_empty"
        if len(html) > self.max_html_chars:
            return "", "html_too_large"
        try:
            text, timed_out = self._limit.run(self._extract, html)
        except Exception as error:  # a library failure on one page must not stop the run
            self.stat_update("extract_errors")
            logger.warning("extract: %s failed on a page (%s: %s)", self.backend, type(error).__name__, error)
            return "", "extract_error"
        if timed_out:
            return "", "extract_timeout"
        text = (text or "").strip()
        return text, None if text else "extract_empty"

    def process(self, batch: pa.RecordBatch) -> RowResult:
        pages = batch.column("text").to_pylist()
        results = [self.extract_page(html) for html in pages]
        if self.keep_html:
            batch = with_columns(batch, {"html": pages}, self.provided_columns())
        index = batch.schema.get_field_index("text")  # rewritten in place, as `c4` does
        batch = batch.set_column(index, batch.schema.field(index), pa.array([t for t, _ in results], pa.string()))
        return split_by_reason(batch, [reason for _, reason in results])
