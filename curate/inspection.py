"""`thresher inspect <dir>`: the manifest summary, the schema, and sample rows of a dataset (its data,
its rejects or its quarantine); for a folder whose run did not finish, what it holds so far."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from curate import fs
from curate.arrow_io import iter_batches
from curate.errors import ConfigError
from curate.manifest import MANIFEST, Manifest, verify_shards
from curate.progress import reasons_lines, summary_table
from curate.quarantine import quarantine_reasons

SKIPPED_LISTED = 10  # skipped input files named (all are in inputs.arrow)


def shorten(value, limit: int = 300) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def inspect_dataset(
    folder: str,
    rows: int = 3,
    console: Console | None = None,
    rejects: str | None = None,
    quarantine: bool = False,
) -> None:
    """Print what a dataset folder holds, local or on object storage (`s3://bucket/dataset`: every
    file is read to check it). `rejects` ("" for every stage, or a stage's name) or `quarantine`
    shows those rows instead of the data's."""
    console = console or Console()
    folder_path = folder.rstrip("/") if fs.is_remote(folder) else folder
    local = Path(folder)
    if not fs.is_remote(folder) and not (local / MANIFEST).is_file() and (local / "_work" / "run.json").is_file():
        inspect_unfinished(local, rows, console, quarantine)
        return
    manifest = Manifest.read(folder_path)
    checked = verify_shards(folder_path, manifest, everything=True)  # InputError (one line) on a mismatch
    console.print(
        f"[bold]{folder_path}[/bold]  kind={manifest.kind}  format={manifest.format}  version={manifest.version}  "
        f"created={manifest.created}  fingerprint={manifest.fingerprint}"
    )
    console.print(
        f"rows {manifest.rows:,} in {len(manifest.shards)} shard(s), {manifest.data_bytes / 1e6:.1f} MB · "
        f"read {manifest.rows_in:,} · dropped {manifest.dropped:,} · "
        f"quarantined {manifest.quarantined:,} · {manifest.timings.seconds:.1f} s"
    )
    console.print(summary_table(manifest))
    for line in reasons_lines(manifest, folder_path, skipped_listed=SKIPPED_LISTED):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    schema = Table(title="schema")
    schema.add_column("column")
    schema.add_column("type")
    for field in manifest.schema:
        schema.add_row(field["name"], field["type"])
    console.print(schema)
    if quarantine:
        title, records = "quarantined row", manifest.quarantine
    elif rejects is not None:
        stages = {record.stage for record in manifest.rejects}
        if rejects and rejects not in stages:
            raise ConfigError(
                f"--rejects: no row was dropped by a stage '{rejects}'; stages with rejects: "
                f"{', '.join(sorted(str(s) for s in stages)) or 'none'}"
            )
        title, records = "rejected row", [r for r in manifest.rejects if not rejects or r.stage == rejects]
    else:
        title, records = "row", manifest.shards
    print_rows(manifest.iter_rows(folder_path, records), rows, title, console)
    console.print(f"checksums: all {checked} files listed match the manifest")
    if manifest.quarantine and not quarantine:
        console.print(
            f"quarantine: {sum(s.rows for s in manifest.quarantine):,} row(s) under "
            f"{fs.join(folder_path, 'quarantine')} (file, position, field, error, raw): thresher inspect {folder_path} "
            "--quarantine"
        )
    if manifest.rejects and rejects is None:
        console.print(
            f"rejects: {manifest.dropped:,} row(s) under {fs.join(folder_path, 'rejects')}: --rejects [STAGE]"
        )


def print_rows(found: Iterator[dict], rows: int, title: str, console: Console) -> None:
    shown = 0
    for row in found:
        if shown >= rows:
            break
        console.print(f"[bold]{title} {shown}[/bold]")
        for key, value in row.items():
            console.print(f"  {key}: {shorten(value)}", markup=False, highlight=False, soft_wrap=True)
        shown += 1


def inspect_unfinished(folder: Path, rows: int, console: Console, quarantine: bool) -> None:
    """A folder whose run has not finished (killed, or failed on its input): its state, the
    quarantine so far with its top reasons, and quarantined rows on request."""
    work = folder / "_work"
    record = json.loads((work / "run.json").read_text())
    done = len(list(work.glob("pass-0/task-*.json")))
    console.print(
        f"[bold]{folder}[/bold]  unfinished run (no manifest)  fingerprint={record.get('fingerprint')}  "
        f"tasks of the first pass finished: {done}",
        soft_wrap=True,
    )
    failed = work / "failed.json"
    if failed.is_file():
        console.print(
            "failed: " + json.loads(failed.read_text())["error"].splitlines()[0], markup=False, soft_wrap=True
        )
    paths = sorted((folder / "quarantine").glob("*.arrow"))
    reasons = quarantine_reasons(paths)
    if reasons:
        console.print(f"top quarantine reasons ({folder / 'quarantine'}):", soft_wrap=True)
        for reason in reasons:
            console.print(f"  {reason.line()}", markup=False, highlight=False, soft_wrap=True)
    if quarantine:
        found = (row for path in paths for batch in iter_batches(path) for row in batch.to_pylist())
        print_rows(found, rows, "quarantined row", console)
