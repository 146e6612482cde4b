"""Stages: one module per concern, one small dataclass per stage (see `curate.stages.base`).

Stages from other packages (a user's own, without forking Thresher) are named by `_target_` in a
recipe like any other. A distribution lists its stages with the built-in ones (in config errors,
`thresher stages`) through an entry point in the group `thresher.stages` whose value is a module
or package of stage classes, or one stage class (see docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING

from curate.errors import ConfigError
from curate.resources import CONF_DIR, source_checkout

if TYPE_CHECKING:
    from curate.stages.base import Stage

BUILTIN = "curate.stages"
ENTRY_POINT_GROUP = "thresher.stages"
CONF_STAGE_DIR = CONF_DIR / "stage"
CHECKOUT = source_checkout()
DOCS_STAGES = CHECKOUT / "docs" / "stages.md" if CHECKOUT else None  # a source checkout's only (`make conf`)


def available_stages() -> list[str]:
    """The stage configs a recipe can use: the files in conf/stage/ and the installed plugins' stages."""
    return sorted({p.stem for p in CONF_STAGE_DIR.glob("*.yaml")} | {c.config_name for c in plugin_stage_classes()})


def stage_classes(package: str = BUILTIN) -> list[type[Stage]]:
    """Every concrete stage class with a `config_name` defined in `package`: a module, or a package
    and its modules."""
    from curate.stages.base import Stage

    try:
        root = importlib.import_module(package)
    except ImportError as error:
        raise ConfigError(f"--package: cannot import '{package}': {error}") from None
    modules = [root]
    if hasattr(root, "__path__"):  # a package: its modules too (not __main__, which runs a command)
        modules += [
            importlib.import_module(f"{package}.{info.name}")
            for info in pkgutil.iter_modules(root.__path__)
            if info.name != "__main__"
        ]
    found = [
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Stage)
        and value.__module__ == module.__name__
        and value.config_name
    ]
    return sorted(found, key=lambda cls: cls.config_name)


def plugin_stage_classes() -> list[type[Stage]]:
    """The stage classes installed distributions declare in the entry point group `thresher.stages`."""
    from importlib.metadata import entry_points

    from curate.stages.base import Stage

    found: list[type[Stage]] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point '{point.name} = {point.value}' (group {ENTRY_POINT_GROUP})"
        try:
            target = point.load()
        except Exception as error:  # a broken plugin is named, in one line
            raise ConfigError(f"{where}: cannot be loaded: {str(error).strip().splitlines()[0]}") from None
        if isinstance(target, ModuleType):
            found += stage_classes(target.__name__)
        elif isinstance(target, type) and issubclass(target, Stage):
            found.append(target)
        else:
            raise ConfigError(f"{where}: is neither a module of stage classes nor a stage class")
    return sorted(found, key=lambda cls: cls.config_name)


def stage_yaml(cls: type[Stage], command: str = "make conf") -> str:
    """The conf/stage file of a stage class: its target and its defaults, with its docstring as
    comments; `command` is the one that regenerates it."""
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
    package = hasattr(importlib.import_module(cls.__module__), "__path__")  # defined in a package's __init__
    source = cls.__module__.replace(".", "/") + ("/__init__.py" if package else ".py")
    return (
        f"{header}\n#\n# Generated from {source} by `{command}`: change defaults there, override them in a\n"
        f"# recipe (conf/pipeline/) or on the command line (stages.<name>.<option>=...).\n"
        + OmegaConf.to_yaml(defaults)
    )


def default_instance(cls: type[Stage]) -> Stage:
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


def stages_markdown(
    classes: list[type[Stage]] | None = None, command: str = "make conf", conf_dir: str = "conf"
) -> str:
    """docs/stages.md (or a plugin's page): every stage, its docstring and its defaults; `classes`
    defaults to the built-in stages, `command` regenerates the page, `conf_dir` holds stage/."""
    import dataclasses
    import inspect

    lines = [
        "# Stages",
        "",
        f"Generated from the stage classes by `{command}` (do not edit by hand). Each stage's defaults",
        f"live in its class and in `{conf_dir}/stage/<name>.yaml`; override them in a recipe or on the",
        "command line as `stages.<name>.<option>=<value>`.",
        "",
    ]
    for cls in stage_classes() if classes is None else classes:
        kind = "global" if "GlobalStage" in [b.__name__ for b in cls.__mro__] else "row"
        lines += [f"## `{cls.config_name}` — {cls.__name__} ({kind} stage, `{cls.__module__}`)", ""]
        lines += [inspect.getdoc(cls) or "", ""]
        stage = default_instance(cls)
        needs = ", ".join(stage.required_columns()) or "-"
        adds = ", ".join(f"{k} ({v})" for k, v in stage.provided_columns().items()) or "-"
        resources = ", ".join(f"{k} {v:g}" for k, v in dataclasses.asdict(cls.resources).items())
        lines += [
            f"Needs: {needs}. Adds: {adds} (with the default options). Resources per worker: {resources}.",
            "",
            "| option | default |",
            "|---|---|",
        ]
        for f in dataclasses.fields(cls):
            default = (
                f.default
                if f.default is not dataclasses.MISSING
                else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
            )
            lines.append(f"| `{f.name}` | `{default!r}` |")
        lines.append("")
    return "\n".join(lines)
