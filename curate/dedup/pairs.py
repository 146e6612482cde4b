"""Candidate pairs from band buckets, their verification by true Jaccard, and counts per source:
what MinHash's partition tasks run (numpy and pyarrow only: no polars, no scipy in the workers).

Documents are named by their position (`task << 32 | row`). A bucket's members are paired with its
first position (a star); pairs are verified a chunk of shingles at a time, the shingle sets read
from the scan files by position (`curate.partitions.ScanRows`), so memory stays bounded however
many pairs there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from curate.arrow_io import read_table
from curate.dedup.minhash import sorted_unique
from curate.partitions import ScanRows

# Shingles gathered per chunk of pairs in `jaccard`: bounds its memory (~8 bytes each).
VERIFY_CHUNK = 1 << 20


def star_pairs(keys: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Candidate pairs (anchor, member) of rows sharing a key, unique and sorted: every member of a
    group of k rows is paired with the group's first position (a star: k - 1 pairs).

    One stable sort of the keys; only rows of groups of two or more are gathered further, so the
    memory is about 40 bytes a row (the keys and positions, the sort's order and sorted copies)."""
    if not len(keys):
        return np.zeros((0, 2), np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]]))
    del sorted_keys
    sizes = np.diff(np.append(starts, len(keys)))
    shared = sizes > 1
    rows = order[ranges(starts[shared], sizes[shared])]
    del order
    members = np.asarray(positions)[rows]
    group_starts = np.concatenate([[0], np.cumsum(sizes[shared])[:-1]]).astype(np.int64)
    anchors = np.repeat(np.minimum.reduceat(members, group_starts) if len(members) else members, sizes[shared])
    keep = members != anchors
    return unique_pairs(np.stack([anchors[keep], members[keep]], axis=1))


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """The distinct rows of an (n, 2) array of pairs, sorted."""
    if not len(pairs):
        return np.zeros((0, 2), np.int64)
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs[np.concatenate([[True], (pairs[1:] != pairs[:-1]).any(axis=1)])]


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [starts[i], starts[i] + lengths[i])."""
    total = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


def chunks(sizes: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive [start, stop) ranges of items whose `sizes` sum to at most `limit` (at least one item each)."""
    done = np.cumsum(sizes)
    start = 0
    while start < len(sizes):
        before = done[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(done, before + limit, side="right")))
        yield start, stop
        start = stop


def jaccard(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """True Jaccard similarity of each pair (i, j) of sets `values[offsets[i]:offsets[i+1]]`.

    Each set must hold distinct values. Both sets of a pair are tagged with the pair's index and
    sorted together: a value present in both appears twice in a row.
    """
    result = np.zeros(len(pairs), np.float64)
    lengths = np.diff(offsets)
    for start, stop in chunks(lengths[pairs[:, 0]] + lengths[pairs[:, 1]], VERIFY_CHUNK):
        chunk = pairs[start:stop]
        la, lb = lengths[chunk[:, 0]], lengths[chunk[:, 1]]
        tag = np.arange(len(chunk), dtype=np.uint64)
        keys = np.concatenate(
            [
                (np.repeat(tag, la) << np.uint64(32)) | values[ranges(offsets[chunk[:, 0]], la)].astype(np.uint64),
                (np.repeat(tag, lb) << np.uint64(32)) | values[ranges(offsets[chunk[:, 1]], lb)].astype(np.uint64),
            ]
        )
        keys.sort()
        same = keys[1:][keys[1:] == keys[:-1]] >> np.uint64(32)
        common = np.bincount(same.astype(np.int64), minlength=len(chunk))
        union = la + lb - common
        result[start:stop] = np.where(union > 0, common / np.maximum(union, 1), 1.0)
    return result


def similarity(scan: ScanRows, pairs: np.ndarray, chunk_shingles: int) -> np.ndarray:
    """True Jaccard similarity of pairs of positions, from the shingle sets in the scan files.

    Pairs are checked in chunks holding at most `chunk_shingles` shingles, and only those
    documents' shingle sets are read, so memory stays bounded however many pairs there are.
    """
    result = np.zeros(len(pairs))
    if not len(pairs):
        return result
    needed = sorted_unique(pairs.ravel())
    sizes = scan.take(needed, ["n_shingles"]).column("n_shingles").to_numpy().astype(np.int64)
    index = np.searchsorted(needed, pairs)
    for start, stop in chunks(sizes[index[:, 0]] + sizes[index[:, 1]], chunk_shingles):
        chunk = pairs[start:stop]
        members = sorted_unique(chunk.ravel())
        lists = scan.take(members, ["shingles"]).column("shingles").combine_chunks()
        offsets = lists.offsets.to_numpy().astype(np.int64)
        result[start:stop] = jaccard(lists.flatten().to_numpy(), offsets - offsets[0], np.searchsorted(members, chunk))
    return result


def source_counts(files: Sequence[Path]) -> dict[str, int]:
    """Documents per source in scan files, one file at a time."""
    found: dict[str, int] = {}
    for path in files:
        for item in pc.value_counts(read_table(path, ["source"]).column("source")).to_pylist():
            found[str(item["values"])] = found.get(str(item["values"]), 0) + item["counts"]
    return found
