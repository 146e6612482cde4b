"""Web-archive readers (WARC, WET, ARC) on real Common Crawl and wget files and on broken ones:
what becomes a row, what is passed over (counted), what is quarantined (file, offset, reason)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pytest
from conftest import curate, read_dataset
from crawl_fixtures import arc_bytes, article, http_response, response, warc_bytes, write

from curate.errors import InputError

RAW = ["~stages.normalize", "~stages.length_filter"]  # the rows as read
SENTENCES = [f"Sentence number {i} of a page that a crawler fetched and stored in an archive." for i in range(8)]


def rows(folder) -> list[dict]:
    return read_dataset(folder).to_pylist()


def quarantine(folder) -> list[dict]:
    table = read_dataset(folder, "quarantine")
    return table.to_pylist() if table is not None else []


def first_input(manifest, out):
    """The manifest's first input file record (from the dataset's inputs.arrow)."""
    return next(manifest.input_files(out))


def test_real_common_crawl_and_wget_warc_files(shared_data, tmp_path):
    files = [
        shared_data / "dolma_test_data" / "sample-0000.warc.gz",
        shared_data / "dolma_test_data" / "sample-0001.warc.gz",
        shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.gz",
    ]
    manifest = curate(files, tmp_path / "out", *RAW)
    assert manifest.rows == 22 + 15 + 1 and manifest.quarantined == 0  # every HTML response (dolma's README)
    inputs = {entry.path.rsplit("/", 1)[1]: entry for entry in manifest.input_files(tmp_path / "out")}
    assert inputs["sample-0000.warc.gz"].passed_over == {
        "record_type:warcinfo": 1,
        "record_type:request": 22,
        "record_type:metadata": 1,
        "record_type:resource": 2,
    }
    assert inputs["whirlwind.warc.gz"].passed_over == {
        "record_type:warcinfo": 1,
        "record_type:request": 1,
        "record_type:metadata": 1,
    }
    # hashed as read, though fastwarc did the reading
    for entry, path in zip(manifest.input_files(tmp_path / "out"), files):
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and entry.bytes == path.stat().st_size
    table = read_dataset(tmp_path / "out")
    for name in ("url", "date", "warc_record_id", "content_type", "charset"):
        assert table.schema.field(name).type == "string"
    found = rows(tmp_path / "out")
    cc = found[-1]
    assert cc["id"] == cc["warc_record_id"] == "<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"
    assert cc["url"] == "https://an.wikipedia.org/wiki/Escopete" and cc["date"] == "2024-05-18T01:58:10Z"
    assert (cc["content_type"], cc["charset"]) == ("text/html", "utf-8")
    assert json.loads(cc["meta"]) == {"http_status": 200, "offset": 1023}  # the gzip member's offset in the file
    assert cc["text"].lstrip().lower().startswith("<!doctype html")
    # wget's WARC 1.0 writes the target URI in angle brackets and stores chunked payloads as sent
    first = found[0]
    assert first["url"] == "https://www.semanticscholar.org/research/research-team"
    assert all(row["text"].lstrip()[:1] == "<" for row in found)  # no chunk-size lines left


def test_real_wet_file(shared_data, tmp_path):
    manifest = curate(shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.wet.gz", tmp_path / "out", *RAW)
    assert manifest.rows == 1 and first_input(manifest, tmp_path / "out").passed_over == {"record_type:warcinfo": 1}
    (row,) = rows(tmp_path / "out")
    assert row["content_type"] == "text/plain" and row["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert json.loads(row["meta"])["languages"] == "spa" and "Escopete" in row["text"]


@pytest.mark.parametrize("codec", ["plain", "gzip", "zstd", "lz4"])
def test_compressions_read_alike(tmp_path, codec):
    from fastwarc.stream_io import Lz4Writer, ZstdWriter

    pages = [response(f"https://example.com/{i}", article(f"Page {i}", SENTENCES).encode()) for i in range(5)]
    data = warc_bytes(pages, compress=codec == "gzip")
    if codec in ("zstd", "lz4"):
        buffer = io.BytesIO()
        writer = (ZstdWriter if codec == "zstd" else Lz4Writer)(buffer)
        writer.write(data)
        writer.close()
        data = buffer.getvalue()
    name = {"plain": "a.warc", "gzip": "a.warc.gz", "zstd": "a.warc.zst", "lz4": "a.warc.lz4"}[codec]
    manifest = curate(write(tmp_path / name, data), tmp_path / "out", *RAW)
    assert manifest.rows == 5 and manifest.quarantined == 0
    assert [row["url"] for row in rows(tmp_path / "out")] == [f"https://example.com/{i}" for i in range(5)]


def test_truncated_gzip_member_keeps_the_records_before_it(shared_data, tmp_path):
    data = (shared_data / "dolma_test_data" / "sample-0000.warc.gz").read_bytes()
    manifest = curate(write(tmp_path / "cut.warc.gz", data[:20000]), tmp_path / "out", *RAW)
    # response records start at bytes 865 and 15904: the second is cut inside its gzip member
    assert manifest.rows == 1 and manifest.quarantined == 1
    assert [json.loads(row["meta"])["offset"] for row in rows(tmp_path / "out")] == [865]
    (bad,) = quarantine(tmp_path / "out")
    assert bad["position"] == 15904 and bad["file"].endswith("cut.warc.gz")
    assert "record at byte 15904: clipped" in bad["error"]


def test_clipped_record_in_an_uncompressed_file(tmp_path):
    pages = [response(f"https://example.com/{i}", article(f"Page {i}", SENTENCES).encode()) for i in range(3)]
    data = warc_bytes(pages, compress=False)
    manifest = curate(write(tmp_path / "cut.warc", data[:-300]), tmp_path / "out", *RAW)
    assert manifest.rows == 2 and manifest.quarantined == 1
    (bad,) = quarantine(tmp_path / "out")
    assert "clipped" in bad["error"] and bad["raw"]  # what was there is kept


def test_corrupt_gzip_member_is_quarantined_and_reading_goes_on(shared_data, tmp_path):
    data = bytearray((shared_data / "dolma_test_data" / "sample-0000.warc.gz").read_bytes())
    data[40000] ^= 0xFF  # inside the gzip member of the response record at byte 39047
    manifest = curate(write(tmp_path / "bad.warc.gz", bytes(data)), tmp_path / "out", *RAW)
    (bad,) = quarantine(tmp_path / "out")
    assert manifest.quarantined == 1 and bad["position"] == 39047
    assert bad["error"].startswith("unreadable bytes from 39047 to byte 44266 (Gzip decompression error")
    assert bad["raw"] == bytes(data[39047:44266])  # the corrupt member, as it is in the file
    offsets = [json.loads(row["meta"])["offset"] for row in rows(tmp_path / "out")]
    assert manifest.rows == 21 and 39047 not in offsets and offsets[5] == 44678  # only that record is lost


def test_malformed_warc_header(tmp_path):
    pages = [response(f"https://example.com/{i}", article(f"Page {i}", SENTENCES).encode()) for i in range(4)]
    data = warc_bytes(pages, compress=False)
    cut = data.index(b"WARC/1.0", data.index(b"https://example.com/2"))  # a record after the third page's
    broken = data[:cut] + b"this is not a WARC header\r\n\r\n" + data[cut:]
    manifest = curate(write(tmp_path / "bad.warc", broken), tmp_path / "out", *RAW)
    # the garbage is quarantined and reading goes on at the next record: no page is lost
    assert manifest.rows == 4 and manifest.quarantined == 1
    (bad,) = quarantine(tmp_path / "out")
    assert "Invalid WARC header" in bad["error"] and b"this is not a WARC header" in bad["raw"]


def test_non_html_payloads(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00" * 40
    pages = [
        response("https://example.com/page", article("Page", SENTENCES).encode()),
        response("https://example.com/logo.png", png, content_type="image/png"),
        response("https://example.com/mislabelled", png, content_type="text/html"),
        response("https://example.com/missing", b"<html>gone</html>", status="404 Not Found"),
        response("https://example.com/empty", b"", content_type="text/html"),
        response("https://example.com/untyped", article("Untyped", SENTENCES).encode(), content_type=None),
    ]
    manifest = curate(write(tmp_path / "mixed.warc.gz", warc_bytes(pages)), tmp_path / "out", *RAW)
    assert [row["url"] for row in rows(tmp_path / "out")] == ["https://example.com/page", "https://example.com/untyped"]
    assert rows(tmp_path / "out")[1]["content_type"] == "text/html"  # sniffed
    skipped = first_input(manifest, tmp_path / "out").passed_over
    assert skipped["mime_type:image/png"] == 1 and skipped["http_status:404"] == 1 and skipped["empty_payload"] == 1
    (bad,) = quarantine(tmp_path / "out")
    assert "binary payload declared as text/html" in bad["error"]
    # accounting: every response record is a row, skipped or quarantined
    assert (
        manifest.rows + manifest.quarantined + sum(v for k, v in skipped.items() if k != "record_type:request") - 1 == 6
    )


def test_selection_options(tmp_path):
    pages = [
        response("https://example.com/ok", article("Ok", SENTENCES).encode()),
        response("https://example.com/missing", article("Missing", SENTENCES).encode(), status="404 Not Found"),
        response("https://example.com/plain", b"Just plain text, not a page at all.", content_type="text/plain"),
        ("resource", "https://example.com/note.txt", b"A resource record of plain text.", None, [], None),
    ]
    path = write(tmp_path / "a.warc.gz", warc_bytes(pages))
    curate(path, tmp_path / "default", *RAW)
    assert [r["url"] for r in rows(tmp_path / "default")] == ["https://example.com/ok"]
    curate(
        path,
        tmp_path / "wide",
        *RAW,
        "input.warc.record_types=[response,resource]",
        "input.warc.http_status=[]",
        "input.warc.mime_types=[text/*]",
    )
    assert [r["url"] for r in rows(tmp_path / "wide")] == [
        "https://example.com/ok",
        "https://example.com/missing",
        "https://example.com/plain",
        "https://example.com/note.txt",
    ]


def test_charsets(tmp_path):
    cafe = "<html><body><p>Café crème brûlée à la française, très élégant.</p></body></html>"
    japanese = "<html><body><p>日本語のテキストです。これはテストのページです。東京は日本の首都です。</p></body></html>"
    meta = '<html><head><meta charset="windows-1251"></head><body><p>Привет, мир! Как дела?</p></body></html>'
    pages = [
        # declared UTF-8, really cp1252: the declaration is wrong, detection decides
        response("https://example.com/wrong", cafe.encode("cp1252"), content_type="text/html; charset=utf-8"),
        # declared ISO-8859-1, really UTF-8: valid UTF-8 wins
        response("https://example.com/utf8", cafe.encode("utf-8"), content_type="text/html; charset=iso-8859-1"),
        # nothing declared: detected
        response("https://example.com/sjis", japanese.encode("shift_jis"), content_type="text/html"),
        # declared in <meta> only
        response("https://example.com/meta", meta.encode("cp1251"), content_type="text/html"),
        # a byte-order mark
        response("https://example.com/bom", cafe.encode("utf-16"), content_type="text/html"),
        # an unknown charset label
        response("https://example.com/bogus", cafe.encode("cp1252"), content_type="text/html; charset=x-bogus"),
    ]
    manifest = curate(write(tmp_path / "charsets.warc.gz", warc_bytes(pages)), tmp_path / "out", *RAW)
    assert manifest.rows == 6 and manifest.quarantined == 0
    found = {row["url"].rsplit("/", 1)[1]: row for row in rows(tmp_path / "out")}
    assert (found["wrong"]["text"], found["wrong"]["charset"]) == (cafe, "cp1252")
    assert (found["utf8"]["text"], found["utf8"]["charset"]) == (cafe, "utf-8")
    assert (found["sjis"]["text"], found["sjis"]["charset"]) == (japanese, "shift_jis")
    assert (found["meta"]["text"], found["meta"]["charset"]) == (meta, "cp1251")
    assert found["bom"]["text"] == cafe and found["bom"]["charset"].startswith("utf-16")
    assert found["bogus"]["text"] == cafe


def test_content_encodings(tmp_path):
    body = article("Compressed", SENTENCES).encode()
    pages = [
        response("https://example.com/gz", gzip.compress(body), extra_headers=[("Content-Encoding", "gzip")]),
        response("https://example.com/bad", b"\x1f\x8b\x08garbage", extra_headers=[("Content-Encoding", "gzip")]),
    ]
    manifest = curate(write(tmp_path / "enc.warc.gz", warc_bytes(pages)), tmp_path / "out", *RAW)
    assert [row["text"] for row in rows(tmp_path / "out")] == [body.decode()]
    (bad,) = quarantine(tmp_path / "out")
    assert manifest.quarantined == 1 and "content-encoding gzip" in bad["error"]


@pytest.mark.parametrize("compress", [False, True])
def test_arc_files(tmp_path, compress):
    page = article("An old page", SENTENCES).encode("latin-1")
    records = [
        ("http://www.example.com/", "text/html", http_response(page, "text/html; charset=iso-8859-1")),
        ("http://www.example.com/a.png", "image/png", http_response(b"\x89PNG\r\n\x1a\n....", "image/png")),
        ("http://www.example.com/b", "text/html", http_response(article("Another", SENTENCES).encode())),
    ]
    name = "old.arc.gz" if compress else "old.arc"
    manifest = curate(write(tmp_path / name, arc_bytes(records, compress)), tmp_path / "out", *RAW)
    found = rows(tmp_path / "out")
    assert [row["url"] for row in found] == ["http://www.example.com/", "http://www.example.com/b"]
    assert found[0]["date"] == "2005-06-14T07:01:44Z" and found[0]["text"] == page.decode("latin-1")
    # ARC has no record ids: the id is the file and the record's offset (deterministic)
    assert found[0]["id"] == f"{name}:{json.loads(found[0]['meta'])['offset']}" and found[0]["warc_record_id"] is None
    assert first_input(manifest, tmp_path / "out").passed_over == {"record_type:warcinfo": 1, "mime_type:image/png": 1}


def test_on_error_fail_names_file_and_offset(shared_data, tmp_path):
    data = (shared_data / "dolma_test_data" / "sample-0000.warc.gz").read_bytes()
    path = write(tmp_path / "cut.warc.gz", data[:20000])
    with pytest.raises(InputError, match=r"cut\.warc\.gz:15904: record at byte 15904: clipped"):
        curate(path, tmp_path / "out", *RAW, "input.on_error=fail")


def test_warc_inside_a_tar_archive(shared_data, tmp_path):
    import tarfile

    with tarfile.open(tmp_path / "crawl.tar", "w") as archive:
        archive.add(shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.gz", arcname="seg/whirlwind.warc.gz")
    manifest = curate(tmp_path / "crawl.tar", tmp_path / "out", *RAW)
    (row,) = rows(tmp_path / "out")
    assert manifest.rows == 1 and json.loads(row["meta"])["url"] == "https://an.wikipedia.org/wiki/Escopete"


def test_a_run_that_selects_nothing_fails(shared_data, tmp_path):
    # a WAT file (metadata records) named like a WARC file: nothing is a response
    wat = write(
        tmp_path / "meta.warc.gz", (shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.wat.gz").read_bytes()
    )
    with pytest.raises(
        InputError, match="no record was selected; passed over: record_type:warcinfo 1, record_type:metadata 1"
    ):
        curate(wat, tmp_path / "out", *RAW)


def test_records_the_crawler_truncated_are_kept_and_marked(tmp_path):
    page = response(
        "https://example.com/long", article("Long", SENTENCES).encode(), warc_headers={"WARC-Truncated": "length"}
    )
    manifest = curate(write(tmp_path / "a.warc.gz", warc_bytes([page])), tmp_path / "out", *RAW)
    (row,) = rows(tmp_path / "out")
    assert manifest.quarantined == 0 and json.loads(row["meta"])["warc_truncated"] == "length"


def test_truncated_wet_file(shared_data, tmp_path):
    data = (shared_data / "commoncrawl_whirlwind" / "whirlwind.warc.wet.gz").read_bytes()
    manifest = curate(
        write(tmp_path / "cut.warc.wet.gz", data[:-200]), tmp_path / "out", *RAW, "input.max_quarantine_frac=1"
    )
    (bad,) = quarantine(tmp_path / "out")
    assert manifest.rows == 0 and bad["position"] == 466 and "clipped" in bad["error"]


def test_clipped_arc_record(tmp_path):
    records = [
        ("http://www.example.com/a", "text/html", http_response(article("A", SENTENCES).encode())),
        ("http://www.example.com/b", "text/html", http_response(article("B", SENTENCES).encode())),
    ]
    data = arc_bytes(records)
    manifest = curate(write(tmp_path / "cut.arc", data[:-100]), tmp_path / "out", *RAW)
    assert [row["url"] for row in rows(tmp_path / "out")] == ["http://www.example.com/a"]
    (bad,) = quarantine(tmp_path / "out")
    assert manifest.quarantined == 1 and "clipped" in bad["error"]
