"""Tasks that fit the data: one large JSON lines file read as one task, then in byte ranges.

    python benchmarks/split_bench.py [--mb 120] [--workers 2] [--task-mb 16] [--repeats 3] [--before SRC]

Builds one uncompressed JSON lines file of about --mb MB of real documents (the shared C4 sample
and Wikipedia lines, each copied with a numbered suffix so none repeats) and, from the same
documents, one JSON array of about a third of that size. Runs the `clean` recipe on the big file
with --workers workers, as one task (`input.split_mb=0`: the file is never split) and split into
ranges of --task-mb (`input.split_mb` below the file's size), alternately --repeats times each,
and checks both give the same rows; then reads the JSON array (streamed item by item) and records
its peak memory against its size. With --before (a source checkout of an earlier Thresher, e.g.
`git archive main | tar -x -C SRC`), the JSON array is also read by that version (which parsed
arrays whole), for its peak memory. Writes benchmarks/results/split.json with the load average
(the machine is shared: quote medians and ratios).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
from pathlib import Path

import pyarrow as pa
from measure import WORK, curate_command, machine, measure, save

SHARED = (
    Path("/work/shared/data")
    if Path("/work/shared/data").is_dir()
    else Path(__file__).resolve().parents[2] / "shared" / "data"
)


def documents() -> list[str]:
    docs = [json.loads(line)["text"] for line in gzip.open(SHARED / "c4_sample" / "c4_demo.jsonl.gz", "rt")]
    return docs + [
        line.strip() for line in gzip.open(SHARED / "wikipedia_sample" / "wiki_demo.txt.gz", "rt") if line.strip()
    ]


def build(path: Path, megabytes: float, array: bool = False) -> int:
    """A file of about `megabytes` MB of numbered copies of real documents; returns how many."""
    docs, target, written, count = documents(), megabytes * 1e6, 0, 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        handle.write("[\n" if array else "")
        while written < target:
            line = json.dumps({"text": f"{docs[count % len(docs)]}\n\n(copy {count})"})
            handle.write(("," if array and count else "") + line + "\n")
            written, count = written + len(line), count + 1
        handle.write("]\n" if array else "")
    return count


def rows(folder: Path) -> pa.Table:
    manifest = json.loads((folder / "manifest.json").read_text())
    tables = []
    for shard in manifest["shards"]:
        with pa.memory_map(str(folder / shard["path"])) as source:
            tables.append(pa.ipc.open_stream(source).read_all())
    return pa.concat_tables(tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task-mb", type=float, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a source checkout of an earlier version, for the JSON array")
    args = parser.parse_args()
    work = WORK / "split"
    shutil.rmtree(work, ignore_errors=True)
    big = work / "big.jsonl"
    count = build(big, args.mb)
    size = big.stat().st_size
    common = ["pipeline=clean", f"input.paths=[{big}]", f"executor.workers={args.workers}", "output.overwrite=true"]
    ways = {
        "whole": ["input.split_mb=0", f"output.dir={work / 'whole'}"],
        "split": [f"input.split_mb={args.task_mb}", f"executor.task_mb={args.task_mb}", f"output.dir={work / 'split'}"],
    }
    runs: dict[str, list[dict]] = {name: [] for name in ways}
    loads = [machine()["load_average"]]
    for _ in range(args.repeats):  # alternate, so both see the same drift of a shared machine
        for name, options in ways.items():
            run = measure(curate_command(*common, *options))
            run.pop("output_tail")
            runs[name].append(run)
        loads.append(machine()["load_average"])
    whole, split = rows(work / "whole"), rows(work / "split")
    tasks = {name: json.loads((work / name / "manifest.json").read_text())["tasks"] for name in ways}

    array = work / "array.json"
    items = build(array, args.mb / 3, array=True)
    read_array = curate_command("pipeline=clean", f"input.paths=[{array}]", "executor.workers=1")
    streamed = measure([*read_array, f"output.dir={work / 'array'}"])
    streamed.pop("output_tail")
    before = None
    if args.before:
        before = measure(
            [*read_array, f"output.dir={work / 'array-before'}"], {"PYTHONPATH": str(args.before)}, args.before
        )
        before.pop("output_tail")

    median = {name: statistics.median(r["seconds"] for r in runs[name]) for name in ways}
    result = {
        "corpus": {"documents": count, "file_mb": round(size / 1e6, 1)},
        "workers": args.workers,
        "tasks": tasks,
        "same_rows": whole.select(["text"]).equals(split.select(["text"])) and whole.num_rows == split.num_rows,
        "runs": runs,
        "median_seconds": median,
        "split_speedup": round(median["whole"] / median["split"], 2),
        "json_array": {
            "items": items,
            "file_mb": round(array.stat().st_size / 1e6, 1),
            "peak_rss_mb": streamed["peak_rss_mb"],
            "seconds": streamed["seconds"],
            "before": before,  # the earlier version, parsing the array whole
        },
        "machine": machine(),
        "load_averages": loads,
    }
    print(json.dumps(result, indent=2))
    save("split", result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
