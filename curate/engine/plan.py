"""Planning a run: everything decided before any data is read."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa
from omegaconf import DictConfig

from curate import fs
from curate.compose import resolved_dict
from curate.config import column_types, input_fields, validate
from curate.converters.input_mapping import MappedInput
from curate.errors import ConfigError
from curate.mapping import RecordMapper
from curate.pipeline import Pipeline, build_pipeline
from curate.readers import ReadOptions, input_schema
from curate.readers.crawl import CRAWL_COLUMNS, WarcSelection
from curate.readers.formats import SELF_DECOMPRESSING
from curate.readers.science import TableLayout
from curate.readers.sources import InputFile, expand_paths, split_large_files
from curate.records import MAPPERS
from curate.redact import redacted
from curate.runfolder import fingerprint, without_keys

# Options that change how a run is executed, not what it produces: not part of its fingerprint.
VOLATILE_KEYS = (
    "executor.workers",
    "executor.progress",
    "executor.name",
    "executor.address",
    "executor.memory_check",
    "plan",
    "output.overwrite",
    "output.keep_work",
    "output.report",
    "input.max_quarantine_frac",  # a check of what was read, not a change to it
)


@dataclass
class Plan:
    """Everything decided before any data is read."""

    cfg: DictConfig
    files: list[InputFile]
    skipped: list[dict]
    tasks: list[list[InputFile]]
    mapper: RecordMapper
    pipeline: Pipeline
    options: ReadOptions
    config: dict[str, Any]  # the resolved config without its volatile keys: what the run computes
    fingerprint: str
    partitions: int  # of each partitioned resolve (`partition_count`)


def mb(megabytes: float) -> int:
    return max(1, int(megabytes * (1 << 20)))


def make_mapper(cfg: DictConfig) -> RecordMapper:
    options: dict[str, Any] = {"max_doc_chars": mb(cfg.input.max_doc_mb)}
    factory = MAPPERS[cfg.input.records]
    if cfg.input.records == "documents":
        options.update(
            text_field=cfg.input.text_field, id_field=cfg.input.id_field, columns=column_types(cfg.input.columns)
        )
    elif "id_field" in {f.name for f in fields(factory)}:  # converters take the record's id from input.id_field
        options["id_field"] = cfg.input.id_field
    mapper = factory(**options)
    renamed = input_fields(cfg.input.fields)
    if renamed or cfg.input.strip_template:
        return MappedInput(mapper, renamed, cfg.input.strip_template)
    return mapper


def warc_selection(cfg: DictConfig) -> WarcSelection:
    """`input.warc` as the web-archive readers take it (None: the format's default)."""
    warc = cfg.input.warc
    return WarcSelection(
        *(None if value is None else tuple(value) for value in (warc.record_types, warc.http_status, warc.mime_types))
    )


def table_layout(cfg: DictConfig) -> TableLayout:
    """`input.table` as the SMILES reader takes it."""
    table = cfg.input.table
    return TableLayout(
        table.smiles_column, table.name_column, table.value_column, table.header, table.comment, table.delimiter
    )


def plan_tasks(files: list[InputFile], task_bytes: int, task_files: int) -> list[list[InputFile]]:
    """Group files, in order, into tasks of about `task_bytes` and at most `task_files` files (a
    larger file is a task of its own). Depends on the inputs and options only: never on the
    number of workers, so the output is the same for any number of them."""
    tasks: list[list[InputFile]] = []
    size = 0
    for file in files:
        if not tasks or size + file.estimated_bytes > task_bytes or len(tasks[-1]) >= task_files:
            tasks.append([])
            size = 0
        tasks[-1].append(file)
        size += file.estimated_bytes
    return tasks


def partition_count(cfg: DictConfig, files: list[InputFile]) -> int:
    """Partitions of a partitioned resolve: `executor.partitions`, or one per `executor.partition_mb`
    of (uncompressed) input. From the inputs and options only, never the number of workers: the
    output is the same for any number of partitions, but a rerun must find the shuffle files it
    wrote (the option is part of the run's fingerprint)."""
    if cfg.executor.partitions:
        return int(cfg.executor.partitions)
    return max(1, -(-sum(f.estimated_bytes for f in files) // mb(cfg.executor.partition_mb)))


def check_output_format(fmt: str, pipeline: Pipeline) -> None:
    """Token datasets stay Arrow streams (the pre-training loop memory-maps them); JSON lines hold no bytes."""
    if fmt == "arrow":
        return
    if pipeline.kind == "tokens":
        raise ConfigError(
            f"output.format: token datasets are written as Arrow streams (the trainers memory-map them), not {fmt}"
        )
    binary = [f.name for f in pipeline.output_schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if fmt == "jsonl" and binary:
        raise ConfigError(
            f"output.format: column '{binary[0]}' holds bytes, which JSON lines cannot; use parquet or arrow"
        )


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """What a run computes: its resolved config without the volatile keys, credentials masked (a
    key in a URL changes who may call a service, not what the run computes)."""
    return redacted(without_keys(resolved_dict(cfg), VOLATILE_KEYS))


def make_plan(cfg: DictConfig) -> Plan:
    validate(cfg)
    files, skipped = expand_paths(list(cfg.input.paths), cfg.input.format, cfg.input.source, list(cfg.input.include))
    mapper = make_mapper(cfg)
    if cfg.input.records == "documents" and any(f.format in ("code", "tar") for f in files):
        # Source files carry their path and language as typed columns.
        mapper.columns = {"path": "string", "language": "string", **mapper.columns}  # type: ignore[attr-defined]
    if cfg.input.records == "documents" and any(f.format in SELF_DECOMPRESSING for f in files):
        # Web-archive records carry their URL, date, record id, type and charset as typed columns.
        mapper.columns = {**CRAWL_COLUMNS, **mapper.columns}  # type: ignore[attr-defined]
    schema, kind = input_schema(files, mapper)
    pipeline = build_pipeline(cfg.stages, schema, kind)
    check_output_format(cfg.output.format, pipeline)
    options = ReadOptions(
        cfg.input.format,
        cfg.input.text_unit,
        cfg.input.on_error,
        cfg.executor.batch_rows,
        mb(cfg.executor.batch_mb),
        mb(cfg.input.max_doc_mb),
        cfg.input.max_inflate_ratio,
        warc_selection(cfg),
        table_layout(cfg),
    )
    inputs = [(f.path if fs.is_remote(f.path) else os.path.realpath(f.path), f.size, f.version) for f in files]
    task_bytes = mb(cfg.executor.task_mb)
    split_bytes = int(cfg.input.split_mb * (1 << 20))
    partitions = partition_count(cfg, files)  # of the whole files: a split changes no partition
    files = split_large_files(files, task_bytes, split_bytes, cfg.input.text_unit)
    tasks = plan_tasks(files, task_bytes, cfg.executor.task_files)
    config = run_config(cfg)
    return Plan(
        cfg,
        files,
        skipped,
        tasks,
        mapper,
        pipeline,
        options,
        config,
        fingerprint(config, inputs),
        partitions,
    )
