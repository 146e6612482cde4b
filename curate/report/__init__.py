"""The HTML report of a run: funnel per stage, drops by reason, score histograms, samples.

Every piece of document text is escaped (Jinja2 autoescape); plots are matplotlib PNGs inlined
as data URIs, so the report is one self-contained file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.arrow_io import iter_batches
from curate.manifest import FileRecord, Manifest, verify_shards
from curate.report.render import environment, png
from curate.schema import KINDS, REJECT_COLUMNS

SAMPLE_CHARS = 1500
MAX_HIST_ROWS = 200_000


MAX_INPUTS_LISTED = 200  # input files listed in the report (all are in inputs.arrow)


def read_columns(folder: Path, shards: list[FileRecord], limit: int = MAX_HIST_ROWS) -> pa.Table | None:
    """Up to `limit` rows of `shards`. Shards may differ in schema (each stage's rejects carry the
    columns known at that stage): missing columns become nulls."""
    tables, rows = [], 0
    for shard in shards:
        for batch in iter_batches(folder / shard.path):
            tables.append(pa.Table.from_batches([batch]))
            rows += batch.num_rows
            if rows >= limit:
                break
        if rows >= limit:
            break
    return pa.concat_tables(tables, promote_options="default") if tables else None


def numeric_columns(table: pa.Table) -> list[str]:
    core = set(KINDS["documents"].names) | {name for name, _ in REJECT_COLUMNS}
    return [
        f.name
        for f in table.schema
        if f.name not in core and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]


def histograms(folder: Path, manifest: Manifest) -> list[dict]:
    """One histogram per score column: kept rows and, stacked, the rows each stage dropped
    (the stage that computes a score shows where its threshold cuts; later stages, what else
    they removed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = read_columns(folder, manifest.shards)
    rejected = read_columns(folder, manifest.rejects)
    names = []
    for table in (kept, rejected):
        if table is not None:
            names += [n for n in numeric_columns(table) if n not in names]
    groups = [("kept", kept)]
    if rejected is not None:
        stages = rejected.column("drop_stage")
        for stage in [s.name for s in manifest.stages if s.dropped]:
            groups.append((f"dropped by {stage}", rejected.filter(pc.equal(stages, stage))))
    colors = ["#4c72b0", "#dd8452", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]
    plots = []
    for name in names:
        series = {}
        for label, table in groups:
            if table is not None and name in table.column_names:
                values = table.column(name).drop_null().to_numpy()
                values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
                if len(values):
                    series[label] = values
        if not series:
            continue
        everything = np.concatenate(list(series.values()))
        if len(np.unique(everything)) < 2:  # a constant column has no distribution to show
            continue
        figure, axis = plt.subplots(figsize=(5.5, 2.6))
        bins = np.histogram_bin_edges(everything, bins=40)
        axis.hist(
            list(series.values()),
            bins=bins.tolist(),
            stacked=True,
            label=list(series),
            color=[colors[i % len(colors)] for i in range(len(series))],
        )
        axis.set_title(name)
        axis.legend(fontsize=8)
        stats = {k: {"n": len(v), "mean": float(np.mean(v)), "p50": float(np.median(v))} for k, v in series.items()}
        plots.append({"name": name, "png": png(figure), "stats": stats})
    return plots


def drop_plot(manifest: Manifest) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"{s.name}: {reason}", count) for s in manifest.stages for reason, count in s.dropped.items()]
    if not bars:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 0.35 * len(bars) + 0.8))
    axis.barh([b[0] for b in bars][::-1], [b[1] for b in bars][::-1], color="#dd8452")
    axis.set_xlabel("documents dropped")
    return png(figure)


