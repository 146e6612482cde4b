"""What an input file is, from its name (format, compression, programming language), and opening
it: decompressing and hashing as it streams, and the members of tar archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import zstandard

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
    # Science: FASTA (NCBI and Biopython extensions), GenBank/GenPept, UniProt flat files, SMILES.
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
    """Wraps a binary file: counts and sha256-hashes the raw bytes as they are read."""

    def __init__(self, raw: io.BufferedIOBase):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class DecompressingReader(io.RawIOBase):
    """Streaming gzip or zstd decompression (concatenated members/frames included).

    A stream cut short does not raise: every byte decompressed before the cut is returned, then
    end-of-file, and `truncated` is set, so readers keep each complete line and report the cut.
    Corrupt data raises OSError.
    """

    def __init__(self, raw: io.RawIOBase | io.BufferedIOBase, codec: str, chunk: int = 1 << 20):
        self.raw, self.codec, self.chunk = raw, codec, chunk
        self.decompressor = self.new_decompressor()
        self.pending = b""
        self.in_member = False  # data of an unfinished member/frame has been fed
        self.truncated = False

    def new_decompressor(self):
        if self.codec == "gzip":
            return zlib.decompressobj(wbits=31)
        return zstandard.ZstdDecompressor().decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            data = self.raw.read(self.chunk)
            if not data:
                self.truncated = self.in_member
                return 0
            try:
                while data:
                    self.in_member = True
                    self.pending += self.decompressor.decompress(data)
                    data = b""
                    if self.decompressor.eof:  # next member/frame, if any
                        data = self.decompressor.unused_data
                        self.decompressor = self.new_decompressor()
                        self.in_member = False
            except (zlib.error, zstandard.ZstdError) as error:
                raise OSError(f"corrupt {self.codec} data: {error}") from None
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def open_decompressed(raw: io.RawIOBase | io.BufferedIOBase, name: str) -> io.BufferedReader:
    """A buffered binary stream of the decompressed content of `raw`, by the compression in `name`."""
    _, codec = split_compression(name)
    if name.lower().endswith(".tgz"):
        codec = "gzip"
    source = DecompressingReader(raw, codec) if codec else raw
    return io.BufferedReader(source, buffer_size=1 << 20)


def truncated(stream: io.BufferedReader) -> bool:
    """Whether a stream from `open_decompressed` ended before its compressed end-of-stream marker."""
    return bool(getattr(getattr(stream, "raw", None), "truncated", False))


@dataclass
class Member:
    """A file inside an archive (or the file itself): a name for format/ids and its content stream."""

    name: str
    label: str
    stream: io.BufferedIOBase


def iter_tar(stream: io.BufferedIOBase, label: str) -> Iterator[Member]:
    """Regular files of a tar archive, in archive order, streamed (mode 'r|')."""
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for info in archive:
            if not info.isfile() or any(p in SKIPPED_DIRS for p in Path(info.name).parts):
                continue
            if os.path.basename(info.name).startswith("."):
                continue
            handle = archive.extractfile(info)
            if handle is not None:  # an ExFileObject, an io.BufferedReader (typeshed says IO[bytes])
                yield Member(info.name, f"{label}/{info.name}", cast(io.BufferedReader, handle))
