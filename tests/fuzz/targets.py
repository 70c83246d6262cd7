"""One function per stage, each fed arbitrary bytes: what it may raise is what the stage documents.

| target | stage | allowed errors |
|---|---|---|
| `frame` | FrameDecoder (every link type) then the core | none |
| `frames` | several frames through one decoder and core (fragments, TCP meet their twins) | none |
| `tcp` | TcpReassembler fed segments decoded from the input | none |
| `framer` | StreamFramer fed the input in chunks | none |
| `sip` | SipMessage.parse and every accessor | SipParseError (SdpParseError for `.sdp`) |
| `sdp` | SessionDescription.parse | SdpParseError |
| `rtp` | parse_rtp_header, looks_like_rtp, is_rtcp | none |
| `rtcp` | parse_compound and every accessor | ValueError |
| `media` | MediaTracker fed the input as RTP/RTCP of a signalled call | none |
| `capture` | the capture reader and the whole pipeline on the input as a file | CaptureError |
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Callable

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reassembly import MAX_PENDING_DATAGRAMS, TCP_MAX_PENDING_BYTES, TCP_MAX_STREAMS
from sipwatch.core.analyzer import Analyzer
from sipwatch.media.rtcp import parse_compound
from sipwatch.media.rtp import is_rtcp, looks_like_rtp, parse_rtp_header, rtp_header_problem
from sipwatch.model import CaptureError, Datagram, Transport
from sipwatch.pipeline import analyze_file
from sipwatch.sip.framing import MAX_BUFFER, StreamFramer
from sipwatch.sip.message import SipMessage, SipParseError
from sipwatch.sip.sdp import SdpParseError, SessionDescription

LINKTYPES = (0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 105)
FRAME_SEPARATOR = b"\xf0FRAME\x0f"  # splits one input into several frames (`frames`, `media`)


class FuzzFailure(AssertionError):
    """A target broke its contract: an undocumented exception, or state beyond its bound."""


def _internal_errors(problems) -> None:
    if problems.counts.get("internal_error"):
        raise FuzzFailure(f"internal_error recorded: {[str(p) for p in problems.kept if p.kind == 'internal_error']}")


def _bounded(decoder: FrameDecoder, analyzer: Analyzer) -> None:
    """The state the stages keep stays within the limits they document."""
    if len(decoder.fragments.pending) > MAX_PENDING_DATAGRAMS:
        raise FuzzFailure(f"{len(decoder.fragments.pending)} pending fragmented datagrams")
    if len(decoder.tcp.streams) > TCP_MAX_STREAMS:
        raise FuzzFailure(f"{len(decoder.tcp.streams)} TCP directions")
    for state in decoder.tcp.streams.values():
        if state.pending_bytes > TCP_MAX_PENDING_BYTES + 65535:
            raise FuzzFailure(f"{state.pending_bytes} bytes held behind a TCP hole")
    for framer in analyzer._framers.values():
        if len(framer.buffer) > MAX_BUFFER + 65535:
            raise FuzzFailure(f"{len(framer.buffer)} bytes buffered by a SIP stream framer")


class Session:
    """One decoder and core that live across many inputs, as in a long live capture: the memory test."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.analyzer = Analyzer(problems=self.decoder.problems)
        self.frame = 0
        self.ts = 1_700_000_000.0

    def feed(self, linktype: int, data: bytes) -> None:
        self.frame += 1
        self.ts += 0.01  # 1,000,000 inputs are 10,000 s of capture time: calls and fragments must expire
        datagram = self.decoder.decode(self.frame, self.ts, linktype, data)
        if datagram is not None:
            self.analyzer.feed(datagram)

    def check(self) -> None:
        _internal_errors(self.decoder.problems)
        _bounded(self.decoder, self.analyzer)


def session(data: bytes) -> None:
    """One input of the long-lived `session` target, replayed alone (regression cases)."""
    run = Session()
    if data:
        run.feed(LINKTYPES[data[0] % len(LINKTYPES)], data[1:])
    run.analyzer.close()
    run.check()


def frame(data: bytes) -> None:
    """First byte picks the link type, the rest is one frame."""
    if not data:
        return
    decoder = FrameDecoder()
    analyzer = Analyzer(problems=decoder.problems)
    datagram = decoder.decode(1, 1.0, LINKTYPES[data[0] % len(LINKTYPES)], data[1:])
    if datagram is not None:
        analyzer.feed(datagram)
    analyzer.close()
    decoder.fragments.close()
    decoder.tcp.close()
    _internal_errors(decoder.problems)


def frames(data: bytes) -> None:
    """First byte picks the link type; FRAME_SEPARATOR splits the rest into frames, one second apart."""
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    decoder = FrameDecoder()
    analyzer = Analyzer(problems=decoder.problems)
    for n, piece in enumerate(data[1:].split(FRAME_SEPARATOR), 1):
        datagram = decoder.decode(n, float(n), linktype, piece)
        if datagram is not None:
            analyzer.feed(datagram)
        _bounded(decoder, analyzer)
    analyzer.close()
    decoder.fragments.close()
    decoder.tcp.close()
    _internal_errors(decoder.problems)


_SEGMENT = struct.Struct("!IBH")


