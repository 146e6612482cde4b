"""The HTML report answers a data engineer's questions: thresholds on the histograms, stages folded
and in one colour each, drops per source, input problems, random kept samples per source, the
rule behind each dropped example, conversations as turns, and what differs between datasets."""

from __future__ import annotations

import re

from conftest import curate, thresher, write_jsonl


def test_report_of_a_filter_recipe(tmp_path, shared_data):
    inputs = [shared_data / "c4_sample", shared_data / "dclm_quality_labels"]
    curate(inputs, tmp_path / "out", "pipeline=web_heuristics")
    html = (tmp_path / "out" / "report.html").read_text()
    # navigable: a table of contents, one folded section per stage, each stage in its own colour
    assert '<nav class="toc">' in html and 'href="#stage-gopher_repetition"' in html
    stages = re.findall(r'<details class="stage" id="stage-(\w+)" style="--c: (#[0-9a-f]{6})"', html)
    assert [s for s, _ in stages] == ["gopher_repetition", "gopher_quality", "c4", "fineweb_quality"]
    assert len({c for _, c in stages}) == 4
    # every score histogram of a thresholded rule shows the stage's threshold
    assert "gopher_dup_line_frac &gt; 0.3" in html and "gopher_short_doc &lt; 50" in html
    assert "fineweb_line_punct_ratio &lt; 0.12" in html
    # drops per source: both sources, with the stages that dropped their rows
    section = html.split('id="sources"')[1].split('id="input"')[0]
    assert "c4_sample" in section and "dclm_quality_labels" in section
    # a dropped example leads with its rule against the threshold
    assert re.search(r'<span class="because">gopher_words = \d+ &lt; 50</span>', html)
    # kept rows are drawn per source, at random but reproducibly
    kept = html.split('id="kept"')[1]
    assert "<b>c4_sample</b>" in kept and "<b>dclm_quality_labels</b>" in kept
    first_ids = re.findall(r'<div class="row"><code>([^<]+)</code>', kept)
    assert first_ids != ["c4_demo.jsonl.gz:1", "c4_demo.jsonl.gz:2", "c4_demo.jsonl.gz:3"]
    thresher("report", str(tmp_path / "out"))
    again = (tmp_path / "out" / "report.html").read_text().split('id="kept"')[1]
    assert re.findall(r'<div class="row"><code>([^<]+)</code>', again) == first_ids


def test_report_lists_input_problems(tmp_path):
    good = [{"text": f"document number {i} " + "with enough words to be kept " * 3} for i in range(20)]
    write_jsonl(tmp_path / "in" / "a.jsonl", good, [b'{"text": 12}\n', b'{"text": 13}\n', b"not json\n"])
    (tmp_path / "in" / "notes.docx").write_bytes(b"binary")
    curate(tmp_path / "in", tmp_path / "out", "pipeline=clean")
    html = (tmp_path / "out" / "report.html").read_text()
    problems = html.split('id="input"')[1].split('id="stages"')[0]
    assert "notes.docx" in problems and "unknown format" in problems
    assert re.search(r'<td class="n">2</td><td><code>text</code></td><td>is int, expected a string</td>', problems)
    assert "a.jsonl:" in problems


def test_report_renders_conversations(tmp_path, shared_data):
    curate(shared_data / "llamafactory_pref_demo", tmp_path / "pref", "pipeline=convert", "input.records=dpo")
    html = (tmp_path / "pref" / "report.html").read_text()
    assert '<div class="pair"><div><h4>chosen</h4>' in html and "<h4>rejected</h4>" in html
    assert '<div class="turn user"><b>user</b>' in html and '<div class="turn assistant">' in html
    curate(shared_data / "alpaca_en_demo", tmp_path / "chat", "pipeline=convert", "input.records=alpaca")
    html = (tmp_path / "chat" / "report.html").read_text()
    assert '<div class="turn user">' in html and '<div class="turn assistant">' in html
    assert "&#34;role&#34;" not in html and "'role':" not in html  # turns, not a dump of the list


def test_compare_lists_the_inputs_that_differ(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": "one document with enough words in it to keep " * 2}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": "another document with enough words in it to keep " * 2}])
    curate([a], tmp_path / "one", "pipeline=clean")
    curate([a, b], tmp_path / "two", "pipeline=clean")
    page = tmp_path / "cmp.html"
    thresher("report", str(tmp_path / "one"), "--compare", str(tmp_path / "two"), "--out", str(page))
    html = page.read_text()
    assert "Inputs that differ" in html
    differing = html.split("Inputs that differ")[1].split("</table>")[0]
    assert str(b) in differing and "not read" in differing and str(a) not in differing
