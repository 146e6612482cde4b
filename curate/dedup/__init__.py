"""Building blocks of the deduplication and decontamination stages.

- `text`: text normalisation (vectorised with Arrow compute), word / character n-gram shingles
  hashed to integers without a Python loop per shingle.
- `minhash`: MinHash signatures bit-identical to datasketch's `affine32` scheme, LSH band layout
  (datasketch's optimiser) and band hashes.
- `clusters` (resolve, in the driver): reading scanned state, candidate pairs from band columns
  (polars), verification by true Jaccard, connected components (scipy), keep policy, summary.
- `decisions` (apply, in the workers): the per-task decision files and their lookup.
"""