def shorten(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + f" … [{len(text):,} chars]"


def sample_rows(folder: Path, shards: list[FileRecord], n: int, where=None) -> list[dict]:
    rows: list[dict] = []
    for shard in shards:
        for batch in iter_batches(folder / shard.path):
            for row in batch.to_pylist():
                if where is None or where(row):
                    rows.append(
                        {
                            k: v if isinstance(v, (int, float, bool)) else shorten(v)
                            for k, v in row.items()
                            if v is not None
                        }
                    )
                    if len(rows) >= n:
                        return rows
    return rows


def scores_of(row: dict) -> dict:
    """A row's annotation values (numbers and flags outside the core columns), for display."""
    core = set(KINDS["documents"].names) | {name for name, _ in REJECT_COLUMNS}
    return {
        k: (round(v, 4) if isinstance(v, float) else v)
        for k, v in row.items()
        if k not in core and isinstance(v, (int, float, bool))
    }


def rejected_samples(folder: Path, manifest: Manifest, per_reason: int = 3) -> list[dict]:
    """A few dropped rows per (stage, reason), each with its text and its score values."""
    groups = []
    for stage in manifest.stages:
        shards = [s for s in manifest.rejects if s.stage == stage.name]
        for reason in stage.dropped:
            rows = sample_rows(folder, shards, per_reason, lambda row, r=reason: row.get("drop_reason") == r)
            for row in rows:
                row["_scores"] = scores_of(row)
            groups.append({"stage": stage.name, "reason": reason, "rows": rows})
    return groups


def size_plot(histogram: dict[str, int]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 2.4))
    axis.bar(list(histogram), list(histogram.values()), color="#4c72b0")
    axis.set_xlabel("documents per cluster")
    axis.set_ylabel("clusters")
    axis.set_yscale("log")
    return png(figure)


def duplicate_clusters(folder: Path, manifest: Manifest) -> list[dict]:
    """Per dedup stage: its summary, cluster sizes, removals per source and sample clusters.

    Sample clusters come from `stages/<stage>/clusters.arrow` (members, written by the stage's
    resolve) and `stages/<stage>/samples/*.arrow` (their text, written as the stage applied).
    """
    sections = []
    for stage in manifest.stages:
        details = stage.details
        if "cluster_sizes" not in details:
            continue
        keep = folder / "stages" / stage.name
        texts: dict[int, str] = {}
        for part in sorted((keep / "samples").glob("*.arrow")):
            for batch in iter_batches(part):
                texts.update(zip(batch.column("position").to_pylist(), batch.column("text").to_pylist()))
        clusters: dict[int, dict] = {}
        if (keep / "clusters.arrow").is_file():
            for batch in iter_batches(keep / "clusters.arrow"):
                for row in batch.to_pylist():
                    cluster = clusters.setdefault(
                        row["sample"], {"id": row["cluster"], "size": row["size"], "members": []}
                    )
                    cluster["members"].append({**row, "text": shorten(texts.get(row["position"], ""))})
        by_source = details.get("documents_by_source", {})
        removed = details.get("removed_by_source", {})
        sources = [
            {
                "source": name,
                "documents": count,
                "removed": removed.get(name, 0),
                "share": removed.get(name, 0) / count if count else 0.0,
            }
            for name, count in by_source.items()
        ]
        sections.append(
            {
                "name": stage.name,
                "details": details,
                "sources": sources,
                "sizes": size_plot(details["cluster_sizes"]) if details["cluster_sizes"] else None,
                "clusters": [clusters[k] for k in sorted(clusters)],
            }
        )
    return sections


def render_report(folder: str | Path, manifest: Manifest) -> str:
    """The HTML of a dataset's report (what `write_report` writes)."""
    folder = Path(folder)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=str(folder.resolve().name),
            m=manifest,
            drops=drop_plot(manifest),
            histograms=histograms(folder, manifest),
            kept=sample_rows(folder, manifest.shards, 5),
            rejected=rejected_samples(folder, manifest),
            quarantined=sample_rows(folder, manifest.quarantine, 10),
            duplicates=duplicate_clusters(folder, manifest),
            inputs=list(manifest.input_files(folder, limit=MAX_INPUTS_LISTED)),
        )
    )


def write_report(folder: str | Path, manifest: Manifest | None = None) -> Path:
    """Write `<folder>/report.html` (atomically: a reader never sees half of it)."""
    folder = Path(folder)
    manifest = manifest or Manifest.read(folder)
    html = render_report(folder, manifest)
    path = folder / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html)
    os.replace(tmp, path)
    return path


def build_report(folder: str, compare: list[str] | None = None, out: str | None = None) -> Path:
    """`thresher report <dir>`: rebuild a dataset's report (after checking every file it lists against
    its checksum); with `compare`, a side-by-side comparison."""
    if compare:
        from curate.report.compare import write_comparison

        return write_comparison([folder, *compare], out)
    manifest = Manifest.read(folder)
    verify_shards(folder, manifest, everything=True)  # a report of modified data would vouch for it
    return write_report(folder, manifest)
