"""Reading a global stage's scanned state (Arrow IPC stream files, one per task)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa


def read_state(files: list[Path], schema: pa.Schema) -> pl.DataFrame:
    """All scanned state rows, in task order, as one DataFrame with `schema` (empty if none)."""
    frames = [pl.read_ipc_stream(str(path)) for path in files if Path(path).stat().st_size]
    if not frames:
        return pl.from_arrow(schema.empty_table())
    return pl.concat(frames, how="vertical")
