"""The judge stage: an LLM judge (a loopback OpenAI-compatible server answering in the rubric's
format) rates chat responses on UltraFeedback's aspects or a user's rubric; unparsable answers
are counted and quarantined with their raw text; the scores rank preference pairs and enter
LIMA-style selection as typed columns."""

from __future__ import annotations

import gzip
import json
import statistics

import pytest
from alignment_server import AlignmentServer, rating
from conftest import curate, read_dataset

from curate.errors import ConfigError
from curate.sft.judge import ULTRAFEEDBACK_ASPECTS, parse_rating


@pytest.fixture
def server():
    s = AlignmentServer()
    yield s
    s.close()


def judge_llm(server: AlignmentServer) -> list[str]:
    return [
        "llm@stages.judge.llm=vllm",
        f"stages.judge.llm.base_url={server.url}",
        "stages.judge.llm.model=judge",
        "stages.judge.llm.mode=chat",
    ]


def alpaca_rows(tmp_path, shared_data, n: int = 16):
    """The first `n` alpaca_en_demo records, plus two whose answers the judge cannot rate."""
    with gzip.open(shared_data / "alpaca_en_demo" / "alpaca_en_demo.json.gz", "rt") as handle:
        records = json.load(handle)[:n]
    records += [
        {"instruction": "Name a colour.", "input": "", "output": "garbled colour zzkx"},
        {"instruction": "Count to three.", "input": "", "output": "one two garbled"},
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Rating: 4\nRationale: clear.", 4.0),
        ("**Rating:** 3/5\n**Rationale:** fine", 3.0),
        ("rating = 4.5", 4.5),
        ("Rating: 4\nRationale: ... on second thought, Rating: 2", None),  # two different ratings
        ("Rating: 7\nRationale: excellent", None),  # off the 1-5 scale
        ("Rating: N/A\nRationale: not applicable", None),
        ("I cannot rate this.", None),
        ("Rating: 5\nRationale: I would give it a Rating: 5 again.", 5.0),  # the same rating twice
    ],
)
def test_ratings_are_parsed_or_refused(answer, expected):
    assert parse_rating(answer, 1, 5) == expected


def test_judge_rates_every_aspect_and_quarantines_unparsable_answers(tmp_path, shared_data, server):
    manifest = curate(
        alpaca_rows(tmp_path, shared_data),
        tmp_path / "out",
        "pipeline=judge",
        "input.records=alpaca",
        *judge_llm(server),
    )
    stage = manifest.stages[0]
    assert stage.rows_in == 18 and stage.rows_out == 16 and stage.dropped == {"judge_unparsed": 2}
    assert stage.stats["judged"] == 18 and server.judge_calls == 18 * 4
    assert all(stage.stats[f"unparsed_{a}"] == 2 for a in ULTRAFEEDBACK_ASPECTS)
    assert stage.details["judge"]["aspects"] == list(ULTRAFEEDBACK_ASPECTS)

    kept = read_dataset(tmp_path / "out")
    for aspect in ULTRAFEEDBACK_ASPECTS:
        assert str(kept.schema.field(f"judge_{aspect}").type) == "float"
    for row in kept.to_pylist():
        response = row["messages"][-1]["content"]
        expected = {a: rating(a, response) for a in ULTRAFEEDBACK_ASPECTS}
        assert {a: row[f"judge_{a}"] for a in ULTRAFEEDBACK_ASPECTS} == expected
        assert row["judge_score"] == pytest.approx(sum(expected.values()) / 4)
        assert set(json.loads(row["judge_answers"])) == set(ULTRAFEEDBACK_ASPECTS)
    rejects = read_dataset(tmp_path / "out", "rejects").to_pylist()
    assert {r["drop_reason"] for r in rejects} == {"judge_unparsed"}
    for row in rejects:  # quarantined with the judge's raw answers, nothing guessed
        assert row["judge_score"] is None
        assert all("cannot evaluate" in answer for answer in json.loads(row["judge_answers"]).values())


