"""`thresher report --compare`: datasets or training runs (e.g. the points of an ablation) side by side.

Each folder is a dataset (manifest.json) or a training run (run.json, from `thresher train`).
A training run brings its held-out and final loss and its loss curve, its evaluation
(`eval.json`, from `thresher eval`: bits per byte per domain, answer loss, memorisation, win
rate), and the dataset it trained on through its lineage. For each dataset: rows, text bytes,
composition by source (from the shards' `source` column, or the realised mix of a `mix` stage for
token datasets), the funnel per stage, the options that differ between the runs (what the
ablation changed) and the input files that differ (read by some runs only, or with other content).

Runs that differ only in their seed are one *arm* (`arms_of`): each evaluation figure is given
per arm as the mean, standard deviation and range over its seeds, against the first arm (the
baseline) as the difference of means and whether the seed ranges overlap, with a plot per figure.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    evaluation: dict | None = None  # eval.json of a training run (`thresher eval`)

    @property
    def scores(self) -> dict[str, float]:
        return eval_scores(self.evaluation)

    @property
    def options(self) -> dict[str, object]:
        flat = {}
        if self.run:
            flat.update({f"train.{k}": v for k, v in flatten(self.run.get("config", {})).items()})
        if self.manifest:
            flat.update({f"data.{k}" if self.run else k: v for k, v in flatten(self.manifest.config).items()})
        return flat


def load_entry(folder: Path, label: str | None = None) -> Entry:
    label = label or folder.name
    if (folder / "run.json").is_file():
        run = json.loads((folder / "run.json").read_text())
        metrics = folder / "metrics.jsonl"
        curve = (
            [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
        )
        data = Path((run.get("data") or {}).get("path", ""))
        manifest = Manifest.read(data) if (data / MANIFEST).is_file() else None
        evaluation = json.loads((folder / EVAL_FILE).read_text()) if (folder / EVAL_FILE).is_file() else None
        return Entry(label, folder, manifest, data if manifest else None, run, curve, evaluation)
    if (folder / MANIFEST).is_file():
        return Entry(label, folder, Manifest.read(folder), folder)
    raise ThresherError(f"'{folder}' is neither a Thresher dataset (manifest.json) nor a training run (run.json)")


EVAL_FILE = "eval.json"
HIGHER_IS_BETTER = ("win rate",)


def eval_scores(record: dict | None) -> dict[str, float]:
    """The headline figures of an eval.json by name; lower is better but for `HIGHER_IS_BETTER`."""
    if not record:
        return {}
    scores = {f"{name} bits/byte": r["bits_per_byte"] for name, r in (record.get("sets") or {}).items()}
    answers, memo, win = record.get("answers"), record.get("memorization"), record.get("win_rate")
    if answers:
        scores.update({"answer loss": answers["loss"], "answer bits/byte": answers["bits_per_byte"]})
    for name, result in (memo or {}).items():
        scores[f"{name} memorized share"] = result["exact_share"]
        scores[f"{name} memorized token accuracy"] = result["token_accuracy"]
    if win:
        scores["win rate"] = win["win_rate"]
    return {name: float(value) for name, value in scores.items() if value is not None}


# What does not make two training runs different arms: the seed, and how the run was carried out.
NOT_THE_ARM = ("seed", "output", "resume", "log", "checkpoint", "trainer.cpu_threads")
SEED_IN_LABEL = re.compile(r"[-_/ ]?seed[-_=]?\d+", re.IGNORECASE)


@dataclass
class Arm:
    """Training runs that differ only in their seed."""

    label: str
    entries: list[Entry]

    def seeds(self) -> list[Any]:
        return [(e.run or {}).get("config", {}).get("seed") for e in self.entries]

    def statistics(self, metric: str) -> dict[str, Any] | None:
        """Per-seed values, mean, sample standard deviation and range of `metric` (None if no run has it)."""
        values = [e.scores[metric] for e in self.entries if metric in e.scores]
        if not values:
            return None
        return {
            "values": values,
            "seeds": [s for e, s in zip(self.entries, self.seeds()) if metric in e.scores],
            "n": len(values),
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
        }


def arm_key(entry: Entry) -> str:
    config = dict(flatten((entry.run or {}).get("config") or {}))
    kept = {k: v for k, v in config.items() if not any(k == n or k.startswith(n + ".") for n in NOT_THE_ARM)}
    return json.dumps(kept, sort_keys=True, default=str)


def arms_of(entries: list[Entry]) -> list[Arm]:
    """The training runs grouped into arms (same data and options but the seed), in order of
    first appearance; each arm is named after its runs' labels without the seed."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        if entry.run:
            groups.setdefault(arm_key(entry), []).append(entry)
    arms, seen = [], set()
    for number, members in enumerate(groups.values()):
        label = SEED_IN_LABEL.sub("", members[0].label).strip("-_/ ") or f"arm {number + 1}"
        if label in seen:
            label = f"{label} ({number + 1})"
        seen.add(label)
        arms.append(Arm(label, members))
    return arms


