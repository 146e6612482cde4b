"""`thresher inspect <dir>`: the manifest summary, the schema, and sample rows of a dataset."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from curate import fs
from curate.arrow_io import iter_batches
from curate.manifest import Manifest, verify_shards
from curate.progress import summary_table


def shorten(value, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def inspect_dataset(folder: str, rows: int = 3, console: Console | None = None) -> None:
    """`folder` is local or on object storage (`s3://bucket/dataset`): every file is read to check it."""
    console = console or Console()
    folder_path = folder.rstrip("/") if fs.is_remote(folder) else folder
    manifest = Manifest.read(folder_path)
    checked = verify_shards(folder_path, manifest, everything=True)  # InputError (one line) on a mismatch
    console.print(
        f"[bold]{folder_path}[/bold]  kind={manifest.kind}  version={manifest.version}  "
        f"created={manifest.created}  fingerprint={manifest.fingerprint}"
    )
    console.print(
        f"rows {manifest.rows:,} in {len(manifest.shards)} shard(s), {manifest.data_bytes / 1e6:.1f} MB · "
        f"read {manifest.rows_in:,} · dropped {manifest.dropped:,} · "
        f"quarantined {manifest.quarantined:,} · {manifest.timings.seconds:.1f} s"
    )
    console.print(summary_table(manifest))
    schema = Table(title="schema")
    schema.add_column("column")
    schema.add_column("type")
    for field in manifest.schema:
        schema.add_row(field["name"], field["type"])
    console.print(schema)
    shown = 0
    for shard in manifest.shards:
        remote = fs.is_remote(folder_path)  # read from the cache, checked as it is downloaded
        for batch in iter_batches(fs.join(folder_path, shard.path), sha256=shard.sha256 if remote else None):
            for row in batch.to_pylist():
                if shown >= rows:
                    break
                console.print(f"[bold]row {shown}[/bold]")
                for key, value in row.items():
                    console.print(f"  {key}: {shorten(value)}", markup=False, highlight=False)
                shown += 1
        if shown >= rows:
            break
    console.print(f"checksums: all {checked} files listed match the manifest")
    if manifest.quarantine:
        console.print(
            f"quarantine: {sum(s.rows for s in manifest.quarantine):,} row(s) under "
            f"{fs.join(folder_path, 'quarantine')} (file, position, field, error, raw)"
        )
