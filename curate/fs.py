"""The one filesystem layer: everything Thresher reads and writes goes through here, local paths and
fsspec URLs alike (`s3://`, `gs://`, `hf://`, `http(s)://` read-only, `file://`, local paths).

- Reading: `open_binary` streams a file (remote: ranged GETs with read-ahead), `stat` gives its size and
  a version tag (local: mtime; object stores: ETag / generation, which changes with every write),
  `glob` and `walk` list folders, `read_bytes` reads a small file whole.
- Remote files that must be memory-mapped (dataset shards for training, a tokenizer or a classifier
  model a library opens by path) are fetched into a local cache (`local_copy`): content-addressed by
  their sha256 when one is known (a manifest's shard), else keyed by URL and version; the cache is
  bounded (`THRESHER_CACHE_GB`, least recently used files removed first) and lives under
  `THRESHER_CACHE` (default `~/.cache/thresher`).
- Writing on object storage: a file is written locally, then uploaded in one request (`upload`): an
  object appears whole or not at all (S3 and GCS commit a multipart upload only when it completes), so
  there is no temporary name to rename. `Mirror` is an output folder on object storage written through
  a local staging folder: the engine writes a file locally (atomically, as on a local disk), then
  publishes it; a finished task's marker is published last, and a run's manifest last of all.
- `create_exclusive` creates a file only if it does not exist (S3's conditional PUT `If-None-Match`,
  `O_EXCL` locally): what an output folder's lease on object storage is built on (`curate.runfolder`).

Credentials are never passed through here: each backend reads its own environment and config files
(AWS_* variables and ~/.aws for s3fs, GOOGLE_APPLICATION_CREDENTIALS for gcsfs, HF_TOKEN for hf://).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import xxhash

from curate.errors import ConfigError, InputError
from curate.redact import redact_text

# Protocols that cannot be written to (an output there is a one-line error).
READ_ONLY = ("http", "https")
NO_OUTPUT = (*READ_ONLY, "hf")  # the Hub commits file by file: no place for a run's output folder
CONDITIONAL_PUT = ("s3", "s3a")  # stores whose fsspec backend creates a file only if absent (mode="create")
BLOCK = 1 << 22  # bytes per read when hashing or copying
READ_AHEAD = 8 << 20  # remote reads: bytes fetched per request (fewer, larger GETs)
CACHE_ENV, CACHE_GB_ENV = "THRESHER_CACHE", "THRESHER_CACHE_GB"
DEFAULT_CACHE_GB = 20.0


def is_remote(location: str | Path) -> bool:
    """Whether `location` is a URL of a filesystem other than the local one."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_path(location: str | Path) -> Path:
    """A local location as a Path (`file://` stripped)."""
    text = str(location)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def filesystem(location: str | Path) -> tuple[Any, str]:
    """The fsspec filesystem of `location` and the path within it (fsspec caches the instances)."""
    from fsspec.core import url_to_fs

    return url_to_fs(str(location))


def protocol(location: str | Path) -> str:
    return str(location).split("://", 1)[0] if is_remote(location) else "file"


def join(base: str | Path, *parts: str) -> str:
    """`base` and relative `parts` joined with '/' (URLs) or as a local path."""
    if not is_remote(base):
        return str(local_path(base).joinpath(*parts))
    return "/".join([str(base).rstrip("/"), *(part.strip("/") for part in parts if part)])


def basename(location: str | Path) -> str:
    """The last part of a path (an http(s) URL's query string left out: `data.jsonl?sig=...`)."""
    text = str(location)
    if protocol(text) in READ_ONLY:
        text = text.split("?", 1)[0]
    return text.rstrip("/").rsplit("/", 1)[-1]


def is_glob(location: str) -> bool:
    """Whether an input entry is a glob pattern (an http(s) URL is not: `?` starts its query)."""
    return protocol(location) not in READ_ONLY and any(ch in location for ch in "*?[")


def parent(location: str | Path) -> str:
    if not is_remote(location):
        return str(local_path(location).parent)
    return str(location).rstrip("/").rsplit("/", 1)[0]


def relative(location: str, root: str) -> str:
    """`location` relative to `root` (both local, or both URLs)."""
    if not is_remote(root):
        return os.path.relpath(local_path(location), local_path(root))
    if protocol(location) in READ_ONLY:  # an http(s) URL's query (a signature) is no part of its name
        location = location.split("?", 1)[0]
    return location[len(root.rstrip("/")) + 1 :]


