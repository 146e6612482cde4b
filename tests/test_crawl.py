"""The crawl stages (extract, url_filter, pii) on real pages and planted cases, and the fineweb
recipes end to end on the shared WARC and WET files with exact accounting."""

from __future__ import annotations

import gzip
import json
import os
import threading

import psutil
import pytest
from conftest import curate, read_dataset
from crawl_fixtures import article, response, warc_bytes, write

from curate.stages.extract import Extract
from curate.stages.pii import PII
from curate.stages.url_filter import URLFilter
from tests.quality_helpers import batch_of

SENTENCES = [
    f"The committee met on day {i} to discuss the budget, and every member agreed that the plan needed more work."
    for i in range(12)
]


def processed(stage, texts: list[str], column: str = "text") -> tuple[list, list]:
    """(values of `column`, drop reasons) per text, in order; setup and teardown around it."""
    stage.setup()
    try:
        stage.start_task(0)
        result = stage.process(batch_of(texts))
    finally:
        stage.teardown()
    rows = {}
    for table in (result.kept, result.dropped):
        if table is not None:
            rows.update({row["id"]: row for row in table.to_pylist()})
    ordered = [rows[str(i)] for i in range(len(texts))]
    return [row[column] for row in ordered], [row.get("drop_reason") for row in ordered]


# --- extract -----------------------------------------------------------------------------------


def article_pages(shared_data, n: int | None = None) -> list[str]:
    paths = sorted((shared_data / "article_extraction" / "html").glob("*.html.gz"))[:n]
    return [gzip.decompress(path.read_bytes()).decode("utf-8") for path in paths]


@pytest.mark.parametrize("backend", ["trafilatura", "resiliparse"])
def test_extract_gives_what_the_library_gives_with_the_same_options(shared_data, backend):
    from trafilatura.meta import reset_caches

    pages = article_pages(shared_data)
    stage = Extract(backend=backend)
    texts, reasons = processed(stage, pages)
    reset_caches()  # trafilatura's deduplication remembers the pages it saw: start afresh, as a task does
    direct = [(text or "").strip() for text in map(stage.extractor(), pages)]
    assert texts == [text if reason is None else "" for text, reason in zip(direct, reasons)]
    assert reasons.count(None) >= 88  # real articles: at most a few pages give nothing


def test_extract_options_reach_the_library(shared_data):
    page = article_pages(shared_data, 1)[0]
    main, _ = processed(Extract(backend="resiliparse"), [page])
    everything, _ = processed(Extract(backend="resiliparse", main_content=False), [page])
    recall, _ = processed(Extract(favor_precision=False, favor_recall=True), [page])
    precision, _ = processed(Extract(), [page])
    assert len(everything[0]) > len(main[0]) and len(recall[0]) > len(precision[0])


def test_extract_drops_with_reasons_and_keeps_html_only_when_asked():
    good = article("A page", SENTENCES)
    pages = [good, "<html><body><script>var x = 1;</script></body></html>", ""]
    texts, reasons = processed(Extract(), pages)
    assert reasons == [None, "extract_empty", "extract_empty"] and "committee met on day 3" in texts[0]
    html, _ = processed(Extract(keep_html=True), pages, column="html")
    assert html == pages
    assert Extract(keep_html=True).provided_columns() == {"html": "string"} and Extract().provided_columns() == {}


def slow_page() -> str:
    """A page on which trafilatura's work grows faster than its size (its deduplication over many
    repeated paragraphs): about 14 s of CPU at 5 MB, 200 s at 20 MB."""
    paragraph = "<p>The quick brown fox jumps over the lazy dog, said the man. " * 3 + "</p>\n"
    return "<html><body><article>" + paragraph * (2_000_000 // len(paragraph)) + "</article></body></html>"


def test_a_slow_page_times_out_without_threads_or_processes_left():
    threads, children = threading.active_count(), psutil.Process(os.getpid()).children(recursive=True)
    good = article("A page", SENTENCES)
    texts, reasons = processed(Extract(cpu_timeout_s=0.2), [good, slow_page(), good])
    assert reasons == [None, "extract_timeout", None] and texts[0] == texts[2] != ""
    assert threading.active_count() == threads and psutil.Process(os.getpid()).children(recursive=True) == children
    import signal

    assert signal.getsignal(signal.SIGPROF) in (signal.SIG_DFL, None)  # teardown restored the handler
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)


