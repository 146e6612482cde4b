"""Turning a recipe's `stages:` mapping into stage objects, checked, and cut into passes.

Each entry of `stages` is a stage config: `_target_` (the stage class) and its options. The
builder checks every option against the class's fields (unknown, missing, wrongly typed), asks
the stage to validate itself, and checks the column chain: a stage needing a column that the
input or an earlier stage does not provide is an error before any data is read.

Global stages cut the pipeline into passes over the data: pass k applies the previous global
stage's decisions, runs the row stages, and scans for the next global stage.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from curate.errors import ConfigError
from curate.schema import KINDS, REJECT_COLUMNS
from curate.stages.base import GlobalStage, Resources, RowStage, Stage


def stage_class(key: str, target: Any) -> type[Stage]:
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"stages.{key}._target_: expected 'module.Class' of a stage, got {target!r}")
    module_name, _, class_name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        from curate.stages import available_stages

        raise ConfigError(
            f"stages.{key}._target_: no stage '{target}'; available: {', '.join(available_stages())}"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Stage) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"stages.{key}._target_: '{target}' is not a stage class")
    return cls


def stage_resources(key: str, cls: type[Stage], override: Any) -> Resources:
    """The class's declared resources, with the recipe's `stages.<key>.resources` on top."""
    declared = dataclasses.asdict(cls.resources)
    if override is None:
        return cls.resources
    if not isinstance(override, dict) or not set(override) <= set(declared):
        raise ConfigError(f"stages.{key}.resources: expected a mapping of {', '.join(declared)}; got {override!r}")
    try:
        values = {name: float(value) for name, value in override.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"stages.{key}.resources: values must be numbers; got {override!r}") from None
    if any(value < 0 for value in values.values()):
        raise ConfigError(f"stages.{key}.resources: values must be >= 0")
    return Resources(**{**declared, **values})


def build_stage(key: str, node: DictConfig | dict) -> Stage:
    """Build one stage from its config node; every problem is a ConfigError naming the key."""
    container = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    if not isinstance(container, dict) or "_target_" not in container:
        from curate.stages import available_stages

        raise ConfigError(
            f"stages.{key}: not a stage config (no _target_); add one of conf/stage/: {', '.join(available_stages())}"
        )
    options: dict[Any, Any] = container  # option names: a key that is not a string is reported as unknown
    cls = stage_class(key, options.pop("_target_"))
    resources = stage_resources(key, cls, options.pop("resources", None))
    valid = [f.name for f in dataclasses.fields(cls)]
    for option, value in options.items():
        if option not in valid:
            raise ConfigError(f"stages.{key}.{option}: unknown option of {cls.__name__}; valid: {', '.join(valid)}")
        if value == "???":
            raise ConfigError(f"stages.{key}.{option}: required value is missing (set stages.{key}.{option}=...)")
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in options:
            raise ConfigError(f"stages.{key}.{f.name}: required value is missing (set stages.{key}.{f.name}=...)")
    try:  # typed merge: OmegaConf checks and converts each value against the field's type
        typed = OmegaConf.merge(OmegaConf.structured(cls), options)
        stage = OmegaConf.to_object(typed)
    except OmegaConfBaseException as error:
        option = getattr(error, "full_key", None) or "?"
        message = error.msg or str(error) or type(error).__name__  # msg is None unless OmegaConf formatted it
        raise ConfigError(f"stages.{key}.{option}: {message.splitlines()[0]}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"stages.{key}: {error}") from None
    if not isinstance(stage, Stage):  # a structured config of a Stage dataclass builds that Stage
        raise ConfigError(f"stages.{key}: '{cls.__name__}' built a {type(stage).__name__}, not a stage")
    stage.name = key
    stage.resources = resources  # type: ignore[misc]  # the recipe's override of the class's declaration
    try:
        stage.validate()
    except ValueError as error:
        raise ConfigError(f"stages.{key}.{error}") from None
    return stage


@dataclass
class Pass:
    """One streaming pass over every task's rows."""

    index: int
    apply: GlobalStage | None = None  # decisions of the previous global stage, applied first
    rows: list[RowStage] = field(default_factory=list)
    scan: GlobalStage | None = None  # the next global stage, scanning this pass's output
    schema_in: pa.Schema | None = None
    schema_out: pa.Schema | None = None

    @property
    def stages(self) -> list[Stage]:
        return ([self.apply] if self.apply else []) + list(self.rows)

    def resources(self) -> Resources:
        """What a worker needs for this pass: its stages run one after another in one worker."""
        needed = Resources()
        for stage in self.stages + ([self.scan] if self.scan else []):
            needed = needed.merge(stage.resources)
        return needed

    def describe(self) -> str:
        parts = [f"apply {self.apply.name}"] if self.apply else []
        parts += [s.name for s in self.rows]
        parts += [f"scan {self.scan.name}"] if self.scan else []
        return ", ".join(parts) or "copy"


