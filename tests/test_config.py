"""Configs are validated before any data is read; each error is one line naming the key and choices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
import pytest
from conftest import compose, thresher, write_jsonl

from curate.errors import ConfigError
from curate.pipeline import build_pipeline, build_stage
from curate.schema import KINDS
from curate.stages import CONF_STAGE_DIR, DOCS_STAGES, stage_classes, stage_yaml, stages_markdown
from curate.stages.base import FilterStage


def test_stage_configs_match_the_stage_classes():
    """conf/stage/*.yaml are generated from the classes' defaults: regenerate with `make conf`."""
    classes = stage_classes()
    assert [cls.config_name for cls in classes] == sorted(p.stem for p in CONF_STAGE_DIR.glob("*.yaml"))
    for cls in classes:
        assert (CONF_STAGE_DIR / f"{cls.config_name}.yaml").read_text() == stage_yaml(cls), cls.config_name
    assert DOCS_STAGES.read_text() == stages_markdown(), "docs/stages.md is stale: run `make conf`"


def test_every_stage_has_a_docstring_with_its_defaults():
    for cls in stage_classes():
        assert cls.__doc__ and "efault" in cls.__doc__, f"{cls.__name__}: say what its defaults are and why"


@pytest.mark.parametrize(
    "node, message",
    [
        (
            {"_target_": "curate.stages.clean.LengthFilter", "min_char": 3},
            "stages.s.min_char: unknown option of LengthFilter; valid: min_chars, max_chars",
        ),
        (
            {"_target_": "curate.stages.clean.LengthFilter", "min_chars": "???"},
            "stages.s.min_chars: required value is missing",
        ),
        ({"_target_": "curate.stages.clean.LengthFilter", "min_chars": "ten"}, "stages.s.min_chars: Value 'ten'"),
        (
            {"_target_": "curate.stages.clean.LengthFilter", "min_chars": 10, "max_chars": 5},
            "stages.s.min_chars: must be >= 0 and <= max_chars",
        ),
        ({"_target_": "curate.stages.nope.Nope"}, "stages.s._target_: no stage 'curate.stages.nope.Nope'; available: "),
        ({"min_chars": 3}, "stages.s: not a stage config (no _target_)"),
    ],
)
def test_stage_option_errors_name_the_key(node, message):
    with pytest.raises(ConfigError) as error:
        build_stage("s", node)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@dataclass
class NeedsLanguage(FilterStage):
    """A stage reading a column the plain documents schema lacks (defaults: none)."""

    requires: ClassVar[tuple[str, ...]] = ("text", "language")


def test_missing_column_is_caught_when_the_pipeline_is_built():
    stages = {
        "clean": {"_target_": "curate.stages.clean.NormalizeText"},
        "lang_only": {"_target_": f"{__name__}.NeedsLanguage"},
    }
    with pytest.raises(
        ConfigError,
        match=r"stages.lang_only: needs column 'language', which the input or the "
        r"stages before it \(clean\) does not provide \(available: id, text, source, meta\)",
    ):
        build_pipeline(stages, KINDS["documents"], "documents")
    code_schema = KINDS["documents"].append(pa.field("language", pa.string()))
    assert build_pipeline(stages, code_schema, "documents").output_schema.names[-1] == "language"


def test_recipes_compose_with_ordered_stages():
    cfg = compose(["input.paths=[x]", "output.dir=y", "stages.length_filter.min_chars=7"])
    assert list(cfg.stages) == ["normalize", "length_filter"]
    assert cfg.stages.length_filter.min_chars == 7 and cfg.executor.name == "local"


def one_line_error(tmp_path, *args) -> str:
    result = thresher("curate", *args, check=False)
    assert result.returncode != 0
    return result.stderr.strip()


def test_cli_errors(tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"text": "hello"}])
    base = [f"input.paths=[{data}]", f"output.dir={tmp_path / 'o'}"]
    assert (
        one_line_error(tmp_path, f"output.dir={tmp_path / 'o'}")
        == "error: input.paths: required value is missing (set input.paths=...)"
    )
    assert (
        one_line_error(tmp_path, *base, "input.on_error=skip")
        == "error: input.on_error: 'skip' is not one of: quarantine, fail"
    )
    assert (
        one_line_error(tmp_path, *base, "stages.length_filter.min_chars=-3")
        == "error: stages.length_filter.min_chars: must be >= 0 and <= max_chars"
    )
    # Composition errors (Hydra's) are turned into one line with the valid choices too.
    assert one_line_error(tmp_path, *base, "pipeline=nope").startswith(
        "error: pipeline: 'nope' is not one of: best_of_n, clean"
    )
    assert (
        one_line_error(tmp_path, *base, "input.pathz=[x]")
        == "error: input.pathz: unknown option; valid: paths, format, records, fields, strip_template, text_field, "
        "id_field, text_unit, include, columns, source, on_error, max_quarantine_frac, max_doc_mb, max_inflate_ratio, "
        "split_mb, warc, table"
    )
    assert (
        one_line_error(tmp_path, *base, "stages.length_filter.min_char=3")
        == "error: stages.length_filter.min_char: unknown option; valid: min_chars, max_chars"
    )
    assert one_line_error(tmp_path, *base, "executor.workers=two").startswith("error: executor.workers: ")
    assert not (tmp_path / "o").exists()  # nothing was read or written


def test_a_stage_consuming_its_rows_must_be_last():
    stages = {
        "tok": {"_target_": "curate.stages.tokens.TrainTokenizer"},
        "after": {"_target_": "curate.stages.clean.LengthFilter"},
    }
    with pytest.raises(
        ConfigError,
        match=r"stages.tok: consumes its rows .* must be the recipe's last stage; "
        r"stages after it: after",
    ):
        build_pipeline(stages, KINDS["documents"], "documents")
