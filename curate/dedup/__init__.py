"""Building blocks of the deduplication and decontamination stages.

- `text`: text normalisation (vectorised with Arrow compute), word / character n-gram shingles
  hashed to integers without a Python loop per shingle.
- `minhash`: MinHash signatures bit-identical to datasketch's `affine32` scheme, LSH band layout
  (datasketch's optimiser) and band hashes.
- `pairs` (MinHash's partitions, numpy only): candidate pairs from band buckets, verification by
  true Jaccard in bounded chunks, counts per source.
- `clusters` (exact dedup's partitions and the driver): connected components over verified edges
  (scipy), keep policy, decisions, merged counts, summary and the report's sample clusters.
- `decisions` (apply, in the workers): the decision files and a task's slice of them.
"""
