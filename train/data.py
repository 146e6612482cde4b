"""Reading curated dataset folders for training.

- `open_dataset`: a folder is read through its manifest: the kind must suit the task, the declared
  schema must hold the kind's core columns, and every shard's sha256 must match the manifest (a
  mismatch stops the run with one line, before any training).
- `TokenRows`: the rows of a `tokens` dataset as zero-copy (rows, seq_len) int32 views over the
  memory-mapped Arrow shards; nothing is loaded into memory until a batch is gathered.
- `RowOrder`: the order a loop visits rows in (token rows, PPO's prompts). Batch `i` of rank `r`
  is a pure function of (seed, i, r, world size), so the data position of a run is one integer and
  a resumed run reads exactly the batches an uninterrupted run would have read.
- `TokenBatches`: micro-batches of token rows in that order, for the pre-training loop and the
  ptx mix-in.
- `hf_dataset`: `chat` / `preference` shards as one `datasets.Dataset` for trl (memory-mapped Arrow
  shards; the columns of Parquet or JSON-lines shards read into memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch

from curate import fs
from curate.arrow_io import iter_batches, read_table
from curate.errors import ConfigError
from curate.manifest import Manifest, verify_shards
from curate.schema import KINDS

if TYPE_CHECKING:
    import datasets

# The dataset kinds each task reads.
TASK_KINDS: dict[str, tuple[str, ...]] = {
    "pretrain": ("tokens",),
    "sft": ("chat",),
    "reward": ("preference",),
    "dpo": ("preference",),
    "rlhf": ("preference", "chat"),  # the prompts
    "ppo": ("preference", "chat"),  # the prompts
}


@dataclass
class DatasetFolder:
    """A dataset folder whose manifest has been read and checked."""

    path: Path
    manifest: Manifest
    # A dataset on object storage: its URL, and its shards' local copies (the cache of curate.fs:
    # downloaded once, keyed by their sha256 and checked as they arrive; bounded by THRESHER_CACHE_GB)
    location: str | None = None
    local_shards: list[Path] | None = None

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def rows(self) -> int:
        return self.manifest.rows

    @property
    def shard_paths(self) -> list[Path]:
        if self.local_shards is not None:
            return self.local_shards
        return [self.path / shard.path for shard in self.manifest.shards]

    def lineage(self) -> dict[str, Any]:
        """What identifies this data: the curation run's fingerprint, version, and every shard's checksum."""
        manifest = self.manifest
        tokenizer = manifest.tokenizer()
        return {
            "path": self.location or str(self.path.resolve()),
            "kind": self.kind,
            "rows": self.rows,
            "fingerprint": manifest.fingerprint,
            "version": manifest.version,
            "created": manifest.created,
            "stages": [stage.name for stage in manifest.stages],
            "inputs": {"files": manifest.inputs.files, "list_sha256": manifest.inputs.table.sha256},
            "shards": [{"path": s.path, "rows": s.rows, "sha256": s.sha256} for s in manifest.shards],
            **({"tokenizer": tokenizer} if tokenizer else {}),
        }

    def tokenizer(self) -> dict[str, Any] | None:
        """The tokenizer a `tokens` dataset was made with, as its manifest records it."""
        return self.manifest.tokenizer()

    def read_table(self, columns: Sequence[str]) -> pa.Table:
        """`columns` of every row, through the dataset's format: Arrow shards are memory-mapped
        (nothing is read until used); Parquet reads only those columns; JSON lines are parsed."""
        schema = self.manifest.data_schema(self.location or self.path)
        tables = [read_table(path, columns, schema=schema) for path in self.shard_paths]
        return pa.concat_tables([t for t in tables if t.num_rows] or tables[:1])


def open_dataset(path: str | Path, kinds: Sequence[str], key: str = "data", verify: bool = True) -> DatasetFolder:
    """Read and check a dataset folder; `key` names the config option in error messages.

    Raises ConfigError for a folder of the wrong kind or schema, ThresherError (from
    `curate.manifest`) for an unreadable manifest or a missing or modified shard.
    """
    location = str(path)
    path = Path(path)
    manifest = Manifest.read(location)
    kind = manifest.kind
    if kind not in kinds:
        raise ConfigError(f"{key}: '{path}' holds a '{kind}' dataset; this task reads {' or '.join(kinds)}")
    declared = {column["name"]: column["type"] for column in manifest.schema}
    for column in KINDS[kind]:
        if declared.get(column.name) != str(column.type):
            raise ConfigError(
                f"{key}: '{path}' column '{column.name}' is {declared.get(column.name, 'missing')}, "
                f"expected {column.type} (kind '{kind}')"
            )
    if manifest.rows == 0:
        raise ConfigError(f"{key}: '{path}' has no rows")
    if fs.is_remote(location):  # memory-mapped training reads local copies, checked as they are fetched
        if manifest.data_bytes > fs.cache_limit():  # every shard stays mapped for the whole run
            raise ConfigError(
                f"{key}: '{location}' holds {manifest.data_bytes / 2**20:,.1f} MiB of shards, more than the local cache "
                f"may hold ({fs.cache_limit() / 2**20:,.1f} MiB: {fs.CACHE_GB_ENV}); raise it, or copy the dataset locally"
            )
        copies = [fs.local_copy(fs.join(location, shard.path), shard.sha256) for shard in manifest.shards]
        return DatasetFolder(path, manifest, location.rstrip("/"), copies)
    if verify:
        verify_shards(path, manifest)
    return DatasetFolder(path, manifest)


class TokenRows:
    """The fixed-length rows of a `tokens` dataset, memory-mapped.

    Each record batch of each shard becomes one (rows, seq_len) int32 numpy view over the mapped
    file (zero-copy: the OS pages data in as batches are gathered), and the offsets/values of its
    `doc_starts` lists (also views).
    """

    def __init__(self, shard_paths: Sequence[Path]):
        self.blocks: list[np.ndarray] = []
        self.doc_starts: list[tuple[np.ndarray, np.ndarray]] = []  # (offsets, values) per block
        seq_len = None
        for path in shard_paths:
            for batch in iter_batches(path):  # the views keep the mapped region alive
                if batch.num_rows == 0:
                    continue
                column = batch.column(batch.schema.get_field_index("input_ids"))
                lengths = np.diff(column.offsets.to_numpy())
                if seq_len is None:
                    seq_len = int(lengths[0])
                if (lengths != seq_len).any() or column.null_count:
                    raise ConfigError(
                        f"data: '{path}' has input_ids rows of varying length; expected packed rows of {seq_len}"
                    )
                self.blocks.append(column.flatten().to_numpy(zero_copy_only=True).reshape(-1, seq_len))
                starts = batch.column(batch.schema.get_field_index("doc_starts"))
                offsets = starts.offsets.to_numpy()
                self.doc_starts.append((offsets - offsets[0], starts.flatten().to_numpy(zero_copy_only=True)))
        if seq_len is None:
            raise ConfigError("data: the tokens dataset has no rows")
        self.seq_len = seq_len
        self.starts = np.cumsum([0] + [len(block) for block in self.blocks])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, rows: np.ndarray) -> zip:
        """(block, row within the block) of each global row index."""
        blocks = np.searchsorted(self.starts, rows, side="right") - 1
        return zip(blocks.tolist(), (rows - self.starts[blocks]).tolist())

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Gather rows (global indices, any order) into a new (len(rows), seq_len) int64 array."""
        out = np.empty((len(rows), self.seq_len), dtype=np.int64)
        for i, (block, row) in enumerate(self.locate(rows)):
            out[i] = self.blocks[block][row]
        return out

    def position_ids(self, rows: np.ndarray) -> np.ndarray:
        """Positions that restart at 0 at every document start (and at the start of each row)."""
        starts = np.zeros((len(rows), self.seq_len), dtype=bool)
        for i, (block, row) in enumerate(self.locate(rows)):
            offsets, values = self.doc_starts[block]
            starts[i, values[offsets[row] : offsets[row + 1]]] = True
        starts[:, 0] = True
        index = np.arange(self.seq_len)
        return index - np.maximum.accumulate(np.where(starts, index, 0), axis=1)

    def max_token_id(self) -> int:
        """The largest id in the data (one pass over the mapped shards), to check against the vocabulary."""
        return int(max(block.max() for block in self.blocks))


