"""Running curation recipes from Python (notebooks, scripts, tests): the same config tree and
engine as `thresher curate`.

    from curate.api import run_recipe
    manifest = run_recipe("data/web.jsonl.gz", "out/web", "pipeline=web", "executor.workers=8")
    manifest = run_recipe("data/", "out/mine", "pipeline=my_recipe", config_dirs=["my_conf"])
    cfg = compose(["pipeline=web", "input.paths=[data/]", "output.dir=out/web"])  # the resolved config
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from curate.compose import compose

if TYPE_CHECKING:
    from curate.manifest import Manifest

__all__ = ["compose", "run_recipe"]


def run_recipe(
    inputs: str | Path | list,
    out: str | Path,
    *overrides: str,
    progress: bool = False,
    config_dirs: Sequence[str | Path] = (),
) -> Manifest:
    """Run a recipe on `inputs` (files, folders, globs) into the dataset folder `out`; return its
    manifest. `config_dirs`: the user's config folders, searched after Thresher's own."""
    from curate.engine import run

    paths = ",".join(f"'{p}'" for p in (inputs if isinstance(inputs, (list, tuple)) else [inputs]))
    cfg = compose(
        [f"input.paths=[{paths}]", f"output.dir='{out}'", f"executor.progress={str(progress).lower()}", *overrides],
        config_dirs=config_dirs,
    )
    return run(cfg)