def test_a_20_mb_page(shared_data):
    paragraphs = "".join(f"<p>{s}</p>" for s in SENTENCES)
    huge = "<html><body><article>" + paragraphs * (21_000_000 // len(paragraphs)) + "</article></body></html>"
    assert len(huge) > 20_000_000
    _, reasons = processed(Extract(), [huge])
    assert reasons == ["html_too_large"]  # over trafilatura's own limit: never parsed
    texts, reasons = processed(Extract(backend="resiliparse", max_html_chars=30_000_000), [huge])
    assert reasons == [None] and texts[0].count("committee met on day 7") > 10_000
    _, reasons = processed(Extract(max_html_chars=30_000_000, cpu_timeout_s=0.5), [huge])
    assert reasons == ["extract_timeout"]


def test_extract_options_are_checked():
    for options, message in [
        ({"backend": "boilerpipe"}, "backend"),
        ({"cpu_timeout_s": 0}, "cpu_timeout_s"),
        ({"favor_recall": True}, "favor_recall"),
    ]:
        with pytest.raises(ValueError, match=message):
            Extract(**options).validate()


# --- url_filter --------------------------------------------------------------------------------


@pytest.fixture
def block_lists(tmp_path):
    lists = {
        "blocked_domains_files": "# UT1-style list\nbadsite.com\nsub.example.org\ncasino.co.uk\n",
        "blocked_urls_files": "goodsite.com/forbidden/page\n",
        "banned_words_files": "porn\n#comment\n",
        "soft_banned_words_files": "sexy\nbabes\nhot\n",
        "banned_subwords_files": "xxxvideos\n",
    }
    options = {}
    for name, content in lists.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(content)
        options[name] = [str(path)]
    return options


def url_batch(urls):
    import pyarrow as pa

    return pa.RecordBatch.from_pydict(
        {"id": [str(i) for i in range(len(urls))], "text": ["x"] * len(urls), "url": urls}
    )


def test_url_filter_rules_on_planted_urls(block_lists):
    cases = {
        "https://badsite.com/page": "url_blocked_domain",
        "https://www.badsite.com/page": "url_blocked_domain",  # any host of a blocked registered domain
        "https://casino.co.uk/": "url_blocked_domain",  # registered domain per the public suffix list
        "https://a.sub.example.org/x": "url_blocked_subdomain",
        "https://www.example.org/x": None,  # only sub.example.org is listed
        "http://goodsite.com/forbidden/page/": "url_blocked_url",  # scheme and trailing slash ignored
        "https://goodsite.com/forbidden/other": None,
        "https://videos.com/PORN-clips": "url_banned_word",  # a word of the URL, any case
        "https://pornography-history.edu/": None,  # not a word of the URL (and no sub-word rule for it)
        "https://hot-babes.net/": "url_soft_banned_words",  # two soft words
        "https://hot-deals.net/": None,  # one soft word
        "https://example.com/free-xxx-videos": "url_banned_subword",  # 'xxxvideos' once punctuation is gone
        "https://notbadsite.com/": None,
        "not a url": None,
        "": None,
    }
    stage = URLFilter(**block_lists)
    stage.validate()
    stage.setup()
    try:
        result = stage.process(url_batch(list(cases)))
    finally:
        stage.teardown()
    reasons = {}
    for table in (result.kept, result.dropped):
        if table is not None:
            for row in table.to_pylist():
                reasons[row["url"]] = row.get("drop_reason")
    assert reasons == cases
    kept = {row["url"]: row for row in result.kept.to_pylist()}
    assert kept["https://www.example.org/x"]["url_domain"] == "example.org"
    assert kept["https://hot-deals.net/"]["url_soft_words"] == 1


def test_url_filter_lists_must_exist(tmp_path):
    with pytest.raises(ValueError, match="blocked_domains_files: no such file"):
        URLFilter(blocked_domains_files=[str(tmp_path / "nope.txt")]).validate()


def test_url_filter_threshold_is_a_score(block_lists):
    stage = URLFilter(**block_lists, soft_word_threshold=3)
    stage.setup()
    try:
        result = stage.process(url_batch(["https://hot-babes.net/", "https://hot-sexy-babes.net/"]))
    finally:
        stage.teardown()
    assert result.kept.column("url").to_pylist() == ["https://hot-babes.net/"]


# --- pii ---------------------------------------------------------------------------------------


def redact(texts: list[str], **options) -> list[str]:
    return processed(PII(**options), texts)[0]


def test_pii_emails_in_prose_and_code():
    prose = "Write to jane.doe@gmail.com or to SUPPORT@Example.co.uk for help."
    code = (
        "setup(\n    author_email='bob.smith@corp-mail.com',  # maintainer\n)\n"
        "@property\ndef weight(self):\n    return x@self.weight  # matrix product, not an address\n"
        "with torch.no_grad(): y = a@b.T\n"
        "git clone git@github.com:org/repo.git\n"
    )
    out_prose, out_code = redact([prose, code])
    assert "jane.doe@gmail.com" not in out_prose and "SUPPORT@Example.co.uk" not in out_prose
    assert out_prose.count("@example.") == 2
    assert "bob.smith@corp-mail.com" not in out_code
    for kept in ("@property", "x@self.weight", "a@b.T", "torch.no_grad"):
        assert kept in out_code
    assert "git@github.com" not in out_code  # an address, even in a clone command


def test_pii_public_ips_replaced_private_ones_kept():
    text = (
        "Servers: 8.8.8.8 and 142.250.72.14. Router 192.168.1.1, 10.0.0.7, localhost 127.0.0.1, "
        "link-local 169.254.10.2, docs 192.0.2.33, broadcast 255.255.255.255. "
        "Version v1.2.3.4, build 1.2.3.4.5, Python 3.11.4, section 4.2.1. Last: 203.0.113.9"
    )
    (out,) = redact([text])
    for public in ("8.8.8.8", "142.250.72.14"):
        assert public not in out
    for kept in ("192.168.1.1", "10.0.0.7", "127.0.0.1", "169.254.10.2", "192.0.2.33", "255.255.255.255"):
        assert kept in out
    for kept in ("v1.2.3.4", "1.2.3.4.5", "3.11.4", "4.2.1", "203.0.113.9"):  # versions; 203.0.113/24 is documentation
        assert kept in out
    (everything,) = redact([text], public_ips_only=False)
    assert "192.168.1.1" not in everything and "127.0.0.1" not in everything


def test_pii_ipv6_phones_and_replacements():
    text = "Reach 2001:4860:4860::8888 or fe80::1 or ::1; call +44 20 7946 0958 or (415) 555-2671 today."
    (default,) = redact([text])
    assert default == text  # FineWeb's defaults: e-mails and IPv4 only
    (out,) = redact([text], ipv6=True, phones=True, phone_replacements=["<PHONE>"], ip_replacements=["<IP>"])
    assert out == "Reach <IP> or fe80::1 or ::1; call <PHONE> or <PHONE> today."


def test_pii_replacements_are_deterministic_and_counted(tmp_path):
    texts = [f"Mail user{i}@gmail.com, the server is at 8.8.{i}.1 in the next building." for i in range(20)]
    first, second = redact(texts), redact(list(reversed(texts)))
    assert first == list(reversed(second))  # the same address gets the same replacement in any order
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    manifest = curate(path, tmp_path / "out", "~stages.normalize", "~stages.length_filter", "+stage@stages.pii=pii")
    stats = next(stage for stage in manifest.stages if stage.name == "pii").stats
    assert stats == {"emails": 20, "ips": 20, "phones": 0}


# --- the recipes, end to end -------------------------------------------------------------------


def check_accounting(manifest) -> None:
    expected = manifest.rows_in - manifest.quarantined
    for stage in manifest.stages:
        assert stage.rows_in == expected, stage.name
        assert stage.rows_in == stage.rows_out + sum(stage.dropped.values()), stage.name
        expected = stage.rows_out
    assert expected == manifest.rows


def test_fineweb_recipe_on_the_shared_warc_files(shared_data, tmp_path, block_lists):
    files = [
        shared_data / "dolma_test_data" / "sample-0000.warc.gz",
        shared_data / "dolma_test_data" / "sample-0001.warc.gz",
        shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.gz",
    ]
    domains = tmp_path / "domains.txt"
    domains.write_text("soldaini.net\n")  # planted: three of the pages
    manifest = curate(
        files,
        tmp_path / "out",
        "pipeline=fineweb",
        f"stages.url_filter.blocked_domains_files=[{domains}]",
        "stages.language.languages=[en,an]",  # the Common Crawl page is in Aragonese
    )
    assert manifest.rows_in == 38 and manifest.quarantined == 0
    check_accounting(manifest)
    stages = {stage.name: stage for stage in manifest.stages}
    assert [s.name for s in manifest.stages] == [
        "url_filter",
        "extract",
        "language",
        "gopher_repetition",
        "gopher_quality",
        "c4",
        "fineweb_quality",
        "minhash_dedup",
        "pii",
    ]
    assert stages["url_filter"].dropped == {"url_blocked_domain": 3}
    assert 0 < manifest.rows < 35
    out = read_dataset(tmp_path / "out")
    assert "html" not in out.schema.names and not any(
        t.lstrip().startswith("<") for t in out.column("text").to_pylist()
    )
    for name in ("url", "date", "warc_record_id", "url_domain", "lang", "dup_cluster"):
        assert name in out.schema.names
    rejects = read_dataset(tmp_path / "out", "rejects")
    assert rejects.num_rows == sum(sum(s.dropped.values()) for s in manifest.stages)
    assert set(rejects.column("drop_stage").to_pylist()) <= set(stages)


def test_fineweb_recipe_with_resiliparse_and_a_broken_file(shared_data, tmp_path):
    data = (shared_data / "dolma_test_data" / "sample-0000.warc.gz").read_bytes()
    broken = write(tmp_path / "in" / "cut.warc.gz", data[:20000])
    page = write(
        tmp_path / "in" / "pages.warc.gz",
        warc_bytes(
            [response(f"https://news.example.com/{i}", article(f"News {i}", SENTENCES).encode()) for i in range(3)]
        ),
    )
    manifest = curate([broken, page], tmp_path / "out", "pipeline=fineweb", "stages.extract.backend=resiliparse")
    assert manifest.rows_in == 1 + 1 + 3 and manifest.quarantined == 1
    check_accounting(manifest)


def test_fineweb_from_wet_recipe(shared_data, tmp_path):
    manifest = curate(
        shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.wet.gz",
        tmp_path / "out",
        "pipeline=fineweb_from_wet",
        "stages.language.languages=[]",
    )
    assert manifest.rows_in == 1 and "extract" not in [s.name for s in manifest.stages]
    check_accounting(manifest)


def test_a_page_text_depends_only_on_its_task(tmp_path):
    # trafilatura's deduplication remembers the segments a process saw (one seen more than twice
    # is left out): the stage clears that memory per task, so a file's pages extract the same
    # whether other tasks ran before them in the worker or not
    page = article("Same", SENTENCES).encode()
    first = write(
        tmp_path / "in" / "a.warc.gz", warc_bytes([response(f"https://a.example/{i}", page) for i in range(2)])
    )
    second = write(
        tmp_path / "in" / "b.warc.gz", warc_bytes([response(f"https://b.example/{i}", page) for i in range(2)])
    )
    options = ["pipeline=clean", "+stage@stages.extract=extract", "~stages.normalize", "executor.workers=1"]
    together = curate([first, second], tmp_path / "together", *options, "executor.task_mb=0.001")
    alone = curate([second], tmp_path / "alone", *options)
    assert together.tasks == 2 and together.rows == 4 and alone.rows == 2
    texts = read_dataset(tmp_path / "together").column("text").to_pylist()
    assert texts[2:] == read_dataset(tmp_path / "alone").column("text").to_pylist() == texts[:2]
