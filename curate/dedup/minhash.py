"""MinHash signatures and LSH banding, vectorised over a batch of documents.

Signatures follow datasketch's `affine32` scheme exactly (datasketch >= 2.0): each 32-bit shingle
hash is pre-mixed with the MurmurHash3 32-bit finaliser, then permutation k maps it to
`a_k * h + b_k mod 2^32`, and the signature keeps the minimum per permutation. The (a, b)
parameters are taken from datasketch itself (`MinHash(num_perm, seed, scheme="affine32")`), so
`signatures(...)` equals `MinHash.update_batch(...).hashvalues` bit for bit (tests/test_dedup.py
checks it). The work is done as uint32 numpy arithmetic over blocks of shingles and a
`minimum.reduceat` per document, with no Python loop per document.

The band layout (bands x rows) for a target Jaccard threshold comes from datasketch's optimiser,
which minimises the weighted false-positive and false-negative probability mass.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from curate.dedup.text import mix64, multipliers

MAX32 = np.uint32(0xFFFFFFFF)
# Shingles per block of the signature computation: block x num_perm uint32 stays in cache.
BLOCK = 4096


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b) for `num_perm` and `seed`."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def fmix32(h: np.ndarray) -> np.ndarray:
    """The MurmurHash3 32-bit finaliser (datasketch's affine32 pre-mix)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (documents x permutations, uint32) of 32-bit shingle hashes.

    `hashes[offsets[i]:offsets[i+1]]` are document i's shingle hashes; `a`, `b` the affine32
    permutation parameters (`permutations(num_perm, seed)`). A document without shingles gets
    the empty signature (all 2^32-1), as datasketch's empty MinHash.
    """
    counts = np.diff(offsets)
    result = np.full((len(counts), len(a)), MAX32, np.uint32)
    mixed = fmix32(hashes.astype(np.uint32))[:, None]
    # One document (or block of a long one) at a time: the block x num_perm product stays in
    # cache, which is several times faster than one `minimum.reduceat` over the whole batch.
    for doc in np.flatnonzero(counts).tolist():
        row = result[doc]
        for start in range(int(offsets[doc]), int(offsets[doc + 1]), BLOCK):
            block = mixed[start : min(start + BLOCK, int(offsets[doc + 1]))] * a + b
            np.minimum(row, block.min(axis=0), out=row)
    return result


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based np.unique is much slower on large uint64 arrays)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


@lru_cache(maxsize=32)
def optimal_bands(
    threshold: float, num_perm: int, false_positive_weight: float, false_negative_weight: float
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive + false-negative mass (datasketch)."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two documents of this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per band (documents x bands): equal bands give equal hashes."""
    out = np.zeros((signature.shape[0], bands), np.uint64)
    weights = [np.uint64(m) for m in multipliers(rows)]
    wide = signature.astype(np.uint64)
    for band in range(bands):
        acc = np.zeros(signature.shape[0], np.uint64)
        for row, weight in enumerate(weights):
            acc += wide[:, band * rows + row] * weight
        out[:, band] = mix64(acc)
    return out
