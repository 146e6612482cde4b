"""Redacting personal information in text: e-mail addresses, public IP addresses, phone numbers."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import xxhash

from curate.stages.base import MapStage

# An e-mail address: datatrove's PIIFormatter pattern (RFC 5322's dot-atom local part, a dotted
# host name or a bracketed IPv4 literal). Candidates are then checked (see `PII`).
EMAIL = re.compile(
    r"\b[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\])"
)
# A dotted-quad IPv4 address that is not part of a longer dotted number or word (v1.2.3.4, 1.2.3.4.5).
IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
)
# An IPv6 candidate (hex groups and colons, at least two colons); `ipaddress` decides.
IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


def stable_choice(options: list[str], match: str) -> str:
    """The same replacement for the same match, whatever the worker or order (datatrove cycles
    through its replacements per process, which depends on the order documents arrive in)."""
    return options[xxhash.xxh3_64_intdigest(match.encode()) % len(options)]


@dataclass
class PII(MapStage):
    """Replace e-mail addresses, public IP addresses and phone numbers in `text`.

    - E-mail addresses (`emails`): datatrove's pattern, kept only if the host ends in a public
      suffix (tldextract's bundled list, offline): so code such as `x@self.weight` or
      `@torch.no_grad` stays, while an address in a code comment or string is replaced.
    - IP addresses (`ips`): IPv4 (and IPv6 with `ipv6`) that Python's `ipaddress` calls global
      when `public_ips_only` (as FineWeb): private, loopback, link-local, reserved, multicast and
      documentation ranges (10.0.0.1, 127.0.0.1, 192.168.1.1, 192.0.2.7) stay; version strings
      attached to a word or a longer dotted number (v1.2.3.4, 1.2.3.4.5) are not addresses.
    - Phone numbers (`phones`): Google's libphonenumber (the `phonenumbers` package), numbers it
      finds VALID for `phone_region` (numbers written with a +country code are found anywhere).

    Each match is replaced by one of the replacement strings, chosen by a hash of the match (the
    same address always gets the same replacement: deterministic on any number of workers).
    Defaults: datatrove's PIIFormatter (FineWeb): e-mails and public IPv4 addresses, its
    replacement strings (example.com/org addresses; IPs that answered no ping when chosen).
    Phones and IPv6 are off by default, as in FineWeb. Counts per kind go to the manifest
    (`stats`: emails, ips, phones). A Presidio backend was left out: it needs a spaCy model
    downloaded at run time and costs milliseconds per document for these three patterns.
    """

    config_name: ClassVar[str] = "pii"
    requires: ClassVar[tuple[str, ...]] = ("text",)

    emails: bool = True
    ips: bool = True
    ipv6: bool = False
    public_ips_only: bool = True
    phones: bool = False
    phone_region: str = "US"
    email_replacements: list[str] = field(
        default_factory=lambda: ["email@example.com", "firstname.lastname@example.org"]
    )
    ip_replacements: list[str] = field(
        default_factory=lambda: [
            "22.214.171.124",
            "126.96.36.199",
            "188.8.131.52",
            "184.108.40.206",
            "220.127.116.11",
            "18.104.22.168",
        ]
    )
    phone_replacements: list[str] = field(default_factory=lambda: ["+1 555-0100"])

    def validate(self) -> None:
        for name in ("email_replacements", "ip_replacements", "phone_replacements"):
            if not getattr(self, name):
                raise ValueError(f"{name}: give at least one replacement string")
        if self.phones:
            import phonenumbers

            if self.phone_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
                raise ValueError(f"phone_region: '{self.phone_region}' is not a region libphonenumber knows")

    def __post_init__(self) -> None:
        self._suffixes: Any = None

    def setup(self) -> None:
        import tldextract

        self._suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    def teardown(self) -> None:
        self._suffixes = None

    def is_email(self, address: str) -> bool:
        host = address.rsplit("@", 1)[1]
        return host.startswith("[") or bool(self._suffixes(host).suffix)

    def is_ip(self, candidate: str) -> bool:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        return address.is_global or not self.public_ips_only

    def redact(self, text: str, counts: dict[str, int]) -> str:
        if self.emails and "@" in text:
            text = self.replace(EMAIL, text, self.is_email, self.email_replacements, "emails", counts)
        if self.ips and "." in text:
            text = self.replace(IPV4, text, self.is_ip, self.ip_replacements, "ips", counts)
        if self.ipv6 and ":" in text:
            text = self.replace(IPV6, text, self.is_ip, self.ip_replacements, "ips", counts)
        if self.phones:
            text = self.replace_phones(text, counts)
        return text

    @staticmethod
    def replace(
        pattern: re.Pattern[str],
        text: str,
        check: Callable[[str], bool],
        replacements: list[str],
        kind: str,
        counts: dict[str, int],
    ) -> str:
        def substitute(match: re.Match[str]) -> str:
            found = match.group(0)
            if not check(found):
                return found
            counts[kind] += 1
            return stable_choice(replacements, found)

        return pattern.sub(substitute, text)

    def replace_phones(self, text: str, counts: dict[str, int]) -> str:
        import phonenumbers

        pieces, end = [], 0
        for match in phonenumbers.PhoneNumberMatcher(text, self.phone_region.upper()):
            pieces += [text[end : match.start], stable_choice(self.phone_replacements, match.raw_string)]
            end = match.end
            counts["phones"] += 1
        return "".join(pieces) + text[end:] if pieces else text

    def transform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        counts = {"emails": 0, "ips": 0, "phones": 0}
        texts = [self.redact(text, counts) if text else text for text in batch.column("text").to_pylist()]
        for kind, count in counts.items():
            self.stat_update(kind, count)
        index = batch.schema.get_field_index("text")
        return batch.set_column(index, batch.schema.field(index), pa.array(texts, pa.string()))
