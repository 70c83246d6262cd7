"""Redaction for sharing: phone numbers, user parts, display names and IP addresses replaced by pseudonyms.

Every output is rendered from the report data (`report.data.analysis_to_dict`), so redacting that data once
redacts the JSON, CSV, Parquet, Markdown, HTML and terminal outputs alike, ladders included. One `Redactor`
gives a value the same pseudonym wherever it appears (`sip:+15551234567@...`, a From user `15551234567` and a
bare `+1 555 123 4567` in a header are one number), so calls can still be followed across a report.

Pseudonyms keep what a reader needs to diagnose: an address stays of its kind (a private address becomes
another private one, a public one an address of the benchmarking range 198.18.0.0/15, IPv6 likewise), so NAT
evidence still reads as NAT; loopback and unspecified addresses reveal nothing and are kept; ports are kept.
"""

from __future__ import annotations

import ipaddress
import re

from sipwatch.report.data import CallRows

_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])")
_SIP_USER = re.compile(r"(?i)\b(sips?:)([^@;>\s,\"<:]+)(?=@)")
_TEL = re.compile(r"(?i)\b(tel:)([+\d][\d\-.()]*)")
_DISPLAY_NAME = re.compile(r"\"([^\"]{1,128})\"(?=\s*<)")
_PHONE = re.compile(r"(?<![\w.+])(?:\+\d[\d \-]{5,18}\d|\d{7,15})(?![\w.])")

_V4_RANGES = [  # (kind, network to keep the address in, first pseudonym)
    ("private", ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_address("10.0.0.1")),
    ("private", ipaddress.ip_network("172.16.0.0/12"), ipaddress.ip_address("10.0.0.1")),
    ("private", ipaddress.ip_network("192.168.0.0/16"), ipaddress.ip_address("10.0.0.1")),
    ("cgnat", ipaddress.ip_network("100.64.0.0/10"), ipaddress.ip_address("100.64.0.1")),
    ("link_local", ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_address("169.254.0.1")),
]
_V4_PUBLIC = ipaddress.ip_address("198.18.0.1")
_V6_RANGES = [
    ("private", ipaddress.ip_network("fc00::/7"), ipaddress.ip_address("fd00::1")),
    ("link_local", ipaddress.ip_network("fe80::/10"), ipaddress.ip_address("fe80::1")),
]
_V6_PUBLIC = ipaddress.ip_address("2001:db8::1")
_USER_FIELDS = frozenset(("from_user", "to_user"))


class Redactor:
    """Consistent pseudonyms for one report."""

    def __init__(self) -> None:
        self._addresses: dict[str, str] = {}
        self._next_address: dict[str, int] = {}
        self._users: dict[str, str] = {}
        self._names: dict[str, str] = {}

    def address(self, text: str) -> str:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return text
        if ip.is_loopback or ip.is_unspecified:
            return text
        key = ip.compressed
        known = self._addresses.get(key)
        if known is None:
            known = self._addresses[key] = self._pseudonym(ip)
        return known

    def _pseudonym(self, ip) -> str:
        ranges, public = (_V4_RANGES, _V4_PUBLIC) if ip.version == 4 else (_V6_RANGES, _V6_PUBLIC)
        kind, first = f"public{ip.version}", public
        for name, network, start in ranges:
            if ip in network:
                kind, first = f"{name}{ip.version}", start
                break
        n = self._next_address.get(kind, 0)
        self._next_address[kind] = n + 1
        return str(first + n)

    def user(self, text: str) -> str:
        digits = re.sub(r"[\s\-.()+]", "", text)
        key = digits if digits.isdigit() else text.lower()
        known = self._users.get(key)
        if known is None:
            known = self._users[key] = f"user-{len(self._users) + 1}"
        return known

    def name(self, text: str) -> str:
        known = self._names.get(text)
        if known is None:
            known = self._names[text] = f"name-{len(self._names) + 1}"
        return known

    def text(self, value: str) -> str:
        """Free text (URIs, headers, details, addresses) with every number, user, name and address replaced."""
        value = _DISPLAY_NAME.sub(lambda m: f'"{self.name(m[1])}"', value)
        value = _SIP_USER.sub(lambda m: m[1] + self.user(m[2]), value)
        value = _TEL.sub(lambda m: m[1] + self.user(m[2]), value)
        value = _IPV4.sub(lambda m: self.address(m[0]), value)
        if ":" in value:
            value = _IPV6_CANDIDATE.sub(lambda m: self.address(m[0]) if m[0].count(":") >= 2 else m[0], value)
        return _PHONE.sub(lambda m: self.user(m[0]), value)

    def data(self, value, key: str | None = None):
        """A copy of report data with every string redacted."""
        if isinstance(value, str):
            return self.user(value) if key in _USER_FIELDS else self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v, key) for v in value]
        if isinstance(value, CallRows):  # rows built as they are read: redacted as they are read
            for row in value:  # first, in order, so that pseudonyms are numbered as for rows in memory
                self.data(row, key)
            return value.map(lambda row: self.data(row, key))
        return value


def redact(data: dict) -> dict:
    """The report data with its personal and network identifiers replaced (see the module docstring)."""
    return Redactor().data(data)
