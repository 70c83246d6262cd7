"""SIP messages (RFC 3261 §7) parsed from bytes into plain dataclasses.

`SipMessage.parse` accepts what real equipment sends: bare LF line ends, folded header lines, compact
header names, several values per line. What it cannot make sense of raises `SipParseError` with an exact
message; the caller records it as a parse problem with the frame number and carries on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

from sipwatch.sip.sdp import SessionDescription
from sipwatch.sip.text import head_end, to_int

T = TypeVar("T")

# RFC 3261 §7.3.3 and later RFCs' compact header names
COMPACT_HEADERS = {
    "i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding", "o": "event",
    "r": "refer-to", "b": "referred-by", "x": "session-expires", "u": "allow-events", "a": "accept-contact",
    "j": "reject-contact", "d": "request-disposition", "y": "identity", "n": "identity-info",
}

MAX_HEADER_LINES = 1000
MAX_HEAD_BYTES = 256 * 1024
MAX_BODY_BYTES = 1 << 20  # what a stream framer waits for at most (sip.framing.MAX_BUFFER)
# headers a message carries once (RFC 3261 §7.3.1: only comma-list headers may repeat)
_SINGLE_HEADERS = ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
_TOKEN_CHARS = frozenset("!%'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz~")

_LINE_SPLIT = re.compile(r"\r?\n")
_STATUS_LINE = re.compile(r"SIP/2\.0\s+(\d{3})(?:\s+(.*))?$", re.IGNORECASE)
_REQUEST_LINE = re.compile(r"([!%'*+\-.0-9A-Z_`a-z~]+)\s+(\S+)\s+SIP/2\.0\s*$", re.IGNORECASE)
_PARAM = re.compile(r";\s*([^\s;=,]+)(?:\s*=\s*(\"(?:[^\"\\]|\\.)*\"|[^;,\s]*))?")
# sent-protocol of a Via: LWS is allowed around each '/' (RFC 3261 §25.1 SLASH), see RFC 4475 §3.1.1.1
_VIA_PROTOCOL = re.compile(r"\s*([^\s/]+)\s*/\s*([^\s/]+)\s*/\s*([^\s/;]+)(?=\s|$)(.*)", re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SDP_PART = re.compile(rb"content-type[ \t]*:[ \t]*application/sdp", re.IGNORECASE)
# a method is a token (RFC 3261 §25.1); RTP, RTCP, STUN and TLS payloads never start with a token character
TOKEN_START = frozenset(b"!%'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_`abcdefghijklmnopqrstuvwxyz~")


class SipParseError(ValueError):
    """The bytes are not a SIP message sipwatch can use. The message says exactly why."""


class TruncatedMessage(SipParseError):
    """The message stops in the middle of its header section (cut by the capture's snap length)."""


def starts_like_sip(payload: bytes) -> bool:
    """Cheap test on the start line: is this a SIP request or response (on any port)?

    Mirrors what tshark's SIP heuristic looks for: `SIP/2.0 NNN` or `METHOD SP URI SP SIP/2.0`.
    """
    if not payload or payload[0] not in TOKEN_START:  # RTP, STUN, TLS never start with one
        return False
    if payload.startswith(b"SIP/2.0 "):
        return True
    eol = payload.find(b"\n", 0, 4096)
    if eol < 0:
        return False
    line = payload[:eol].rstrip()  # CR, and the trailing SPs of RFC 4475 §3.1.2.10
    # any version: "OPTIONS sip:... SIP/7.0" (RFC 4475 §3.1.2.16) is SIP that the parser then refuses by name
    return line.count(b" ") >= 2 and line[line.rfind(b" ") + 1 :].startswith(b"SIP/")


def split_header_values(value: str) -> list[str]:
    """Split a header value on commas that are not inside quotes or angle brackets (RFC 3261 §7.3.1)."""
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_params(text: str) -> dict[str, str]:
    """`;name=value;flag` parameters into a dict (names lowercased, quotes removed, flags map to '')."""
    params: dict[str, str] = {}
    if '"' not in text and "," not in text and " " not in text and "\t" not in text:
        # the common case, plain tokens: what the expression below finds, with str.split
        for part in text.split(";")[1:]:
            name, _, value = part.partition("=")
            if name and "=" not in value:
                params[name.lower()] = value
            elif name:
                break  # "a=b=c": let the expression decide
        else:
            return params
        params = {}
    for match in _PARAM.finditer(text):
        value = match.group(2) or ""
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        params[match.group(1).lower()] = value
    return params


@dataclass(frozen=True, slots=True)
class SipUri:
    """sip:, sips: or tel: URI, split into what an analyst looks at."""

    raw: str
    scheme: str
    user: str | None
    host: str | None
    port: int | None
    params: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, raw: str) -> SipUri:
        raw = raw.strip()
        scheme, sep, rest = raw.partition(":")
        if not sep:
            return cls(raw, "", None, raw or None, None)
        scheme = scheme.lower()
        user = None
        if scheme != "tel" and "@" in rest:
            # the user part may hold ';' and '?' (RFC 3261 §25.1 user-unreserved: sip:+1234;phone-context=x@gw)
            user, _, rest = rest.rpartition("@")
            user = user.split(":", 1)[0] or None  # drop a password
        head, _, params_text = rest.partition(";")
        head = head.split("?", 1)[0]
        params = parse_params(";" + params_text) if params_text else {}
        if scheme == "tel":
            return cls(raw, scheme, head or None, None, None, params)
        host, port = _split_hostport(head)
        return cls(raw, scheme, user, host, port, params)


