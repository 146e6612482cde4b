"""Running curation recipes from Python (notebooks, scripts, tests): the same config tree and
engine as `thresher curate`.

    from curate.api import run_recipe
    manifest = run_recipe("data/web.jsonl.gz", "out/web", "pipeline=web", "executor.workers=8")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

if TYPE_CHECKING:
    from curate.manifest import Manifest


def compose(overrides: list[str], config_name: str = "curate") -> DictConfig:
    """The resolved config for `overrides`, exactly as the command line composes it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from curate.config import CONF_DIR, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def run_recipe(inputs: str | Path | list, out: str | Path, *overrides: str, progress: bool = False) -> Manifest:
    """Run a recipe on `inputs` (files, folders, globs) into the dataset folder `out`; return its manifest."""
    from curate.engine import run

    paths = ",".join(f"'{p}'" for p in (inputs if isinstance(inputs, (list, tuple)) else [inputs]))
    cfg = compose([f"input.paths=[{paths}]", f"output.dir='{out}'", f"executor.progress={str(progress).lower()}",
                   *overrides])
    return run(cfg)