def tcp(data: bytes) -> None:
    """Segments as (seq, flags, length) headers followed by their payloads, on two directions."""
    decoder = FrameDecoder()
    reassembler = decoder.tcp
    offset = n = 0
    delivered = 0
    while offset + _SEGMENT.size <= len(data):
        seq, flags, length = _SEGMENT.unpack_from(data, offset)
        offset += _SEGMENT.size
        payload = data[offset : offset + (length & 0x7FF)]
        offset += len(payload)
        n += 1
        key = ("a", 1, "b", 2) if flags & 0x80 else ("b", 2, "a", 1)
        out = reassembler.segment(key, seq, flags & 0x3F, payload, n, float(n))
        if out is not None:
            if not isinstance(out, bytes) or not out:
                raise FuzzFailure(f"segment() returned {out!r}")
            delivered += len(out)
    if delivered > len(data):
        raise FuzzFailure(f"delivered {delivered} bytes from {len(data)} bytes of segments")
    for state in reassembler.streams.values():
        if state.pending_bytes != sum(len(p) for p in state.pending.values()):
            raise FuzzFailure("pending_bytes disagrees with the held segments")
        if state.pending_bytes > TCP_MAX_PENDING_BYTES + 2048:
            raise FuzzFailure(f"{state.pending_bytes} bytes held")
    reassembler.close()


def framer(data: bytes) -> None:
    """The input fed to one StreamFramer in chunks whose sizes come from the input's own bytes."""
    stream = StreamFramer()
    offset = 0
    total = 0
    step = (data[0] % 61 + 1) if data else 1
    while offset < len(data):
        chunk = data[offset : offset + step]
        offset += len(chunk)
        for message in stream.feed(chunk):
            total += len(message)
        if len(stream.buffer) > MAX_BUFFER + len(chunk):
            raise FuzzFailure(f"framer buffer grew to {len(stream.buffer)} bytes")
    if total + stream.skipped + len(stream.buffer) > len(data):
        raise FuzzFailure("framer delivered more bytes than it was fed")


def sip(data: bytes) -> None:
    try:
        message = SipMessage.parse(data)
    except SipParseError:
        return
    for accessor in (
        lambda m: m.from_, lambda m: m.to, lambda m: m.vias, lambda m: m.top_via, lambda m: m.reasons,
        lambda m: m.retry_after, lambda m: m.max_forwards, lambda m: m.user_agent, lambda m: m.content_type,
        lambda m: m.label, lambda m: m.body_length_mismatch, lambda m: [v.sent_by for v in m.vias],
        lambda m: [(v.branch, v.received, v.rport) for v in m.vias], lambda m: [str(r) for r in m.reasons],
        lambda m: (m.from_.tag, m.to.tag, m.from_.user, m.to.uri.host, m.to.uri.port),
    ):
        accessor(message)
    with contextlib.suppress(SipParseError):
        [c.uri.host for c in message.contacts]
    with contextlib.suppress(SdpParseError):
        message.sdp  # noqa: B018


def sdp(data: bytes) -> None:
    try:
        desc = SessionDescription.parse(data)
    except SdpParseError:
        return
    for media in desc.media:
        media.payload_types  # noqa: B018
        media.on_hold  # noqa: B018
        for pt in media.payload_types:
            media.codec(pt)


def rtp(data: bytes) -> None:
    header = parse_rtp_header(data)
    looks_like_rtp(data)
    is_rtcp(data)
    problem = rtp_header_problem(data)
    if (header is None) != (problem is not None):
        raise FuzzFailure(f"parse_rtp_header gave {header}, rtp_header_problem {problem!r}")
    if header is not None:
        pt, marker, seq, ts, ssrc, hlen, plen = header
        if not (12 <= hlen <= len(data) and 0 <= plen <= len(data) - hlen and 0 <= pt < 128):
            raise FuzzFailure(f"inconsistent RTP header {header} for {len(data)} bytes")


def rtcp(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except ValueError:
        return
    for packet in packets:
        for block in getattr(packet, "reports", ()):
            block.fraction_lost_pct, block.jitter_ms(8000), block.rtt(1.7e9), block.seq_cycles  # noqa: B018
        for metrics in getattr(packet, "voip_metrics", ()):
            metrics.loss_pct, metrics.mos_lq_value, metrics.r_factor_value, metrics.plc  # noqa: B018
        if hasattr(packet, "cnames"):
            packet.cnames  # noqa: B018


_CALL = (
    b"INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:b@10.0.0.2>\r\nCall-ID: fuzz\r\nCSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 75\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)


def media(data: bytes) -> None:
    """A signalled call, then each piece of the input as a datagram to its media port or its RTCP port."""
    analyzer = Analyzer()
    analyzer.feed(Datagram(1, 1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, Transport.UDP, _CALL))
    for n, piece in enumerate(data.split(FRAME_SEPARATOR), 2):
        port = 4001 if piece[:1] == b"\x81" else 4000
        analyzer.feed(Datagram(n, 1.0 + n * 0.02, "10.0.0.2", 4000 + (n & 1), "10.0.0.1", port, Transport.UDP, piece))
    analyzer.close()
    _internal_errors(analyzer.problems)


_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def capture(data: bytes, directory: str | None = None) -> None:
    """The input written as a file (a pcap header is added unless it starts with a capture magic) and analyzed."""
    if data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\xb2\xa1"):
        data = _PCAP_HEADER + data
    fd, path = tempfile.mkstemp(suffix=".pcap", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        try:
            analysis = analyze_file(path)
        except CaptureError:
            return
        _internal_errors(analysis.problems)
    finally:
        os.unlink(path)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frame": frame, "frames": frames, "tcp": tcp, "framer": framer, "sip": sip, "sdp": sdp, "rtp": rtp,
    "rtcp": rtcp, "media": media, "capture": capture, "session": session,
}
