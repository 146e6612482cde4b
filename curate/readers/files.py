"""What an input file is, from its name (format, compression, programming language), and opening
it: decompressing and hashing as it streams, and the members of tar archives (zip archives:
`readers.formats.zip_archive`)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import xxhash

try:  # Python 3.14's compression.zstd (bounded output: max_length), or its backport
    from compression.zstd import ZstdDecompressor, ZstdError
except ImportError:
    from backports.zstd import ZstdDecompressor, ZstdError


COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst")
# Web archives compressed with a codec the other formats do not read (the crawl readers tell it
# from the content): `.warc.lz4` and friends.
ARCHIVE_SUFFIXES = {".warc.lz4": "warc", ".wet.lz4": "wet"}

# Source-code extensions → language (as in The Stack / StarCoder's language list, the common subset).
CODE_LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "c++",
    ".cpp": "c++",
    ".cxx": "c++",
    ".hpp": "c++",
    ".hh": "c++",
    ".cs": "c#",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".pl": "perl",
    ".pm": "perl",
    ".r": "r",
    ".jl": "julia",
    ".lua": "lua",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".clj": "clojure",
    ".dart": "dart",
    ".m": "objective-c",
    ".f90": "fortran",
    ".sql": "sql",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".scss": "scss",
    ".tex": "tex",
    ".sty": "tex",
    ".bib": "bibtex",
    ".md": "markdown",
    ".rst": "restructuredtext",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".ini": "ini",
    ".cfg": "ini",
    ".cmake": "cmake",
    ".mk": "makefile",
    ".proto": "protobuf",
    ".vue": "vue",
    ".zig": "zig",
    ".nim": "nim",
}
CODE_FILENAMES = {"Makefile": "makefile", "Dockerfile": "dockerfile", "CMakeLists.txt": "cmake"}

FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".txt": "text",
    ".text": "text",
    ".xml": "xml",
    # Science: FASTA (NCBI and Biopython extensions), GenBank/GenPept, UniProt flat files, SMILES,
    # FASTQ reads, EMBL flat files.
    ".fasta": "fasta",
    ".fa": "fasta",
    ".fas": "fasta",
    ".fna": "fasta",
    ".ffn": "fasta",
    ".faa": "fasta",
    ".nu": "fasta",
    ".pro": "fasta",
    ".gb": "genbank",
    ".gbk": "genbank",
    ".genbank": "genbank",
    ".gp": "genbank",
    ".gbwithparts": "genbank",
    ".dat": "swissprot",
    ".swiss": "swissprot",
    ".smi": "smiles",
    ".smiles": "smiles",
    ".fastq": "fastq",
    ".fq": "fastq",
    ".embl": "embl",
    ".zip": "zip",
    # Web archives: WARC, WET (Common Crawl's `.warc.wet.gz`), ARC (readers.crawl).
    ".warc": "warc",
    ".wet": "wet",
    ".arc": "arc",
}
SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox"}


def split_compression(name: str) -> tuple[str, str | None]:
    """'a.jsonl.gz' -> ('a.jsonl', 'gzip')."""
    for suffix, codec in COMPRESSIONS.items():
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], codec
    return name, None


def detect_format(name: str, forced: str = "auto") -> str | None:
    """The reader format for a file name, or None if it is not something we read."""
    if forced not in ("auto", ""):
        return forced
    lower = name.lower()
    if lower.endswith(TAR_SUFFIXES):
        return "tar"
    for suffix, fmt in ARCHIVE_SUFFIXES.items():
        if lower.endswith(suffix):
            return fmt
    base, _ = split_compression(name)
    base_name = os.path.basename(base)
    suffix = os.path.splitext(base_name)[1].lower()
    if suffix in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[suffix]
    if suffix in CODE_LANGUAGES or base_name in CODE_FILENAMES:
        return "code"
    return None


def code_language(name: str) -> str | None:
    base = os.path.basename(split_compression(name)[0])
    return CODE_FILENAMES.get(base) or CODE_LANGUAGES.get(os.path.splitext(base)[1].lower())


class HashingReader(io.RawIOBase):
    """Wraps a binary file: counts and hashes (sha256 for the manifest, xxh3-128 to check a rerun's
    input quickly) the raw bytes as they are read."""

    def __init__(self, raw: IO[bytes]):
        self.raw: Any = raw  # a local file or an fsspec one: both have readinto
        self.sha256 = hashlib.sha256()
        self.xxh3 = xxhash.xxh3_128()  # ~8x faster than sha256: what a rerun checks the file against
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.xxh3.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class InflateLimit(OSError):
    """Decompressed data outgrew `max_inflate_ratio` times the compressed bytes read: a
    decompression bomb, or data far more repetitive than text (raise `input.max_inflate_ratio`)."""


# Apache POI's zip-bomb guard (ZipSecureFile): alert past 100x (MIN_INFLATE_RATIO 0.01) once an
# entry has inflated beyond 100 KB (GRACE_ENTRY_SIZE). Text compresses 3-10x, JSON up to ~20x.
MAX_INFLATE_RATIO = 100.0
INFLATE_GRACE_BYTES = 100 << 10


class DecompressingReader(io.RawIOBase):
    """Streaming gzip or zstd decompression (concatenated members/frames included), in linear time
    and bounded memory: each read inflates at most the caller's buffer (`max_length`), never the
    whole of a compressed chunk, so a 1000x bomb costs no more memory than honest data.

    A stream cut short does not raise: every byte decompressed before the cut is returned, then
    end-of-file, and `truncated` is set, so readers keep each complete line and report the cut.
    Corrupt data raises OSError; output beyond `max_ratio` times the compressed bytes read (after
    `INFLATE_GRACE_BYTES`) raises `InflateLimit`. `max_ratio` 0 turns the check off.
    """

    def __init__(
        self,
        raw: IO[bytes] | io.RawIOBase | io.BufferedIOBase,
        codec: str,
        chunk: int = 1 << 16,
        max_ratio: float = MAX_INFLATE_RATIO,
    ):
        self.raw, self.codec, self.chunk, self.max_ratio = raw, codec, chunk, max_ratio
        self.decompressor = self.new_decompressor()
        self.feed = b""  # compressed bytes not yet given to the decompressor
        self.more = False  # the decompressor may have output left without new input
        self.in_member = False  # data of an unfinished member/frame has been fed
        self.truncated = False
        self.bytes_in = 0
        self.bytes_out = 0

    def new_decompressor(self) -> Any:
        if self.codec == "gzip":
            return zlib.decompressobj(wbits=31)
        return ZstdDecompressor()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = len(buffer)
        while True:
            if self.decompressor.eof:  # next member/frame, if any
                self.feed, self.more, self.in_member = self.decompressor.unused_data, False, False
                self.decompressor = self.new_decompressor()
            if not self.feed and not self.more:
                self.feed = self.raw.read(self.chunk)
                if not self.feed:
                    self.truncated = self.in_member
                    return 0
                self.bytes_in += len(self.feed)
            self.in_member = self.in_member or bool(self.feed)
            try:
                out = self.decompressor.decompress(self.feed, size)
            except (zlib.error, ZstdError) as error:
                raise OSError(f"corrupt {self.codec} data: {error}") from None
            if self.codec == "gzip":  # zlib hands back the input it did not use
                self.feed, self.more = self.decompressor.unconsumed_tail, len(out) == size
            else:  # zstd keeps it, and says whether it has more output
                self.feed, self.more = b"", not self.decompressor.needs_input
            if out:
                buffer[: len(out)] = out
                self.bytes_out += len(out)
                self.check_ratio()
                return len(out)

    def check_ratio(self) -> None:
        if self.max_ratio and self.bytes_out > INFLATE_GRACE_BYTES and self.bytes_out > self.max_ratio * self.bytes_in:
            raise InflateLimit(
                f"decompressed data exceeds {self.max_ratio:g}x its compressed size ({self.bytes_out} bytes from "
                f"{self.bytes_in}): a decompression bomb? (input.max_inflate_ratio)"
            )


def open_decompressed(
    raw: IO[bytes] | io.RawIOBase | io.BufferedIOBase, name: str, max_ratio: float = MAX_INFLATE_RATIO
) -> io.BufferedReader:
    """A buffered binary stream of the decompressed content of `raw`, by the compression in `name`."""
    _, codec = split_compression(name)
    if name.lower().endswith(".tgz"):
        codec = "gzip"
    source = DecompressingReader(raw, codec, max_ratio=max_ratio) if codec else raw
    return io.BufferedReader(cast(io.RawIOBase, source), buffer_size=1 << 20)


def truncated(stream: io.BufferedReader) -> bool:
    """Whether a stream from `open_decompressed` ended before its compressed end-of-stream marker."""
    return bool(getattr(getattr(stream, "raw", None), "truncated", False))


@dataclass
class Member:
    """A file inside an archive (or the file itself): a name for format/ids and its content stream."""

    name: str
    label: str
    stream: io.BufferedIOBase


@dataclass
class Link:
    """A hard or symbolic link inside an archive: `target` is the archive path it names (for a
    symbolic link, resolved against the link's folder; may lie outside the archive)."""

    name: str
    label: str
    target: str


def skipped_member(name: str) -> bool:
    return any(p in SKIPPED_DIRS for p in Path(name).parts) or os.path.basename(name).startswith(".")


def iter_tar(stream: io.BufferedIOBase, label: str) -> Iterator[Member | Link]:
    """Regular files and links of a tar archive, in archive order, streamed (mode 'r|'). A streamed
    archive cannot go back to a link's target: links are yielded as `Link`s for a later pass."""
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for info in archive:
            if skipped_member(info.name):
                continue
            if info.islnk() or info.issym():
                target = info.linkname if info.islnk() else os.path.join(os.path.dirname(info.name), info.linkname)
                yield Link(info.name, f"{label}/{info.name}", os.path.normpath(target))
                continue
            if not info.isfile():
                continue
            handle = archive.extractfile(info)
            if handle is not None:  # an ExFileObject, an io.BufferedReader (typeshed says IO[bytes])
                yield Member(info.name, f"{label}/{info.name}", cast(io.BufferedReader, handle))


def line_start(handle: IO[bytes], offset: int) -> int:
    """The offset of the first line that starts at or after `offset` in a seekable file (a line
    starts at 0 or after a newline); the file's size if none does."""
    if offset == 0:
        return 0
    handle.seek(offset - 1)
    position = offset - 1
    while True:
        chunk = handle.readline(1 << 20)
        position += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return position


def line_range(handle: IO[bytes], start: int, end: int, size: int) -> tuple[int, int]:
    """Bytes [start, end) of a line file, aligned to whole lines: from the first line starting in the
    range to the first line starting after it. Consecutive ranges read every line exactly once."""
    return line_start(handle, start), size if end >= size else line_start(handle, end)


class SpanFile(io.RawIOBase):
    """A seekable file whose bytes [offset, offset + len(data)) are served from `data` (what was read
    once, and hashed) and the rest from `handle`: Parquet row groups read with the footer's
    metadata, without reading them twice."""

    def __init__(self, handle: IO[bytes], data: bytes, offset: int, size: int):
        self.handle, self.data, self.offset, self.size = handle, memoryview(data), offset, size
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self.size - self.position)
        if want <= 0:
            return 0
        inside = self.position - self.offset
        if 0 <= inside and inside + want <= len(self.data):
            buffer[:want] = self.data[inside : inside + want]
        else:
            self.handle.seek(self.position)
            data = self.handle.read(want)
            want = len(data)
            buffer[:want] = data
        self.position += want
        return want


def parquet_span(metadata: Any, first: int, last: int) -> tuple[int, int]:
    """The bytes [start, end) holding row groups [first, last) of a Parquet file (every column
    chunk, dictionary pages included)."""
    starts, ends = [], []
    for index in range(first, last):
        group = metadata.row_group(index)
        for column in range(group.num_columns):
            chunk = group.column(column)
            offsets = (chunk.dictionary_page_offset, chunk.data_page_offset)
            begin = min(offset for offset in offsets if offset is not None and offset > 0)
            starts.append(begin)
            ends.append(begin + chunk.total_compressed_size)
    return min(starts), max(ends)
