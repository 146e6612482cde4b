"""URL filtering as RefinedWeb (Penedo et al. 2023, section G.1) and datatrove's URLFilter do it:
block lists of domains and URLs, banned and soft-banned words in the URL, banned sub-words."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pyarrow as pa

from curate.stages.rules import Rule, RuleFilter

NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def normalize_word(word: str) -> str:
    """A list entry or URL as matched: lower case, non-alphanumerics removed (datatrove's normalize)."""
    return NON_ALPHANUMERIC.sub("", word.lower())


def list_entries(paths: Iterable[str]) -> Iterator[str]:
    """Non-blank lines of the list files, without `#` comments (UT1's and datatrove's list format)."""
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    yield line


class HashSet:
    """A set of strings kept as their sorted 64-bit hashes (polars' string hash, computed in bulk
    when the lists are loaded and per document when they are looked up, in the same process): 8
    bytes an entry, so UT1's 4.5 million blocked domains take 36 MB per worker instead of ~400 MB
    as a Python set, and load in about a second (a false match needs a 64-bit collision: about 1
    in 4e12 lookups against 4.5 million entries)."""

    def __init__(self, hashes: np.ndarray):
        hashes = np.sort(hashes)
        # sort and drop repeats: numpy 2.4's np.unique takes minutes on millions of integers
        self.hashes = hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))] if len(hashes) else hashes

    @classmethod
    def of(cls, entries: list[str]) -> HashSet:
        return cls(pl.Series(entries, dtype=pl.String).hash(seed=0).to_numpy())

    @classmethod
    def of_domain_lists(cls, paths: list[str]) -> HashSet:
        """The lines of domain lists (lower case, without `#` comments), streamed by polars."""
        line = pl.col("line").str.strip_chars().str.to_lowercase().str.strip_chars_end(".")
        hashes = [np.zeros(0, dtype=np.uint64)]
        for path in paths:
            if Path(path).stat().st_size == 0:
                continue
            lines = pl.scan_csv(
                path,
                has_header=False,
                new_columns=["line"],
                separator="\x1f",  # no such character in a list: each line is one field
                quote_char=None,
                comment_prefix="#",
                schema_overrides={"line": pl.String},
            )
            hashed = lines.select(line).filter(pl.col("line") != "").select(pl.col("line").hash(seed=0))
            hashes.append(hashed.collect(engine="streaming")["line"].to_numpy())
        return cls(np.concatenate(hashes))

    def __len__(self) -> int:
        return len(self.hashes)

    def contains(self, entries: list[str]) -> np.ndarray:
        """Whether each entry is in the set (hashed together: a batch's URLs at once)."""
        if not entries or not len(self.hashes):
            return np.zeros(len(entries), dtype=bool)
        values = pl.Series(entries, dtype=pl.String).hash(seed=0).to_numpy()
        return self.hashes[np.searchsorted(self.hashes, values).clip(max=len(self.hashes) - 1)] == values


def host_of(url: str) -> str:
    try:
        return (urlsplit(url if "://" in url else f"http://{url}").hostname or "").rstrip(".")
    except ValueError:  # an unparsable URL (bad port, brackets): no host to match
        return ""


