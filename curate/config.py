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
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from curate.errors import ConfigError
from curate.schema import TYPE_NAMES


@dataclass
class WarcInputConfig:
    """Which records of WARC, WET and ARC files become rows (null: the format's default)."""

    record_types: Optional[list[str]] = None  # WARC-Type values; default: response (WET: conversion)
    http_status: Optional[list[int]] = None  # default: [200] (WET: any); [] keeps any status
    mime_types: Optional[list[str]] = None  # default: text/html, application/xhtml+xml (WET: text/plain); "text/*"


@dataclass
class TableInputConfig:
    """How SMILES tables are laid out (.smi, or CSV/TSV with input.format=smiles); null: found from the file."""

    smiles_column: Optional[str] = None  # a header name or a 0-based index; null: named like 'smiles', else
    # the first column whose first value is a SMILES
    name_column: Optional[str] = None  # null (no header): the first other column not holding a measure
    value_column: Optional[str] = None  # null (no header): the first other column holding a non-integer number
    header: Optional[bool] = None  # null: the first row is a header if it names the SMILES column
    comment: str = "#"  # lines starting with it are skipped; "" skips none
    delimiter: Optional[str] = None  # tab, comma, whitespace or one character; null: from the first data line


@dataclass
class InputConfig:
    paths: list[str] = MISSING  # files, folders and globs
    format: str = "auto"  # auto (from the extension) or a reader: jsonl, json, parquet, arrow, text, code, tar,
    # xml, fasta, genbank, swissprot, smiles, warc, wet, arc (curate.readers.formats.FORMATS)
    records: str = "documents"  # how a raw record becomes a row (see curate.records.MAPPERS)
    # converters: the fields the converter reads, from fields of other names: {instruction: prompt} or
    # [instruction:prompt] (typed Any: Hydra cannot replace a typed empty dict from the command line)
    fields: Any = None
    strip_template: Optional[str] = None  # chat/preference converters: a prompt template to take off user turns
    text_field: str = "text"  # dotted paths reach nested fields ("metadata.text")
    id_field: str = "id"  # a record without one gets "<file>:<position>"
    text_unit: str = "file"  # plain text files: one document per file, line or paragraph
    include: list[str] = field(default_factory=list)  # file-name patterns that files found in folders and
    # globs must match (fnmatch: "Posts.xml*"); the others are skipped and listed. [] reads every known format
    columns: list[str] = field(default_factory=list)  # fields kept as typed columns: "name" or "name:type"
    source: Optional[str] = None  # the `source` column; default: each input entry's name
    on_error: str = "quarantine"  # quarantine (keep bad rows aside, go on) or fail (stop at the first)
    max_quarantine_frac: float = 0.5  # the run fails when a larger share of the rows read is quarantined
    max_doc_mb: float = 64.0  # larger documents (a text field, a line, a one-document file) are bad input
    max_inflate_ratio: float = 100.0  # compressed input inflating more (a bomb) is bad input; 0: no limit
    # uncompressed JSON lines (and text read a line per document) larger than this are read in byte
    # ranges of about executor.task_mb by several tasks; their rows' positions are byte offsets
    # (`file.jsonl@1048576`), the same for any task_mb. 0: never split. (Parquet files larger than
    # executor.task_mb are always read by runs of row groups; their positions stay row numbers.)
    split_mb: float = 256.0
    warc: WarcInputConfig = field(default_factory=WarcInputConfig)  # web archives (curate.readers.crawl)
    table: TableInputConfig = field(default_factory=TableInputConfig)  # SMILES tables (curate.readers.science)


@dataclass
class OutputConfig:
    dir: str = MISSING
    format: str = "arrow"  # data shards: arrow (IPC stream), parquet or jsonl; token datasets are always arrow
    shard_mb: float = 256.0  # a data shard rolls over to the next file past this size
    overwrite: bool = False  # replace a different finished/unfinished run in `dir`
    keep_work: bool = False  # keep intermediate shards of multi-pass recipes after success
    report: bool = True  # write report.html


@dataclass
class ExecutorConfig:
    name: str = "local"  # local (process pool) or ray (Ray Data, local or a cluster)
    workers: int = 0  # parallel tasks; 0 = one per CPU core
    task_mb: float = 64.0  # input files are grouped into tasks of about this much (uncompressed) data
    task_files: int = 1000  # ... and at most this many files (many small files still make many tasks)
    batch_rows: int = 1000  # rows per record batch handed to stages
    batch_mb: float = 32.0  # ... or fewer, to bound memory with large documents
    progress: bool = True  # progress bars (only on a terminal)
    address: Optional[str] = None  # ray: cluster address ("auto", "ray://host:10001"); None starts a local Ray
    # partitions of a global stage's resolve (dedup, top_fraction, mix): 0 = one per partition_mb of input
    partitions: int = 0
    partition_mb: float = 256.0  # (uncompressed) input per partition when partitions=0
    memory_check: bool = True  # stop before reading data if the memory estimate does not fit this machine


