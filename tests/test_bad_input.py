"""Bad input is quarantined with file, position, field and raw bytes (or stops the run with one clear
line under input.on_error=fail); rows in = out + dropped + quarantined always holds."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard
from conftest import curate, read_dataset, thresher, write_jsonl

from curate.errors import ConfigError, InputError

GOOD = [{"text": f"good document {i} with plenty of words in it"} for i in range(5)]
BAD_LINES = [
    b'{"text": "unterminated\n',  # malformed JSON
    b'{"text": "caf\xe9 latin-1"}\n',  # invalid UTF-8
    b'{"body": "no text field"}\n',  # missing text field
    b'{"text": 42}\n',  # non-string text
    b'{"text": "   \\n  "}\n',  # empty document
    b'["an", "array"]\n',  # not an object
]


def bad_file(tmp_path):
    return write_jsonl(tmp_path / "bad.jsonl", GOOD, BAD_LINES)


def test_each_bad_row_is_quarantined_with_file_line_field(tmp_path):
    manifest = curate(
        bad_file(tmp_path), tmp_path / "out", "stages.length_filter.min_chars=30", "input.max_quarantine_frac=0.6"
    )
    assert manifest.rows_in == 11 and manifest.quarantined == 6
    assert manifest.rows_in == manifest.rows + manifest.dropped + manifest.quarantined
    rows = read_dataset(tmp_path / "out", "quarantine").to_pylist()
    found = {(r["position"], r["field"], r["error"].split(":")[0]) for r in rows}
    assert found == {
        (6, None, "malformed JSON"),
        (7, None, "invalid UTF-8 at byte 13"),
        (8, "text", "missing"),
        (9, "text", "is int, expected a string"),
        (10, "text", "empty document"),
        (11, None, "line is a JSON list, expected an object"),
    }
    assert all(r["file"].endswith("bad.jsonl") for r in rows)
    assert rows[1]["raw"] == BAD_LINES[1]  # the raw bytes are kept: nothing is lost


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"text": "unterminated\n', "bad.jsonl:6: malformed JSON"),
        (b'{"body": "x"}\n', "bad.jsonl:6: field 'text': missing"),
        (b'{"text": 42}\n', "bad.jsonl:6: field 'text': is int, expected a string"),
    ],
)
def test_fail_mode_stops_at_first_bad_row_naming_file_line_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", GOOD, [line])
    with pytest.raises(InputError, match=message.replace("'", ".")):
        curate(path, tmp_path / "out", "input.on_error=fail")
    result = thresher(
        "curate", f"input.paths=[{path}]", f"output.dir={tmp_path / 'cli'}", "input.on_error=fail", check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_truncated_gzip_keeps_what_was_read_and_quarantines_the_tail(tmp_path):
    rows = [{"text": f"line {i} " + "words " * 20} for i in range(3000)]
    data = gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    manifest = curate(tmp_path / "cut.jsonl.gz", tmp_path / "out")
    assert 1000 < manifest.rows < 3000  # every complete line before the cut is kept
    kept = read_dataset(tmp_path / "out").column("text").to_pylist()
    assert kept == [r["text"].strip() for r in rows[: len(kept)]]
    partial, notice = read_dataset(tmp_path / "out", "quarantine").to_pylist()
    assert partial["error"].startswith("malformed JSON") and partial["position"] == len(kept) + 1
    assert json.dumps(rows[len(kept)]).encode().startswith(partial["raw"])  # the cut line's bytes are kept
    assert notice["error"].startswith("truncated or corrupt stream")
    assert manifest.rows_in == manifest.rows + manifest.dropped + manifest.quarantined


def test_truncated_zstd_is_detected(tmp_path):
    data = zstandard.ZstdCompressor().compress(b"".join(json.dumps(r).encode() + b"\n" for r in GOOD * 400))
    (tmp_path / "cut.jsonl.zst").write_bytes(data[: len(data) // 2])
    manifest = curate(tmp_path / "cut.jsonl.zst", tmp_path / "out", "input.max_quarantine_frac=1")
    assert manifest.quarantined >= 1
    errors = read_dataset(tmp_path / "out", "quarantine").column("error").to_pylist()
    assert any("ended before its end-of-stream marker" in e for e in errors)


def test_bad_utf8_source_file_and_binary_file_are_quarantined(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "ok.py").write_text("print('ok')\n")
    (tmp_path / "repo" / "latin.py").write_bytes(b"# caf\xe9\n")
    (tmp_path / "repo" / "blob.c").write_bytes(b"int x;\x00\x00\n")
    manifest = curate(
        tmp_path / "repo", tmp_path / "out", "stages.length_filter.min_chars=1", "input.max_quarantine_frac=1"
    )
    assert manifest.rows == 1 and manifest.quarantined == 2
    errors = sorted(read_dataset(tmp_path / "out", "quarantine").column("error").to_pylist())
    assert errors == ["binary file (contains NUL bytes)", "invalid UTF-8 at byte 5"]


def test_huge_document_is_quarantined(tmp_path):
    path = write_jsonl(tmp_path / "big.jsonl", [{"text": "x" * 3_000_000}, {"text": "small but fine " * 5}])
    manifest = curate(path, tmp_path / "out", "input.max_doc_mb=1")
    assert manifest.rows == 1 and manifest.quarantined == 1
    error = read_dataset(tmp_path / "out", "quarantine").column("error")[0].as_py()
    assert error.startswith("line of 3000013 bytes exceeds input.max_doc_mb (1048576 bytes)")


def test_nonexistent_path_is_an_error_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"input.paths\[1\]: '.*nope.jsonl' does not exist"):
        curate([bad_file(tmp_path), tmp_path / "nope.jsonl"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="matches no file"):
        curate(tmp_path / "*.parquet", tmp_path / "out")


def test_accounting_holds_per_stage_on_real_data(tmp_path, shared_data):
    manifest = curate(shared_data / "stackexchange_beer", tmp_path / "out", "input.text_field=Body")
    assert manifest.rows_in == 2354
    assert manifest.rows_in == manifest.rows + manifest.dropped + manifest.quarantined
    for stage in manifest.stages:
        assert stage.rows_in == stage.rows_out + sum(stage.dropped.values())
    rejects = read_dataset(tmp_path / "out", "rejects")
    assert rejects.num_rows == manifest.dropped
    assert set(rejects.column("drop_stage").to_pylist()) == {"length_filter"}
    assert set(rejects.column("drop_reason").to_pylist()) == {"too_short"}


DOLLY_STYLE = [{"prompt": f"Question {i}: what is {i} plus {i}?", "answer": f"It is {2 * i}."} for i in range(40)]


def test_a_run_that_quarantines_most_rows_fails_with_its_reasons_and_keeps_them(tmp_path):
    """A wrong input.text_field quarantines every row: the run fails (exit 2) with the share and the
    top reasons, each with an example row; what it wrote stays, and nothing looks finished."""
    path = write_jsonl(tmp_path / "dolly.jsonl", DOLLY_STYLE)
    out = tmp_path / "out"
    result = thresher("curate", f"input.paths=[{path}]", f"output.dir={out}", "executor.progress=false", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    first, *reasons = result.stderr.strip().splitlines()
    assert first.startswith("error: input: 40 of 40 rows read (100.0%) were quarantined")
    assert "input.max_quarantine_frac=0.5" in first
    assert reasons == [f"  40 × field 'text': missing (e.g. {path}:1: {json.dumps(DOLLY_STYLE[0])})"]
    assert not (out / "manifest.json").exists() and not (out / "report.html").exists()
    assert list((out / "quarantine").glob("*.arrow"))  # kept for inspection
    inspected = thresher("inspect", str(out), check=False)
    assert inspected.returncode == 0 and "unfinished run" in inspected.stdout
    assert "40 × field 'text': missing" in inspected.stdout

    # the same command fails again at once; a larger share accepted goes on from the finished tasks
    with pytest.raises(InputError, match="were quarantined"):
        curate(path, out)
    written = {p: p.stat().st_mtime_ns for p in (out / "quarantine").glob("*.arrow")}
    manifest = curate(path, out, "input.max_quarantine_frac=1")
    assert manifest.rows == 0 and manifest.quarantined == 40
    assert written and all(p.stat().st_mtime_ns == t for p, t in written.items())  # nothing was read again


def test_a_run_failed_on_its_input_is_replaced_by_one_with_other_options(tmp_path):
    path = write_jsonl(tmp_path / "dolly.jsonl", DOLLY_STYLE)
    with pytest.raises(InputError, match="were quarantined"):
        curate(path, tmp_path / "out")
    manifest = curate(path, tmp_path / "out", "input.text_field=answer")  # no output.overwrite needed
    assert manifest.rows == 0 and manifest.quarantined == 0 and manifest.rows_in == 40


def test_quarantine_share_under_the_limit_passes(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", GOOD, BAD_LINES[:5])  # 5 bad of 10: not more than half
    manifest = curate(path, tmp_path / "out", "stages.length_filter.min_chars=1")
    assert manifest.quarantined == 5 and manifest.rows == 5
    with pytest.raises(InputError, match=r"5 of 10 rows read \(50.0%\) were quarantined"):
        curate(path, tmp_path / "strict", "input.max_quarantine_frac=0.4")
    with pytest.raises(ConfigError, match="input.max_quarantine_frac: a share"):
        curate(path, tmp_path / "x", "input.max_quarantine_frac=1.5")


def test_no_row_read_is_a_failure_not_a_success(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"\n\n")
    with pytest.raises(InputError, match="no row was read from the 1 input file"):
        curate(tmp_path / "empty.jsonl", tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_summary_shows_the_top_drop_and_quarantine_reasons(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", GOOD + [{"text": "tiny"}] * 3, BAD_LINES[2:4])
    result = thresher(
        "curate", f"input.paths=[{path}]", f"output.dir={tmp_path / 'out'}", "stages.length_filter.min_chars=20"
    )
    assert "top drop reasons: length_filter: too_short 3" in result.stderr
    assert "top quarantine reasons" in result.stderr
    assert "1 × field 'text': missing (e.g. " in result.stderr and '{"body": "no text field"}' in result.stderr
    assert "done" in result.stderr.splitlines()[-1]
    everything_dropped = thresher(
        "curate", f"input.paths=[{path}]", f"output.dir={tmp_path / 'none'}", "stages.length_filter.min_chars=999"
    )
    assert "no rows kept" in everything_dropped.stderr and "· done" not in everything_dropped.stderr
