"""The HTML report of a run: what a data engineer asks of it, one folded section each.

- the funnel per stage, each stage in one colour kept through every plot and table;
- drops per source (source x stage), skipped input files, quarantine reasons with an example;
- per stage: a histogram of each score column it computes, kept and dropped rows stacked, the
  stage's threshold drawn on it (log scale where one class dominates), its statistics, and
  dropped examples per rule, each led by the rule against its threshold (`gopher_dup_line_frac
  = 0.42 > 0.3`);
- kept samples drawn at random (seeded by the run's seed) from each source;
- chat rows as turns, preference rows as prompt / chosen / rejected side by side.

Every piece of document text is escaped (Jinja2 autoescape); plots are inline SVG
(`report/svg.py`), so the report is one self-contained file. It reads score columns, sources and
reasons without the text, and the text of the sampled rows only.
"""

from __future__ import annotations

import importlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import fs
from curate.arrow_io import iter_batches
from curate.manifest import FileRecord, InputRecord, Manifest, StageRecord, verify_shards
from curate.quarantine import QuarantineReason, quarantine_reasons
from curate.report.render import environment
from curate.report.svg import KEPT_COLOR, Series, bars, histogram, stage_color
from curate.schema import KINDS, REJECT_COLUMNS

SAMPLE_CHARS = 1500
MAX_HIST_ROWS = 200_000
PER_SOURCE = 3  # kept samples per source
PER_REASON = 3  # dropped samples per (stage, reason)
MAX_SOURCES = 30
MAX_INPUTS_LISTED = 200  # input files listed in the report (all are in inputs.arrow)
CORE_COLUMNS = {*KINDS["documents"].names, *KINDS["chat"].names, *KINDS["preference"].names} | {
    name for name, _ in REJECT_COLUMNS
}


@dataclass
class StageView:
    """A stage as the report shows it: its record, colour, score columns and threshold rules."""

    record: StageRecord
    color: str
    columns: list[str] = field(default_factory=list)
    rules: list[Any] = field(default_factory=list)  # curate.stages.rules.Rule, thresholds set

    @property
    def name(self) -> str:
        return self.record.name

    def rule_for(self, reason: str):
        return next((r for r in self.rules if r.reason == reason), None)


def stage_views(manifest: Manifest) -> list[StageView]:
    """Each stage with its colour, and (when its class can be imported) the score columns it
    provides and its threshold rules, rebuilt from the options recorded in the manifest."""
    views = []
    for index, record in enumerate(manifest.stages):
        view = StageView(record, stage_color(index))
        module, _, name = record.target.rpartition(".")
        try:  # a user's stage package may not be installed where the report is rebuilt
            stage = getattr(importlib.import_module(module), name)(**record.options)
        except (ImportError, AttributeError, TypeError, ValueError):
            views.append(view)
            continue
        view.columns = list(stage.provided_columns())
        rules = getattr(stage, "rules", None)
        view.rules = [r for r in rules() if r.threshold is not None] if callable(rules) else []
        views.append(view)
    return views


def batches(folder: str, manifest: Manifest, shards: list[FileRecord], limit: int | None = None):
    """(record, batch) of the listed files (data in the dataset's format, rejects), up to about `limit` rows."""
    rows = 0
    for shard, batch in manifest.iter_batches(folder, shards):
        yield shard, batch
        rows += batch.num_rows
        if limit is not None and rows >= limit:
            return


def numeric(field_type: pa.DataType) -> bool:
    return pa.types.is_integer(field_type) or pa.types.is_floating(field_type)


def score_values(folder: str, manifest: Manifest) -> tuple[dict[str, list], dict[str, dict[str, list]]]:
    """The numeric annotation columns of up to MAX_HIST_ROWS kept and rejected rows: kept[column]
    and dropped[stage][column], as lists of numpy arrays (text is never read)."""
    kept: dict[str, list] = defaultdict(list)
    dropped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for _, batch in batches(folder, manifest, manifest.shards, MAX_HIST_ROWS):
        for f in batch.schema:
            if f.name not in CORE_COLUMNS and numeric(f.type):
                kept[f.name].append(batch.column(f.name).drop_null().to_numpy())
    for shard, batch in batches(folder, manifest, manifest.rejects, MAX_HIST_ROWS):
        stage = shard.stage or ""
        for f in batch.schema:
            if f.name not in CORE_COLUMNS and numeric(f.type):
                dropped[stage][f.name].append(batch.column(f.name).drop_null().to_numpy())
    return kept, dropped


