"""The engine: plan a run, execute its passes task by task, and write the dataset folder.

A run is planned completely before any data is read: inputs found and grouped into tasks, the
pipeline built and its column chain checked. Then each pass streams every task's rows through
its stages (in parallel over tasks); between passes, a global stage resolves its scanned state.

Layout of the output folder while running:
    <out>/.lock                       held (flock) by the running process
    <out>/_work/run.json              the run's fingerprint (config + inputs), to resume safely
    <out>/_work/pass-K/task-NNNNN.json  a task's stats: written last, it marks the task done
    <out>/_work/pass-K/data/          intermediate shards (passes before the last)
    <out>/_work/stage-NAME/           a global stage's scanned state and decisions
Every shard is written under a temporary name and renamed when complete; a task without its
marker is redone from scratch on rerun, so a killed run finishes with the same result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig, OmegaConf

from curate.config import column_types, validate, workers
from curate.errors import OutputError, ThresherError
from curate.manifest import MANIFEST, code_version, read_manifest, write_json_atomic
from curate.pipeline import Pass, Pipeline, build_pipeline
from curate.readers import FileStats, Quarantine, ReadOptions, input_schema, read_file
from curate.readers.sources import InputFile, expand_paths
from curate.records import MAPPERS, RecordMapper
from curate.schema import QUARANTINE, schema_to_json
from curate.stages.base import GlobalContext, GlobalStage, RowResult, Stage, positions_for
from curate.writers import TMP_SUFFIX, ShardWriter, iter_shard

# Options that change how a run is executed, not what it produces: not part of its fingerprint.
VOLATILE_KEYS = ("executor.workers", "executor.progress", "executor.name", "executor.address",
                 "output.overwrite", "output.keep_work", "output.report")


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
    fingerprint: str


def mb(megabytes: float) -> int:
    return max(1, int(megabytes * (1 << 20)))


def make_mapper(cfg: DictConfig) -> RecordMapper:
    options = {"max_doc_chars": mb(cfg.input.max_doc_mb)}
    factory = MAPPERS[cfg.input.records]
    if cfg.input.records == "documents":
        options.update(text_field=cfg.input.text_field, id_field=cfg.input.id_field,
                       columns=column_types(cfg.input.columns))
    elif "id_field" in {f.name for f in fields(factory)}:  # converters take the record's id from input.id_field
        options["id_field"] = cfg.input.id_field
    return factory(**options)


def plan_tasks(files: list[InputFile], task_bytes: int) -> list[list[InputFile]]:
    """Group files, in order, into tasks of about `task_bytes` (a larger file is a task of its own)."""
    tasks: list[list[InputFile]] = []
    size = 0
    for file in files:
        if not tasks or size + file.estimated_bytes > task_bytes:
            tasks.append([])
            size = 0
        tasks[-1].append(file)
        size += file.estimated_bytes
    return tasks


def make_plan(cfg: DictConfig) -> Plan:
    validate(cfg)
    files, skipped = expand_paths(list(cfg.input.paths), cfg.input.format, cfg.input.source)
    mapper = make_mapper(cfg)
    if cfg.input.records == "documents" and any(f.format in ("code", "tar") for f in files):
        # Source files carry their path and language as typed columns.
        mapper.columns = {"path": "string", "language": "string", **mapper.columns}
    schema, kind = input_schema(files, mapper)
    pipeline = build_pipeline(cfg.stages, schema, kind)
    options = ReadOptions(cfg.input.format, cfg.input.text_unit, cfg.input.on_error,
                          cfg.executor.batch_rows, mb(cfg.executor.batch_mb))
    tasks = plan_tasks(files, mb(cfg.executor.task_mb))
    return Plan(cfg, files, skipped, tasks, mapper, pipeline, options, fingerprint(cfg, files))


def fingerprint(cfg: DictConfig, files: list[InputFile]) -> str:
    config = OmegaConf.to_container(cfg, resolve=True)
    for key in VOLATILE_KEYS:
        section, name = key.split(".")
        config.get(section, {}).pop(name, None)
    inputs = [(str(f.path.resolve()), f.size, f.mtime_ns) for f in files]
    blob = json.dumps({"config": config, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Output folder: layout, lock, resume


@dataclass
class Layout:
    out: Path

    @property
    def work(self) -> Path:
        return self.out / "_work"

    def pass_dir(self, index: int) -> Path:
        return self.work / f"pass-{index}"

    def marker(self, index: int, task: int) -> Path:
        return self.pass_dir(index) / f"task-{task:05d}.json"

    def data_dir(self, index: int, last: bool) -> Path:
        return self.out / "data" if last else self.pass_dir(index) / "data"

    def stage_dir(self, name: str) -> Path:
        return self.work / f"stage-{name}"

    def keep_dir(self, stage: GlobalStage) -> Path:
        return self.out / stage.keep_subdir


class RunLock:
    """An exclusive lock on the output folder for the whole run (released by the OS if killed)."""

    def __init__(self, out: Path):
        self.path = out / ".lock"

    def __enter__(self) -> RunLock:
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise OutputError(
                f"output.dir '{self.path.parent}' is in use by another run ({holder}); "
                "wait for it to finish or choose another output.dir"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def clear_folder(out: Path) -> None:
    for child in out.iterdir():
        if child.name == ".lock":
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def prepare_output(layout: Layout, plan: Plan) -> str:
    """Decide what to do with the output folder: 'complete', 'resume' or 'fresh'."""
    out, overwrite = layout.out, plan.cfg.output.overwrite
    run_file = layout.work / "run.json"
    if (out / MANIFEST).is_file():
        if read_manifest(out).get("fingerprint") == plan.fingerprint and not overwrite:
            return "complete"
        if not overwrite:
            raise OutputError(
                f"output.dir '{out}' holds a finished run of a different config or input; "
                "choose another output.dir or set output.overwrite=true"
            )
    elif run_file.is_file():
        if json.loads(run_file.read_text()).get("fingerprint") == plan.fingerprint and not overwrite:
            return "resume"
        if not overwrite:
            raise OutputError(
                f"output.dir '{out}' holds an unfinished run of a different config or input; rerun with the "
                "same config to resume it, choose another output.dir, or set output.overwrite=true"
            )
    elif any(child.name != ".lock" for child in out.iterdir()) and not overwrite:
        raise OutputError(f"output.dir '{out}' is not empty and holds no Thresher run; choose an empty folder")
    clear_folder(out)
    layout.work.mkdir(parents=True)
    write_json_atomic(run_file, {"fingerprint": plan.fingerprint, "started": time.time()})
    return "fresh"


# --------------------------------------------------------------------------------------------
# Tasks (run in worker processes)


@dataclass
class StageStats:
    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    generated: int = 0  # rows a global stage created (kept or dropped)
    consumed: int = 0  # input rows merged into other output rows
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # a row stage's task_counts, summed

    def merge(self, other: dict) -> None:
        self.rows_in += other["rows_in"]
        self.rows_out += other["rows_out"]
        self.bytes_in += other["bytes_in"]
        self.bytes_out += other["bytes_out"]
        self.seconds += other["seconds"]
        self.generated += other["generated"]
        self.consumed += other["consumed"]
        for reason, count in other["dropped"].items():
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        for name, count in other.get("counts", {}).items():
            self.counts[name] = self.counts.get(name, 0) + count


@dataclass
class TaskSpec:
    pass_index: int
    task: int
    inputs: list  # pass 0: InputFile; later passes: paths of the previous pass's shards


class WorkerState:
    """What every worker process holds for the whole run (sent once, when the pool starts)."""

    def __init__(self, plan_payload: dict):
        self.__dict__.update(plan_payload)
        self.ready: set[str] = set()

    def prepare(self, stage: Stage, loading: bool = False) -> None:
        key = f"{stage.name}:{'load' if loading else 'setup'}"
        if key in self.ready:
            return
        if loading:
            stage.load(self.global_context(stage))
        else:
            stage.setup()
        self.ready.add(key)

    def global_context(self, stage: GlobalStage, scan_files: list[Path] | None = None) -> GlobalContext:
        return GlobalContext(self.layout.stage_dir(stage.name), scan_files or [], self.workers, self.seed,
                             self.layout.keep_dir(stage), self.tasks)


_WORKER: WorkerState | None = None


def init_worker(payload: dict) -> None:
    global _WORKER
    _WORKER = WorkerState(payload)


def text_bytes(batch: pa.RecordBatch) -> int:
    index = batch.schema.get_field_index("text")
    if index < 0 or batch.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(batch.column(index))).as_py() or 0)


class TaskRun:
    """One task of one pass: stream its rows through the pass's stages and write what comes out."""

    def __init__(self, state: WorkerState, spec: TaskSpec):
        self.state, self.spec = state, spec
        self.passage: Pass = state.pipeline.passes[spec.pass_index]
        self.last = spec.pass_index == len(state.pipeline.passes) - 1
        layout, prefix, out = state.layout, f"part-{spec.task:05d}", state.layout.out
        self.prefix = prefix
        self.data = ShardWriter(layout.data_dir(spec.pass_index, self.last), prefix, self.passage.schema_out,
                                state.shard_bytes, out)
        self.rejects: dict[str, ShardWriter] = {}
        self.quarantine = Quarantine(fail=state.options.on_error == "fail")
        self.quarantine_writer = ShardWriter(out / "quarantine", prefix, QUARANTINE, state.shard_bytes, out)
        self.scan_writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.scan_path = (layout.stage_dir(self.passage.scan.name) / "scan" / f"task-{spec.task:05d}.arrow"
                          if self.passage.scan else None)
        consumer = [self.passage.scan] if self.passage.scan and self.passage.scan.consumes_rows else []
        self.stats = {stage.name: StageStats() for stage in self.passage.stages + consumer}
        self.files: list[FileStats] = []
        self.rows_in = 0
        self.apply_offset = 0
        self.scan_offset = 0

    def clean_previous_attempt(self) -> None:
        """Remove anything an interrupted earlier attempt at this task left behind."""
        out = self.state.layout.out
        folders = [self.data.directory] + [out / "rejects" / s.name for s in self.passage.stages]
        if self.spec.pass_index == 0:  # only the first pass reads input, so only it writes quarantine
            folders.append(out / "quarantine")
        for folder in folders:
            for leftover in folder.glob(f"{self.prefix}-*"):
                leftover.unlink()
        if self.scan_path:
            for leftover in (self.scan_path, self.scan_path.with_name(self.scan_path.name + TMP_SUFFIX)):
                leftover.unlink(missing_ok=True)

    def source(self):
        if self.spec.pass_index == 0:
            for file in self.spec.inputs:
                stats = FileStats(str(file.path))
                self.files.append(stats)
                for batch in read_file(file, self.state.mapper, self.state.options, self.quarantine, stats):
                    self.write_quarantine()
                    yield batch
                self.write_quarantine()
        else:
            for path in self.spec.inputs:
                yield from iter_shard(path)

    def write_quarantine(self) -> None:
        batch = self.quarantine.drain()
        if batch is not None:
            self.quarantine_writer.write(batch)

    def record(self, stage: Stage, batch_in: pa.RecordBatch | None, result: RowResult, seconds: float,
               generated: bool = False) -> None:
        stats = self.stats[stage.name]
        if batch_in is not None:
            stats.rows_in += batch_in.num_rows
            stats.bytes_in += text_bytes(batch_in)
        if generated:
            stats.generated += result.kept.num_rows + (result.dropped.num_rows if result.dropped is not None else 0)
        stats.consumed += result.consumed
        stats.rows_out += result.kept.num_rows
        stats.bytes_out += text_bytes(result.kept)
        stats.seconds += seconds
        dropped = result.dropped
        if dropped is not None and dropped.num_rows:
            for reason, count in Counter(dropped.column("drop_reason").to_pylist()).items():
                stats.dropped[str(reason)] = stats.dropped.get(str(reason), 0) + count
            dropped = dropped.append_column("drop_stage", pa.array([stage.name] * dropped.num_rows, pa.string()))
            writer = self.rejects.get(stage.name)
            if writer is None:
                writer = self.rejects[stage.name] = ShardWriter(
                    self.state.layout.out / "rejects" / stage.name, self.prefix,
                    self.state.pipeline.reject_schemas[stage.name], self.state.shard_bytes, self.state.layout.out,
                )
            writer.write(dropped)

    def run_rows(self, batch: pa.RecordBatch, stages) -> None:
        for stage in stages:
            start = time.perf_counter()
            result = stage.process(batch)
            self.record(stage, batch, result, time.perf_counter() - start)
            batch = result.kept
            if batch.num_rows == 0:
                return
        self.emit(batch)

    def emit(self, batch: pa.RecordBatch) -> None:
        scan = self.passage.scan
        if scan is not None:
            positions = positions_for(self.spec.task, self.scan_offset, batch.num_rows)
            self.scan_offset += batch.num_rows
            state = scan.scan(batch, positions)
            if state is not None and state.num_rows:
                if self.scan_writer is None:
                    self.scan_path.parent.mkdir(parents=True, exist_ok=True)
                    self.scan_sink = pa.OSFile(str(self.scan_path) + TMP_SUFFIX, "wb")
                    self.scan_writer = pa.ipc.new_stream(self.scan_sink, state.schema)
                self.scan_writer.write(state)
            if scan.consumes_rows:  # its rows end here: counted as its input, written nowhere
                self.stats[scan.name].rows_in += batch.num_rows
                self.stats[scan.name].bytes_in += text_bytes(batch)
                return
        self.data.write(batch)

    def run(self) -> dict:
        self.clean_previous_attempt()
        passage, state = self.passage, self.state
        for stage in passage.rows + ([passage.scan] if passage.scan else []):
            state.prepare(stage)
        if passage.apply:
            state.prepare(passage.apply)
            state.prepare(passage.apply, loading=True)
        for stage in passage.rows:
            stage.start_task(self.spec.task)
        started = time.perf_counter()
        for batch in self.source():
            self.rows_in += batch.num_rows
            if passage.apply:
                positions = positions_for(self.spec.task, self.apply_offset, batch.num_rows)
                self.apply_offset += batch.num_rows
                start = time.perf_counter()
                result = passage.apply.apply(batch, positions)
                self.record(passage.apply, batch, result, time.perf_counter() - start)
                batch = result.kept
                if batch.num_rows == 0:
                    continue
            self.run_rows(batch, passage.rows)
        if passage.apply:
            start = time.perf_counter()
            for result in passage.apply.generate(self.spec.task, self.state.tasks):
                self.record(passage.apply, None, result, time.perf_counter() - start, generated=True)
                if result.kept.num_rows:
                    self.run_rows(result.kept, passage.rows)
                start = time.perf_counter()
        for index, stage in enumerate(passage.rows):
            leftover = stage.finish_task()
            if leftover is not None:
                self.record(stage, None, leftover, 0.0)
                if leftover.kept.num_rows:
                    self.run_rows(leftover.kept, passage.rows[index + 1:])
        for stage in passage.rows:
            for name, count in stage.task_counts().items():
                counts = self.stats[stage.name].counts
                counts[name] = counts.get(name, 0) + int(count)
        return self.finish(time.perf_counter() - started)

    def finish(self, seconds: float) -> dict:
        scan_file = None
        if self.scan_writer is not None:
            self.scan_writer.close()
            self.scan_sink.close()
            os.replace(str(self.scan_path) + TMP_SUFFIX, self.scan_path)
            scan_file = str(self.scan_path)
        result = {
            "pass": self.spec.pass_index,
            "task": self.spec.task,
            "rows_in": self.rows_in,
            "seconds": seconds,
            "stages": {name: asdict(stats) for name, stats in self.stats.items()},
            "shards": self.data.close(),
            "rejects": {name: writer.close() for name, writer in self.rejects.items()},
            "quarantine": self.quarantine_writer.close(),
            "files": [asdict(stats) for stats in self.files],
            "scan_file": scan_file,
        }
        write_json_atomic(self.state.layout.marker(self.spec.pass_index, self.spec.task), result)
        return result