def test_a_users_rubric_and_a_minimum_score(tmp_path, shared_data, server):
    rubrics = tmp_path / "my_rubrics"
    rubrics.mkdir()
    (rubrics / "clarity.j2").write_text(
        "Rate how clear the answer is, from 1 (muddled) to 5 (crystal clear).\n\n"
        "## Instruction\n{{ instruction }}\n\n## Response\n{{ response }}\n\n## Your evaluation\n"
        "Answer: Rating: <1-5>, then Rationale: <why>.\n"
    )
    manifest = curate(
        alpaca_rows(tmp_path, shared_data),
        tmp_path / "out",
        "pipeline=judge",
        "input.records=alpaca",
        *judge_llm(server),
        f"stages.judge.templates={rubrics}",
        "stages.judge.aspects=[clarity]",
        "stages.judge.min_score=5",
    )
    kept = read_dataset(tmp_path / "out")
    assert kept.column("judge_clarity").to_pylist() == kept.column("judge_score").to_pylist()
    assert set(kept.column("judge_clarity").to_pylist()) == {5.0}
    low = manifest.stages[0].dropped["judge_low_score"]
    assert low > 0 and manifest.stages[0].dropped["judge_unparsed"] == 2 and server.judge_calls == 18
    with pytest.raises(ConfigError, match=r"stages.judge.templates: .* \(missing: vagueness.j2\)"):
        curate(
            alpaca_rows(tmp_path, shared_data),
            tmp_path / "bad",
            "pipeline=judge",
            *judge_llm(server),
            f"stages.judge.templates={rubrics}",
            "stages.judge.aspects=[clarity,vagueness]",
        )


def predictions(tmp_path, shared_data, prompts: int = 10) -> list:
    """The first `prompts` answers of each of Self-Instruct's six models (one file per model, so
    each model is a source)."""
    files = []
    for source in sorted(shared_data.glob("self_instruct/*_predictions.jsonl.gz")):
        with gzip.open(source, "rt") as handle:
            lines = [next(handle) for _ in range(prompts)]
        target = tmp_path / "predictions" / source.name.replace(".gz", "")
        target.parent.mkdir(exist_ok=True)
        target.write_text("".join(lines))
        files.append(target)
    return files


def test_judge_scores_rank_preference_pairs(tmp_path, shared_data, server):
    manifest = curate(
        predictions(tmp_path, shared_data),
        tmp_path / "out",
        "pipeline=judge",
        "input.records=responses",
        *judge_llm(server),
        "+stage@stages.preference_pairs=preference_pairs",
        "stages.preference_pairs.rank_by=column",
        "stages.preference_pairs.score_column=judge_score",
        "stages.preference_pairs.pairing=best_vs_worst",
    )
    pairs = read_dataset(tmp_path / "out").to_pylist()
    assert 0 < len(pairs) <= 10 and manifest.stages[1].details["rank_by"] == "column"
    for pair in pairs:
        meta = json.loads(pair["meta"])
        judged = statistics.mean(rating(a, pair["chosen"][-1]["content"]) for a in ULTRAFEEDBACK_ASPECTS)
        assert meta["chosen_score"] == pytest.approx(judged)
        assert meta["chosen_score"] > meta["rejected_score"]


def test_judge_scores_enter_lima_selection(tmp_path, shared_data, server):
    manifest = curate(
        alpaca_rows(tmp_path, shared_data, n=30),
        tmp_path / "out",
        "pipeline=judge",
        "input.records=alpaca",
        *judge_llm(server),
        "+stage@stages.lima_select=lima_select",
        "stages.lima_select.n=6",
        "stages.lima_select.embedder=tfidf",
        "stages.lima_select.language=",
        "stages.lima_select.score_column=judge_score",
        *[f"stages.lima_select.weight_{c}=0" for c in ("votes", "length", "format")],
    )
    lima = manifest.stages[1]
    assert lima.rows_out == 6 and lima.details["pool_quality"]["column"] is not None
    chosen = read_dataset(tmp_path / "out").column("judge_score").to_pylist()
    pool = chosen + [r["judge_score"] for r in read_dataset(tmp_path / "out", "rejects").to_pylist()]
    pool = [score for score in pool if score is not None]  # the unparsed rows never reached selection
    assert min(chosen) >= statistics.median(pool)  # the judge's best-rated answers are chosen