def joined(parts: list) -> np.ndarray:
    values = np.concatenate(parts) if parts else np.zeros(0)
    return values[np.isfinite(values)] if values.dtype.kind == "f" else values


def histograms(folder: str, manifest: Manifest, views: list[StageView]) -> dict[str, list[dict]]:
    """Per stage (and "" for columns no stage of this run computed): one plot per score column,
    kept rows then each stage's drops stacked, the stage's thresholds on that column drawn."""
    kept, dropped = score_values(folder, manifest)
    columns = list(dict.fromkeys([*kept, *(c for stage in dropped.values() for c in stage)]))
    owner = {c: v for v in views for c in v.columns}
    plots: dict[str, list[dict]] = defaultdict(list)
    for column in columns:
        series = [Series("kept", KEPT_COLOR, joined(kept.get(column, [])))]
        series += [Series(f"✕ {v.name}", v.color, joined(dropped[v.name].get(column, []))) for v in views]
        series = [s for s in series if len(s.values)]
        if not series or len(np.unique(np.concatenate([s.values for s in series]))) < 2:
            continue  # a constant column has no distribution to show
        view = owner.get(column)
        rules = [r for r in (view.rules if view else []) if r.column == column]
        thresholds = [(float(r.threshold), f"{r.reason} {r.op} {r.threshold:g}") for r in rules]
        svg, log = histogram(column, series, thresholds)
        stats = {s.label: {"n": len(s.values), "p50": float(np.median(s.values))} for s in series}
        plots[view.name if view else ""].append({"name": column, "svg": svg, "log": log, "stats": stats})
    return plots


def drop_bars(views: list[StageView]):
    return bars(
        [(f"{v.name}: {reason}", count, v.color) for v in views for reason, count in v.record.dropped.items()],
        "rows dropped",
    )


def drops_by_source(folder: str, manifest: Manifest, views: list[StageView]) -> dict | None:
    """Rows kept and dropped per source and stage (source x stage), from the `source` columns."""
    kept: Counter = Counter()
    dropped: dict[str, Counter] = defaultdict(Counter)
    for _, batch in batches(folder, manifest, manifest.shards):
        if "source" in batch.schema.names:
            kept.update(batch.column("source").to_pylist())
    for shard, batch in batches(folder, manifest, manifest.rejects):
        if "source" in batch.schema.names:
            dropped[shard.stage or ""].update(batch.column("source").to_pylist())
    sources = sorted(set(kept) | {s for c in dropped.values() for s in c}, key=lambda s: (s is None, str(s)))
    if not sources:
        return None
    stages = [v for v in views if dropped.get(v.name)]
    rows = []
    for source in sources[:MAX_SOURCES]:
        drops = {v.name: dropped[v.name][source] for v in stages}
        total = kept[source] + sum(drops.values())
        rows.append({"source": source, "total": total, "kept": kept[source], "drops": drops})
    return {"stages": stages, "rows": rows, "more": max(0, len(sources) - MAX_SOURCES)}


def quarantine_groups(folder: str, manifest: Manifest, top: int = 20) -> list[QuarantineReason]:
    """Quarantined input grouped by field and error (particulars folded), with a first example each."""
    return quarantine_reasons((fs.join(folder, record.path) for record in manifest.quarantine), top)


