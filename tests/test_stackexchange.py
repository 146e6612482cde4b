"""Stack Exchange dumps → chat rows: the posts converter and the question/answer join."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import curate, read_dataset

SE = ("pipeline=stackexchange_qa", "input.records=stackexchange_posts")


def post(**attrs) -> str:
    body = attrs.pop("Body", "<p>text</p>")
    from xml.sax.saxutils import quoteattr

    return "<row " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items()) + f" Body={quoteattr(body)} />"


def dump(path, rows: list[str]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n")
    return path


def test_real_dumps_join_questions_with_their_best_answer(tmp_path, shared_data):
    paths = [shared_data / "stackexchange_beer/Posts.xml.gz", shared_data / "stackexchange_cardano/Posts.xml.gz"]
    # a glob keeps each dump's folder in its name: post ids repeat across sites, so they join per dump
    manifest = curate(
        str(shared_data / "stackexchange_*/Posts.xml.gz"), tmp_path / "out", *SE, "input.source=stackexchange"
    )
    stage = manifest.stages[0]
    assert manifest.rows_in == 2354 + 2630 and manifest.quarantined == 0
    # every post is accounted for: a pair (question), merged into one (its answer), or dropped with a reason
    assert stage.rows_in == stage.rows_out + sum(stage.dropped.values()) + stage.consumed
    assert stage.consumed == stage.rows_out == stage.details["pairs"] > 1000
    assert set(stage.dropped) <= {
        "not_best_answer",
        "not_a_question_or_answer",
        "no_answer",
        "answer_score_too_low",
        "closed_question",
        "question_score_too_low",
        "orphan_answer",
        "empty_question",
    }
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert manifest.kind == "chat" and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        meta = json.loads(row["meta"])
        assert meta["answer_score"] >= 1 and [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][0]["content"].startswith(meta["title"])
        assert "<p>" not in row["messages"][1]["content"]
    assert any("```" in r["messages"][1]["content"] for r in rows)  # code blocks survive the HTML conversion

    # the accepted answer wins when there is one: check a few against the raw dump
    raw = gzip.open(paths[0]).read().decode()
    q5 = next(r for r in rows if r["id"] == "stackexchange/stackexchange_beer/5")
    assert json.loads(q5["meta"])["answer_id"] == "19" and 'Id="5" PostTypeId="1" AcceptedAnswerId="19"' in raw
    assert json.loads(q5["meta"])["site"] == "stackexchange_beer"
    assert {json.loads(r["meta"])["site"] for r in rows} == {"stackexchange_beer", "stackexchange_cardano"}

    rejects = read_dataset(tmp_path / "out", "rejects").to_pylist()
    assert Counter(r["drop_reason"] for r in rejects) == Counter(stage.dropped)
    assert all(
        r["text"] is not None and r["post_type"] in (1, 2, 4, 5, 6, 7) for r in rejects
    )  # rejects keep the posts


def test_a_site_folder_reads_its_posts_and_is_named_by_the_folder(tmp_path, shared_data):
    """The recipe alone on a whole dump folder (Posts, Comments, Votes, Tags, Users): only Posts.xml
    is read, the other tables are listed as skipped, and the site is the folder's name."""
    folder = shared_data / "stackexchange_cardano"
    manifest = curate(folder, tmp_path / "out", "pipeline=stackexchange_qa")
    assert manifest.rows_in == 2630 and manifest.quarantined == 0 and manifest.rows > 700
    skipped = {Path(f.path).name: f.skipped for f in manifest.input_files(tmp_path / "out") if f.skipped}
    assert set(skipped) == {"Comments.xml.gz", "Votes.xml.gz", "Tags.xml.gz", "Users.xml.gz"}
    assert set(skipped.values()) == {"not matched by input.include (Posts.xml*)"}
    rows = read_dataset(tmp_path / "out").to_pylist()
    assert {json.loads(r["meta"])["site"] for r in rows} == {"stackexchange_cardano"}
    assert rows[0]["id"].startswith("stackexchange_cardano/stackexchange_cardano/")  # source / site / question

    # Site folders given one by one (or their files) join each within its own site.
    both = curate(
        [shared_data / "stackexchange_beer/Posts.xml.gz", folder], tmp_path / "both", "pipeline=stackexchange_qa"
    )
    sites = Counter(json.loads(r["meta"])["site"] for r in read_dataset(tmp_path / "both").to_pylist())
    assert set(sites) == {"stackexchange_beer", "stackexchange_cardano"}
    assert sites["stackexchange_cardano"] == manifest.rows and both.quarantined == 0


