"""Recall and false positives of decontaminate's rules on the recall test set of
`tests/decontamination_set.py` (GSM8K and Self-Instruct items planted verbatim, embedded in web
text, re-wrapped, lightly paraphrased, or 60% of them; negatives: web text and the benchmarks'
other items).

    python benchmarks/decontamination_recall.py

Rules: `any_ngram` with 13-grams (the default: GPT-3, NeMo Curator) and with 8-grams, and Tülu 3's
`coverage` rule (8-grams, more than half of an item's words covered by one document). Each runs
the curate app (`action=flag`) on the same documents. Writes benchmarks/results/decontamination.json.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")

from curate.api import run_recipe  # noqa: E402
from tests.decontamination_set import build, rates  # noqa: E402

RULES = {
    "any_13gram": ["+stage@stages.decontaminate=decontaminate"],
    "any_8gram": ["+stage@stages.decontaminate=decontaminate", "stages.decontaminate.ngram=8"],
    "tulu3_coverage": ["+stage@stages.decontaminate=decontaminate_tulu3"],
}


def flagged(evaluation: list[dict], training: list[dict], rule: str, work: Path) -> dict[str, bool]:
    """Which training documents `rule` finds contaminated (the curate app, action=flag)."""
    for name, rows in (("eval.jsonl", evaluation), ("train.jsonl", training)):
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = work / rule
    run_recipe(
        work / "train.jsonl",
        out,
        "pipeline=clean",
        "~stages.normalize",
        "~stages.length_filter",
        *RULES[rule],
        f"stages.decontaminate.eval_paths=[{work / 'eval.jsonl'}]",
        "stages.decontaminate.action=flag",
        "executor.progress=false",
    )
    import pyarrow as pa

    from curate.manifest import Manifest

    manifest = Manifest.read(out)
    table = pa.concat_tables([pa.ipc.open_stream(pa.memory_map(str(out / s.path))).read_all() for s in manifest.shards])
    column = "contamination_coverage" if rule == "tulu3_coverage" else "contaminated_ngrams"
    threshold = 0.5 if rule == "tulu3_coverage" else 0
    return {i: v > threshold for i, v in zip(table.column("id").to_pylist(), table.column(column).to_pylist())}


def main() -> None:
    started, load = time.time(), os.getloadavg()
    evaluation, training = build(SHARED)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for rule in RULES:
            marks = flagged(evaluation, training, rule, Path(folder))
            results[rule] = {
                "all": rates(marks, training),
                **{
                    benchmark: rates(marks, [d for d in training if d["benchmark"] in (benchmark, "c4")])
                    for benchmark in ("gsm8k", "self_instruct")
                },
            }
    report = {
        "evaluation_items": len(evaluation),
        "training_documents": len(training),
        "rules": results,
        "seconds": round(time.time() - started, 1),
        "load_average_before": [round(x, 2) for x in load],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    (REPO / "benchmarks" / "results").mkdir(exist_ok=True)
    (REPO / "benchmarks" / "results" / "decontamination.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
