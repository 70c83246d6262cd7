"""The vocabulary every layer shares: datagrams, problems and the project's exceptions.

This module imports nothing from sipwatch. Capture adapters import only this module; the protocol
parsers, the core, the diagnosis and the reports build on it (imports flow one way).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Transport(StrEnum):
    UDP = "udp"
    TCP = "tcp"
    SCTP = "sctp"
    WS = "ws"  # SIP over WebSocket (RFC 7118), each message one WebSocket message
    TLS = "tls"  # SIP over TLS, as decrypted by the tshark engine


class Datagram(NamedTuple):
    """One transport payload, as decoded from a captured frame.

    For UDP it is the whole UDP payload. For TCP it is the next in-order bytes of one direction of a
    stream (reassembly has already removed retransmissions and reordering); SIP framing by
    Content-Length happens above, in the protocol layer.
    `ts` is the capture timestamp in seconds (float), `frame` the 1-based frame number in the capture.
    """

    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    transport: Transport
    payload: bytes


class Severity(StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something sipwatch could not read or had to guess, located in the capture.

    `kind` is a stable identifier (documented in docs/json.md); `frame` the frame number and `offset`
    a byte offset in the (decompressed) capture file, whichever is known.
    """

    kind: str
    message: str
    frame: int | None = None
    offset: int | None = None
    severity: Severity = Severity.WARNING

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": str(self.severity),
            "frame": self.frame,
            "offset": self.offset,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"frame {self.frame}" if self.frame is not None else ""
        if self.offset is not None:
            where = f"{where}, " if where else ""
            where += f"byte offset {self.offset}"
        return f"{where}: {self.message}" if where else self.message


class SipwatchError(Exception):
    """Base of every error sipwatch reports to a user. `exit_code` is documented in docs/cli.md."""

    exit_code = 1


class CaptureNotFound(SipwatchError):
    exit_code = 3


class CaptureError(SipwatchError):
    """The input cannot be read as a capture at all (empty, not a capture, damaged file header)."""

    exit_code = 4


class UnsupportedLinkType(CaptureError):
    exit_code = 5


class UsageError(SipwatchError):
    """A command-line argument sipwatch cannot make sense of."""

    exit_code = 2


class ProblemLog:
    """Problems of one analysis, bounded: the first `keep_per_kind` of each kind are kept in full,
    the rest only counted (a capture cut at 96 bytes would otherwise log every frame)."""

    def __init__(self, keep_per_kind: int = 50) -> None:
        self.keep_per_kind = keep_per_kind
        self.kept: list[Problem] = []
        self.counts: dict[str, int] = {}

    def add(self, problem: Problem) -> None:
        n = self.counts.get(problem.kind, 0) + 1
        self.counts[problem.kind] = n
        if n <= self.keep_per_kind:
            self.kept.append(problem)

    def report(
        self, kind: str, message: str, frame: int | None = None, offset: int | None = None,
        severity: Severity = Severity.WARNING,
    ) -> None:
        self.add(Problem(kind, message, frame=frame, offset=offset, severity=severity))

    def extend(self, problems) -> None:
        for problem in problems:
            self.add(problem)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def omitted(self) -> dict[str, int]:
        """Per kind, how many problems were counted but not kept."""
        return {k: n - self.keep_per_kind for k, n in self.counts.items() if n > self.keep_per_kind}


class Outcome(StrEnum):
    """How an INVITE-initiated call ended (docs/json.md defines each)."""

    ANSWERED = "answered"
    BUSY = "busy"
    CANCELLED = "cancelled"
    NO_ANSWER = "no_answer"
    TIMEOUT = "timeout"
    DECLINED = "declined"
    BLOCKED = "blocked"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    AUTH_FAILED = "auth_failed"
    CAPACITY = "capacity"
    SERVER_ERROR = "server_error"
    REDIRECTED = "redirected"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact a finding rests on: where in the capture (frame, time) and what was seen."""

    what: str
    value: str | None = None
    frame: int | None = None
    ts: float | None = None

    def to_dict(self) -> dict:
        return {"what": self.what, "value": self.value, "frame": self.frame, "ts": self.ts}


@dataclass(slots=True)
class Finding:
    """Something wrong (or worth knowing) about a call or the capture, decided by a detector.

    `kind` is a stable identifier (docs/findings.md); `detail` a one-line human explanation.
    """

    kind: str
    detail: str
    evidence: list[Evidence]
    ts: float | None = None
    data: dict | None = None  # detector-specific figures (loss %, silent side, gap seconds...)


def hostport(ip: str, port: int) -> str:
    """`ip:port`, with IPv6 addresses in brackets as in URIs (`[::1]:5060`)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