def arm_summary(arms: list[Arm]) -> dict[str, Any]:
    """Per arm and figure: the statistics over seeds, and against the first arm (the baseline) the
    difference of means and whether the seed ranges overlap ("better": on the right side and apart)."""
    metrics = list(dict.fromkeys(m for arm in arms for e in arm.entries for m in e.scores))
    table: dict[str, Any] = {"baseline": arms[0].label if arms else None, "metrics": metrics, "arms": {}}
    base = {m: arms[0].statistics(m) for m in metrics} if arms else {}
    for arm in arms:
        row = {}
        for metric in metrics:
            stats = arm.statistics(metric)
            if stats is None:
                continue
            reference = base.get(metric)
            if reference is not None and arm is not arms[0]:
                higher = metric in HIGHER_IS_BETTER
                apart = stats["min"] > reference["max"] or stats["max"] < reference["min"]
                improved = stats["mean"] > reference["mean"] if higher else stats["mean"] < reference["mean"]
                stats = {
                    **stats,
                    "difference": stats["mean"] - reference["mean"],
                    "ranges_overlap": not apart,
                    "better": apart and improved,
                }
            row[metric] = stats
        table["arms"][arm.label] = row
    return table


def arm_figure(metric: str, summary: dict[str, Any]):
    """One figure: each arm's per-seed values (dots), mean (bar) and range (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [(label, row[metric]) for label, row in summary["arms"].items() if metric in row]
    figure, axis = plt.subplots(figsize=(1.3 * len(arms) + 2.2, 3.0))
    for x, (_, stats) in enumerate(arms):
        axis.plot([x, x], [stats["min"], stats["max"]], color="#888", linewidth=1)
        axis.plot([x - 0.25, x + 0.25], [stats["mean"], stats["mean"]], color="#c44e52", linewidth=2)
        axis.scatter([x] * stats["n"], stats["values"], color="#4c72b0", s=18, zorder=3)
    axis.set_xticks(range(len(arms)), [label for label, _ in arms])
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    axis.set_ylabel(metric)
    axis.set_title(f"{metric} ({better} is better): seeds, mean, range", fontsize=9)
    axis.margins(x=0.3)
    return figure


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
    read = [
        {f.path: f.sha256 for f in e.manifest.input_files(e.dataset_path or e.path) if not f.skipped}
        if e.manifest
        else {}
        for e in entries
    ]
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


def write_comparison(folders: list[str | Path], out: str | Path | None = None, labels: list[str] | None = None) -> Path:
    """Write the comparison page of `folders` (named by `labels`, default their folder names)."""
    names: list[str | None] = list(labels) if labels else [None] * len(folders)
    entries = [load_entry(Path(f), label) for f, label in zip(folders, names)]
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
                "scores": entry.scores,
            }
        )
    arms = arms_of(entries)
    summary = arm_summary(arms)
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
            metrics=summary["metrics"],
            arms=summary,
            seeded=any(len(arm.entries) > 1 for arm in arms),
            arm_plots={m: png(arm_figure(m, summary)) for m in summary["metrics"]} if len(arms) > 1 else {},
        )
    )
    path = Path(out) if out else Path(folders[0]).parent / "comparison.html"
    path.write_text(html)
    return path
