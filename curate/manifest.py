"""The manifest: what a dataset folder holds and how it was made, as one typed model.

`manifest.json` is written last, atomically: a folder with a manifest is a complete dataset.
`Manifest.read` is the only way code reads one; a manifest of another format version, or one
missing a field, is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import ThresherError
from curate.runfolder import write_json_atomic
from curate.stats import StageStats

MANIFEST = "manifest.json"
# The layout of manifest.json. Version 2: stage records carry `stats` (the stages' counters) and
# `details` (their facts); version 1 (no `manifest_version`) had `counts` and resolve summaries.
MANIFEST_VERSION = 2


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
    """One input file: rows read (good and bad), rows quarantined, bytes and sha256 as read, and
    records passed over on purpose by reason (web archives: request records, 404s, images)."""

    path: str
    rows: int = 0
    quarantined: int = 0
    bytes: int = 0
    sha256: str = ""
    skipped: dict[str, int] = field(default_factory=dict)


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
    inputs: list[InputRecord]
    skipped_files: list[dict[str, Any]]
    tasks: int
    workers: int
    config: dict[str, Any]
    fingerprint: str
    version: str  # the code version that wrote it
    created: str
    timings: Timings
    manifest_version: int = MANIFEST_VERSION

    def stage(self, name: str) -> StageRecord:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def data_bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    def tokenizer(self) -> dict[str, Any] | None:
        """The tokenizer a `tokens` dataset was made with (the `tokenizer` detail of the stage that
        tokenized), else None."""
        for stage in self.stages:
            recorded = stage.details.get("tokenizer")
            if isinstance(recorded, dict):
                return recorded
        return None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"manifest_version": self.manifest_version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "manifest_version":
                continue
            if isinstance(value, list) and value and hasattr(value[0], "to_json"):
                value = [item.to_json() for item in value]
            elif isinstance(value, list) and value and isinstance(value[0], InputRecord):
                value = [asdict(item) for item in value]
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
            values = {f.name: data[f.name] for f in fields(cls) if f.name != "manifest_version"}
            for name in ("shards", "rejects", "quarantine"):
                values[name] = [FileRecord(**record) for record in values[name]]
            values["inputs"] = [InputRecord(**record) for record in values["inputs"]]
            values["stages"] = [StageRecord.from_json(record) for record in values["stages"]]
            values["timings"] = Timings(**values["timings"])
            return cls(**values)
        except KeyError as error:
            raise ManifestError(f"{source}: field {error} is missing") from None
        except TypeError as error:
            raise ManifestError(f"{source}: {error}") from None

    @classmethod
    def read(cls, folder: str | Path) -> Manifest:
        import json

        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise ManifestError(f"'{folder}' is not a Thresher dataset (no {MANIFEST})")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ManifestError(f"{path}: not valid JSON ({error})") from None
        return cls.from_json(data, str(path))

    def write(self, folder: str | Path) -> None:
        write_json_atomic(Path(folder) / MANIFEST, self.to_json())


def code_version() -> str:
    """The installed package's version and, in a git checkout of the source, the commit (with
    '.dirty' for local changes). An installed wheel has no git: its version is the package's."""
    from importlib.metadata import PackageNotFoundError, version

    from curate.resources import source_checkout

    try:
        installed = version("thresher")
    except PackageNotFoundError:  # a checkout on PYTHONPATH, never installed
        installed = __version__
    root = source_checkout()
    if root is None:
        return installed
    # Read-only git: --no-optional-locks keeps `git status` from taking .git/index.lock, which
    # concurrent runs (and the user's own git commands) would contend for.
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        found = subprocess.run(
            [*git, "rev-parse", "--show-toplevel", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.splitlines()
        if len(found) != 2 or Path(found[0]).resolve() != root:  # no repository of its own (an unpacked sdist)
            return installed
        commit = found[1]
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return installed
    return f"{installed}+{commit}{'.dirty' if dirty else ''}"


def verify_shards(folder: str | Path, manifest: Manifest | None = None) -> None:
    """Check every shard's size and sha256 against the manifest; raise ThresherError on a mismatch."""
    folder = Path(folder)
    manifest = manifest or Manifest.read(folder)
    for shard in manifest.shards:
        path = folder / shard.path
        if not path.is_file():
            raise ThresherError(f"{path}: shard listed in the manifest is missing")
        if path.stat().st_size != shard.bytes:
            raise ThresherError(f"{path}: size {path.stat().st_size} does not match the manifest ({shard.bytes})")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != shard.sha256:
            raise ThresherError(f"{path}: checksum does not match the manifest (the shard was modified or corrupted)")
