"""Measuring a command: wall time, peak RSS of its whole process tree, and the machine's load.

Benchmarks run each system as a subprocess through `measure`, so Thresher and the anchors
(datatrove, ...) are measured the same way, in the same invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORK = REPO / "benchmarks" / "work"


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(command: list[str], env: dict | None = None, cwd: Path | None = None, poll: float = 0.05) -> dict:
    """Run `command`; return wall seconds, peak RSS (MB) of its process tree, and its exit code."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    handle = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss(handle))
        time.sleep(poll)
    output = process.stdout.read()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(peak / 1e6, 1), "output_tail": output[-500:]}


def machine() -> dict:
    """What the figures were measured on (other work on the machine skews absolute numbers)."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def curate_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "curate.cli", "curate", "executor.progress=false", *overrides]
