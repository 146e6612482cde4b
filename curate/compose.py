"""Composing a config as the command line does: Thresher's config tree (`curate.resources`), and
the user's own config folders (recipes, stage defaults) on Hydra's search path after it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


@contextmanager
def config_tree() -> Iterator[None]:
    """Hydra initialised on Thresher's config tree (for `compose` and Hydra's config loader)."""
    from hydra import initialize_config_dir

    from curate.resources import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def with_config_dirs(overrides: Sequence[str], config_dirs: Sequence[str | Path]) -> list[str]:
    """`overrides` with the user's config folders on Hydra's search path where `--config-dir` puts
    them: after Thresher's tree (a built-in config of the same name wins) and before any
    `hydra.searchpath` entries already in `overrides`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from curate.errors import ConfigError

    if not config_dirs:
        return list(overrides)
    entries = []
    for folder in config_dirs:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ConfigError(f"--config-dir: no such folder: {folder}")
        entries.append(f"file://{path}")
    rest = []
    for override in overrides:
        if override.partition("=")[0] == "hydra.searchpath":
            value = OverridesParser.create().parse_override(override).value()
            if isinstance(value, str):  # one folder, not in brackets: one entry (not one per character)
                value = [value]
            if not isinstance(value, list):
                raise ConfigError(f"{override}: expected a config folder or a list of them")
            entries += [str(entry) for entry in value]
        else:
            rest.append(override)
    quoted = ",".join("'" + entry.replace("'", "\\'") + "'" for entry in entries)
    return [*rest, f"hydra.searchpath=[{quoted}]"]


def compose(
    overrides: Sequence[str], config_name: str = "curate", config_dirs: Sequence[str | Path] = ()
) -> DictConfig:
    """The resolved config for `overrides`, exactly as the command line composes it; `config_dirs`
    are the user's config folders (recipes, stage defaults), as `--config-dir` gives them."""
    from hydra import compose as hydra_compose

    from curate.config import register_configs

    register_configs()
    overrides = with_config_dirs(overrides, config_dirs)
    with config_tree():
        return hydra_compose(config_name=config_name, overrides=overrides)


def resolved_dict(cfg: DictConfig) -> dict[str, Any]:
    """`cfg` resolved into plain dicts and lists (OmegaConf types the result as any container)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(plain, dict):  # a DictConfig always gives a dict
        raise TypeError(f"expected a DictConfig, got {type(cfg).__name__}")
    return {str(key): value for key, value in plain.items()}
