"""The typed configuration of the curate app (Hydra structured configs) and its validation.

Hydra checks the types and names of `input`, `output` and `executor` options while composing;
`validate` checks what composition cannot (required values, choices, ranges) before any data is
read, and every failure is one line naming the key and the valid choices.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from curate.errors import ConfigError
from curate.schema import TYPE_NAMES


@dataclass
class InputConfig:
    paths: list[str] = MISSING  # files, folders and globs
    format: str = "auto"  # auto (from the extension) or a reader: jsonl, json, parquet, arrow, text, code, tar,
    # xml, fasta, genbank, swissprot, smiles (curate.readers.formats.FORMATS)
    records: str = "documents"  # how a raw record becomes a row (see curate.records.MAPPERS)
    text_field: str = "text"  # dotted paths reach nested fields ("metadata.text")
    id_field: str = "id"  # a record without one gets "<file>:<position>"
    text_unit: str = "file"  # plain text files: one document per file, line or paragraph
    columns: list[str] = field(default_factory=list)  # fields kept as typed columns: "name" or "name:type"
    source: Optional[str] = None  # the `source` column; default: each input entry's name
    on_error: str = "quarantine"  # quarantine (keep bad rows aside, go on) or fail (stop at the first)
    max_doc_mb: float = 64.0  # larger documents are bad input


@dataclass
class OutputConfig:
    dir: str = MISSING
    shard_mb: float = 256.0  # a data shard rolls over to the next file past this size
    overwrite: bool = False  # replace a different finished/unfinished run in `dir`
    keep_work: bool = False  # keep intermediate shards of multi-pass recipes after success
    report: bool = True  # write report.html


@dataclass
class ExecutorConfig:
    name: str = "local"  # local (process pool) or ray (Ray Data, local or a cluster)
    workers: int = 0  # parallel tasks; 0 = one per CPU core
    task_mb: float = 64.0  # input files are grouped into tasks of about this much (uncompressed) data
    batch_rows: int = 1000  # rows per record batch handed to stages
    batch_mb: float = 32.0  # ... or fewer, to bound memory with large documents
    progress: bool = True  # progress bars (only on a terminal)
    address: Optional[str] = None  # ray: cluster address ("auto", "ray://host:10001"); None starts a local Ray


@dataclass
class CurateConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    stages: dict[str, Any] = field(default_factory=dict)  # ordered: the recipe's stages and options
    seed: int = 0


def register_configs() -> None:
    ConfigStore.instance().store(name="curate_schema", node=CurateConfig)


CHOICES = {
    "input.text_unit": ("file", "line", "paragraph"),
    "input.on_error": ("quarantine", "fail"),
    "executor.name": ("local", "ray"),
}


def validate(cfg: DictConfig) -> None:
    """Check the parts of the config composition cannot check. Raises ConfigError (one line)."""
    from curate.records import MAPPERS

    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra"))
    if missing:
        key = re.sub(r"\[(\d+)\]", r".\1", missing[0])  # list items as the command line names them: scorers.0.model
        raise ConfigError(f"{key}: required value is missing (set {key}=...)")
    from curate.readers.sources import format_names

    for key, allowed in {**CHOICES, "input.format": ("auto", *format_names())}.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}: '{value}' is not one of: {', '.join(allowed)}")
    if cfg.input.records not in MAPPERS:
        raise ConfigError(f"input.records: '{cfg.input.records}' is not one of: {', '.join(sorted(MAPPERS))}")
    for spec in cfg.input.columns:
        name, _, type_name = str(spec).partition(":")
        if (type_name or "string") not in TYPE_NAMES or not name:
            raise ConfigError(
                f"input.columns: '{spec}' is not 'name' or 'name:type' with a type in: {', '.join(TYPE_NAMES)}"
            )
    if not cfg.input.paths:
        raise ConfigError("input.paths: give at least one file, folder or glob")
    for key in ("executor.workers",):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0")
    for key in ("executor.task_mb", "executor.batch_rows", "executor.batch_mb", "output.shard_mb"):
        if OmegaConf.select(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be > 0")


def workers(cfg: DictConfig) -> int:
    return cfg.executor.workers or os.cpu_count() or 1


def column_types(columns: list[str]) -> dict[str, str]:
    """`input.columns` entries ("name" or "name:type") as name → type name."""
    return {name: type_name or "string" for name, _, type_name in (str(c).partition(":") for c in columns)}