@dataclass
class Pipeline:
    stages: list[Stage]
    input_schema: pa.Schema
    output_schema: pa.Schema
    reject_schemas: dict[str, pa.Schema]  # per stage name
    kind: str
    passes: list[Pass]


def output_kind(schema: pa.Schema, default: str) -> str:
    """The kind whose core columns a schema starts with."""
    for kind, core in KINDS.items():
        if schema.names[: len(core.names)] == core.names:
            return kind
    return default


# Names in the output folder that belong to the engine (see concepts.md: datasets).
RESERVED_DIRS = ("data", "rejects", "quarantine", "_work", "logs", "manifest.json", "report.html", ".lock")


def check_keep_dirs(stages: list[GlobalStage]) -> None:
    """Global stages keep artifacts in distinct folders, none of them one the engine writes."""
    seen: dict[str, str] = {}
    for stage in stages:
        subdir = stage.keep_subdir
        top = subdir.strip("/").split("/")[0]
        if not subdir or top in RESERVED_DIRS or ".." in subdir.split("/"):
            raise ConfigError(f"stages.{stage.name}: cannot keep artifacts in '{subdir}' (reserved by the engine)")
        if subdir in seen:
            raise ConfigError(f"stages.{stage.name}: keeps artifacts in '{subdir}', as stages.{seen[subdir]} does")
        seen[subdir] = stage.name


def build_pipeline(stages_cfg: DictConfig | dict, input_schema: pa.Schema, input_kind: str) -> Pipeline:
    stages = [build_stage(str(key), node) for key, node in (stages_cfg or {}).items()]
    schema = input_schema
    reject_schemas: dict[str, pa.Schema] = {}
    passes = [Pass(0, schema_in=input_schema)]
    for index, stage in enumerate(stages):
        missing = [column for column in stage.required_columns() if column not in schema.names]
        if missing:
            earlier = (
                "the input"
                if index == 0
                else f"the input or the stages before it ({', '.join(s.name for s in stages[:index])})"
            )
            raise ConfigError(
                f"stages.{stage.name}: needs column '{missing[0]}', which {earlier} does not provide "
                f"(available: {', '.join(schema.names)})"
            )
        if isinstance(stage, GlobalStage) and stage.consumes_rows:
            if index != len(stages) - 1:
                raise ConfigError(
                    f"stages.{stage.name}: consumes its rows (its product is not a dataset), so it "
                    f"must be the recipe's last stage; stages after it: "
                    f"{', '.join(s.name for s in stages[index + 1 :])}"
                )
            passes[-1].scan = stage  # the last pass: nothing is written or applied after the scan
        elif isinstance(stage, GlobalStage):
            # The rows the global stage scans are written as they are, and read back to apply it.
            passes[-1].scan, passes[-1].schema_out = stage, schema
            passes.append(Pass(len(passes), apply=stage, schema_in=schema))
        elif isinstance(stage, RowStage):
            passes[-1].rows.append(stage)
        else:
            raise ConfigError(f"stages.{stage.name}: {type(stage).__name__} is neither a row nor a global stage")
        schema_in, schema = schema, stage.output_schema(schema)
        # Dropped rows keep every column they had: a stage that changes the kind (posts → chat)
        # rejects rows of its input's shape.
        lost = [f for f in schema_in if f.name not in schema.names]
        reject_schemas[stage.name] = pa.schema(list(schema) + lost + [pa.field(n, t) for n, t in REJECT_COLUMNS])
    passes[-1].schema_out = schema
    check_keep_dirs([s for s in stages if isinstance(s, GlobalStage)])
    return Pipeline(stages, input_schema, schema, reject_schemas, output_kind(schema, input_kind), passes)
