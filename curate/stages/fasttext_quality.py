"""fastText quality classifiers, the GPT-3 / DCLM approach: learn what reference text looks like
against raw crawl, then score every document with the classifier and keep the best.

- `train_quality_classifier` (global stage): labels each row (from a field, or from its source),
  splits off a held-out set, trains a supervised fastText model on the rest, reports held-out
  precision / recall / accuracy / ROC AUC, and saves `model.bin` with `model.json` (its
  manifest: labels, preprocessing, options, data counts, metrics, checksum) under the run's
  `stages/<name>/` folder.
- `quality_classifier` (filter): scores documents with any supervised fastText model (ours, or a
  user's such as DCLM's) into `quality_score` and keeps those at or above `min_score`. To keep a
  top fraction instead, follow it with `top_fraction`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import fs
from curate.arrow_io import read_frame
from curate.errors import InputError
from curate.stages.base import (
    FilterStage,
    GlobalContext,
    GlobalStage,
    Load,
    Memory,
    RowResult,
    split_by_reason,
    with_columns,
)
from curate.text_stats import split_words

POSITIVE, NEGATIVE = "hq", "lq"  # label names in our models (DCLM's also calls its positive class "hq")
PREPROCESSING = ("words", "raw")
MANIFEST = "model.json"


def prepare(text: str, mode: str, lowercase: bool, max_chars: int) -> str:
    """Text as a fastText line: `words` splits punctuation off words (curate.text_stats),
    `raw` only turns whitespace runs (newlines included: fastText reads one line) into spaces."""
    text = text[:max_chars]
    text = " ".join(split_words(text)) if mode == "words" else " ".join(text.split())
    return text.lower() if lowercase else text


FASTTEXT_MAGIC = 793712314  # the int32 every fastText .bin / .ftz file starts with


def check_fasttext_file(path: str | Path) -> None:
    """Raise ValueError unless `path` is a fastText model file (checked without loading it); local
    or remote (`curate.fs`)."""
    if not fs.is_file(path):
        raise ValueError(f"model_path: no such file: {path}")
    with fs.open_binary(path) as handle:
        head = handle.read(4)
    if len(head) < 4 or int.from_bytes(head, "little", signed=True) != FASTTEXT_MAGIC:
        raise ValueError(f"model_path: {path} is not a fastText model (.bin / .ftz)")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_fasttext(train_file: Path, model_file: Path, options: dict, attempts: int = 4) -> dict:
    """Train a supervised fastText model and save it; return the options it was trained with.

    Training runs in a fresh interpreter (`curate.fasttext_train`, see why there), which also keeps
    a crash in fastText's C++ from taking the engine down. If training diverges ("Encountered
    NaN"), the learning rate is halved (the fix fastText's authors recommend), at most `attempts`
    times; the rate used is returned.
    """
    options = dict(options)
    for _ in range(attempts):
        request = json.dumps({"input": str(train_file), "output": str(model_file), "options": options})
        result = subprocess.run(
            [sys.executable, "-m", "curate.fasttext_train", request], capture_output=True, text=True
        )
        if result.returncode == 0 and model_file.is_file():
            return options
        error = (result.stdout.strip().splitlines() or [""])[-1]
        message = json.loads(error)["error"] if error.startswith("{") else (result.stderr.strip()[-500:] or error)
        if "NaN" not in message:
            raise RuntimeError(f"fastText training failed: {message}")
        options["lr"] = options["lr"] / 2
    raise RuntimeError(f"fastText training diverged (NaN) even at lr={options['lr'] * 2:g}; lower lr or check the data")


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); None without both classes."""
    from scipy.stats import rankdata

    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    predicted = scores >= threshold
    truth = labels == 1
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    tn = int((~predicted & ~truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    auc = roc_auc(labels, scores)
    return {
        "documents": int(len(labels)),
        "positives": int(truth.sum()),
        "threshold": threshold,
        "accuracy": round((tp + tn) / len(labels), 4) if len(labels) else None,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "roc_auc": round(auc, 4) if auc is not None else None,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


class FastTextScorer:
    """A loaded supervised fastText model and how to feed it: probability of one label per text."""

    def __init__(
        self,
        model_path: str,
        positive_label: str | None,
        preprocess: str,
        lowercase: bool | None,
        max_chars: int | None,
    ):
        import fasttext

        manifest_path = fs.join(fs.parent(model_path), MANIFEST)  # the classifier's folder, local or remote
        saved = (
            json.loads(fs.read_bytes(manifest_path))["preprocess"]
            if (preprocess == "auto" and fs.is_file(manifest_path))
            else {}
        )
        self.mode = saved.get("mode", "raw") if preprocess == "auto" else preprocess
        self.lowercase = saved.get("lowercase", False) if lowercase is None else lowercase
        self.max_chars = max_chars or saved.get("max_chars", 100_000)
        self.model = fasttext.load_model(str(fs.local_copy(model_path)))  # a remote model: a cached copy
        labels = [label.removeprefix("__label__") for label in self.model.labels]
        self.positive = positive_label or (POSITIVE if POSITIVE in labels else labels[0])
        if self.positive not in labels:
            raise ValueError(
                f"positive_label: the model has no label '{self.positive}'; its labels: {', '.join(labels)}"
            )

    def scores(self, texts: list[str]) -> np.ndarray:
        lines = [prepare(t, self.mode, self.lowercase, self.max_chars) for t in texts]
        labels, probs = self.model.predict(lines, k=-1)
        wanted = f"__label__{self.positive}"
        out = np.zeros(len(lines), dtype=np.float64)
        for i, (names, values) in enumerate(zip(labels, probs)):
            for name, value in zip(names, values):
                if name == wanted:
                    out[i] = min(float(value), 1.0)  # fastText's softmax can exceed 1 by an ulp
                    break
        return out


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainQualityClassifier(GlobalStage):
    """Train a fastText quality classifier (GPT-3 / DCLM style) from labelled documents.

    Labels: from `positive_sources` if given (rows whose `source` is listed are positive, every
    other row negative: e.g. curated reference text against raw crawl), else from the column or
    `meta` field `label_field`, whose values in `positive_labels` / `negative_labels` (compared
    as lower-case strings; numbers 1 / 0) are positive / negative. Rows without a usable label are
    dropped (`no_label`). A deterministic `validation_fraction` of rows (by id hash and seed) is
    held out; the model trains on the rest, shuffled deterministically (`seed`), with one thread
    (fastText is only reproducible single-threaded; `threads` > 1 is faster but not repeatable).

    Output: the labelled rows with `quality_label` (1/0) and `quality_split` (train/valid), and
    under `stages/<name>/`: `model.bin`, `model.json` (labels hq/lq, preprocessing, options,
    counts, held-out accuracy, precision, recall, F1, ROC AUC, sha256) and the same summary in the
    run's manifest and report. Score new data with the `quality_classifier` stage.

    Defaults: fastText's supervised defaults (lr 0.1, 5 epochs, softmax) with word bigrams as in
    DCLM's classifier (Li et al. 2024); dim 64 and 1M hash buckets (~256 MB model; fastText's 2M
    buckets x 100 dims would be 800 MB); text split into words and lower-cased, first 10,000
    characters; 10% held out.
    """

    config_name: ClassVar[str] = "train_quality_classifier"
    requires: ClassVar[tuple[str, ...]] = ("id", "text", "source")
    provides: ClassVar[dict[str, pa.DataType]] = {"quality_label": pa.int8(), "quality_split": pa.string()}

    label_field: str = "label"
    positive_labels: list[str] = field(default_factory=lambda: ["1", "true", "hq", "positive", "pos", "high"])
    negative_labels: list[str] = field(default_factory=lambda: ["0", "false", "lq", "negative", "neg", "low", "cc"])
    positive_sources: list[str] = field(default_factory=list)
    validation_fraction: float = 0.1
    preprocess: str = "words"
    lowercase: bool = True
    max_chars: int = 10_000
    lr: float = 0.1
    epoch: int = 5
    word_ngrams: int = 2
    dim: int = 64
    bucket: int = 1_000_000
    min_count: int = 1
    threads: int = 1
    seed: int = 0  # of the held-out split, the shuffle and fastText

    def validate(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction: must be within (0, 1)")
        if self.preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess: '{self.preprocess}' is not one of: {', '.join(PREPROCESSING)}")
        overlap = {v.lower() for v in self.positive_labels} & {v.lower() for v in self.negative_labels}
        if overlap:
            raise ValueError(f"positive_labels: {', '.join(sorted(overlap))} also in negative_labels")
        for name in ("lr", "epoch", "word_ngrams", "dim", "bucket", "max_chars", "threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be > 0")

    def __post_init__(self) -> None:
        self._positive = {v.lower() for v in self.positive_labels}
        self._negative = {v.lower() for v in self.negative_labels}

    # labels and split ---------------------------------------------------------------------

    def label_of(self, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return 1 if value == 1 else 0 if value == 0 else None
        text = str(value).strip().lower()
        return 1 if text in self._positive else 0 if text in self._negative else None

    def labels(self, batch: pa.RecordBatch) -> list[int | None]:
        if self.positive_sources:
            sources = set(self.positive_sources)
            return [1 if s in sources else 0 for s in batch.column("source").to_pylist()]
        if self.label_field in batch.schema.names:
            return [self.label_of(v) for v in batch.column(self.label_field).to_pylist()]
        labels = []
        for meta in batch.column("meta").to_pylist() if "meta" in batch.schema.names else [None] * batch.num_rows:
            record = orjson.loads(meta) if meta else {}
            labels.append(self.label_of(record.get(self.label_field) if isinstance(record, dict) else None))
        return labels

    def held_out(self, ids: list[str]) -> list[bool]:
        limit = self.validation_fraction * 2**64
        return [xxhash.xxh64_intdigest(doc_id.encode(), seed=self.seed) < limit for doc_id in ids]

    # phases ---------------------------------------------------------------------------------

    def scan(self, batch: pa.RecordBatch, positions: np.ndarray) -> pa.Table | None:
        labels = self.labels(batch)
        keep = [i for i, label in enumerate(labels) if label is not None]
        if not keep:
            return None
        texts = batch.column("text").to_pylist()
        valid = self.held_out(batch.column("id").to_pylist())
        return pa.table(
            {
                "position": pa.array(positions[keep], pa.int64()),
                "label": pa.array([labels[i] for i in keep], pa.int8()),
                "valid": pa.array([valid[i] for i in keep], pa.bool_()),
                "text": pa.array(
                    [prepare(texts[i], self.preprocess, self.lowercase, self.max_chars) for i in keep], pa.string()
                ),
            }
        )

    def resolve(self, ctx: GlobalContext) -> None:
        import polars as pl

        if not ctx.scan_files:
            raise InputError(
                f"stages.{self.name}: no row has a label (label_field '{self.label_field}', "
                f"positive_sources {self.positive_sources or '[]'}); nothing to train on"
            )
        rows = read_frame(ctx.scan_files)
        train, valid = rows.filter(~pl.col("valid")), rows.filter(pl.col("valid"))
        counts = {
            name: {"positive": int((part["label"] == 1).sum()), "negative": int((part["label"] == 0).sum())}
            for name, part in (("train", train), ("valid", valid))
        }
        if not counts["train"]["positive"] or not counts["train"]["negative"]:
            raise InputError(
                f"stages.{self.name}: training needs positive and negative rows; got {counts['train']} "
                "(check label_field / positive_labels / positive_sources)"
            )
        # a deterministic shuffle: fastText learns in file order
        order = np.argsort(splitmix64(train["position"].to_numpy().astype(np.uint64) ^ np.uint64(self.seed)))
        ctx.work_dir.mkdir(parents=True, exist_ok=True)
        train_file = ctx.work_dir / "train.txt"
        labels, texts = train["label"].to_numpy(), train["text"].to_list()
        with open(train_file, "w", encoding="utf-8") as handle:
            for i in order:
                handle.write(f"__label__{POSITIVE if labels[i] == 1 else NEGATIVE} {texts[i]}\n")
        ctx.keep_dir.mkdir(parents=True, exist_ok=True)
        model_file = ctx.keep_dir / "model.bin"
        options = {
            "lr": self.lr,
            "epoch": self.epoch,
            "wordNgrams": self.word_ngrams,
            "dim": self.dim,
            "bucket": self.bucket,
            "minCount": self.min_count,
            "thread": self.threads,
            "seed": self.seed,
            "verbose": 0,
        }
        started = time.time()
        used = train_fasttext(train_file, model_file, options)
        seconds = round(time.time() - started, 2)
        metrics = None
        if len(valid):
            scorer = FastTextScorer(str(model_file), POSITIVE, self.preprocess, self.lowercase, self.max_chars)
            probs = scorer.model.predict(valid["text"].to_list(), k=-1)
            positive = np.array(
                [dict(zip(names, values)).get(f"__label__{POSITIVE}", 0.0) for names, values in zip(*probs)],
                dtype=np.float64,
            )
            metrics = binary_metrics(valid["label"].to_numpy().astype(np.int64), np.minimum(positive, 1.0))
        summary = {
            "model": model_file.name,
            "model_bytes": model_file.stat().st_size,
            "sha256": file_sha256(model_file),
            "rows": counts,
            "metrics_valid": metrics,
            "train_seconds": seconds,
            "lr_used": used["lr"],
        }
        manifest = {
            "format": "fasttext-supervised",
            "labels": {"positive": POSITIVE, "negative": NEGATIVE},
            "preprocess": {"mode": self.preprocess, "lowercase": self.lowercase, "max_chars": self.max_chars},
            "training": {
                **{k: v for k, v in used.items() if k != "verbose"},
                "validation_fraction": self.validation_fraction,
                "labels_from": (
                    {"sources": self.positive_sources} if self.positive_sources else {"field": self.label_field}
                ),
            },
            **summary,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        from curate.manifest import code_version

        manifest["version"] = code_version()
        (ctx.keep_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        self.stat_set(**summary)

    def apply(self, batch: pa.RecordBatch, positions: np.ndarray) -> RowResult:
        labels = self.labels(batch)
        valid = self.held_out(batch.column("id").to_pylist())
        batch = with_columns(
            batch,
            {
                "quality_label": labels,
                "quality_split": [
                    None if label is None else ("valid" if v else "train") for label, v in zip(labels, valid)
                ],
            },
            self.provided_columns(),
        )
        return split_by_reason(batch, [None if label is not None else "no_label" for label in labels])


def splitmix64(values: np.ndarray) -> np.ndarray:
    """A fixed 64-bit mix (SplitMix64's finaliser): a reproducible pseudo-random order key."""
    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


# --------------------------------------------------------------------------------------------
# Scoring


@dataclass
class FastTextQualityFilter(FilterStage):
    """Score documents with a fastText quality classifier; keep those scoring at least `min_score`.

    `quality_score` is the model's probability of `positive_label` (default: "hq", the label of
    models trained by `train_quality_classifier` and of DCLM's). Any supervised fastText model
    works (`model_path`, a .bin or .ftz file). Text is prepared as the model was trained: with
    `preprocess=auto`, from the `model.json` saved beside our models, else as DCLM does (newlines
    to spaces, case kept); or set `preprocess` (words / raw), `lowercase` and `max_chars`.
    `min_score` null only annotates; to keep a top fraction instead of a threshold, add the
    `top_fraction` stage after this one. Drop reason: `quality_low_score`.

    Defaults: annotate only; DCLM kept the top 10% by this score (Li et al. 2024).
    Score column: quality_score.
    """

    config_name: ClassVar[str] = "quality_classifier"
    provides: ClassVar[dict[str, pa.DataType]] = {"quality_score": pa.float64()}

    model_path: str
    positive_label: Optional[str] = None
    min_score: Optional[float] = None
    preprocess: str = "auto"
    lowercase: Optional[bool] = None
    max_chars: Optional[int] = None

    def validate(self) -> None:
        check_fasttext_file(self.model_path)
        if self.preprocess not in ("auto", *PREPROCESSING):
            raise ValueError(f"preprocess: '{self.preprocess}' is not one of: auto, {', '.join(PREPROCESSING)}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError("min_score: must be within [0, 1] (or null to only annotate)")

    def __post_init__(self) -> None:
        self._scorer: FastTextScorer | None = None

    def memory(self, load: Load) -> Memory:
        """fastText holds its whole model in every worker: about the model file's size."""
        path = Path(self.model_path)
        return Memory(setup=1.1 * path.stat().st_size if path.is_file() else 0)

    def setup(self) -> None:
        self._scorer = FastTextScorer(
            self.model_path, self.positive_label, self.preprocess, self.lowercase, self.max_chars
        )

    def teardown(self) -> None:
        self._scorer = None

    def score(self, batch: pa.RecordBatch) -> dict:
        assert self._scorer is not None, "setup() loads the model"
        return {"quality_score": self._scorer.scores(batch.column("text").to_pylist())}

    def decide(self, batch: pa.RecordBatch) -> pa.Array:
        if self.min_score is None:
            return pa.nulls(batch.num_rows, pa.string())
        low = pc.less(batch.column("quality_score"), self.min_score)
        return pc.if_else(low, "quality_low_score", pa.scalar(None, pa.string()))

    def __getstate__(self) -> dict:
        # the loaded model stays in its process: workers load their own in setup()
        state = dict(self.__dict__)
        state["_scorer"] = None
        return state
