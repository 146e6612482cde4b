"""The worked example of docs/extending.md (a user's stage package and config folder), written
out from the page itself, so the page is what the tests run; and the checks of its run."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyarrow.compute as pc
from conftest import REPO, SHARED_DATA, read_dataset

from curate.manifest import Manifest

PAGE = REPO / "docs" / "extending.md"
# A file of the example is shown as "`<path>`:" followed by a fenced block holding its text.
FILE_BLOCK = re.compile(r"^`([^`\n]+)`:\n```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILES = ("my-stages/my_stages/__init__.py", "my-stages/pyproject.toml", "my_conf/pipeline/web_quiet.yaml")
RECIPE = "pipeline=web_quiet"


def write_example(root: Path) -> Path:
    """Write the page's example files under `root`; return `root`."""
    found = dict(FILE_BLOCK.findall(PAGE.read_text()))
    assert sorted(found) == sorted(FILES), f"{PAGE.name} shows {sorted(found)}"
    for name, text in found.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def web_sample(folder: Path, parts: int = 3) -> Path:
    """C4's 300 real web documents (shared data) as `parts` jsonl files: with
    `executor.task_mb=0.1`, one task each, so the workers share the work."""
    lines = gzip.open(SHARED_DATA / "c4_sample" / "c4_demo.jsonl.gz", "rt").read().splitlines(keepends=True)
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(parts):
        (folder / f"part-{part}.jsonl").write_text("".join(lines[part::parts]))
    return folder


def check_quiet_run(out: Path, rows_in: int) -> Manifest:
    """The web_quiet recipe's output: the user stage ran first, as recorded in the manifest, and
    dropped exactly the shouted documents (by its own rule, recomputed here); returns the manifest."""
    manifest = Manifest.read(out)
    stage = manifest.stages[0]
    assert (stage.name, stage.target, stage.options) == (
        "shouting",
        "my_stages.ShoutingFilter",
        {"max_upper_ratio": 0.2},
    )
    assert stage.rows_in == rows_in and 0 < stage.dropped["shouting"] == rows_in - stage.rows_out
    assert manifest.tasks == 3 and manifest.workers == 2
    assert [s.name for s in manifest.stages[1:]][-2:] == ["exact_dedup", "minhash_dedup"]  # web's stages follow
    rejects = read_dataset(out, "rejects")
    shouted = rejects.filter(pc.equal(rejects["drop_stage"], "shouting"))
    assert shouted.num_rows == stage.dropped["shouting"]

    def upper_ratio(text: str) -> float:
        return sum(map(str.isupper, text)) / max(1, sum(map(str.isalpha, text)))

    assert all(upper_ratio(t) > 0.2 for t in shouted["text"].to_pylist())
    kept = read_dataset(out)
    assert pc.max(kept["upper_ratio"]).as_py() <= 0.2  # the score column stays in the shards
    return manifest
