"""Memory of the stages that load models: what each holds in a worker from `setup` to `teardown`.

    python benchmarks/stage_memory.py

Each stage runs in a fresh interpreter: resident memory (psutil) after importing its module and
building it from `conf/stage/<name>.yaml` (the published defaults), then after `setup()` and one
batch of real documents (stages that load a fallback model or a tokenizer on first use do so
there). The difference is what the stage declares as `resources.memory_gb` (rounded up to the
next 0.1 GB). Results: benchmarks/results/stage_memory.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "stage_memory.json"
# label: (stage config, options): the model-loading stages with their published defaults
STAGES = {
    "language": ("language", {}),
    "language (backend lingua)": ("language", {"backend": "lingua"}),
    "lima_select": ("lima_select", {"n": 10}),
    "judge (SmolLM2-135M, transformers)": ("judge", {}),
}
CHILD = r"""
import json, sys, psutil, pyarrow as pa, yaml
sys.path.insert(0, sys.argv[1])
from curate.pipeline import build_stage
from curate.resources import CONF_DIR
name, options = sys.argv[2], json.loads(sys.argv[3])
node = {**yaml.safe_load((CONF_DIR / "stage" / f"{name}.yaml").read_text()), **options}
node.pop("resources", None)
stage = build_stage(name, node)
stage.validate()
import gzip
texts = [json.loads(line)["text"] for line in gzip.open(sys.argv[4], "rt")][:200]
before = psutil.Process().memory_info().rss
stage.setup()
batch = pa.record_batch({"id": [str(i) for i in range(len(texts))], "text": texts, "source": ["c4"] * len(texts),
                         "prompt": texts, "response": texts})
if hasattr(stage, "process"):
    try:
        stage.process(batch)
    except Exception as error:  # a stage that needs other columns: setup alone is measured
        print(f"process skipped: {error}", file=sys.stderr)
after = psutil.Process().memory_info().rss
print(json.dumps({"before_mb": round(before / 2**20, 1), "after_mb": round(after / 2**20, 1),
                  "setup_mb": round((after - before) / 2**20, 1)}))
"""


def main() -> None:
    sample = REPO.parent / "shared" / "data" / "c4_sample" / "c4_demo.jsonl.gz"
    if not sample.is_file():
        sample = Path("/work/shared/data/c4_sample/c4_demo.jsonl.gz")
    results = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": {}}
    for label, (name, options) in STAGES.items():
        started = time.time()
        process = subprocess.run(
            [sys.executable, "-c", CHILD, str(REPO), name, json.dumps(options), str(sample)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
        )
        if process.returncode:
            print(f"{label}: failed\n{process.stderr[-2000:]}")
            continue
        found = json.loads(process.stdout.strip().splitlines()[-1])
        found["seconds"] = round(time.time() - started, 1)
        found["process_skipped"] = "process skipped" in process.stderr
        results["stages"][label] = found
        print(f"{label:>36}: {found['setup_mb']:7.1f} MB after setup and one batch", flush=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
