"""The manifest: what a dataset folder holds and how it was made, as one typed model.

`manifest.json` is written last, atomically: a folder with a manifest is a complete dataset.
`Manifest.read` is the only way code reads one; a manifest of another format version, one
missing a field, or one listing a path outside its folder (`../../etc/passwd`) is refused with
one line naming the file and what is wrong.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from curate import __version__, fs
from curate.arrow_io import decode_schema, iter_batches, read_schema, verify_file
from curate.errors import ThresherError
from curate.runfolder import write_json_atomic
from curate.stats import StageStats

MANIFEST = "manifest.json"
# The layout of manifest.json. Version 3: `inputs` sums the input files, listed one per row in
# `inputs.arrow` (with xxh3-128 hashes; skipped files there too). Version 2: stage records carry
# `stats` (the stages' counters) and `details` (their facts); version 1 (no `manifest_version`)
# had `counts` and resolve summaries.
MANIFEST_VERSION = 3


class ManifestError(ThresherError):
    """A manifest that cannot be read: missing, not JSON, another format version, a field missing."""


@dataclass
class FileRecord:
    """A file the dataset lists: a data shard, a rejects shard (with its `stage`) or a quarantine shard."""

    path: str  # relative to the dataset folder
    rows: int
    bytes: int
    sha256: str
    stage: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.stage is None:
            del data["stage"]
        return data


@dataclass
class InputRecord:
    """One input file (a row of the dataset's `inputs.arrow`): rows read (good and bad), rows
    quarantined, bytes and hashes as read, and records passed over on purpose by reason (web
    archives: request records, 404s, images); or a file found but not read, with the reason."""

    path: str
    rows: int = 0
    quarantined: int = 0
    bytes: int = 0
    start: int = 0  # a part of a split file: bytes [start, end) of a line file, row groups of a Parquet file
    end: int = 0  # (0, 0: the whole file)
    sha256: str = ""
    xxh3: str = ""  # xxh3-128 of the bytes read (empty for a dataset's shard: its sha256 is checked)
    skipped: str | None = None  # why the file was not read (unknown format), None if it was
    passed_over: dict[str, int] = field(default_factory=dict)  # records not made rows, on purpose, by reason


INPUTS_FILE = "inputs.arrow"
INPUTS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("quarantined", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("xxh3", pa.string()),
        ("skipped", pa.string()),
        ("passed_over", pa.map_(pa.string(), pa.int64())),
        ("start", pa.int64()),
        ("end", pa.int64()),
    ]
)


@dataclass
class Inputs:
    """The run's input files, summed. One row per file (read or skipped) is in `table`, the
    dataset's `inputs.arrow`: the manifest's size does not grow with the number of input files."""

    files: int  # files read
    skipped: int  # files found but not read (unknown format, not included), archive members too
    rows: int
    quarantined: int
    bytes: int
    table: FileRecord
    passed_over: dict[str, int] = field(default_factory=dict)  # records not made rows, on purpose, by reason

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "table": self.table.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inputs:
        return cls(**{**data, "table": FileRecord(**data["table"])})


@dataclass
class StageRecord:
    """What one stage did in the run (rows in JSON as `in` / `out`)."""

    name: str
    target: str  # module.Class
    type: str  # row | global
    options: dict[str, Any]
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    generated: int = 0
    consumed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    stats: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_stats(
        cls, name: str, target: str, kind: str, options: dict[str, Any], stats: StageStats, resources: dict[str, float]
    ) -> StageRecord:
        return cls(
            name,
            target,
            kind,
            options,
            stats.rows_in,
            stats.rows_out,
            dict(sorted(stats.dropped.items())),
            stats.generated,
            stats.consumed,
            stats.bytes_in,
            stats.bytes_out,
            round(stats.seconds, 3),
            dict(sorted(stats.counters.items())),
            stats.details,
            resources,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["in"], data["out"] = data.pop("rows_in"), data.pop("rows_out")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageRecord:
        data = dict(data)
        data["rows_in"], data["rows_out"] = data.pop("in"), data.pop("out")
        return cls(**data)


@dataclass
class Timings:
    seconds: float
    passes: list[dict[str, Any]]  # {pass, stages, seconds}
    rows_per_second: float | None
    input_mb_per_second: float | None


@dataclass
class Manifest:
    kind: str
    schema: list[dict[str, Any]]  # {name, type, nullable} per column
    rows: int
    rows_in: int
    dropped: int
    quarantined: int
    generated: int
    consumed: int
    shards: list[FileRecord]
    rejects: list[FileRecord]
    quarantine: list[FileRecord]
    stages: list[StageRecord]
    inputs: Inputs
    tasks: int
    workers: int
    config: dict[str, Any]
    fingerprint: str
    version: str  # the code version that wrote it
    created: str
    timings: Timings
    manifest_version: int = MANIFEST_VERSION
    # The data shards' format (`output.format`): arrow (IPC stream), parquet or jsonl; rejects and
    # quarantine are Arrow streams whatever it is. Absent from manifests written before it existed.
    format: str = "arrow"
    arrow_schema: str = ""  # the data's Arrow schema, IPC-serialised, base64: what JSON lines are read back with

    def stage(self, name: str) -> StageRecord:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def data_bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    @property
    def files(self) -> list[FileRecord]:
        """Every file the manifest lists, each with its size and sha256."""
        return [*self.shards, *self.rejects, *self.quarantine, self.inputs.table]

    def data_schema(self, folder: str | Path) -> pa.Schema:
        """The Arrow schema of the data shards: recorded in the manifest, or (a manifest from before
        it was) the first shard's own."""
        if self.arrow_schema:
            return decode_schema(self.arrow_schema)
        return read_schema(fs.join(folder, self.shards[0].path), self.shards[0].sha256)

    def iter_batches(
        self, folder: str | Path, records: Iterable[FileRecord], verify: bool = False
    ) -> Iterator[tuple[FileRecord, pa.RecordBatch]]:
        """The record batches of files the manifest lists (data shards in the dataset's format;
        rejects and quarantine), each with its record; with `verify`, each file is checked against
        its sha256 first (on object storage always: the local copy is fetched by its checksum). The one
        way code reads a dataset's rows."""
        schema = self.data_schema(folder) if self.format == "jsonl" else None
        checked = verify or fs.is_remote(folder)
        for record in records:
            for batch in iter_batches(fs.join(folder, record.path), record.sha256 if checked else None, schema=schema):
                yield record, batch

    def iter_rows(self, folder: str | Path, records: Iterable[FileRecord]) -> Iterator[dict[str, Any]]:
        """The rows of listed files as dicts, in order (batch by batch: memory holds one batch)."""
        for _, batch in self.iter_batches(folder, records):
            yield from batch.to_pylist()

    def input_files(self, folder: str | Path, limit: int | None = None) -> Iterator[InputRecord]:
        """The input files (read, then skipped), from `inputs.arrow` (checked against its sha256)."""
        count = 0
        for batch in iter_batches(fs.join(folder, self.inputs.table.path), sha256=self.inputs.table.sha256):
            for row in batch.to_pylist():
                if limit is not None and count >= limit:
                    return
                count += 1
                parts = {"start": row.get("start") or 0, "end": row.get("end") or 0}  # absent before parts existed
                yield InputRecord(**{**row, **parts, "passed_over": dict(row["passed_over"] or [])})

    def tokenizer(self) -> dict[str, Any] | None:
        """The tokenizer a `tokens` dataset was made with (the `tokenizer` detail of the stage that
        tokenized), else None."""
        for stage in self.stages:
            recorded = stage.details.get("tokenizer")
            if isinstance(recorded, dict):
                return recorded
        return None

    def accounting_problems(self) -> list[str]:
        """Where the counts do not balance (empty when they do). For the run and every stage:
        rows read = rows out + dropped + quarantined - generated + consumed; each stage takes the
        rows the one before gave, and rows in + generated = rows out + dropped + consumed; every
        dropped row is in its stage's rejects files and every quarantined row in the quarantine."""
        problems = []
        expected = self.rows_in - self.quarantined
        for stage in self.stages:
            dropped = sum(stage.dropped.values())
            if stage.rows_in != expected:
                problems.append(f"stage '{stage.name}' took {stage.rows_in} rows but was given {expected}")
            if stage.rows_in + stage.generated != stage.rows_out + dropped + stage.consumed:
                problems.append(
                    f"stage '{stage.name}': in {stage.rows_in} + generated {stage.generated} != "
                    f"out {stage.rows_out} + dropped {dropped} + consumed {stage.consumed}"
                )
            rejected = sum(record.rows for record in self.rejects if record.stage == stage.name)
            if rejected != dropped:
                problems.append(f"stage '{stage.name}' dropped {dropped} rows but its rejects files hold {rejected}")
            expected = stage.rows_out
        if expected != self.rows:
            problems.append(f"{expected} rows left the last stage but the shards hold {self.rows}")
        if sum(record.rows for record in self.shards) != self.rows:
            problems.append(
                f"the manifest says {self.rows} rows but its shards list {sum(s.rows for s in self.shards)}"
            )
        if sum(record.rows for record in self.quarantine) != self.quarantined:
            problems.append(
                f"{self.quarantined} rows quarantined but the quarantine files hold "
                f"{sum(q.rows for q in self.quarantine)}"
            )
        for total, name in ((self.dropped, "dropped"), (self.generated, "generated"), (self.consumed, "consumed")):
            by_stage = sum(
                sum(stage.dropped.values()) if name == "dropped" else getattr(stage, name) for stage in self.stages
            )
            if total != by_stage:
                problems.append(f"{total} rows {name} in total but {by_stage} by the stages")
        return problems

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"manifest_version": self.manifest_version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "manifest_version":
                continue
            if isinstance(value, list) and value and hasattr(value[0], "to_json"):
                value = [item.to_json() for item in value]
            elif isinstance(value, Inputs):
                value = value.to_json()
            elif isinstance(value, Timings):
                value = asdict(value)
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = MANIFEST) -> Manifest:
        """Build from the JSON of a manifest; ManifestError (one line) if it is not one this version reads."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: not a Thresher manifest (a JSON object is expected)")
        version = data.get("manifest_version", 1)
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"{source}: manifest format version {version}; this Thresher ({__version__}) reads version "
                f"{MANIFEST_VERSION}: rerun the recipe that made it (into a new output.dir) with this version"
            )
        try:
            values = {
                f.name: data[f.name]
                for f in fields(cls)
                if f.name != "manifest_version" and (f.name in data or f.default is MISSING)
            }
            for name in ("shards", "rejects", "quarantine"):
                values[name] = [FileRecord(**record) for record in values[name]]
            values["inputs"] = Inputs.from_json(values["inputs"])
            values["stages"] = [StageRecord.from_json(record) for record in values["stages"]]
            values["timings"] = Timings(**values["timings"])
            manifest = cls(**values)
        except KeyError as error:
            raise ManifestError(f"{source}: field {error} is missing") from None
        except (TypeError, AttributeError) as error:
            raise ManifestError(f"{source}: {error}") from None
        for record in manifest.files:
            if not inside_folder(record.path):
                raise ManifestError(f"{source}: the path '{record.path}' leads outside the dataset folder; refused")
        return manifest

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        """The manifest of a dataset folder, local or on object storage (`curate.fs`)."""
        import json

        path = fs.join(folder, MANIFEST)
        try:
            data = json.loads(fs.read_bytes(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ManifestError(f"'{folder}' is not a Thresher dataset (no {MANIFEST})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path}: not valid JSON ({error})") from None
        return cls.from_json(data, path)

    def write(self, folder: str | Path) -> None:
        """Write `manifest.json` atomically (object storage: one PUT, whole or absent)."""
        if fs.is_remote(folder):
            import json

            fs.write_bytes(fs.join(folder, MANIFEST), json.dumps(self.to_json(), indent=2, default=str).encode())
        else:
            write_json_atomic(Path(folder) / MANIFEST, self.to_json())


# Set to 1 to record the git commit of a source checkout in manifests and run records (off by
# default: a run never touches the checkout's git, which concurrent runs and read-only installs need).
GIT_VERSION_ENV = "THRESHER_VERSION_FROM_GIT"


def code_version(git: bool | None = None) -> str:
    """The installed package's version (its metadata; `curate.__version__` if never installed).
    With `git` (default: the THRESHER_VERSION_FROM_GIT environment variable is 1), in a git
    checkout of the source, the commit too (with '.dirty' for local changes), read without taking
    git's locks (`--no-optional-locks`: no .git/index.lock)."""
    from importlib.metadata import PackageNotFoundError, version

    from curate.resources import source_checkout

    try:
        installed = version("thresher")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
        installed = __version__
    if git is None:
        git = os.environ.get(GIT_VERSION_ENV) == "1"
    root = source_checkout()
    if not git or root is None:
        return installed
    command = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        found = subprocess.run(
            [*command, "rev-parse", "--show-toplevel", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.splitlines()
        if len(found) != 2 or Path(found[0]).resolve() != root:  # no repository of its own (an unpacked sdist)
            return installed
        commit = found[1]
        dirty = subprocess.run(
            [*command, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return installed
    return f"{installed}+{commit}{'.dirty' if dirty else ''}"


def inside_folder(path: str) -> bool:
    """Whether a path a manifest lists stays inside the dataset folder (relative, no '..')."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def verify_shards(folder: str | Path, manifest: Manifest | None = None, everything: bool = False) -> int:
    """Check every data shard's size and sha256 against the manifest (with `everything`, the
    rejects, quarantine and inputs files too); raise InputError naming the first file that does
    not match. Returns how many files were checked."""
    manifest = manifest or Manifest.read(folder)
    records = manifest.files if everything else manifest.shards
    for record in records:
        verify_file(fs.join(folder, record.path), record.sha256, record.bytes)
    return len(records)