def url_key(url: str) -> str:
    """A URL as block lists write it: host (lower case) and path, no scheme, no trailing slash
    (UT1's `urls` list has no scheme, so a full URL would never match it)."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
    except ValueError:
        return url.lower()
    key = (parts.hostname or "").rstrip(".") + parts.path.rstrip("/")
    return f"{key}?{parts.query}" if parts.query else key


@dataclass
class URLFilter(RuleFilter):
    """Drop documents whose URL is on a block list or contains banned words (needs `url`).

    In this order (the first that applies): the URL's registered domain (per the public suffix
    list, through tldextract's bundled copy: nothing is downloaded) is in a domain list
    (`url_blocked_domain`); a host name between it and the full host is (`url_blocked_subdomain`);
    the URL is in a URL list, compared without scheme (`url_blocked_url`); a word of the URL
    (split at non-alphanumerics, lower case) is a banned word (`url_banned_word`); at least
    `soft_word_threshold` words are soft-banned words (`url_soft_banned_words`); the URL with
    non-alphanumerics removed contains a banned sub-word (`url_banned_subword`). List entries
    are normalised the same way; lines starting with `#` are comments.

    The lists are files given as options, read once per worker; none ships with Thresher. RefinedWeb
    used the UT1 blocklist (https://dsi.ut-capitole.fr/blacklists/: its `domains` and `urls` files
    fit `blocked_domains_files` / `blocked_urls_files`) and its own word lists; datatrove's
    package carries its versions of all five (`datatrove/assets`). Domain and URL lists are held
    as 64-bit hashes (36 MB and about a second to load for UT1's 4.5 million domains). Defaults: datatrove's
    URLFilter, `soft_word_threshold=2`. A document without a URL is kept. Score columns:
    url_domain (the registered domain), url_block (which list matched), url_soft_words.
    """

    config_name: ClassVar[str] = "url_filter"
    requires: ClassVar[tuple[str, ...]] = ("url",)
    stats_inputs: ClassVar[tuple[str, ...]] = ("url",)
    provides: ClassVar[dict[str, pa.DataType]] = {
        "url_domain": pa.string(),
        "url_block": pa.string(),
        "url_soft_words": pa.int32(),
    }

    blocked_domains_files: list[str] = field(default_factory=list)
    blocked_urls_files: list[str] = field(default_factory=list)
    banned_words_files: list[str] = field(default_factory=list)
    soft_banned_words_files: list[str] = field(default_factory=list)
    banned_subwords_files: list[str] = field(default_factory=list)
    soft_word_threshold: int = 2

    def validate(self) -> None:
        for name in (
            "blocked_domains_files",
            "blocked_urls_files",
            "banned_words_files",
            "soft_banned_words_files",
            "banned_subwords_files",
        ):
            for path in getattr(self, name):
                if not Path(path).is_file():
                    raise ValueError(f"{name}: no such file: {path}")
        if self.soft_word_threshold < 1:
            raise ValueError("soft_word_threshold: must be >= 1")

    def __post_init__(self) -> None:
        self._lists: dict[str, Any] = {}

    def setup(self) -> None:
        import tldextract

        words = lambda paths: {w for w in map(normalize_word, list_entries(paths)) if w}  # noqa: E731
        subwords = sorted(words(self.banned_subwords_files), key=len, reverse=True)
        self._lists = {
            "domains": HashSet.of_domain_lists(self.blocked_domains_files),
            "urls": HashSet.of([url_key(entry) for entry in list_entries(self.blocked_urls_files)]),
            "banned": words(self.banned_words_files),
            "soft": words(self.soft_banned_words_files),
            "subwords": re.compile("|".join(map(re.escape, subwords))) if subwords else None,
            # the bundled public suffix list; suffix_list_urls=() never downloads
            "tld": tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None),
        }
        self.stat_set(list_sizes={k: len(v) for k, v in self._lists.items() if k in ("domains", "urls")})

    def teardown(self) -> None:
        self._lists = {}

    def score(self, batch: pa.RecordBatch) -> dict[str, list]:
        """The batch's URLs are looked up in the domain and URL lists together (one hashing each),
        then each URL's words are checked."""
        lists = self._lists
        urls = [url or "" for url in batch.column("url").to_pylist()]
        hosts = [host_of(url) if url else "" for url in urls]
        domains = [
            (lists["tld"](url).top_domain_under_public_suffix or host) if url else "" for url, host in zip(urls, hosts)
        ]
        domain_listed = lists["domains"].contains(domains)
        hosts_between = [list(subdomains(host, domain)) for host, domain in zip(hosts, domains)]
        listed = iter(lists["domains"].contains([name for names in hosts_between for name in names]).tolist())
        subdomain_listed = [any([next(listed) for _ in names]) for names in hosts_between]
        url_listed = lists["urls"].contains([url_key(url) if url else "" for url in urls])
        rows = []
        for url, domain, *found in zip(urls, domains, domain_listed, subdomain_listed, url_listed):
            rows.append(self.url_stats(url, domain, *found) if url else (None, None, 0))
        return self.score_columns(rows)

    def url_stats(self, url: str, domain: str, domain_listed: bool, subdomain_listed: bool, url_listed: bool) -> tuple:
        lists = self._lists
        words = set(NON_ALPHANUMERIC.split(url.lower()))
        block = None
        if domain_listed and domain:
            block = "domain"
        elif subdomain_listed:
            block = "subdomain"
        elif url_listed:
            block = "url"
        elif not words.isdisjoint(lists["banned"]):
            block = "banned_word"
        elif lists["subwords"] is not None and lists["subwords"].search(normalize_word(url)):
            block = "banned_subword"
        return domain or None, block, len(words & lists["soft"])

    def rules(self) -> list[Rule]:
        return [
            Rule("url_blocked_domain", "url_block", "==", "domain"),
            Rule("url_blocked_subdomain", "url_block", "==", "subdomain"),
            Rule("url_blocked_url", "url_block", "==", "url"),
            Rule("url_banned_word", "url_block", "==", "banned_word"),
            Rule("url_soft_banned_words", "url_soft_words", ">=", self.soft_word_threshold),
            Rule("url_banned_subword", "url_block", "==", "banned_subword"),
        ]


def subdomains(host: str, domain: str) -> Iterator[str]:
    """Host names from `host` down to (not including) its registered `domain`: a.b.x.com, b.x.com."""
    if not domain or not host.endswith("." + domain):
        return
    labels = host[: -len(domain) - 1].split(".")
    for start in range(len(labels)):
        yield ".".join(labels[start:]) + "." + domain
