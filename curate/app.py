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

from curate.config import CONF_DIR, register_configs
from curate.errors import ThresherError

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
    """One line for a Hydra composition error: the key, and what would have been valid there."""
    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig

    message = str(error)
    group = re.search(r"Could not find '([^']+)/([^']+)'", message)
    if group:
        folder, name = group.groups()
        choices = sorted(p.stem for p in (CONF_DIR / folder.lstrip("/")).glob("*.yaml"))
        return f"{folder.lstrip('/')}: '{name}' is not one of: {', '.join(choices)}"
    merging = re.search(r"Error merging override ([^=]+)=", message)
    if merging and error.__cause__ is not None:
        return f"{merging.group(1)}: {str(error.__cause__).strip().splitlines()[0]}"
    key = re.search(r"Could not (?:override|append to) '([^']+)'", message) or re.search(r"full_key: (\S+)", message)
    if key:
        key = key.group(1)
        group_overrides = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            try:
                base = compose(config_name=config_name, overrides=group_overrides)
            except Exception:  # the group choices themselves are broken: report Hydra's first line
                return message.strip().splitlines()[0]
        node, parts = base, key.split(".")
        for depth, part in enumerate(parts):
            child = node.get(part) if isinstance(node, DictConfig) else None
            if not isinstance(child, DictConfig) or depth == len(parts) - 1:
                if isinstance(node, DictConfig) and part not in node:
                    valid = ", ".join(k for k in node.keys() if not str(k).startswith("_"))
                    return f"{key}: unknown option; valid: {valid}"
                break
            node = child
        return f"{key}: {message.strip().splitlines()[-1].strip()}"
    return message.strip().splitlines()[0]


def precheck(config_name: str, argv: list[str]) -> None:
    """Compose once before Hydra runs, so a composition error is one line with the valid choices.

    Skipped for sweeps and Hydra's own flags (--help, --cfg, --multirun), which Hydra handles.
    """
    from hydra import compose, initialize_config_dir

    if any(arg.startswith("-") for arg in argv) or any("," in a.split("=", 1)[-1] and "[" not in a for a in argv):
        return
    overrides = [a for a in argv if "=" in a]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name=config_name, overrides=overrides)
    except Exception as error:  # Hydra raises several types; each becomes one line
        print(f"error: {composition_error(error, overrides, config_name)}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="curate")
def hydra_main(cfg: DictConfig) -> None:
    from curate.engine import run

    run_job(run, cfg)


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
        multirun_output_dir(cfg)
        run(cfg)
    except ThresherError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except TaskFailed as failure:
        print(f"{failure.details.rstrip()}\n\nerror: {failure}  (logged in {cfg.output.dir}/logs/)", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    precheck("curate", sys.argv[1:])
    hydra_main()
