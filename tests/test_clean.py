"""The `clean` recipe's stages, on hand-written text and on real data."""

from __future__ import annotations

import pyarrow as pa
from conftest import curate, read_dataset, thresher

from curate.stages.clean import LengthFilter, NormalizeText


def batch(*texts: str) -> pa.RecordBatch:
    return pa.record_batch({"id": [str(i) for i in range(len(texts))], "text": list(texts)})


def test_normalize_text():
    stage = NormalizeText()
    assert stage.clean("cafe\u0301") == "caf\u00e9"  # NFC composes
    assert stage.clean("a\r\nb\rc") == "a\nb\nc"
    assert stage.clean("tab\tkept\x07 bell gone") == "tab\tkept bell gone"
    assert stage.clean("trailing   \nspaces\t\n") == "trailing\nspaces"
    assert stage.clean("a\n\n\n\n\nb") == "a\n\n\nb"  # at most 2 blank lines
    assert NormalizeText(unicode_form="NFKC").clean("ﬁne ５") == "fine 5"
    assert NormalizeText(unicode_form="none", max_blank_lines=-1).clean("ﬁ\n\n\n\nx") == "ﬁ\n\n\n\nx"
    out = stage.process(batch(" x ", "y")).kept
    assert out.column("text").to_pylist() == ["x", "y"] and out.num_rows == 2


def test_length_filter_boundaries():
    stage = LengthFilter(min_chars=3, max_chars=5)
    result = stage.process(batch("ab", "abc", "abcde", "abcdef"))
    assert result.kept.column("text").to_pylist() == ["abc", "abcde"]
    assert result.kept.column("n_chars").to_pylist() == [3, 5]
    assert result.dropped.column("drop_reason").to_pylist() == ["too_short", "too_long"]
    assert result.dropped.column("n_chars").to_pylist() == [2, 6]  # the score stays with the rejected row


def test_clean_recipe_on_real_shared_data_and_inspect(tmp_path, shared_data):
    sources = {
        "c4": (shared_data / "c4_sample", "text"),
        "dolma": (shared_data / "dolma_test_data", "text"),
        "lima": (shared_data / "lima", "output"),
        "stackexchange": (shared_data / "stackexchange_cardano" / "Posts.xml.gz", "Body"),
    }
    for name, (path, field) in sources.items():
        out = tmp_path / name
        manifest = curate(path, out, f"input.text_field={field}", "executor.workers=2")
        assert manifest.rows > 0 and (out / "report.html").is_file()
        assert manifest.rows_in == manifest.rows + manifest.dropped + manifest.quarantined
        inspected = thresher("inspect", str(out), "--rows", "1").stdout
        assert f"rows {manifest.rows:,}" in inspected and "length_filter" in inspected
    dolma = curate(shared_data / "dolma_test_data", tmp_path / "dolma")
    read = {entry.path.rsplit("/", 1)[1]: entry for entry in dolma.input_files(tmp_path / "dolma")}
    assert dolma.inputs.skipped == 0 and read["sample-0000.warc.gz"].rows == 22  # WARC files are read too
    se = read_dataset(tmp_path / "stackexchange")
    assert se.num_rows > 2000 and '"PostTypeId"' in se.column("meta")[0].as_py()


def test_report_escapes_document_text(tmp_path):
    from conftest import write_jsonl

    evil = "<script>alert('x')</script> and enough other words to pass the length filter"
    write_jsonl(tmp_path / "a.jsonl", [{"text": evil}, {"text": "<b>short</b>"}])
    curate(tmp_path / "a.jsonl", tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "&lt;b&gt;short&lt;/b&gt;" in html  # the dropped sample too
    assert html.count("<svg") >= 2  # drops and the n_chars histogram plotted
    assert "too_short &lt; 50" in html  # the length threshold drawn on the histogram
    rebuilt = thresher("report", str(tmp_path / "out")).stdout.strip()
    assert rebuilt.endswith("report.html")
