"""`thresher report --compare`: several datasets (e.g. the points of an ablation sweep) side by side.

For each dataset: rows, text bytes, composition by source, the per-stage funnel and the options
that differ between the runs (what the sweep changed); one self-contained HTML file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curate.manifest import read_manifest
from curate.report import environment, png


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def composition(folder: Path, manifest: dict) -> dict[str, dict[str, float]]:
    """Rows and text bytes per source, read from the shards (only the columns needed)."""
    names = {f["name"] for f in manifest["schema"]}
    if "source" not in names:
        return {}
    columns = ["source"] + (["text"] if "text" in names else [])
    frames = [pl.read_ipc_stream(folder / s["path"], columns=columns) for s in manifest["shards"]]
    frame = pl.concat(frames) if frames else pl.DataFrame({"source": []}, schema={"source": pl.Utf8})
    sizes = pl.col("text").str.len_bytes().sum() if "text" in columns else pl.lit(0)
    table = frame.group_by("source").agg(pl.len().alias("rows"), sizes.alias("bytes")).sort("source")
    return {row["source"]: {"rows": row["rows"], "bytes": int(row["bytes"] or 0)} for row in table.iter_rows(named=True)}


def differing_options(manifests: list[dict]) -> list[str]:
    flats = [flatten(m["config"]) for m in manifests]
    keys = sorted(set().union(*flats))
    ignored = ("output.", "executor.", "input.paths")
    return [k for k in keys if not k.startswith(ignored) and not k.endswith("._target_")
            and len({repr(f.get(k)) for f in flats}) > 1]


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
    axis.set_xlabel("share of text bytes")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return png(figure)


def write_comparison(folders: list[str | Path], out: str | Path | None = None) -> Path:
    folders = [Path(f) for f in folders]
    manifests = [read_manifest(f) for f in folders]
    compositions = [composition(f, m) for f, m in zip(folders, manifests)]
    labels = [f.name for f in folders]
    options = differing_options(manifests)
    runs = []
    for folder, manifest, comp in zip(folders, manifests, compositions):
        flat = flatten(manifest["config"])
        runs.append({
            "label": folder.name, "path": str(folder), "m": manifest, "composition": comp,
            "bytes": sum(v["bytes"] for v in comp.values()), "options": {k: flat.get(k) for k in options},
        })
    html = environment().get_template("compare.html.j2").render(
        runs=runs, options=options, plot=composition_plot(labels, compositions),
        sources=sorted(set().union(*compositions)),
    )
    path = Path(out) if out else folders[0].parent / "comparison.html"
    path.write_text(html)
    return path