class RowOrder:
    """The deterministic, resumable, rank-sharded order in which a loop visits `n` rows.

    Every epoch visits each row at most once, in a seeded permutation (or in order without
    `shuffle`); the last partial global batch of an epoch is skipped. A global batch holds
    `batch_size x world_size` rows; rank `r` takes its `r`-th slice, so ranks never share rows.
    Batch `i` of rank `r` is a pure function of (seed, i, r, world size): the data position of a
    run is one integer.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        batch_option: str = "trainer.micro_batch_size",
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.global_batch = batch_size * world_size
        self.per_epoch = n // self.global_batch
        if self.per_epoch == 0:
            raise ConfigError(
                f"data: {n} rows cannot fill one global batch of {self.global_batch} ({batch_option} x devices)"
            )
        self._epoch = -1
        self._order: np.ndarray | None = None

    def order(self, epoch: int) -> np.ndarray:
        """The row order of an epoch (cached for the current epoch)."""
        if self._order is None or epoch != self._epoch:
            if self.shuffle:
                self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            else:
                self._order = np.arange(self.n)
            self._epoch = epoch
        return self._order

    def position(self, index: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of global batch `index`."""
        return divmod(index, self.per_epoch)

    def indices(self, index: int) -> np.ndarray:
        """The rows of this rank's share of global batch `index`."""
        epoch, within = self.position(index)
        start = within * self.global_batch + self.rank * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]