class TaskFailed(ThresherError):
    """A task failed for a reason that is not bad input: carries the traceback for the error log."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details

    def __reduce__(self):
        return (TaskFailed, (str(self), self.details))


def run_task(spec: TaskSpec) -> dict:
    """Entry point in a worker process."""
    try:
        return TaskRun(_WORKER, spec).run()
    except ThresherError:
        raise
    except Exception as error:  # a bug or a stage failure: name where, keep the traceback
        where = ", ".join(str(getattr(f, "path", f)) for f in spec.inputs[:3])
        raise TaskFailed(
            f"pass {spec.pass_index} task {spec.task} ({where}) failed: {type(error).__name__}: {error}",
            traceback.format_exc(),
        ) from None


# --------------------------------------------------------------------------------------------
# The driver


def worker_payload(plan: Plan, layout: Layout, n_workers: int) -> dict:
    return {
        "pipeline": plan.pipeline, "layout": layout, "mapper": plan.mapper, "options": plan.options,
        "shard_bytes": mb(plan.cfg.output.shard_mb), "workers": n_workers, "seed": plan.cfg.seed,
        "tasks": len(plan.tasks),
    }


def run(cfg: DictConfig, console=None) -> dict[str, Any]:
    """Run a curation recipe; return its manifest."""
    from curate.executors import make_executor
    from curate.progress import Progress, print_summary

    plan = make_plan(cfg)
    layout = Layout(Path(cfg.output.dir))
    layout.out.mkdir(parents=True, exist_ok=True)
    with RunLock(layout.out):
        status = prepare_output(layout, plan)
        if status == "complete":
            manifest = read_manifest(layout.out)
            print_summary(manifest, console, note="already complete; nothing to do")
            return manifest
        n_workers = min(workers(cfg), max(1, len(plan.tasks)))
        started = time.time()
        results: list[dict[int, dict]] = []
        pass_seconds: list[float] = []
        progress = Progress(enabled=cfg.executor.progress, console=console)
        try:
            with make_executor(cfg, n_workers, init_worker, worker_payload(plan, layout, n_workers)) as executor, progress:
                for passage in plan.pipeline.passes:
                    pass_start = time.time()
                    done = run_pass(plan, layout, passage, results, executor, progress)
                    results.append(done)
                    if passage.scan is not None:
                        resolve(plan, layout, passage.scan, done, n_workers)
                    pass_seconds.append(time.time() - pass_start)
        except TaskFailed as failure:
            log = layout.work / "error.log"
            log.write_text(failure.details)
            raise ThresherError(f"{failure}  (traceback in {log}; rerun to resume)") from None
        manifest = finalize(plan, layout, results, started, pass_seconds, n_workers)
    print_summary(manifest, console)
    return manifest


def run_pass(plan: Plan, layout: Layout, passage: Pass, results: list[dict[int, dict]], executor, progress) -> dict[int, dict]:
    layout.pass_dir(passage.index).mkdir(parents=True, exist_ok=True)
    done: dict[int, dict] = {}
    todo: list[TaskSpec] = []
    for task in range(len(plan.tasks)):
        marker = layout.marker(passage.index, task)
        if marker.is_file():
            done[task] = json.loads(marker.read_text())
            continue
        if passage.index == 0:
            inputs = plan.tasks[task]
        else:
            inputs = [layout.out / shard["path"] for shard in results[-1][task]["shards"]]
        todo.append(TaskSpec(passage.index, task, inputs))
    label = f"pass {passage.index + 1}/{len(plan.pipeline.passes)}: {passage.describe()}"
    bar = progress.start(label, total=len(plan.tasks), completed=len(done))
    for result in executor.map(run_task, todo):
        done[result["task"]] = result
        progress.advance(bar, rows=result["rows_in"])
    return done


def resolve(plan: Plan, layout: Layout, stage: GlobalStage, done: dict[int, dict], n_workers: int) -> dict:
    marker = layout.stage_dir(stage.name) / "resolve.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    scan_files = [Path(done[t]["scan_file"]) for t in sorted(done) if done[t]["scan_file"]]
    state = WorkerState(worker_payload(plan, layout, n_workers))
    try:
        stage.setup()
        summary = stage.resolve(state.global_context(stage, scan_files)) or {}
    except ThresherError:
        raise
    except Exception as error:  # a bug or a stage failure: one line, the traceback in the error log
        raise TaskFailed(f"stage {stage.name} failed while resolving: {type(error).__name__}: {error}",
                         traceback.format_exc()) from None
    write_json_atomic(marker, summary)
    return summary


def finalize(plan: Plan, layout: Layout, results: list[dict[int, dict]], started: float,
             pass_seconds: list[float], n_workers: int) -> dict:
    pipeline, out = plan.pipeline, layout.out
    final = results[-1]
    shards = [shard for task in sorted(final) for shard in final[task]["shards"]]
    if not shards:
        shards = ShardWriter(out / "data", "part-00000", pipeline.output_schema, 1, out).close(keep_empty=True)
    everything = [r for by_task in results for _, r in sorted(by_task.items())]
    stage_stats = {stage.name: StageStats() for stage in pipeline.stages}
    for result in everything:
        for name, stats in result["stages"].items():
            stage_stats[name].merge(stats)
    files = [f for task in sorted(results[0]) for f in results[0][task]["files"]]
    rows_in = sum(f["rows"] for f in files)
    quarantined = sum(f["quarantined"] for f in files)
    rows_out = sum(s["rows"] for s in shards)
    dropped = sum(sum(s.dropped.values()) for s in stage_stats.values())
    generated = sum(s.generated for s in stage_stats.values())
    consumed = sum(s.consumed for s in stage_stats.values())
    check_accounting(pipeline, stage_stats, rows_in - quarantined, rows_out)
    details = {}
    for stage in pipeline.stages:
        marker = layout.stage_dir(stage.name) / "resolve.json"
        described = stage.details()
        if marker.is_file():
            details[stage.name] = json.loads(marker.read_text())
        elif described is not None:
            details[stage.name] = described
    seconds = time.time() - started
    input_bytes = sum(f["bytes"] for f in files)
    manifest = {
        "kind": pipeline.kind,
        "schema": schema_to_json(pipeline.output_schema),
        "rows": rows_out,
        "rows_in": rows_in,
        "dropped": dropped,
        "quarantined": quarantined,
        "generated": generated,
        "consumed": consumed,
        "shards": shards,
        "rejects": [dict(shard, stage=name) for r in everything for name, ss in r["rejects"].items() for shard in ss],
        "quarantine": [shard for task in sorted(results[0]) for shard in results[0][task]["quarantine"]],
        "stages": [
            {
                "name": stage.name,
                "target": f"{type(stage).__module__}.{type(stage).__qualname__}",
                "type": "global" if isinstance(stage, GlobalStage) else "row",
                "options": stage.options(),
                "in": stage_stats[stage.name].rows_in,
                "out": stage_stats[stage.name].rows_out,
                "dropped": dict(sorted(stage_stats[stage.name].dropped.items())),
                "generated": stage_stats[stage.name].generated,
                "consumed": stage_stats[stage.name].consumed,
                "bytes_in": stage_stats[stage.name].bytes_in,
                "bytes_out": stage_stats[stage.name].bytes_out,
                "seconds": round(stage_stats[stage.name].seconds, 3),
                **({"counts": dict(sorted(stage_stats[stage.name].counts.items()))}
                   if stage_stats[stage.name].counts else {}),
                **({"details": details[stage.name]} if stage.name in details else {}),
            }
            for stage in pipeline.stages
        ],
        "inputs": files,
        "skipped_files": plan.skipped,
        "tasks": len(plan.tasks),
        "workers": n_workers,
        "config": OmegaConf.to_container(plan.cfg, resolve=True),
        "fingerprint": plan.fingerprint,
        "version": code_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timings": {
            "seconds": round(seconds, 3),
            "passes": [{"pass": p.index, "stages": p.describe(), "seconds": round(s, 3)}
                       for p, s in zip(pipeline.passes, pass_seconds)],
            "rows_per_second": round(rows_in / seconds, 1) if seconds else None,
            "input_mb_per_second": round(input_bytes / seconds / 1e6, 3) if seconds else None,
        },
    }
    check_listed_files(out, manifest)
    write_json_atomic(out / MANIFEST, manifest)
    if plan.cfg.output.report:
        from curate.report import write_report

        try:
            write_report(out, manifest)
        except Exception as error:  # the data is complete; a report failure must not lose it
            print(f"warning: report.html not written: {type(error).__name__}: {error}")
    if not plan.cfg.output.keep_work:
        shutil.rmtree(layout.work, ignore_errors=True)
    return manifest


def check_listed_files(out: Path, manifest: dict) -> None:
    """Every shard the manifest lists exists with its recorded size (a stat each: cheap insurance)."""
    for shard in manifest["shards"] + manifest["rejects"] + manifest["quarantine"]:
        path = out / shard["path"]
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            raise RuntimeError(f"{path}: listed in the manifest but missing or of another size")


def check_accounting(pipeline: Pipeline, stats: dict[str, StageStats], rows_read: int, rows_out: int) -> None:
    """Rows in (+ generated) = rows out + dropped (+ consumed), and quarantined rows were already
    subtracted from the rows read: for the run and every stage."""
    expected_in = rows_read
    for stage in pipeline.stages:
        s = stats[stage.name]
        balanced = s.rows_in + s.generated == s.rows_out + sum(s.dropped.values()) + s.consumed
        if s.rows_in != expected_in or (stage.one_to_one and not balanced):
            raise RuntimeError(
                f"accounting broken at stage '{stage.name}': in {s.rows_in} (expected {expected_in}), "
                f"generated {s.generated}, out {s.rows_out}, dropped {sum(s.dropped.values())}, consumed {s.consumed}"
            )
        expected_in = s.rows_out
    if expected_in != rows_out:
        raise RuntimeError(f"accounting broken: {expected_in} rows left the last stage but {rows_out} were written")
