"""Progress bars for long work (live: rows and input bytes as the workers read them, rate, time
left) and the summary at the end of a run (rich)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich import progress as rp
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from curate import fs
from curate.manifest import Manifest
from curate.quarantine import quarantine_reasons

DESCRIPTION_CHARS = 30  # a pass's label is cut to this: the bar stays on one line of 120 columns


@dataclass
class Reading:
    """Where a pass stands: rows and input bytes read (live, from the workers' counters), the share
    done, the read rate and the time left."""

    rows: int
    bytes: int
    fraction: float | None
    rate: float | None  # bytes (or, without a byte total, rows) per second
    eta: float | None


def reading(task: rp.Task, live: Callable[[], tuple[int, int]] | None) -> Reading:
    fields = task.fields
    if live is not None and not fields["finished"]:
        rows_now, bytes_now = live()
        rows, nbytes = rows_now - fields["base_rows"], bytes_now - fields["base_bytes"]
    else:  # a finished pass, or no live counters (Ray): what the finished tasks read
        rows, nbytes = fields["rows"], fields["bytes"]
    total, done = (fields["total_bytes"], nbytes) if fields["total_bytes"] else (fields["total_rows"], rows)
    before = fields["done_bytes"] if fields["total_bytes"] else fields["done_rows"]
    elapsed = task.elapsed or 0.0
    rate = done / elapsed if elapsed >= 1 and done else None
    fraction = min(1.0, (before + done) / total) if total else None
    eta = max(0.0, total - before - done) / rate if rate and total else None
    return Reading(fields["done_rows"] + rows, fields["done_bytes"] + nbytes, fraction, rate, eta)


def size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ReadBar(rp.BarColumn):
    """The share of the pass read: input bytes (the first pass) or rows (later passes), live."""

    def __init__(self, live: Callable[[], tuple[int, int]] | None):
        super().__init__(bar_width=16)
        self.live = live

    def render(self, task: rp.Task) -> ProgressBar:
        fraction = reading(task, self.live).fraction
        if fraction is None:
            fraction = task.completed / task.total if task.total else 0.0
        return ProgressBar(
            total=1000, completed=int(fraction * 1000), width=self.bar_width, animation_time=task.get_time()
        )


class ReadColumn(rp.ProgressColumn):
    """`1.2M rows 340.5 MB/900.1 MB 12.3 MB/s ETA 0:02:10`: what the workers have read so far."""

    def __init__(self, live: Callable[[], tuple[int, int]] | None):
        super().__init__()
        self.live = live

    def render(self, task: rp.Task) -> Text:
        now = reading(task, self.live)
        total = task.fields["total_bytes"]  # the first pass: the rate is in bytes; later passes: in rows
        read = f"{size(now.bytes)}/{size(total)}" if total else size(now.bytes)
        if now.rate is None:
            rate = "-"
        else:
            rate = f"{size(now.rate)}/s" if total else f"{human(now.rate)} rows/s"
        return Text(f"{human(now.rows)} rows {read} {rate} ETA {clock(now.eta)}")


class Progress:
    """One bar per pass: tasks done, and rows and input bytes read as the workers read them (from
    `live`, the executor's counters), with the rate and the time left; one line of at most 120
    columns. Silent when not on a terminal or disabled."""

    def __init__(
        self,
        enabled: bool = True,
        console: Console | None = None,
        live: Callable[[], tuple[int, int]] | None = None,
    ):
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.live = live
        self.bars = rp.Progress(
            rp.TextColumn(f"{{task.description:.{DESCRIPTION_CHARS}}}"),
            ReadBar(live),
            rp.TextColumn("{task.completed}/{task.total} tasks"),
            ReadColumn(live),
            rp.TimeElapsedColumn(),
            console=self.console,
            disable=not self.enabled,
        )

    def __enter__(self) -> Progress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def start(
        self,
        label: str,
        total: int,
        completed: int = 0,
        total_bytes: int = 0,
        done_bytes: int = 0,
        total_rows: int = 0,
        done_rows: int = 0,
    ) -> rp.TaskID:
        """A bar for a pass of `total` tasks, `completed` of them before this run (with their
        `done_bytes` of `total_bytes` input, or `done_rows` of `total_rows` rows)."""
        base_rows, base_bytes = self.live() if self.live is not None else (0, 0)
        return self.bars.add_task(
            label,
            total=total,
            completed=completed,
            rows=0,
            bytes=0,
            base_rows=base_rows,
            base_bytes=base_bytes,
            total_bytes=total_bytes,
            done_bytes=done_bytes,
            total_rows=total_rows,
            done_rows=done_rows,
            finished=False,
        )

    def finish(self, bar: rp.TaskID) -> None:
        """The pass is over: its bar keeps what was read in it (the counters go on with the next pass)."""
        task = self.bars.tasks[bar]
        if self.live is not None and not task.fields["finished"]:
            rows_now, bytes_now = self.live()
            fields = task.fields
            self.bars.update(
                bar, rows=rows_now - fields["base_rows"], bytes=bytes_now - fields["base_bytes"], finished=True
            )
        self.bars.stop_task(bar)

    def advance(self, bar: rp.TaskID, rows: int, nbytes: int = 0) -> None:
        """A task of the pass is done, having read `rows` and `nbytes` (shown when nothing is live)."""
        fields = self.bars.tasks[bar].fields if bar < len(self.bars.tasks) else {"rows": 0, "bytes": 0}
        self.bars.update(bar, advance=1, rows=fields["rows"] + rows, bytes=fields["bytes"] + nbytes)


def human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


def summary_table(manifest: Manifest) -> Table:
    table = Table(title=f"{manifest.kind}: {manifest.rows:,} rows out of {manifest.rows_in:,} read")
    for column in ("stage", "in", "out", "dropped (by reason)", "seconds"):
        table.add_column(column, justify="left" if column in ("stage", "dropped (by reason)") else "right")
    for stage in manifest.stages:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in stage.dropped.items()) or "-"
        rows_in = f"{stage.rows_in:,}" + (f" +{stage.generated:,} new" if stage.generated else "")
        if stage.consumed:
            reasons += f" (merged into other rows {stage.consumed:,})"
        table.add_row(stage.name, rows_in, f"{stage.rows_out:,}", reasons, f"{stage.seconds:.2f}")
    return table


def top_drops(manifest: Manifest, top: int = 5) -> list[str]:
    """`stage: reason count` of the most frequent drop reasons over every stage, largest first."""
    drops = [(count, stage.name, reason) for stage in manifest.stages for reason, count in stage.dropped.items()]
    return [f"{name}: {reason} {count:,}" for count, name, reason in sorted(drops, key=lambda d: (-d[0], d[1:]))[:top]]


def reasons_lines(manifest: Manifest, folder: str | Path | None, skipped_listed: int = 5) -> list[str]:
    """What the summary says beyond the table: the top drop and quarantine reasons (with an example
    row each), and the input files found but not read (archive members too), the first few named."""
    lines = []
    if manifest.dropped:
        lines.append("top drop reasons: " + " · ".join(top_drops(manifest)))
    if folder is None:
        return lines
    if manifest.quarantined:
        groups = quarantine_reasons(fs.join(folder, record.path) for record in manifest.quarantine)
        lines.append(f"top quarantine reasons ({fs.join(folder, 'quarantine')}):")
        lines += [f"  {group.line()}" for group in groups]
    if manifest.inputs.skipped:
        skipped = [record for record in manifest.input_files(folder) if record.skipped]
        reasons = Counter(record.skipped for record in skipped)
        lines.append(
            f"skipped {len(skipped):,} input file(s): "
            + " · ".join(f"{reason} {count:,}" for reason, count in reasons.most_common())
        )
        lines += [f"  {record.path} ({record.skipped})" for record in skipped[:skipped_listed]]
        if len(skipped) > skipped_listed:
            lines.append(
                f"  … and {len(skipped) - skipped_listed:,} more in {fs.join(folder, manifest.inputs.table.path)}"
            )
    return lines


def print_summary(
    manifest: Manifest, console: Console | None = None, note: str = "", folder: str | Path | None = None
) -> None:
    """The per-stage table, the top drop and quarantine reasons, and one closing line. A run that
    kept no row (and consumed none, as a tokenizer's training does) says so instead of 'done'."""
    console = console or Console(stderr=True)
    console.print(summary_table(manifest))
    for line in reasons_lines(manifest, folder):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    timings = manifest.timings
    if not note and manifest.rows == 0 and not manifest.consumed:
        note = "[bold yellow]no rows kept[/bold yellow]: every row read was dropped or quarantined (reasons above)"
    console.print(
        f"quarantined {manifest.quarantined:,} · dropped {manifest.dropped:,} · "
        f"{len(manifest.shards)} shard(s) · {timings.seconds:.1f} s "
        f"({human(timings.rows_per_second or 0)} rows/s) · {note or 'done'}"
    )
