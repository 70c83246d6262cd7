"""The result of analyzing one capture: what was read, what was found, what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sipwatch.core.analyzer import AnalyzerConfig, SipStats
from sipwatch.core.calls import Call
from sipwatch.core.media import RtpStream
from sipwatch.model import Finding, ProblemLog, Severity


@dataclass
class FileInfo:
    """One file of a capture read as one timeline: its frames are first_frame .. first_frame + packets - 1."""

    file: str
    format: str
    first_frame: int
    packets: int
    first: float | None
    last: float | None
    linktypes: list[int]
    bytes: int


@dataclass
class CaptureInfo:
    file: str
    format: str
    packets: int
    first: float | None
    last: float | None
    linktypes: list[int]
    bytes: int
    sctp_packets: int = 0
    tcp_retransmissions: int = 0
    reassembled_fragments: int = 0
    files: list[FileInfo] = field(default_factory=list)


@dataclass
class Analysis:
    capture: CaptureInfo
    stats: SipStats
    calls: Sequence[Call]  # a list; for a large capture, a sequence reading calls back from disk (sipwatch.spill)
    problems: ProblemLog
    config: AnalyzerConfig = field(default_factory=AnalyzerConfig)
    unattached_streams: list[RtpStream] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # about the capture as a whole (capture loss)

    @property
    def summaries(self) -> Sequence[Call]:
        """The calls for capture-wide figures (KPIs, capacity windows, patterns across calls): the calls
        themselves, or, when they are kept on disk, summaries without their messages, SDP and findings."""
        return getattr(self.calls, "summaries", self.calls)

    @property
    def damaged(self) -> bool:
        """The capture itself was cut or corrupt (the analysis covers what could be read)."""
        return any(p.severity is Severity.ERROR and p.kind in _DAMAGE_KINDS for p in self.problems.kept)


_DAMAGE_KINDS = frozenset(("truncated_capture", "corrupt_record", "corrupt_block"))


