"""Progress bars for long work and the summary table at the end of a run (rich)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich import progress as rp
from rich.console import Console
from rich.table import Table

from curate.manifest import Manifest
from curate.quarantine import quarantine_reasons


class Progress:
    """One bar per pass, counting tasks and rows; silent when not on a terminal or disabled."""

    def __init__(self, enabled: bool = True, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.bars = rp.Progress(
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn("tasks · {task.fields[rows]:,} rows"),
            rp.TimeElapsedColumn(),
            console=self.console,
            disable=not self.enabled,
        )

    def __enter__(self) -> Progress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def start(self, label: str, total: int, completed: int = 0) -> rp.TaskID:
        return self.bars.add_task(label, total=total, completed=completed, rows=0)

    def advance(self, bar: rp.TaskID, rows: int) -> None:
        current = self.bars.tasks[bar].fields["rows"] if bar < len(self.bars.tasks) else 0
        self.bars.update(bar, advance=1, rows=current + rows)


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


def reasons_lines(manifest: Manifest, folder: Path | None, skipped_listed: int = 5) -> list[str]:
    """What the summary says beyond the table: the top drop and quarantine reasons (with an example
    row each), and the input files found but not read (archive members too), the first few named."""
    lines = []
    if manifest.dropped:
        lines.append("top drop reasons: " + " · ".join(top_drops(manifest)))
    if folder is None:
        return lines
    if manifest.quarantined:
        groups = quarantine_reasons(folder / record.path for record in manifest.quarantine)
        lines.append(f"top quarantine reasons ({folder / 'quarantine'}):")
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
            lines.append(f"  … and {len(skipped) - skipped_listed:,} more in {folder / manifest.inputs.table.path}")
    return lines


def print_summary(
    manifest: Manifest, console: Console | None = None, note: str = "", folder: str | Path | None = None
) -> None:
    """The per-stage table, the top drop and quarantine reasons, and one closing line. A run that
    kept no row (and consumed none, as a tokenizer's training does) says so instead of 'done'."""
    console = console or Console(stderr=True)
    console.print(summary_table(manifest))
    for line in reasons_lines(manifest, Path(folder) if folder is not None else None):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    timings = manifest.timings
    if not note and manifest.rows == 0 and not manifest.consumed:
        note = "[bold yellow]no rows kept[/bold yellow]: every row read was dropped or quarantined (reasons above)"
    console.print(
        f"quarantined {manifest.quarantined:,} · dropped {manifest.dropped:,} · "
        f"{len(manifest.shards)} shard(s) · {timings.seconds:.1f} s "
        f"({human(timings.rows_per_second or 0)} rows/s) · {note or 'done'}"
    )