def shorten(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + f" … [{len(text):,} chars]"


def shown(row: dict) -> dict:
    """A row for display: long text cut, conversations' turns cut, annotation values apart."""

    def turns(messages):
        return [{"role": m["role"], "content": shorten(m["content"])} for m in messages or []]

    out: dict[str, Any] = {"id": row.get("id"), "source": row.get("source")}
    if "messages" in row:
        out["messages"] = turns(row["messages"])
    elif "chosen" in row:
        out.update(prompt=turns(row["prompt"]), chosen=turns(row["chosen"]), rejected=turns(row["rejected"]))
    elif "text" in row:
        out["text"] = shorten(row["text"] or "")
    out["scores"] = {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in row.items()
        if k not in CORE_COLUMNS and isinstance(v, (int, float, bool))
    }
    out["other"] = {
        k: shorten(v)
        for k, v in row.items()
        if k not in CORE_COLUMNS and v is not None and not isinstance(v, (int, float, bool))
    }
    if row.get("meta"):
        out["meta"] = shorten(row["meta"])
    return out


def fetch(
    folder: str, manifest: Manifest, shards: list[FileRecord], wanted: dict[tuple[int, int], Any]
) -> dict[Any, dict]:
    """The rows at (shard index, row index in shard), as dicts keyed by `wanted`'s values."""
    found = {}
    by_shard: dict[int, list[int]] = defaultdict(list)
    for shard_index, row_index in wanted:
        by_shard[shard_index].append(row_index)
    for index, shard in enumerate(shards):
        if index not in by_shard:
            continue
        offset = 0
        targets = sorted(by_shard[index])
        for _, batch in manifest.iter_batches(folder, [shard]):
            inside = [t for t in targets if offset <= t < offset + batch.num_rows]
            if inside:
                taken = batch.take(pa.array([t - offset for t in inside])).to_pylist()
                for t, row in zip(inside, taken):
                    found[wanted[(index, t)]] = row
            offset += batch.num_rows
    return found


def sample_places(
    folder: str, manifest: Manifest, shards: list[FileRecord], column: str, k: int, rng: np.random.Generator
) -> tuple[dict[Any, list[tuple[int, int]]], Counter]:
    """A uniform random sample of up to `k` rows for each value of `column` (bottom-k of a random
    key per row: memory stays k rows per value, whatever the size), as (shard index, row index)
    per value, and the rows each value has."""
    best: dict[Any, list[tuple[float, int, int]]] = {}
    counts: Counter = Counter()
    for index, shard in enumerate(shards):
        offset = 0
        for _, batch in manifest.iter_batches(folder, [shard]):
            keys = rng.random(batch.num_rows)
            if column in batch.schema.names:
                encoded = batch.column(column).dictionary_encode()
                codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
                values = encoded.dictionary.to_pylist()
            else:
                codes, values = np.full(batch.num_rows, -1), []
            for code, value in [(-1, None), *enumerate(values)]:
                rows = np.flatnonzero(codes == code)
                if not len(rows):
                    continue
                counts[value] += len(rows)
                if len(rows) > k:
                    rows = rows[np.argpartition(keys[rows], k)[:k]]
                merged = best.get(value, []) + [(float(keys[r]), index, offset + int(r)) for r in rows]
                best[value] = sorted(merged)[:k]
            offset += batch.num_rows
    return {value: sorted((i, r) for _, i, r in picks) for value, picks in best.items()}, counts


def kept_samples(folder: str, manifest: Manifest, seed: int) -> list[dict]:
    """Up to PER_SOURCE kept rows per source, drawn at random (seeded): [{source, count, rows}]."""
    places, counts = sample_places(folder, manifest, manifest.shards, "source", PER_SOURCE, np.random.default_rng(seed))
    sources = sorted(places, key=lambda s: (s is None, str(s)))[:MAX_SOURCES]
    found = fetch(folder, manifest, manifest.shards, {place: (s, place) for s in sources for place in places[s]})
    return [
        {"source": s, "count": counts[s], "rows": [shown(found[(s, place)]) for place in places[s]]} for s in sources
    ]


def rule_line(view: StageView, reason: str, row: dict) -> str | None:
    """`column = value op threshold` for the rule that dropped `row`, if the stage has one."""
    rule = view.rule_for(reason)
    if rule is None or rule.column not in row:
        return None
    value = row[rule.column]
    value = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{rule.column} = {value} {rule.op} {rule.threshold:g}"


def rejected_samples(folder: str, manifest: Manifest, views: list[StageView], seed: int) -> dict[str, list[dict]]:
    """Per stage, per drop reason: up to PER_REASON dropped rows drawn at random (seeded), each
    with the rule that dropped it against its threshold."""
    out: dict[str, list[dict]] = {}
    rng = np.random.default_rng(seed + 1)
    for view in views:
        shards = [s for s in manifest.rejects if s.stage == view.name]
        places, _ = sample_places(folder, manifest, shards, "drop_reason", PER_REASON, rng)
        found = fetch(folder, manifest, shards, {p: (reason, p) for reason, ps in places.items() for p in ps})
        groups = []
        for reason, count in view.record.dropped.items():
            rule = view.rule_for(reason)
            rows = [found[(reason, p)] for p in places.get(reason, [])]
            groups.append(
                {
                    "reason": reason,
                    "count": count,
                    "rule": f"{rule.column} {rule.op} {rule.threshold:g}" if rule else None,
                    "rows": [{**shown(row), "because": rule_line(view, reason, row)} for row in rows],
                }
            )
        out[view.name] = groups
    return out


def duplicate_clusters(folder: str, manifest: Manifest) -> dict[str, dict]:
    """Per dedup stage: its summary, cluster sizes, removals per source and sample clusters.

    Sample clusters come from `stages/<stage>/clusters.arrow` (members, written by the stage's
    resolve) and `stages/<stage>/samples/*.arrow` (their text, written as the stage applied).
    """
    sections = {}
    for stage in manifest.stages:
        details = stage.details
        if "cluster_sizes" not in details:
            continue
        keep = fs.join(folder, "stages", stage.name)
        texts: dict[int, str] = {}
        for part in fs.glob(fs.join(keep, "samples", "*.arrow")):
            for batch in iter_batches(part):
                texts.update(zip(batch.column("position").to_pylist(), batch.column("text").to_pylist()))
        clusters: dict[int, dict] = {}
        if fs.is_file(fs.join(keep, "clusters.arrow")):
            for batch in iter_batches(fs.join(keep, "clusters.arrow")):
                for row in batch.to_pylist():
                    cluster = clusters.setdefault(
                        row["sample"], {"id": row["cluster"], "size": row["size"], "members": []}
                    )
                    cluster["members"].append({**row, "text": shorten(texts.get(row["position"], ""))})
        by_source = details.get("documents_by_source", {})
        removed = details.get("removed_by_source", {})
        sizes = details["cluster_sizes"]
        sections[stage.name] = {
            "details": details,
            "sources": [
                {
                    "source": name,
                    "documents": count,
                    "removed": removed.get(name, 0),
                    "share": removed.get(name, 0) / count if count else 0.0,
                }
                for name, count in by_source.items()
            ],
            "sizes": bars([(f"{size} documents", int(n), KEPT_COLOR) for size, n in sizes.items()], "clusters")
            if sizes
            else None,
            "clusters": [clusters[k] for k in sorted(clusters)],
        }
    return sections


def skipped_inputs(folder: str, manifest: Manifest) -> list[InputRecord]:
    """Up to MAX_INPUTS_LISTED of the files found but not read (all are in inputs.arrow)."""
    if not manifest.inputs.skipped:
        return []
    return list(islice((f for f in manifest.input_files(folder) if f.skipped), MAX_INPUTS_LISTED))


def render_report(location: str | Path, manifest: Manifest) -> str:
    """The HTML of a dataset's report (what `write_report` writes); the folder local or remote."""
    folder = str(location)
    views = stage_views(manifest)
    seed = int(manifest.config.get("seed", 0) or 0)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=fs.basename(folder) if fs.is_remote(folder) else Path(folder).resolve().name,
            m=manifest,
            stages=views,
            drops=drop_bars(views),
            by_source=drops_by_source(folder, manifest, views),
            quarantine=quarantine_groups(folder, manifest),
            histograms=histograms(folder, manifest, views),
            kept=kept_samples(folder, manifest, seed),
            rejected=rejected_samples(folder, manifest, views, seed),
            duplicates=duplicate_clusters(folder, manifest),
            inputs=list(manifest.input_files(folder, limit=MAX_INPUTS_LISTED)),
            skipped=skipped_inputs(folder, manifest),
        )
    )


def write_report(folder: str | Path, manifest: Manifest | None = None) -> str:
    """Write `<folder>/report.html` (atomically: a reader never sees half of it)."""
    manifest = manifest or Manifest.read(folder)
    html = render_report(folder, manifest)
    path = fs.join(folder, "report.html")
    fs.write_bytes(path, html.encode())
    return path


def build_report(folder: str, compare: list[str] | None = None, out: str | None = None) -> str | Path:
    """`thresher report <dir>`: rebuild a dataset's report (after checking every file it lists against
    its checksum); with `compare`, a side-by-side comparison."""
    if compare:
        from curate.report.compare import write_comparison

        return write_comparison([folder, *compare], out)
    manifest = Manifest.read(folder)
    verify_shards(folder, manifest, everything=True)  # a report of modified data would vouch for it
    return write_report(folder, manifest)
