"""Progress that moves while a task streams: the workers' live counters, and bars that show rows,
bytes, the rate and the time left on one line of 120 columns."""

from __future__ import annotations

import io
import time

from conftest import curate, write_jsonl
from rich.console import Console

from curate.executors import counters
from curate.progress import Progress


def test_a_task_reports_what_it_reads_batch_by_batch(tmp_path):
    rows = [{"text": f"document {i} " + "word " * 30} for i in range(200)]
    path = write_jsonl(tmp_path / "one.jsonl", rows)  # one file: one task
    probe = "+stages.probe={_target_: tests.progress_stages.ProgressProbe}"
    manifest = curate(path, tmp_path / "out", "pipeline=clean", probe, "executor.workers=1", "executor.batch_rows=20")
    seen = manifest.stage("probe").details["reported_rows"]
    assert manifest.tasks == 1 and len(seen) == 10
    assert seen == sorted(seen) and seen[0] >= 20 and seen[-1] - seen[0] >= 180  # it moved within the task


def render(progress: Progress, width: int = 120) -> list[str]:
    console = Console(width=width, file=io.StringIO(), force_terminal=True, color_system=None)
    console.print(progress.bars.get_renderable())
    return console.file.getvalue().rstrip("\n").splitlines()


def test_the_bar_shows_rows_bytes_rate_and_time_left_within_120_columns():
    live = counters.LiveCounters(2)
    counters.attach(live)
    try:
        console = Console(width=120, file=io.StringIO(), force_terminal=True)
        progress = Progress(console=console, live=live.totals)
        label = "pass 1/3: apply minhash_dedup, gopher_repetition, gopher_quality, c4, fineweb_quality, scan exact"
        bar = progress.start(label, total=40, completed=4, total_bytes=900_100_000, done_bytes=90_000_000)
        counters.report(1_234_567, 250_500_000)
        task = progress.bars.tasks[bar]
        task.start_time = task.get_time() - 20  # 250.5 MB read in 20 s
        (line,) = render(progress)
        assert len(line) <= 120
        assert line.startswith("pass 1/3: apply minhash_dedup,")
        assert "4/40 tasks" in line and "1.2M rows" in line and "340.5 MB/900.1 MB" in line
        assert "12.5 MB/s" in line and "ETA 0:00:44" in line  # (900.1 - 340.5) MB at 12.5 MB/s
        progress.finish(bar)
        later = progress.start("pass 2/3: scan exact_dedup", total=40, total_rows=2_000_000)
        counters.report(500_000, 0)
        progress.bars.tasks[later].start_time = time.monotonic() - 10
        first, second = render(progress)
        assert "1.2M rows" in first  # a finished pass keeps what was read in it
        assert "500.0k rows" in second and "50.0k rows/s" in second and "ETA 0:00:30" in second
        assert len(first) <= 120 and len(second) <= 120
    finally:
        counters.attach(None)


def test_without_live_counters_the_bar_counts_finished_tasks():
    progress = Progress(console=Console(width=120, file=io.StringIO(), force_terminal=True))
    bar = progress.start("pass 1/1: length_filter", total=2, total_bytes=2_000_000)
    progress.advance(bar, rows=1000, nbytes=1_000_000)
    (line,) = render(progress)
    assert "1/2 tasks" in line and "1.0k rows" in line and "1.0 MB/2.0 MB" in line