def test_two_dumps_with_the_same_name_are_refused(tmp_path):
    from curate.errors import ConfigError

    for site in ("x", "y"):
        dump(tmp_path / site / "data" / "Posts.xml", [post(Id=1, PostTypeId=1, Score=1, Title="Q")])
    paths = [tmp_path / "x" / "data" / "Posts.xml", tmp_path / "y" / "data" / "Posts.xml"]
    with pytest.raises(ConfigError, match="appears twice in 'data/Posts.xml'.*folder named after the site"):
        curate(paths, tmp_path / "out", *SE)


def test_join_per_dump_across_tasks_is_deterministic(tmp_path):
    dump(
        tmp_path / "in" / "a.example.com" / "Posts.xml",
        [
            post(Id=1, PostTypeId=1, Score=5, Title="How?", AcceptedAnswerId=3, ViewCount=10, AnswerCount=3),
            post(Id=2, PostTypeId=2, ParentId=1, Score=9, Body="<p>top voted</p>"),
            post(Id=3, PostTypeId=2, ParentId=1, Score=2, Body="<p>accepted</p><pre><code>x = 1\n</code></pre>"),
            post(Id=4, PostTypeId=2, ParentId=1, Score=1),
            post(Id=10, PostTypeId=1, Score=1, Title="No answers", ViewCount=1, AnswerCount=0),
        ],
    )
    dump(
        tmp_path / "in" / "b.example.com" / "Posts.xml",
        [  # another site: the same post ids, other posts
            post(Id=1, PostTypeId=1, Score=2, Title="Why?", ViewCount=3, AnswerCount=1),
            post(Id=2, PostTypeId=2, ParentId=1, Score=3, Body="<p>because</p>"),
            post(Id=5, PostTypeId=2, ParentId=99, Score=3),
            post(Id=6, PostTypeId=1, Score=2, Title="Only a bad answer", ViewCount=3, AnswerCount=1),
            post(Id=7, PostTypeId=2, ParentId=6, Score=-2),
            post(Id=8, PostTypeId=5, Score=0, Body=""),
        ],
    )
    options = ("executor.task_mb=0.000001", "input.source=site")
    one = curate(tmp_path / "in", tmp_path / "w1", *SE, "executor.workers=1", *options)
    two = curate(tmp_path / "in", tmp_path / "w2", *SE, "executor.workers=2", *options)
    assert one.tasks == 2 and [s.sha256 for s in one.shards] == [s.sha256 for s in two.shards]
    rows = {r["id"]: r for r in read_dataset(tmp_path / "w1").to_pylist()}
    assert set(rows) == {"site/a.example.com/1", "site/b.example.com/1"}
    assert rows["site/a.example.com/1"]["messages"][1]["content"] == "accepted\n\n```\nx = 1\n```"
    assert json.loads(rows["site/a.example.com/1"]["meta"])["accepted"] is True
    assert rows["site/b.example.com/1"]["messages"] == [
        {"role": "user", "content": "Why?\n\ntext"},
        {"role": "assistant", "content": "because"},
    ]
    assert one.stages[0].dropped == {
        "answer_score_too_low": 1,
        "no_answer": 1,
        "not_best_answer": 3,
        "orphan_answer": 1,
        "not_a_question_or_answer": 1,
    }
    assert one.stages[0].consumed == 2

    top = curate(tmp_path / "in", tmp_path / "top", *SE, *options, "stages.stackexchange_qa.prefer_accepted=false")
    answers = {r["id"]: r["messages"][1]["content"] for r in read_dataset(tmp_path / "top").to_pylist()}
    assert answers["site/a.example.com/1"] == "top voted" and top.stages[0].consumed == 2


def test_malformed_posts_are_quarantined(tmp_path):
    dump(
        tmp_path / "Posts.xml",
        [
            post(Id=1, PostTypeId=1, Score=5, Title="Q", ViewCount=3),
            post(Id=2, PostTypeId=2, ParentId=1, Score="lots"),
            post(Id=3, PostTypeId=2, Score=1),
            post(PostTypeId=2, ParentId=1, Score=1),
            post(Id=4, PostTypeId=2, ParentId=1, Score=1),
        ],
    )
    manifest = curate(tmp_path / "Posts.xml", tmp_path / "out", *SE, "input.max_quarantine_frac=1")
    quarantine = read_dataset(tmp_path / "out", "quarantine").to_pylist()
    assert [(q["position"], q["field"]) for q in quarantine] == [(2, "Score"), (3, "ParentId"), (4, "Id")]
    assert manifest.rows == 1 and manifest.rows_in == 5 and manifest.quarantined == 3