class TokenBatches(RowOrder):
    """Deterministic, resumable, rank-sharded micro-batches of token rows, ready for a causal LM
    (the order is `RowOrder`'s).

    A batch is `input_ids` and `labels` (the same ids; padding, when the tokenizer's pad id is
    not also its EOS, is left out of the loss as -100), plus `position_ids` restarting at every
    document with `doc_mask`: transformers then keeps attention within each document
    (Llama 3's "document mask"); without it, attention runs across the packed documents (GPT-3).
    """

    def __init__(
        self,
        rows: TokenRows,
        micro_batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        pad_id: int | None = None,
        doc_mask: bool = False,
    ):
        super().__init__(len(rows), micro_batch_size, seed, rank, world_size, shuffle)
        self.rows, self.pad_id, self.doc_mask = rows, pad_id, doc_mask

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """Micro-batch `index` of this rank: int64 (micro_batch_size, seq_len) tensors for the model."""
        rows = self.indices(index)
        input_ids = torch.from_numpy(self.rows.take(rows))
        labels = input_ids.clone()
        if self.pad_id is not None:
            labels[input_ids == self.pad_id] = -100
        batch = {"input_ids": input_ids, "labels": labels}
        if self.doc_mask:
            batch["position_ids"] = torch.from_numpy(self.rows.position_ids(rows))
        return batch


def loss_pad_id(tokenizer) -> int | None:
    """The id to leave out of the LM loss: the pad token, unless it doubles as EOS (then EOS is real data)."""
    pad = tokenizer.pad_token_id
    return None if pad is None or pad in (tokenizer.eos_token_id, tokenizer.bos_token_id) else pad


def hf_dataset(folder: DatasetFolder, columns: Sequence[str]) -> datasets.Dataset:
    """The shards of a dataset folder as one `datasets.Dataset` (memory-mapped) with only `columns`.

    Caching is turned off first: `datasets` would otherwise write the results of trl's `map`
    calls next to the shards, inside the curated dataset folder.
    """
    import datasets

    datasets.disable_caching()
    if folder.manifest.format != "arrow":  # Parquet or JSON lines: the columns read into memory
        return datasets.Dataset(folder.read_table(columns))
    parts = [datasets.Dataset.from_file(str(path)) for path in folder.shard_paths]
    parts = [part for part in parts if len(part)]
    dataset = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return dataset.select_columns(list(columns))


def prompts_dataset(folder: DatasetFolder) -> datasets.Dataset:
    """The prompts of a `preference` or `chat` dataset, as trl's online trainers read them (`prompt`).

    A chat's prompt is its conversation up to the last assistant turn; conversations without a
    user turn before it are left out.
    """
    if folder.kind == "preference":
        return hf_dataset(folder, ["prompt"])
    chats = hf_dataset(folder, ["messages"])

    def cut(row: dict) -> dict:
        messages = row["messages"]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        return {"prompt": messages[:last]}

    prompts = chats.map(cut, remove_columns=["messages"])
    return prompts.filter(lambda row: any(m["role"] == "user" for m in row["prompt"]))