@dataclass
class CurateConfig:
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    stages: dict[str, Any] = field(default_factory=dict)  # ordered: the recipe's stages and options
    seed: int = 0
    plan: bool = False  # print the plan (tasks, partitions, memory estimate) and stop: `thresher curate --plan`


def register_configs() -> None:
    ConfigStore.instance().store(name="curate_schema", node=CurateConfig)


CHOICES = {
    "input.text_unit": ("file", "line", "paragraph"),
    "input.on_error": ("quarantine", "fail"),
    "executor.name": ("local", "ray"),
    "output.format": ("arrow", "parquet", "jsonl"),  # curate.writers.OUTPUT_FORMATS
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
    validate_input_mapping(cfg)
    for spec in cfg.input.columns:
        name, _, type_name = str(spec).partition(":")
        if (type_name or "string") not in TYPE_NAMES or not name:
            raise ConfigError(
                f"input.columns: '{spec}' is not 'name' or 'name:type' with a type in: {', '.join(TYPE_NAMES)}"
            )
    if not cfg.input.paths:
        raise ConfigError("input.paths: give at least one file, folder or glob")
    for key in ("executor.workers", "executor.partitions"):
        if OmegaConf.select(cfg, key) < 0:
            raise ConfigError(f"{key}: must be >= 0")
    if not 0 <= cfg.input.max_quarantine_frac <= 1:
        raise ConfigError("input.max_quarantine_frac: a share of the rows read, within [0, 1] (1: never fail)")
    delimiter = cfg.input.table.delimiter
    if delimiter is not None and delimiter not in ("tab", "comma", "whitespace") and len(delimiter) != 1:
        raise ConfigError(f"input.table.delimiter: '{delimiter}' is not tab, comma, whitespace or one character")
    if cfg.input.max_inflate_ratio < 0:
        raise ConfigError("input.max_inflate_ratio: must be >= 0 (0: no limit)")
    if cfg.input.split_mb < 0:
        raise ConfigError("input.split_mb: must be >= 0 (0: never split a file)")
    for key in (
        "executor.task_mb",
        "executor.task_files",
        "executor.batch_rows",
        "executor.batch_mb",
        "executor.partition_mb",
        "output.shard_mb",
        "input.max_doc_mb",
    ):
        if OmegaConf.select(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be > 0")


def validate_input_mapping(cfg: DictConfig) -> None:
    """`input.fields` names fields the converter reads; `input.strip_template` a known template, for
    a converter whose rows have user turns."""
    from curate.converters.templates import TEMPLATES
    from curate.records import MAPPERS

    records = cfg.input.records
    converter = MAPPERS[records]
    fields = input_fields(cfg.input.fields)
    if fields and not converter.record_fields:
        raise ConfigError(
            f"input.fields: input.records={records} takes input.text_field, input.id_field and input.columns "
            "instead; input.fields is for the converters (input.records=alpaca, dolly, ...)"
        )
    for key, value in fields.items():
        if key not in converter.record_fields:
            raise ConfigError(
                f"input.fields.{key}: the '{records}' converter reads no field '{key}'; "
                f"it reads: {', '.join(converter.record_fields)} (and the id from input.id_field)"
            )
        if not value:
            raise ConfigError(f"input.fields.{key}: give the name of the input's field that holds '{key}'")
    template = cfg.input.strip_template
    if template is not None:
        if template not in TEMPLATES:
            raise ConfigError(f"input.strip_template: '{template}' is not one of: {', '.join(TEMPLATES)}")
        if converter().kind not in ("chat", "preference"):
            raise ConfigError(
                f"input.strip_template: input.records={records} makes {converter().kind} rows, which have no "
                "user turns; use a chat or preference converter"
            )


def input_fields(value: Any) -> dict[str, str]:
    """`input.fields` as {field the converter reads: the input's field}, from a mapping or a list of
    "name:field" entries (as `input.columns`)."""
    if value is None:
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(value, (dict, DictConfig)):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple, ListConfig)):
        pairs = [(name, source) for name, _, source in (str(entry).partition(":") for entry in value)]
    else:
        pairs = [("", value)]
    if any(not name or not isinstance(source, str) or not source for name, source in pairs):
        raise ConfigError(
            f"input.fields: '{value}' is not a mapping of converter fields to input fields, e.g. "
            "input.fields={instruction: prompt, output: answer} or input.fields=[instruction:prompt,output:answer]"
        )
    return dict(pairs)


def workers(cfg: DictConfig) -> int:
    return cfg.executor.workers or os.cpu_count() or 1


def column_types(columns: list[str]) -> dict[str, str]:
    """`input.columns` entries ("name" or "name:type") as name → type name."""
    return {name: type_name or "string" for name, _, type_name in (str(c).partition(":") for c in columns)}