def url_of(fs: Any, path: str) -> str:
    """A path a remote filesystem listed, as a URL again (its protocol put back)."""
    return str(fs.unstrip_protocol(path))


def display(location: str | Path) -> str:
    """A location as Thresher writes it anywhere (inputs.arrow, quarantine, messages): a key in the
    URL (`https://user:KEY@host`, a signed `?X-Amz-Signature=`) masked (`curate.redact`)."""
    return redact_text(str(location))


def check_writable(location: str | Path, key: str) -> None:
    """A ConfigError unless an output folder can live at `location`."""
    if protocol(location) in NO_OUTPUT:
        raise ConfigError(
            f"{key}: '{display(location)}' is read-only for Thresher ({protocol(location)}:// cannot hold an output folder)"
        )


# -- reading


@dataclass(frozen=True)
class Stat:
    size: int
    version: str  # changes whenever the content is written: local mtime (ns), ETag, generation


def stat(location: str | Path) -> Stat:
    if not is_remote(location):
        result = local_path(location).stat()
        return Stat(result.st_size, str(result.st_mtime_ns))
    fs, path = filesystem(location)
    info = fs.info(path)
    version = info.get("ETag") or info.get("etag") or info.get("generation") or info.get("LastModified") or ""
    return Stat(int(info.get("size") or 0), str(version).strip('"'))


def exists(location: str | Path) -> bool:
    if not is_remote(location):
        return local_path(location).exists()
    fs, path = filesystem(location)
    return bool(fs.exists(path))


def is_file(location: str | Path) -> bool:
    if not is_remote(location):
        return local_path(location).is_file()
    fs, path = filesystem(location)
    return bool(fs.isfile(path))


def is_dir(location: str | Path) -> bool:
    if not is_remote(location):
        return local_path(location).is_dir()
    fs, path = filesystem(location)
    return bool(fs.isdir(path))


def open_binary(location: str | Path) -> IO[bytes]:
    """A binary file open for reading, seekable (remote: ranged reads with read-ahead)."""
    if not is_remote(location):
        return open(local_path(location), "rb")
    fs, path = filesystem(location)
    return fs.open(path, "rb", block_size=READ_AHEAD, cache_type="readahead")


def read_bytes(location: str | Path) -> bytes:
    if not is_remote(location):
        return local_path(location).read_bytes()
    fs, path = filesystem(location)
    return bytes(fs.cat_file(path))


def glob(pattern: str) -> list[str]:
    """The files and folders matching a glob (`**` recursive), sorted."""
    if not is_remote(pattern):
        import glob as local_glob

        return sorted(local_glob.glob(pattern, recursive=True))
    fs, path = filesystem(pattern)
    return sorted(url_of(fs, found) for found in fs.glob(path))


def walk(folder: str | Path, skipped_dirs: frozenset[str] | set[str] = frozenset()) -> Iterator[str]:
    """Every file under `folder`, in sorted order, without hidden files and folders and without
    folders named in `skipped_dirs`."""
    if not is_remote(folder):
        for dirpath, dirnames, filenames in os.walk(local_path(folder)):
            dirnames[:] = sorted(d for d in dirnames if d not in skipped_dirs and not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield os.path.join(dirpath, name)
        return
    fs, root = filesystem(folder)
    root = root.rstrip("/")
    for path in sorted(fs.find(root)):
        parts = path[len(root) + 1 :].split("/")
        if any(part in skipped_dirs or part.startswith(".") for part in parts):
            continue
        yield url_of(fs, path)


def digest(location: str | Path, algorithm: str = "sha256") -> str:
    """A file's sha256 (or xxh3-128) hex digest, streamed (memory: one block)."""
    with open_binary(location) as handle:
        return digest_stream(handle, algorithm)


def digest_stream(handle: IO[bytes] | io.RawIOBase, algorithm: str = "sha256") -> str:
    """The sha256 (or xxh3-128) hex digest of what is left to read in a binary file."""
    hasher = hashlib.sha256() if algorithm == "sha256" else xxhash.xxh3_128()
    while chunk := handle.read(BLOCK):
        hasher.update(chunk)
    return hasher.hexdigest()


class RangeReader(io.RawIOBase):
    """The bytes [start, end) of a seekable binary file, as a file of their own (from its start)."""

    def __init__(self, raw: IO[bytes], start: int, end: int):
        self.raw, self.left = raw, end - start
        raw.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self.left)]
        data = self.raw.read(len(view))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


