"""Stages: one module per concern, one small dataclass per stage (see `curate.stages.base`)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from curate.config import CONF_DIR

CONF_STAGE_DIR = CONF_DIR / "stage"


def available_stages() -> list[str]:
    """The stage configs a recipe can use: the files in conf/stage/."""
    return sorted(p.stem for p in CONF_STAGE_DIR.glob("*.yaml"))


def stage_classes() -> list[type]:
    """Every concrete stage class with a `config_name`, found in this package's modules."""
    from curate.stages.base import Stage

    found = []
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Stage) and value.__module__ == module.__name__:
                if value.config_name:
                    found.append(value)
    return sorted(found, key=lambda cls: cls.config_name)


def stage_yaml(cls: type) -> str:
    """The conf/stage file of a stage class: its target and its defaults, with its docstring as comments."""
    import dataclasses
    import inspect

    from omegaconf import OmegaConf

    defaults = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
        else:
            defaults[f.name] = "???"
    doc = inspect.getdoc(cls) or cls.__name__
    header = "\n".join(f"# {line}".rstrip() for line in doc.splitlines())
    source = cls.__module__.replace(".", "/") + ".py"
    return (
        f"{header}\n#\n# Generated from {source} by `make conf`: change defaults there, override them in a\n"
        f"# recipe (conf/pipeline/) or on the command line (stages.<name>.<option>=...).\n"
        + OmegaConf.to_yaml(defaults)
    )


def default_instance(cls: type) -> Any:
    """The stage with its default options, for documentation. Required options get a placeholder of
    their type and `__post_init__` is not run: nothing is loaded or checked."""
    import dataclasses

    stage = object.__new__(cls)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = "<required>"
        object.__setattr__(stage, f.name, value)
    return stage


def stages_markdown() -> str:
    """docs/stages.md: every stage, its docstring and its defaults, grouped by module."""
    import dataclasses
    import inspect

    lines = [
        "# Stages",
        "",
        "Generated from the stage classes by `make conf` (do not edit by hand). Each stage's defaults",
        "live in its class and in `conf/stage/<name>.yaml`; override them in a recipe or on the",
        "command line as `stages.<name>.<option>=<value>`.",
        "",
    ]
    for cls in stage_classes():
        kind = "global" if "GlobalStage" in [b.__name__ for b in cls.__mro__] else "row"
        lines += [f"## `{cls.config_name}` — {cls.__name__} ({kind} stage, `{cls.__module__}`)", ""]
        lines += [inspect.getdoc(cls) or "", ""]
        stage = default_instance(cls)
        needs = ", ".join(stage.required_columns()) or "-"
        adds = ", ".join(f"{k} ({v})" for k, v in stage.provided_columns().items()) or "-"
        resources = ", ".join(f"{k} {v:g}" for k, v in dataclasses.asdict(cls.resources).items())
        lines += [f"Needs: {needs}. Adds: {adds} (with the default options). Resources per worker: {resources}.",
                  "", "| option | default |", "|---|---|"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
            lines.append(f"| `{f.name}` | `{default!r}` |")
        lines.append("")
    return "\n".join(lines)


DOCS_STAGES = CONF_DIR.parent / "docs" / "stages.md"
