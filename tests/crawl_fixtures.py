"""Small web archives for the crawl tests, written with warcio's writer (and by hand where a file
must be broken or be ARC, which warcio cannot write)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PAGE = (
    "<html><head><title>{title}</title></head><body><nav>Home | About | Contact</nav>"
    "<article><h1>{title}</h1>{paragraphs}</article><footer>Copyright 2024</footer></body></html>"
)


def article(title: str, sentences: list[str]) -> str:
    return PAGE.format(title=title, paragraphs="".join(f"<p>{s}</p>" for s in sentences))


def response(
    url: str,
    body: bytes,
    content_type: str | None = "text/html; charset=utf-8",
    status: str = "200 OK",
    record_id: str | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
    warc_headers: dict[str, str] | None = None,
) -> tuple:
    headers = [("Content-Type", content_type)] if content_type else []
    return ("response", url, body, status, headers + (extra_headers or []), record_id, warc_headers or {})


def warc_bytes(records: list[tuple], compress: bool = True, with_requests: bool = True) -> bytes:
    """A WARC file: a warcinfo record, then for each response a request record and the response
    (as crawlers write them). Each record is its own gzip member when `compress`."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=compress)
    writer.write_record(writer.create_warcinfo_record("test.warc.gz", {"software": "thresher tests"}))
    for number, (rec_type, url, body, status, headers, record_id, *more) in enumerate(records):
        warc_headers = {"WARC-Record-ID": record_id or f"<urn:uuid:00000000-0000-0000-0000-{number:012d}>"}
        warc_headers["WARC-Date"] = "2024-05-18T01:58:10Z"
        warc_headers.update(more[0] if more else {})
        if with_requests and rec_type == "response":
            request = StatusAndHeaders("GET / HTTP/1.1", [("Host", "example.com")], is_http_request=True)
            writer.write_record(writer.create_warc_record(url, "request", http_headers=request))
        http = StatusAndHeaders(status, headers, protocol="HTTP/1.1") if status else None
        record = writer.create_warc_record(
            url,
            rec_type,
            payload=io.BytesIO(body),
            http_headers=http,
            warc_headers_dict=warc_headers,
            warc_content_type=None if http else "text/plain",
        )
        writer.write_record(record)
    return out.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def arc_bytes(records: list[tuple[str, str, bytes]], compress: bool = False) -> bytes:
    """An ARC (version 1) file: the version block, then `url ip date mime length` and the HTTP
    response for each (url, mime, http_response) record."""

    def block(url: str, date: str, mime: str, content: bytes) -> bytes:
        return f"{url} 192.0.2.1 {date} {mime} {len(content)}\n".encode() + content + b"\n"

    version = b"1 0 Thresher tests\nURL IP-address Archive-date Content-type Archive-length\n"
    blocks = [block("filedesc://test.arc", "20050614070159", "text/plain", version)]
    blocks += [block(url, "20050614070144", mime, content) for url, mime, content in records]
    if compress:
        return b"".join(gzip.compress(b, mtime=0) for b in blocks)
    return b"".join(blocks)


def http_response(body: bytes, content_type: str = "text/html") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