def _split_hostport(hostport: str) -> tuple[str | None, int | None]:
    hostport = hostport.strip()
    if hostport.startswith("["):
        end = hostport.find("]")
        host = hostport[1:end] if end > 0 else hostport[1:]
        rest = hostport[end + 1 :] if end > 0 else ""
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    else:
        host, port_text = hostport, ""
    port = to_int(port_text)
    return host or None, port if port is not None and port < 65536 else None


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From, To or Contact value: optional display name, URI, header parameters (tag, expires...)."""

    display: str | None
    uri: SipUri
    params: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None

    @property
    def user(self) -> str | None:
        return self.uri.user

    @classmethod
    def parse(cls, raw: str) -> NameAddr:
        raw = raw.strip()
        lt = raw.find("<")
        if lt >= 0:
            gt = raw.find(">", lt)
            if gt < 0:
                raise SipParseError(f"unclosed '<' in address {raw[:80]!r}")
            display = raw[:lt].strip()
            if len(display) >= 2 and display[0] == display[-1] == '"':  # quoted-string (RFC 3261 §25.1)
                display = _QUOTED_PAIR.sub(r"\1", display[1:-1])
            display = display or None
            uri = raw[lt + 1 : gt]
            params = parse_params(raw[gt + 1 :])
        else:
            display = None
            uri, _, params_text = raw.partition(";")
            params = parse_params(";" + params_text) if params_text else {}
        return cls(display, SipUri.parse(uri), params)


def _cached(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse` remembering its last 4096 results for values of ordinary length (a dialog's messages repeat its
    From, To and Contact, a transaction's responses its Via): a hostile capture's megabyte-long values are
    parsed each time rather than kept. The results must be immutable; exceptions are never cached."""
    remembered = functools.lru_cache(maxsize=4096)(parse)

    def parse_value(value: str) -> T:
        return remembered(value) if len(value) <= _CACHED_LENGTH else parse(value)

    parse_value.cache_info = remembered.cache_info  # type: ignore[attr-defined]
    parse_value.cache_clear = remembered.cache_clear  # type: ignore[attr-defined]
    return parse_value


