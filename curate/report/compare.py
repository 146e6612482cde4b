"""`thresher report --compare`: datasets or training runs (e.g. the points of an ablation) side by side.

Each folder is a dataset (manifest.json) or a training run (run.json, from `thresher train`).
A training run brings its held-out and final loss and its loss curve, and the dataset it trained
on through its lineage. For each dataset: rows, text bytes, composition by source (from the
shards' `source` column, or the realised mix of a `mix` stage for token datasets), the funnel per
stage, the options that differ between the runs (what the ablation changed) and the input files
that differ (read by some runs only, or with other content).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from curate.arrow_io import read_frame
from curate.errors import ThresherError
from curate.manifest import MANIFEST, Manifest
from curate.report.render import environment, png


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


@dataclass
class Entry:
    """One folder of the comparison: a dataset, or a training run and the dataset it trained on."""

    label: str
    path: Path
    manifest: Manifest | None = None  # the dataset's (the trained-on dataset's, for a run)
    dataset_path: Path | None = None
    run: dict | None = None  # run.json of a training run
    curve: list[dict] = field(default_factory=list)  # metrics.jsonl of a training run

    @property
    def options(self) -> dict[str, object]:
        flat = {}
        if self.run:
            flat.update({f"train.{k}": v for k, v in flatten(self.run.get("config", {})).items()})
        if self.manifest:
            flat.update({f"data.{k}" if self.run else k: v for k, v in flatten(self.manifest.config).items()})
        return flat


def load_entry(folder: Path) -> Entry:
    if (folder / "run.json").is_file():
        run = json.loads((folder / "run.json").read_text())
        metrics = folder / "metrics.jsonl"
        curve = (
            [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
        )
        data = Path((run.get("data") or {}).get("path", ""))
        manifest = Manifest.read(data) if (data / MANIFEST).is_file() else None
        return Entry(folder.name, folder, manifest, data if manifest else None, run, curve)
    if (folder / MANIFEST).is_file():
        return Entry(folder.name, folder, Manifest.read(folder), folder)
    raise ThresherError(f"'{folder}' is neither a Thresher dataset (manifest.json) nor a training run (run.json)")


def composition(entry: Entry) -> dict[str, dict[str, float]]:
    """Rows and text bytes per source: from the shards' columns, or the realised mix of a `mix` stage."""
    manifest, folder = entry.manifest, entry.dataset_path
    if manifest is None or folder is None:
        return {}
    names = {f["name"] for f in manifest.schema}
    if "source" not in names:
        for stage in manifest.stages:
            sources = stage.details.get("sources")
            if stage.target.endswith(".Mix") and sources:
                return {s: {"rows": v.get("documents", 0), "bytes": v.get("realised", 0)} for s, v in sources.items()}
        return {}
    columns = ["source"] + (["text"] if "text" in names else [])
    shards = [folder / s.path for s in manifest.shards]
    frame = read_frame(shards, pa.schema([(c, pa.string()) for c in columns]), columns)
    sizes = pl.col("text").str.len_bytes().sum() if "text" in columns else pl.lit(0)
    table = frame.group_by("source").agg(pl.len().alias("rows"), sizes.alias("bytes")).sort("source")
    return {
        row["source"]: {"rows": row["rows"], "bytes": int(row["bytes"] or 0)} for row in table.iter_rows(named=True)
    }


def tokens(manifest: Manifest | None) -> int | None:
    """The tokens a `tokens` dataset holds, as its tokenizing stage counted them (None otherwise)."""
    counted = [int(s.stats["tokens"]) for s in (manifest.stages if manifest else []) if "tokens" in s.stats]
    return counted[-1] if counted else None


IGNORED = (
    "output.",
    "executor.",
    "input.paths",
    "train.output.",
    "train.data",
    "data.output.",
    "data.executor.",
    "data.input.paths",
    "train.hydra",
)


def differing_options(entries: list[Entry]) -> list[str]:
    flats = [e.options for e in entries]
    keys = sorted(set().union(*flats))
    return [
        k
        for k in keys
        if not k.startswith(IGNORED) and not k.endswith("._target_") and len({repr(f.get(k)) for f in flats}) > 1
    ]


def differing_inputs(entries: list[Entry]) -> list[dict]:
    """Input files not read alike by every dataset (absent from some, or with other content): the
    path and, per dataset, the sha256 it read (None: not read)."""
    read = [{f.path: f.sha256 for f in e.manifest.inputs} if e.manifest else {} for e in entries]
    paths = sorted(set().union(*read))
    return [{"path": p, "sha256": [r.get(p) for r in read]} for p in paths if len({r.get(p) for r in read}) > 1]


def composition_plot(labels: list[str], compositions: list[dict]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = sorted(set().union(*compositions))
    if not sources:
        return None
    figure, axis = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.2))
    left = [0.0] * len(labels)
    for source in sources:
        shares = []
        for comp in compositions:
            total = sum(v["bytes"] or v["rows"] for v in comp.values()) or 1
            value = comp.get(source, {"bytes": 0, "rows": 0})
            shares.append((value["bytes"] or value["rows"]) / total)
        axis.barh(labels, shares, left=left, label=source)
        left = [a + b for a, b in zip(left, shares)]
    axis.set_xlabel("share (text bytes, or tokens for a mix)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return png(figure)


def loss_plot(entries: list[Entry]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [e for e in entries if e.curve]
    if not runs:
        return None
    figure, axis = plt.subplots(figsize=(7, 3.2))
    for entry in runs:
        train = [(m["step"], m["loss"]) for m in entry.curve if "loss" in m]
        held = [(m["step"], m["eval_loss"]) for m in entry.curve if "eval_loss" in m]
        if train:
            line = axis.plot(*zip(*train), label=f"{entry.label} train")[0]
            if held:
                axis.plot(*zip(*held), "o--", color=line.get_color(), label=f"{entry.label} held-out")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend(fontsize=8)
    return png(figure)


def write_comparison(folders: list[str | Path], out: str | Path | None = None) -> Path:
    entries = [load_entry(Path(f)) for f in folders]
    compositions = [composition(e) for e in entries]
    options = differing_options(entries)
    rows = []
    for entry, comp in zip(entries, compositions):
        flat = entry.options
        rows.append(
            {
                "label": entry.label,
                "path": str(entry.path),
                "m": entry.manifest,
                "run": entry.run,
                "summary": (entry.run or {}).get("summary") or {},
                "composition": comp,
                "bytes": sum(v["bytes"] for v in comp.values()),
                "options": {k: flat.get(k) for k in options},
                "tokens": tokens(entry.manifest),
            }
        )
    html = (
        environment()
        .get_template("compare.html.j2")
        .render(
            runs=rows,
            options=options,
            inputs=differing_inputs(entries),
            sources=sorted(set().union(*compositions)),
            plot=composition_plot([e.label for e in entries], compositions),
            losses=loss_plot(entries),
            trained=any(e.run for e in entries),
        )
    )
    path = Path(out) if out else Path(folders[0]).parent / "comparison.html"
    path.write_text(html)
    return path
