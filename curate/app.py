"""The curate app (Hydra): compose the config, run the recipe, report errors as one line."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from curate.config import register_configs
from curate.errors import user_errors_as_one_line
from curate.resources import CONF_DIR

register_configs()


def swept_keys(argv: list[str]) -> set[str]:
    """The options a --multirun command line sweeps (`key=a,b`, `key=range(...)`, ...)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, keys = OverridesParser.create(), set()
    for arg in argv:
        if "=" in arg and not arg.startswith("-"):
            try:
                override = parser.parse_override(arg)
            except Exception:  # Hydra reports malformed overrides itself
                continue
            if override.is_sweep_override():
                keys.add(override.key_or_group)
    return keys


def point_name(number: int, overrides: list[str], swept: set[str]) -> str:
    """A sweep point's folder: its number and the values of the swept options, safe in a path and
    in a later override (`0_weights-web_0.8_qa_0.2`)."""
    parts = []
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") in swept:
            value = Path(value).name if "/" in value else value
            parts.append(f"{key.split('.')[-1]}-{re.sub(r'[^A-Za-z0-9.]+', '_', value).strip('_')}")
    return "_".join([str(number), *parts])[:100]


def multirun_output_dir(cfg: DictConfig) -> None:
    """In a --multirun sweep each point writes its own folder under output.dir (see `point_name`)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return
    name = point_name(hydra_cfg.job.num, list(hydra_cfg.overrides.task), swept_keys(sys.argv[1:]))
    with open_dict(cfg):
        cfg.output.dir = f"{cfg.output.dir}/{name}"


def composition_error(error: Exception, overrides: list[str], config_name: str) -> str:
    """One line for a Hydra composition error: the key, and what would have been valid there
    (choices come from the whole search path: Thresher's tree and the user's config folders)."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig

    from curate.compose import compose, config_tree

    message = str(error)
    search_path = [o for o in overrides if o.startswith("hydra.searchpath=")]
    group = re.search(r"Could not find '([^']+)/([^']+)'", message)
    if group:
        folder, name = group.groups()
        with config_tree():
            loader = GlobalHydra.instance().config_loader()
            choices = sorted(
                loader.get_group_options(folder.strip("/"), config_name=config_name, overrides=search_path)
            )
        return f"{folder.lstrip('/')}: '{name}' is not one of: {', '.join(choices)}"
    merging = re.search(r"Error merging override ([^=]+)=", message)
    if merging and error.__cause__ is not None:
        return f"{merging.group(1)}: {str(error.__cause__).strip().splitlines()[0]}"
    found = re.search(r"Could not (?:override|append to) '([^']+)'", message) or re.search(r"full_key: (\S+)", message)
    if found:
        key = found.group(1)
        group_overrides = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
        try:
            base = compose([*group_overrides, *search_path], config_name)
        except Exception:  # the group choices themselves are broken: report Hydra's first line
            return message.strip().splitlines()[0]
        node, parts = base, key.split(".")
        for depth, part in enumerate(parts):
            child = node.get(part) if isinstance(node, DictConfig) else None
            if not isinstance(child, DictConfig) or depth == len(parts) - 1:
                if isinstance(node, DictConfig) and part not in node:
                    valid = ", ".join(str(k) for k in node.keys() if not str(k).startswith("_"))
                    return f"{key}: unknown option; valid: {valid}"
                break
            node = child
        return f"{key}: {message.strip().splitlines()[-1].strip()}"
    return message.strip().splitlines()[0]


def split_config_dir(argv: list[str]) -> tuple[str | None, list[str]]:
    """Hydra's `--config-dir DIR` / `-cd DIR` (or `=DIR`; the last one counts, as in Hydra) and
    the rest of the command line."""
    config_dir, rest, args = None, [], iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            config_dir = value if equals else next(args, "")
        else:
            rest.append(arg)
    return config_dir, rest


def precheck(config_name: str, argv: list[str]) -> None:
    """Compose once before Hydra runs, so a composition error is one line with the valid choices.

    The user's config folder (`--config-dir`) is searched as Hydra will search it. Skipped for
    sweeps and Hydra's other flags (--help, --cfg, --multirun), which Hydra handles.
    """
    from curate.compose import compose, with_config_dirs

    config_dir, argv = split_config_dir(argv)
    if (
        config_dir == ""
        or any(arg.startswith("-") for arg in argv)
        or any("," in a.split("=", 1)[-1] and "[" not in a for a in argv)
    ):
        return
    overrides = [a for a in argv if "=" in a]
    try:
        with user_errors_as_one_line():  # a ConfigError of ours: its own one line
            overrides = with_config_dirs(overrides, [config_dir] if config_dir else [])
            compose(overrides, config_name)
    except Exception as error:  # Hydra raises several types; each becomes one line
        print(f"error: {composition_error(error, overrides, config_name)}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="curate")
def hydra_main(cfg: DictConfig) -> None:
    from curate.engine import run, show_plan

    run_job(show_plan if cfg.plan else run, cfg)


def run_job(run: Callable[[DictConfig], object], cfg: DictConfig) -> None:
    """Run an app's job (curate or train): each --multirun point in its own folder under output.dir.

    An error the user can cause is one line on stderr and exit code 2; Ctrl-C is one line and exit
    code 130; a failure inside a worker (a bug, a stage failing) shows the worker's traceback and
    exits 1; any other failure is Python's own traceback (exit 1). The run's log keeps each.
    """
    from curate.engine.task import TaskFailed
    from curate.logs import console_warnings

    console_warnings()
    try:
        with user_errors_as_one_line():
            multirun_output_dir(cfg)
            run(cfg)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except TaskFailed as failure:
        print(f"{failure.details.rstrip()}\n\nerror: {failure}  (logged in {cfg.output.dir}/logs/)", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    precheck("curate", sys.argv[1:])
    hydra_main()