# -- writing


def upload(local: Path, location: str) -> None:
    """Copy a finished local file to `location`: one object, complete or absent."""
    if not is_remote(location):
        target = local_path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        shutil.copyfile(local, tmp)
        os.replace(tmp, target)
        return
    fs, path = filesystem(location)
    fs.put_file(str(local), path)


def download(location: str, local: Path) -> Path:
    """Copy `location` to the local file `local` (written under a temporary name, then renamed)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f"{local.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open_binary(location) as source, open(tmp, "wb") as target:
            shutil.copyfileobj(source, target, BLOCK)
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)
    return local


def write_bytes(location: str, data: bytes) -> None:
    """Write a small file whole (remote: one PUT; local: temporary name, then renamed)."""
    if not is_remote(location):
        target = local_path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return
    fs, path = filesystem(location)
    fs.pipe_file(path, data)


def create_exclusive(location: str, data: bytes) -> bool:
    """Create a file holding `data` only if none exists; False if one does.

    S3 (and S3-compatible stores) refuse the PUT with `If-None-Match: *` (s3fs `mode="create"`);
    other remote backends (GCS included, for now) fall back to check-then-write, which two runs
    starting in the same second could both pass (documented in docs/scaling.md)."""
    if not is_remote(location):
        target = local_path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return True
    fs, path = filesystem(location)
    if protocol(location) in CONDITIONAL_PUT:
        try:
            fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False
    if fs.exists(path):  # no conditional write: check, then write
        return False
    fs.pipe_file(path, data)
    return True


def remove(location: str | Path, recursive: bool = False) -> None:
    """Remove a file (or a folder with `recursive`); a missing one is not an error."""
    if not is_remote(location):
        target = local_path(location)
        if target.is_dir() and not target.is_symlink():
            if recursive:
                shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.rm(path, recursive=recursive)
    except FileNotFoundError:
        pass
    fs.invalidate_cache()


# -- the local cache of remote files


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "thresher")


def cache_limit() -> int:
    return int(float(os.environ.get(CACHE_GB_ENV) or DEFAULT_CACHE_GB) * (1 << 30))


def local_copy(location: str | Path, sha256: str | None = None) -> Path:
    """A local path holding the content of `location`: the location itself if it is local, else a
    copy in the cache. With `sha256` (a manifest's checksum) the copy is content-addressed and
    checked: a download that does not match is removed and is an InputError naming the URL."""
    if not is_remote(location):
        return local_path(location)
    objects = cache_root() / "objects"
    if sha256:
        key = sha256
    else:
        key = hashlib.sha256(f"{location}\n{stat(location).version}".encode()).hexdigest()
    cached = objects / key[:2] / f"{key}-{basename(location)}"
    if cached.is_file():
        os.utime(cached)  # recently used: evicted last
        return cached
    download(str(location), cached)
    if sha256 and digest(cached) != sha256:
        cached.unlink(missing_ok=True)
        raise InputError(f"{location}: checksum does not match the manifest (the file was modified or corrupted)")
    evict(objects, cache_limit(), keep=cached)
    return cached


def local_tree(location: str | Path) -> Path:
    """A local folder holding the files under `location` (a tokenizer or a model folder): the folder
    itself if it is local, else a copy in the cache keyed by the URL and every file's version."""
    if not is_remote(location):
        return local_path(location)
    fs, root = filesystem(location)
    files = sorted(fs.find(root.rstrip("/"), detail=True).items())
    if not files:
        raise InputError(f"'{location}' holds no file")
    versions = "\n".join(f"{path} {info.get('ETag') or info.get('size')}" for path, info in files)
    key = hashlib.sha256(f"{location}\n{versions}".encode()).hexdigest()
    folder = cache_root() / "trees" / key
    if not (folder / ".complete").is_file():
        for path, _ in files:
            download(url_of(fs, path), folder / path[len(root.rstrip("/")) + 1 :])
        (folder / ".complete").touch()
    return folder


def evict(folder: Path, limit: int, keep: Path) -> None:
    """Remove the least recently used files under `folder` until it holds at most `limit` bytes."""
    entries = [(entry.stat().st_mtime, entry.stat().st_size, entry) for entry in folder.rglob("*") if entry.is_file()]
    total = sum(size for _, size, _ in entries)
    for _, size, entry in sorted(entries, key=lambda item: item[0]):
        if total <= limit:
            return
        if entry != keep:
            entry.unlink(missing_ok=True)
            total -= size


# -- an output folder on object storage


def staging_folder(location: str) -> Path:
    """The local folder through which a remote output folder is written on this machine."""
    return cache_root() / "staging" / hashlib.sha256(location.encode()).hexdigest()[:16]


@dataclass
class Mirror:
    """An output folder: `local` is where this process writes; `remote` (None for a local output
    folder) is the object-store folder that `local` is published to and fetched from.

    Every method takes local paths under `local`. For a local output folder they act on the folder
    itself; for a remote one, `publish` uploads (and may drop the local copy), `fetch` downloads
    what this machine lacks, `exists` / `glob` / `remove` ask the object store: the store is the
    truth, a staging folder only ever holds this run's files."""

    local: Path
    remote: str | None = None

    @classmethod
    def of(cls, location: str) -> Mirror:
        if is_remote(location):
            return cls(staging_folder(location), location.rstrip("/"))
        return cls(local_path(location))

    def url(self, path: Path) -> str:
        if self.remote is None:
            return str(path)
        return join(self.remote, Path(path).relative_to(self.local).as_posix())

    def publish(self, *paths: Path, keep: bool = True) -> None:
        """Upload finished local files (`keep=False`: and remove the local copy)."""
        if self.remote is None:
            return
        for path in paths:
            upload(Path(path), self.url(path))
            if not keep:
                Path(path).unlink(missing_ok=True)

    def publish_tree(self, folder: Path) -> None:
        if self.remote is None or not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith(".tmp"):
                self.publish(path)

    def fetch(self, path: Path, sha256: str | None = None) -> Path:
        """`path`, downloaded first if this machine does not have it (checked against `sha256`)."""
        if self.remote is None or path.is_file():
            return path
        download(self.url(path), path)
        if sha256 and digest(path) != sha256:
            path.unlink()
            raise InputError(f"{self.url(path)}: checksum does not match the manifest (modified or corrupted)")
        return path

    def fetch_tree(self, folder: Path) -> None:
        if self.remote is None:
            return
        for path in self.glob(folder, "**"):
            self.fetch(path)

    def exists(self, path: Path) -> bool:
        if self.remote is None:
            return path.exists()
        fs, key = filesystem(self.url(path))
        fs.invalidate_cache(key)  # other processes write here: never trust an earlier listing
        return bool(fs.isfile(key))

    def read_text(self, path: Path) -> str:
        if self.remote is None or path.is_file():
            return path.read_text()
        return read_bytes(self.url(path)).decode()

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        """The files under `folder` matching `pattern` (`**`: all of them), as local paths."""
        if self.remote is None:
            return sorted(p for p in folder.glob(pattern) if p.is_file())
        fs, root = filesystem(self.url(folder))
        fs.invalidate_cache()
        found = fs.find(root, detail=True) if pattern == "**" else fs.glob(f"{root}/{pattern}", detail=True)
        # Files strictly inside the folder only: s3fs's find answers a listing that comes back
        # empty with the folder's own entry (a "directory", when another process has just
        # published into it), which would be fetched as an empty file in the folder's place.
        inside = root.rstrip("/") + "/"
        files = (
            name
            for name, info in found.items()
            if info.get("type") == "file" and name.startswith(inside) and not name.endswith("/")  # no placeholders
        )
        return sorted(folder / name[len(inside) :] for name in files)

    def remove(self, path: Path, recursive: bool = False) -> None:
        remove(path, recursive)
        if self.remote is not None:
            remove(self.url(path), recursive)

    def remove_matching(self, folder: Path, pattern: str) -> None:
        """Remove the files under `folder` matching `pattern`, on this machine and in the store
        (what an interrupted attempt left)."""
        for path in {*folder.glob(pattern), *self.glob(folder, pattern)}:
            self.remove(path)

    def children(self) -> list[str]:
        """The names of the entries at the top of the folder."""
        if self.remote is None:
            return [child.name for child in self.local.iterdir()]
        fs, root = filesystem(self.remote)
        fs.invalidate_cache()
        try:
            return sorted(basename(path) for path in fs.ls(root, detail=False))
        except FileNotFoundError:
            return []
