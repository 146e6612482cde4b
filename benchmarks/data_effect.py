"""The data-effect experiments' figures for docs/benchmarks/data_effect.md.

Reads the `ablation.json` that `thresher ablate` wrote for each experiment (`make ablate` runs
them all) and writes, per experiment, one figure with a panel per evaluation figure (each seed a
dot, the arm's mean a bar) to `docs/benchmarks/data_effect/<experiment>.png`, and every run's
scores, the arms' data and the time spent to `benchmarks/results/data_effect.json`.

    python benchmarks/data_effect.py [--root out/ablations] [experiment ...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = [
    "curated_vs_raw",
    "curated_vs_raw_unrepeated",
    "dedup_vs_duplicated",
    "dedup_vs_duplicated_longer",
    "lima_selection",
]


def figure(name: str, summary: dict, out: Path) -> None:
    """One panel per evaluation figure: the seeds of each arm as dots, the arm's mean as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(summary["arms"])
    metrics = list(dict.fromkeys(metric for run in summary["runs"] for metric in run["scores"]))
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.6 * rows), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        for x, arm in enumerate(arms):
            values = [run["scores"][metric] for run in summary["runs"] if run["arm"] == arm and metric in run["scores"]]
            axis.scatter([x] * len(values), values, s=14, color="#4c72b0", zorder=3)
            if values:
                axis.hlines(sum(values) / len(values), x - 0.25, x + 0.25, color="#c44e52", linewidth=2)
        axis.set_xticks(range(len(arms)), arms, fontsize=8)
        axis.set_xlim(-0.6, len(arms) - 0.4)
        axis.set_title(metric, fontsize=9)
        axis.tick_params(axis="y", labelsize=7)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.axis("off")
    fig.suptitle(f"{name}: each seed (dot) and the arm's mean (bar)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=EXPERIMENTS)
    parser.add_argument("--root", default=str(REPO / "out" / "ablations"))
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "data_effect.json"))
    args = parser.parse_args()
    results_path = Path(args.results)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.experiments:
        path = Path(args.root) / name / "ablation.json"
        if not path.is_file():
            print(f"{name}: no {path} (run `thresher ablate ablation={name}` first)")
            continue
        summary = json.loads(path.read_text())
        figure(name, summary, REPO / "docs" / "benchmarks" / "data_effect" / f"{name}.png")
        results[name] = {
            "version": summary.get("version"),
            "arms": summary["arms"],
            "runs": [{k: run[k] for k in ("arm", "seed", "scores")} for run in summary["runs"]],
            "time": summary["time"],
        }
        print(f"{name}: {len(summary['runs'])} runs")
    results_path.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
