"""Reading compressed input: linear time, bounded memory, side by side with Python's gzip module.

    python benchmarks/reading_bench.py [--sizes 64 128 256]

For each size (MB of JSON lines once inflated: real C4 documents, repeated), times Thresher's
reader (`curate.readers.read_file`: decompress, hash, split lines, parse, map, batch) and the
anchor datatrove's JsonlReader stands on (`gzip.open` + a JSON parse per line, here orjson), each
in its own process (wall seconds, peak RSS of the process). Then a decompression bomb: zeros
without a newline inflating to the largest size, read with the inflate bound off (the line
bound, input.max_doc_mb=64, quarantines it) and on (the default 100x stops it at once). The
issue that asked for this (17) measured the reader before: 64/128/256 MB took 4.7/20.4/90.6 s
(quadratic) and a 1 GB line used 5.3 GB of memory. Writes benchmarks/results/reading.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

from measure import WORK, machine, measure, save

SHARED = (
    Path("/work/shared/data")
    if Path("/work/shared/data").is_dir()
    else Path(__file__).resolve().parents[2] / "shared" / "data"
)

# Each prints {"rows", "quarantined", "seconds"}: the reading loop's own time, imports excluded.
THRESHER = """
import json, sys, time
from curate.mapping import DocumentMapper
from curate.readers import FileStats, Quarantine, ReadOptions, read_file
from curate.readers.sources import expand_paths
[file], _ = expand_paths([sys.argv[1]])
options = ReadOptions(max_doc_bytes=64 << 20, max_inflate_ratio=float(sys.argv[2]))
quarantine, stats = Quarantine(fail=False), FileStats(sys.argv[1])
started = time.perf_counter()
rows = sum(batch.num_rows for batch in read_file(file, DocumentMapper(), options, quarantine, stats))
seconds = time.perf_counter() - started
print(json.dumps({"rows": rows, "quarantined": stats.quarantined, "seconds": round(seconds, 3)}))
"""

ANCHOR = """
import gzip, json, sys, time
import orjson
rows = 0
started = time.perf_counter()
with gzip.open(sys.argv[1], "rb") as handle:
    for line in handle:
        if line.strip():
            orjson.loads(line)
            rows += 1
print(json.dumps({"rows": rows, "quarantined": 0, "seconds": round(time.perf_counter() - started, 3)}))
"""


def run(script: str, *args: str) -> dict:
    """The script's own report (rows, reading seconds) with the process's wall time and peak memory."""
    measured = measure([sys.executable, "-c", script, *args])
    return {**json.loads(measured.pop("output_tail").strip().splitlines()[-1]), "process": measured}


def build(folder: Path, megabytes: int) -> Path:
    path = folder / f"c4-{megabytes}mb.jsonl.gz"
    if path.is_file():
        return path
    docs = [json.loads(line)["text"] for line in gzip.open(SHARED / "c4_sample" / "c4_demo.jsonl.gz", "rt")]
    written, copy = 0, 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        while written < megabytes << 20:
            for i, text in enumerate(docs):
                line = json.dumps({"id": f"{copy}-{i}", "text": text}).encode() + b"\n"
                out.write(line)
                written += len(line)
            copy += 1
    return path


def bomb(folder: Path, megabytes: int) -> Path:
    path = folder / f"zeros-{megabytes}mb.jsonl.gz"
    if not path.is_file():
        path.write_bytes(gzip.compress(b"\0" * (1 << 20), compresslevel=9) * megabytes)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    args = parser.parse_args()
    folder = WORK / "reading"
    folder.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine_before": machine(), "sizes": {}}
    for size in args.sizes:
        path = build(folder, size)
        ours, anchor = run(THRESHER, str(path), "100"), run(ANCHOR, str(path))
        result["sizes"][size] = {
            "compressed_mb": round(path.stat().st_size / 1e6, 1),
            "thresher": ours,
            "gzip_orjson": anchor,
            "time_ratio": round(ours["seconds"] / anchor["seconds"], 2),
            "thresher_seconds_per_gb": round(ours["seconds"] / size * 1024, 2),
        }
        print(
            size,
            "MB:",
            ours["seconds"],
            "s vs",
            anchor["seconds"],
            "s;",
            ours["process"]["peak_rss_mb"],
            "MB",
            flush=True,
        )
    largest = max(args.sizes)
    zeros = bomb(folder, largest)
    result["bomb"] = {
        "inflated_mb": largest,
        "compressed_mb": round(zeros.stat().st_size / 1e6, 2),
        "line_bound_only": run(THRESHER, str(zeros), "0"),
        "inflate_bound_100x": run(THRESHER, str(zeros), "100"),
    }
    result["machine_after"] = machine()
    print(json.dumps(result["bomb"], indent=1))
    print(save("reading", result))


if __name__ == "__main__":
    main()
