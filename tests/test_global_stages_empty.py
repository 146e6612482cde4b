"""Every global stage handles zero input rows: every row read quarantined, or an empty pool (every
row dropped before the stage). The registry of stage classes is parametrized over, so a new
global stage is covered without an entry here; only a stage that needs options beyond its
defaults, or reads other than documents, has one."""

from __future__ import annotations

import json

import pytest
from conftest import curate, read_dataset, write_jsonl

from curate.errors import ThresherError
from curate.stages import stage_classes
from curate.stages.base import GlobalStage

GLOBAL_STAGES = sorted(cls.config_name for cls in stage_classes() if issubclass(cls, GlobalStage))
POLICY = [
    "+llm@stages.{name}.llm=vllm",
    "stages.{name}.llm.base_url=http://127.0.0.1:9/v1",  # never called: there is nothing to send
    "stages.{name}.llm.model=policy",
    "stages.{name}.llm.mode=chat",
]
# What a stage reads (input.records) and the options it needs beyond its defaults.
SETUP: dict[str, tuple[str, list[str]]] = {
    "best_of_n": ("alpaca", [*POLICY, "stages.{name}.scorers=[{{name:reward,kind:reward_model,model:rm}}]"]),
    "lima_select": ("alpaca", ["stages.{name}.embedder=tfidf"]),
    "mix": ("documents", ["stages.{name}.weights=[rows:1]"]),
    "preference_pairs": ("dpo", []),
    "self_instruct": ("self_instruct_seeds", ["+llm@stages.{name}.llm=smollm2"]),
    "stackexchange_qa": ("stackexchange_posts", []),
    "top_fraction": ("documents", ["stages.{name}.column=score", "input.columns=[score:float64]"]),
}
# Stages whose product cannot be made from nothing (a tokenizer, a classifier, generated tasks):
# zero rows is the user's error, one line naming what is missing.
NEEDS_ROWS = {
    "mix": "has a weight but no rows in the input",
    "self_instruct": "no seed task in the input",
    "train_quality_classifier": "no row has a label",
    "train_tokenizer": "the sample is empty: no row reached the stage",
}
# One valid record per kind of input (the empty-pool runs drop them all before the stage).
RECORDS = {
    "documents": {"id": "r", "text": "rows of text " * 10, "source": "rows", "score": 1.0},
    "alpaca": {"instruction": "Name the rows of text.", "output": "rows of text " * 10},
    "dpo": {"prompt": "Name the rows of text.", "chosen": "rows of text " * 10, "rejected": "no rows"},
    "self_instruct_seeds": {
        "id": "seed_task_0",
        "name": "rows",
        "instruction": "Name the rows of text.",
        "instances": [{"input": "", "output": "rows of text " * 10}],
        "is_classification": False,
    },
    "stackexchange_posts": {
        "Id": "1",
        "PostTypeId": "1",
        "Score": "3",
        "Title": "Rows of text?",
        "Body": "<p>" + "rows of text " * 10 + "</p>",
        "ViewCount": "5",
        "AnswerCount": "0",
        "Tags": "<rows>",
    },
}
# What the empty-pool runs' decontaminate stage reads of each kind of row and of the records.
CHECKED = {
    "documents": ("[text]", "[text]"),
    "alpaca": ("[messages]", "[instruction,output]"),
    "dpo": ("[prompt,chosen,rejected]", "[prompt,chosen,rejected]"),
    "self_instruct_seeds": ("[messages]", "[instruction]"),
    "stackexchange_posts": ("[text]", "[Body]"),
}


def recipe(name: str) -> tuple[str, list[str]]:
    records, options = SETUP.get(name, ("documents", []))
    return records, ["pipeline=convert", f"+stage@stages.{name}={name}", *(o.format(name=name) for o in options)]


def run_empty(tmp_path, name: str, records: str, overrides: list[str]):
    """Run `overrides` on zero rows reaching stage `name`; check it completes with nothing, or fails
    with one line when its product needs rows."""
    out = tmp_path / "out"
    if name in NEEDS_ROWS:
        with pytest.raises(ThresherError, match=NEEDS_ROWS[name]) as failure:
            curate(tmp_path / "in.jsonl", out, f"input.records={records}", *overrides)
        assert "\n" not in str(failure.value)
        return None
    manifest = curate(tmp_path / "in.jsonl", out, f"input.records={records}", *overrides)
    stage = manifest.stage(name)
    assert stage.rows_in == 0 and stage.rows_out == 0 and not stage.dropped
    assert manifest.rows == 0 and read_dataset(out).num_rows == 0
    return manifest


@pytest.mark.parametrize("name", GLOBAL_STAGES)
def test_a_global_stage_given_only_quarantined_rows(tmp_path, name):
    records, overrides = recipe(name)
    write_jsonl(tmp_path / "in.jsonl", [{"unrelated": i} for i in range(3)])  # no field any converter reads
    manifest = run_empty(tmp_path, name, records, [*overrides, "input.max_quarantine_frac=1"])
    assert manifest is None or manifest.quarantined == manifest.rows_in == 3


@pytest.mark.parametrize("name", GLOBAL_STAGES)
def test_a_global_stage_given_an_empty_pool(tmp_path, name):
    records, overrides = recipe(name)
    record = RECORDS[records]
    path = write_jsonl(tmp_path / "in.jsonl", [record, {**record, **({"id": "r2"} if "id" in record else {})}])
    columns, fields = CHECKED[records]
    (tmp_path / "eval.jsonl").write_text(json.dumps(record) + "\n")  # the rows themselves: all contaminated
    before = [
        f"+stage@stages.{name}_pool=decontaminate",
        f"stages.{name}_pool.eval_paths=[{tmp_path / 'eval.jsonl'}]",
        f"stages.{name}_pool.eval_fields={fields}",
        f"stages.{name}_pool.columns={columns}",
        f"stages.{name}_pool.ngram=3",
    ]
    # the pool's filter first, then the stage: Hydra keeps the recipe's order, so rebuild it
    pipeline, stage, *options = overrides
    manifest = run_empty(tmp_path, name, records, [pipeline, *before, stage, *options])
    assert path.is_file()
    if manifest is not None:
        assert manifest.stage(f"{name}_pool").dropped == {"contaminated": 2}