_CACHED_LENGTH = 512
_name_addr = _cached(NameAddr.parse)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop (RFC 3261 §20.42, with RFC 3581 rport)."""

    transport: str
    host: str | None
    port: int | None
    params: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch") or None

    @property
    def received(self) -> str | None:
        return self.params.get("received") or None

    @property
    def rport(self) -> int | None:
        return to_int(self.params.get("rport", ""))

    @property
    def sent_by(self) -> str:
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}" if self.port else host

    @classmethod
    def parse(cls, raw: str) -> Via:
        match = _VIA_PROTOCOL.match(raw)
        if not match or match.group(1).upper() != "SIP":
            protocol = raw.strip().partition(" ")[0]
            raise SipParseError(f"bad Via protocol {protocol[:40]!r}")
        hostport, _, params_text = match.group(4).strip().partition(";")
        host, port = _split_hostport(hostport.split("(")[0])
        return cls(match.group(3).upper(), host, port, parse_params(";" + params_text) if params_text else {})


_via = _cached(Via.parse)


@dataclass(frozen=True, slots=True)
class ReasonValue:
    """A Reason header value (RFC 3326): protocol SIP or Q.850, cause, text."""

    protocol: str
    cause: int | None
    text: str | None

    @classmethod
    def parse(cls, raw: str) -> ReasonValue:
        protocol, _, params_text = raw.partition(";")
        params = parse_params(";" + params_text)
        cause = params.get("cause", "")
        return cls(protocol.strip().upper(), to_int(cause), params.get("text") or None)

    def __str__(self) -> str:
        text = f' "{self.text}"' if self.text else ""
        return f"{self.protocol} cause={self.cause}{text}"


@dataclass(eq=False)  # no slots: cached_property needs an instance __dict__
class SipMessage:
    """One SIP request or response. Header names are stored lowercased in their long form."""

    method: str | None
    uri: str | None
    status: int | None
    reason_phrase: str | None
    headers: dict[str, list[str]]
    body: bytes
    content_length: int | None
    start_line: str
    call_id: str
    cseq: int
    cseq_method: str

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def label(self) -> str:
        """What a ladder diagram shows: the method, or code and phrase."""
        if self.method is not None:
            return self.method
        return f"{self.status} {self.reason_phrase or ''}".strip()

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = self.headers.get(COMPACT_HEADERS.get(name, name))
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, comma-separated values split (for Via, Contact, Reason...)."""
        out: list[str] = []
        name = name.lower()
        for line in self.headers.get(COMPACT_HEADERS.get(name, name), ()):
            out.extend(split_header_values(line))
        return out

    @cached_property
    def from_(self) -> NameAddr:
        return _name_addr(self.header("from") or "")

    @cached_property
    def to(self) -> NameAddr:
        return _name_addr(self.header("to") or "")

    @cached_property
    def vias(self) -> list[Via]:
        return [_via(v) for v in self.header_values("via")]

    @property
    def top_via(self) -> Via | None:
        vias = self.vias
        return vias[0] if vias else None

    @cached_property
    def contacts(self) -> list[NameAddr]:
        out = []
        for value in self.header_values("contact"):
            if value != "*":
                out.append(_name_addr(value))
        return out

    @cached_property
    def reasons(self) -> list[ReasonValue]:
        return [ReasonValue.parse(v) for v in self.header_values("reason")]

    @property
    def retry_after(self) -> int | None:
        value = self.header("retry-after")
        if not value:
            return None
        digits = value.strip().split(";", 1)[0].split("(", 1)[0].strip()
        return to_int(digits)

    @property
    def max_forwards(self) -> int | None:
        return to_int((self.header("max-forwards") or "").strip())

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent") or self.header("server")

    @property
    def content_type(self) -> str | None:
        value = self.header("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    @cached_property
    def sdp(self) -> SessionDescription | None:
        """The SDP body (also inside multipart/mixed), or None."""
        if not self.body:
            return None
        ctype = self.content_type
        body = self.body
        if ctype and ctype.startswith("multipart/"):
            body = _sdp_part(body)
            if body is None:
                return None
        elif ctype != "application/sdp":
            return None
        return SessionDescription.parse(body)

    @property
    def body_length_mismatch(self) -> int:
        """Captured body bytes minus declared Content-Length (0 when they agree or none declared)."""
        return 0 if self.content_length is None else self._captured_body - self.content_length

    _captured_body: int = 0
    warnings: list[str] = field(default_factory=list)  # oddities that did not stop the parse

    @classmethod
    def parse(cls, data: bytes) -> SipMessage:
        """Parse one complete message (a UDP payload, or one framed TCP message)."""
        try:
            return cls._parse(data)
        except (ValueError, IndexError) as exc:
            if isinstance(exc, SipParseError):
                raise
            raise SipParseError(f"unparsable value: {exc}") from exc

    @classmethod
    def _parse(cls, data: bytes) -> SipMessage:
        end, sep = head_end(data)
        if end < 0:
            head, body = data, b""
            last = head.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
            if b":" not in last or not head.endswith(b"\n"):
                raise TruncatedMessage(f"message ends inside its header section ({len(data)} bytes)")
        else:
            head, body = data[:end], data[end + sep :]
        if len(head) > MAX_HEAD_BYTES:
            raise SipParseError(f"header section of {len(head)} bytes exceeds {MAX_HEAD_BYTES}")
        text = head.decode("utf-8", "replace")
        lines = _LINE_SPLIT.split(text)
        start = lines[0].strip()
        method = uri = reason_phrase = None
        status = None
        match = _STATUS_LINE.match(start)
        if match:
            status = int(match.group(1))
            if not 100 <= status <= 699:
                raise SipParseError(f"status code {status} outside 100-699")
            reason_phrase = (match.group(2) or "").strip()
        else:
            match = _REQUEST_LINE.match(start)
            if not match:
                raise SipParseError(f"not a SIP start line: {start[:80]!r}")
            method, uri = match.group(1).upper(), match.group(2)
        if len(lines) > MAX_HEADER_LINES:
            raise SipParseError(f"{len(lines)} header lines exceed the limit of {MAX_HEADER_LINES}")
        headers: dict[str, list[str]] = {}
        last: list[str] | None = None
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in " \t":  # folded continuation (RFC 3261 §7.3.1)
                if last is not None:
                    last[-1] = f"{last[-1]} {line.strip()}" if last[-1] else line.strip()
                continue
            name, colon, value = line.partition(":")
            if not colon:
                raise SipParseError(f"header line without ':': {line[:80]!r}")
            name = name.strip().lower()
            name = COMPACT_HEADERS.get(name, name)
            last = headers.setdefault(name, [])
            last.append(value.strip())

        warnings: list[str] = []
        content_length = None
        declared = headers.get("content-length")
        if declared:
            value = declared[0].strip()
            content_length = to_int(value)
            if content_length is None:
                warnings.append(f"Content-Length {value[:20]!r} is not a non-negative number; ignored")
            elif content_length > MAX_BODY_BYTES:
                warnings.append(f"Content-Length {value[:20]} is larger than any SIP body ({MAX_BODY_BYTES} bytes)")
        captured = len(body)
        if content_length is not None and content_length < len(body):
            body = body[:content_length]

        call_id = (headers.get("call-id") or [""])[0]
        if not call_id:
            raise SipParseError("no Call-ID header")
        cseq_text = (headers.get("cseq") or [""])[0]
        number, _, cseq_method = cseq_text.partition(" ")
        cseq = to_int(number)
        if cseq is None or not cseq_method.strip():
            raise SipParseError(f"bad CSeq {cseq_text[:40]!r}")
        if "from" not in headers or "to" not in headers:
            raise SipParseError("missing From or To header")
        message = cls(
            method, uri, status, reason_phrase, headers, body, content_length, start,
            call_id, cseq, cseq_method.strip().upper(),
        )
        message._captured_body = captured
        warnings.extend(_anomalies(message, lines[0]))
        message.warnings = warnings
        # parse the addresses now, so a broken one is a parse error here and not a surprise later
        message.from_, message.to, message.vias  # noqa: B018
        return message


def _anomalies(msg: SipMessage, first_line: str) -> list[str]:
    """What RFC 3261's grammar forbids but sipwatch reads anyway (RFC 4475 §3.1.2, RFC 5118 §4.2): one warning
    each, so an analyst sees that the sender is broken while the call is still followed."""
    found: list[str] = []
    headers = msg.headers
    if msg.method is not None:
        uri = msg.uri or ""
        expected = f"{msg.start_line.split(None, 1)[0]} {uri} SIP/2.0"
        if first_line != expected and first_line.upper() != expected.upper():
            if first_line != first_line.rstrip():
                found.append("whitespace after SIP/2.0 at the end of the Request-Line (RFC 4475 §3.1.2.10)")
            else:
                found.append("Request-Line elements separated by more than one SP (RFC 4475 §3.1.2.9)")
        if uri.startswith("<"):
            found.append(f"Request-URI {uri[:60]!r} enclosed in <> (RFC 4475 §3.1.2.7)")
        elif uri[:4].lower() in ("sip:", "sips") and "?" in uri.partition("@")[2 if "@" in uri else 0]:
            found.append(f"Request-URI {uri[:60]!r} carries headers, which RFC 3261 §19.1.5 forbids there")
        if uri.count(":") >= 3 and "[" not in uri and uri[:4].lower() in ("sip:", "sips"):
            found.append(f"IPv6 address without [] in Request-URI {uri[:60]!r} (RFC 5118 §4.2)")
        if msg.cseq_method != msg.method:
            found.append(f"CSeq method {msg.cseq_method[:20]!r} does not match the request method {msg.method[:20]!r}"
                         " (RFC 3261 §8.1.1.5)")
    for name in _SINGLE_HEADERS:
        values = headers.get(name)
        if values is not None and len(values) > 1:
            shown = ", ".join(repr(v[:30]) for v in values[:3])
            why = ": the body length is ambiguous (RFC 4475 §3.3.9)" if name == "content-length" else ""
            found.append(f"{len(values)} {name} headers ({shown}){why}; the first is used")
    if msg.cseq >= 1 << 31:
        found.append(f"CSeq number {str(msg.cseq)[:24]} is not below 2**31 (RFC 3261 §8.1.1.5)")
    _scalar(found, headers, "max-forwards", 255)
    _scalar(found, headers, "expires", 0xFFFFFFFF)
    _scalar(found, headers, "retry-after", 0xFFFFFFFF)
    for warning in headers.get("warning", ()):
        code = warning.strip().partition(" ")[0]
        if len(code) != 3 or not code.isdigit():
            found.append(f"Warning code {code[:20]!r} is not 3 digits (RFC 3261 §20.43)")
    for name in ("from", "to", "contact"):
        lines = headers.get(name)
        if not lines:
            continue
        values = lines[:1] if name != "contact" else [v for line in lines for v in split_header_values(line)]
        for value in values:
            problem = _address_anomaly(value)
            if problem:
                found.append(f"{name.title()} {value[:60]!r}: {problem}")
    date = headers.get("date")
    if date and not date[0].rstrip().endswith("GMT"):
        found.append(f"Date {date[0][:40]!r} is not in GMT (RFC 3261 §20.17)")
    return found


def _scalar(found: list[str], headers: dict[str, list[str]], name: str, limit: int) -> None:
    values = headers.get(name)
    if not values:
        return
    digits = values[0].strip().split(";", 1)[0].split("(", 1)[0].strip()
    if digits.isascii() and digits.isdigit() and (len(digits) > 10 or int(digits) > limit):
        found.append(f"{name.title()} {digits[:24]} exceeds {limit}")


def _address_problem(value: str) -> str | None:
    """Why a From/To/Contact value breaks RFC 3261 §20.10's name-addr / addr-spec grammar, or None."""
    lt = value.find("<")
    if lt < 0:
        if value.strip() != "*" and ("?" in value or "," in value):
            return "a URI with '?' or ',' must be enclosed in <> (RFC 3261 §20)"
        return None
    display = value[:lt].strip()
    if display.count('"') and _QUOTED_PAIR.sub("", display).count('"') % 2:
        return "unterminated quoted string in the display name (RFC 4475 §3.1.2.6)"
    if display and display[0] != '"' and not all(ch in _TOKEN_CHARS or ch in " \t" for ch in display):
        return "unquoted display name with characters a token cannot hold (RFC 4475 §3.1.2.15)"
    gt = value.find(">", lt)
    if gt > lt and (value[lt + 1 : lt + 2].isspace() or value[gt - 1 : gt].isspace()):
        return "spaces inside <> around the URI (RFC 4475 §3.1.2.14)"
    return None


_address_anomaly = _cached(_address_problem)


def _sdp_part(body: bytes) -> bytes | None:
    marker = _SDP_PART.search(body)
    if marker is None:
        return None
    start = body.find(b"\r\n\r\n", marker.end())
    if start < 0:
        return None
    start += 4
    end = body.find(b"\r\n--", start)
    return body[start : end if end >= 0 else len(body)]
