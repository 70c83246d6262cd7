"""Hostile shapes: each must cost a bounded amount and leave a clear problem behind, never an exception.

Bounds are asserted on what sipwatch keeps (buffer sizes, pending entries, kept bytes), never on time.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import CAPTURES

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import MAX_SANE_CAPLEN, open_capture
from sipwatch.capture.reassembly import MAX_DATAGRAM, MAX_PENDING_DATAGRAMS
from sipwatch.core.analyzer import Analyzer
from sipwatch.media.rtp import parse_rtp_header, rtp_header_problem
from sipwatch.model import Datagram, Transport
from sipwatch.pipeline import analyze_file
from sipwatch.sip.framing import MAX_BUFFER, MAX_HEAD, StreamFramer
from sipwatch.sip.message import MAX_HEAD_BYTES, SipMessage, SipParseError

SEGMENT = 1400


def invite(call_id: str = "c1", content_length: bytes | None = b"0", body: bytes = b"", extra: bytes = b"") -> bytes:
    head = (
        b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK" + call_id.encode() + b"\r\n"
        b"From: <sip:alice@10.0.0.1>;tag=1\r\nTo: <sip:bob@10.0.0.2>\r\nCall-ID: " + call_id.encode() + b"\r\n"
        b"CSeq: 1 INVITE\r\n" + extra
    )
    if content_length is not None:
        head += b"Content-Length: " + content_length + b"\r\n"
    return head + b"\r\n" + body


class Stream:
    """One TCP direction into the sans-IO core, in segments; records the largest framer buffer seen."""

    def __init__(self) -> None:
        self.analyzer = Analyzer()
        self.frame = 0
        self.largest = 0
        self.messages: list[str] = []

    def send(self, data: bytes, segment: int = SEGMENT) -> None:
        for at in range(0, len(data), segment):
            self.frame += 1
            self.analyzer.feed(Datagram(self.frame, 1.0 + self.frame * 1e-4, "10.0.0.1", 40000, "10.0.0.2", 5060,
                                        Transport.TCP, data[at : at + segment]))
            for framer in self.analyzer._framers.values():
                self.largest = max(self.largest, len(framer.buffer))

    def close(self):
        self.skipped = sum(framer.skipped for framer in self.analyzer._framers.values())
        calls = [event.call for event in self.analyzer.close()]
        return calls, self.analyzer.problems


def udp(analyzer: Analyzer, frame: int, payload: bytes) -> None:
    analyzer.feed(Datagram(frame, float(frame), "10.0.0.1", 5060, "10.0.0.2", 5060, Transport.UDP, payload))


def messages_of(problems, kind: str) -> list[str]:
    return [p.message for p in problems.kept if p.kind == kind]


# --- Content-Length -----------------------------------------------------------------------------------------


def test_content_length_larger_than_the_datagram() -> None:
    analyzer = Analyzer()
    udp(analyzer, 1, invite(content_length=b"99999", body=b"v=0\r\n" * 20))
    (problem,) = [p for p in analyzer.problems.kept if p.kind == "content_length"]
    assert (problem.frame, problem.message) == (1, "Content-Length 99999 but only 100 body bytes captured")
    (call,) = [event.call for event in analyzer.close()]
    assert call.invite_frame == 1  # the message is still used


def test_content_length_larger_than_the_stream_waits_bounded_then_reports() -> None:
    stream = Stream()
    stream.send(invite(content_length=b"900000", body=b"x" * 100_000))
    assert stream.largest <= MAX_BUFFER
    calls, problems = stream.close()
    assert calls == [] and stream.analyzer.stats.messages == 0  # never complete: not a message
    assert messages_of(problems, "incomplete_message") == [
        f"TCP stream 10.0.0.1:40000 -> 10.0.0.2:5060 ended inside a SIP message ({len(invite(content_length=b'900000')) + 100_000} bytes unframed)"
    ]


def test_absurd_content_length_on_a_stream_skips_to_the_next_message() -> None:
    stream = Stream()
    stream.send(invite("c1", content_length=b"99999999999", body=b"v=0\r\n") + invite("c2"))
    assert stream.largest <= len(invite("c1")) + 64
    calls, problems = stream.close()
    assert sorted(c.call_id for c in calls) == ["c1", "c2"]  # the head of c1, and c2 framed after it
    assert "Content-Length 99999999999 is larger than any SIP body (1048576 bytes)" in messages_of(problems, "sip_warning")
    (resync,) = messages_of(problems, "stream_resync")
    assert resync.startswith("5 bytes of 10.0.0.1:40000 -> 10.0.0.2:5060 did not frame as SIP and were skipped")


@pytest.mark.parametrize("value", [b"-5", b"-999", b"five", b"0x10"])
def test_negative_or_non_numeric_content_length(value: bytes) -> None:
    warning = f"Content-Length {value.decode()!r} is not a non-negative number; ignored"
    message = SipMessage.parse(invite(content_length=value, body=b"hello"))  # a datagram: the body is what came
    assert message.warnings == [warning] and message.body == b"hello" and message.content_length is None
    # on a stream, where the message ends is unknowable: the next one is found by its start line, and the
    # body is never read as a message ("helloINVITE ..." before this was fixed)
    stream = Stream()
    stream.send(invite("c1", content_length=value, body=b"hello") + invite("c2"))
    calls, problems = stream.close()
    assert sorted(c.call_id for c in calls) == ["c1", "c2"]
    assert stream.analyzer.stats.requests == {"INVITE": 2}
    assert messages_of(problems, "sip_warning") == [warning]
    (resync,) = messages_of(problems, "stream_resync")
    assert resync.startswith("5 bytes of 10.0.0.1:40000 -> 10.0.0.2:5060 did not frame as SIP and were skipped")


# --- huge headers -------------------------------------------------------------------------------------------


def test_100k_headers() -> None:
    data = invite(extra=b"X-Flood: y\r\n" * 100_000)
    with pytest.raises(SipParseError, match=f"header section of {len(data) - 4} bytes exceeds {MAX_HEAD_BYTES}"):
        SipMessage.parse(data)
    # the most a datagram can hold: ~16,000 four-byte lines
    datagram = invite(extra=b"X:y\r\n" * 13_000)
    assert len(datagram) < 65507
    with pytest.raises(SipParseError, match="13007 header lines exceed the limit of 1000"):
        SipMessage.parse(datagram)
    analyzer = Analyzer()
    udp(analyzer, 7, datagram)
    (problem,) = analyzer.problems.kept
    assert (problem.kind, problem.frame) == ("sip_parse", 7)
    # on a stream: bounded by the framer's header limit, and the message after it is still read
    stream = Stream()
    stream.send(data + invite("c2"))
    assert stream.largest <= MAX_HEAD + SEGMENT
    calls, problems = stream.close()
    assert [c.call_id for c in calls] == ["c2"]
    assert stream.skipped == len(data)
    assert problems.counts["stream_resync"] >= 1


def test_10_mb_header_line() -> None:
    data = invite(extra=b"X-Long: " + b"a" * 10_000_000 + b"\r\n")
    with pytest.raises(SipParseError, match=f"exceeds {MAX_HEAD_BYTES}"):
        SipMessage.parse(data)
    stream = Stream()
    stream.send(data + invite("c2"), segment=64 * 1024)
    assert stream.largest <= MAX_HEAD + 64 * 1024
    calls, problems = stream.close()
    assert [c.call_id for c in calls] == ["c2"]
    assert stream.skipped == len(data)
    framer = StreamFramer()
    framer.feed(data[: MAX_HEAD + 10])
    assert framer.reason == f"a header section went on for over {MAX_HEAD} bytes without ending"


def test_tcp_stream_that_never_frames_a_message() -> None:
    stream = Stream()
    garbage = bytes(range(14, 256)) * 80_000  # 19 MB with no line end and no start line
    stream.send(b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: x\r\n" + garbage)
    assert stream.largest <= MAX_HEAD + SEGMENT
    calls, problems = stream.close()
    assert calls == [] and stream.analyzer.stats.messages == 0
    assert stream.skipped >= len(garbage) - MAX_HEAD  # everything but what was still buffered at the end
    assert problems.counts["incomplete_message"] == 1


def test_endless_start_lines_never_complete() -> None:
    framer = StreamFramer()
    for _ in range(2000):
        framer.feed(b"INVITE sip:x SIP/2.0\r\nVia: " + b"v" * 1000)
        assert len(framer.buffer) <= MAX_HEAD + 1100
    assert framer.skipped > 0


def test_many_connections_with_a_partial_message_each() -> None:
    analyzer = Analyzer()
    partial = b"INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n"
    for n in range(6000):
        analyzer.feed(Datagram(n + 1, 1.0 + n, "10.0.0.1", 1024 + n, "10.0.0.2", 5060, Transport.TCP, partial))
    assert len(analyzer._framers) <= 4096
    assert analyzer.problems.counts.get("incomplete_message", 0) >= 6000 - 4096


def test_out_of_order_bytes_are_capped_over_all_connections() -> None:
    decoder = FrameDecoder()
    for port in range(40):  # 40 connections, each holding 966,000 bytes behind a hole of 100 bytes
        key = ("10.0.0.1", 1024 + port, "10.0.0.2", 5060)
        decoder.tcp.segment(key, 1000, 0x18, b"INVITE sip:", 1, 1.0)
        for i in range(700):
            decoder.tcp.segment(key, 1111 + i * 1380, 0x18, b"y" * 1380, 2 + i, 1.0)
    held = sum(state.pending_bytes for state in decoder.tcp.streams.values())
    assert held <= 32 << 20
    assert decoder.problems.counts.get("tcp_gap", 0) >= 1


# --- IP fragments ---------------------------------------------------------------------------------------------


def ipv4_fragment(ident: int, offset: int, more: bool, payload: bytes, src: bytes = b"\x0a\x00\x00\x01") -> bytes:
    flags = (0x2000 if more else 0) | (offset // 8)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, 17, 0, src, b"\x0a\x00\x00\x02")
    return b"\x02" * 12 + b"\x08\x00" + ip + payload


def test_fragment_flood_is_capped() -> None:
    decoder = FrameDecoder()
    # first fragments that never complete, all different datagrams (5,000: past the cap, each one more costs a
    # scan of the pending table today, see the report)
    flood = MAX_PENDING_DATAGRAMS + 1000
    for n in range(flood):
        assert decoder.decode(n + 1, 1.0 + n * 1e-4, 1, ipv4_fragment(n, 0, True, b"\x13\xc4\x13\xc4" + b"x" * 1396)) is None
    assert len(decoder.fragments.pending) <= MAX_PENDING_DATAGRAMS
    assert decoder.problems.counts["incomplete_fragments"] == flood - MAX_PENDING_DATAGRAMS
    decoder.fragments.close()
    assert not decoder.fragments.pending
    assert decoder.problems.counts["incomplete_fragments"] == flood


def test_overlapping_fragments_keep_the_first_data() -> None:
    decoder = FrameDecoder()
    message = invite("frag").replace(b"TCP", b"UDP")
    udp_header = struct.pack("!HHHH", 5060, 5060, 8 + len(message), 0)
    whole = udp_header + message
    cut = 64
    assert decoder.decode(1, 1.0, 1, ipv4_fragment(7, 0, True, whole[:cut])) is None
    # the same offset again with other bytes, then an overlap reaching back into the first piece
    assert decoder.decode(2, 1.1, 1, ipv4_fragment(7, 0, True, b"Z" * cut)) is None
    datagram = decoder.decode(3, 1.2, 1, ipv4_fragment(7, cut - 16, False, b"Y" * 16 + whole[cut:]))
    assert datagram is not None and datagram.payload == message  # the first bytes placed win
    assert decoder.problems.counts["overlapping_fragment"] == 2
    assert all(p.frame is not None for p in decoder.problems.kept if p.message.startswith("fragment overlaps"))


def test_overlapping_fragment_flood_of_one_datagram_is_bounded() -> None:
    decoder = FrameDecoder()
    for n, offset in enumerate(range(0, 64_000, 8)):
        decoder.decode(n + 1, 1.0, 1, ipv4_fragment(9, offset, True, b"x" * 1400))
    held = sum(p.size for p in decoder.fragments.pending.values())
    assert held <= MAX_DATAGRAM
    assert decoder.problems.counts.get("overlapping_fragment", 0) >= 1


# --- RTP ------------------------------------------------------------------------------------------------------

_SDP = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def _rtp(seq: int, first: int = 0x80, size: int = 172) -> bytes:
    return struct.pack("!BBHII", first, 0, seq, seq * 160, 0x1234) + b"\xd5" * (size - 12)


def test_rtp_csrc_count_beyond_the_packet() -> None:
    short = _rtp(1, first=0x8F, size=20)  # 15 CSRCs announced: 72 bytes of header, 20 present
    assert parse_rtp_header(short) is None
    assert rtp_header_problem(short) == "RTP packet has truncated CSRC list: 15 CSRCs need 72 bytes, the packet has 20"
    analyzer = Analyzer()
    udp(analyzer, 1, invite("rtp", content_length=str(len(_SDP)).encode(), body=_SDP,
                            extra=b"Content-Type: application/sdp\r\n").replace(b"TCP", b"UDP"))
    for n in range(2, 202):  # a stream, every other packet with a CSRC count beyond its end
        packet = _rtp(n) if n % 2 else _rtp(n, first=0x8F, size=20)
        analyzer.feed(Datagram(n, 1.0 + n * 0.02, "10.0.0.2", 4002, "10.0.0.1", 4000, Transport.UDP, packet))
    (call,) = [event.call for event in analyzer.close()]
    (stream,) = call.streams
    assert stream.stats.packets == 100  # only the packets that parse are counted
    assert "internal_error" not in analyzer.problems.counts


def test_malformed_rtp_of_a_followed_stream_is_reported_and_not_kept() -> None:
    analyzer = Analyzer()
    udp(analyzer, 1, invite("rtp", content_length=str(len(_SDP)).encode(), body=_SDP,
                            extra=b"Content-Type: application/sdp\r\n").replace(b"TCP", b"UDP"))
    analyzer.feed(Datagram(2, 1.0, "10.0.0.2", 4002, "10.0.0.1", 4000, Transport.UDP, _rtp(2)))
    for n in range(3, 1003):  # 1400 bytes each, whose extension header claims 0xFFFF words: not RTP
        packet = _rtp(n, first=0x90, size=1400)
        packet = packet[:12] + b"\x00\x00\xff\xff" + packet[16:]
        assert rtp_header_problem(packet) == "RTP header extension of 65535 words runs past the end of the 1400-byte packet"
        analyzer.feed(Datagram(n, 1.0 + n * 0.02, "10.0.0.2", 4002, "10.0.0.1", 4000, Transport.UDP, packet))
    flows = list(analyzer.media._flows.values())
    kept = sum(len(p) for flow in flows for s in flow.streams.values() for p in s.recorder.odd.values())
    assert kept == 0
    assert analyzer.problems.counts.get("rtp_parse", 0) >= 1


def test_ssrc_flood_on_a_followed_flow_is_capped() -> None:
    analyzer = Analyzer()
    udp(analyzer, 1, invite("rtp", content_length=str(len(_SDP)).encode(), body=_SDP,
                            extra=b"Content-Type: application/sdp\r\n").replace(b"TCP", b"UDP"))
    for n in range(2, 20_002):  # a new SSRC in every packet
        packet = struct.pack("!BBHII", 0x80, 0, n, n * 160, n) + b"\xd5" * 160
        analyzer.feed(Datagram(n, 1.0 + n * 0.001, "10.0.0.2", 4002, "10.0.0.1", 4000, Transport.UDP, packet))
    assert sum(len(flow.streams) for flow in analyzer.media._flows.values()) <= 64


# --- capture records ------------------------------------------------------------------------------------------


def _pcap_header() -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


@pytest.mark.parametrize("caplen", [0xFFFFFFFF, 0xFFFFFFF0, 0x80000000, MAX_SANE_CAPLEN + 1])
def test_pcap_record_claiming_4_gb(tmp_path: Path, caplen: int) -> None:
    good = (CAPTURES / "answered_rtp.pcap").read_bytes()
    records = good[24:]
    # three real frames, then a record claiming `caplen` bytes in a file of a few hundred
    first_three = b""
    at = 0
    for _ in range(3):
        length = struct.unpack_from("<I", records, at + 8)[0]
        first_three += records[at : at + 16 + length]
        at += 16 + length
    path = tmp_path / "huge.pcap"
    path.write_bytes(good[:24] + first_three + struct.pack("<IIII", 1, 0, caplen, caplen) + b"\x00" * 64)
    capture = open_capture(str(path))
    frames = list(capture.frames())
    capture.close()
    assert len(frames) == 3 and capture.packets == 3
    (problem,) = capture.problems
    assert (problem.kind, problem.frame, problem.offset) == ("corrupt_record", 4, 24 + len(first_three))
    assert problem.message == f"record claims {caplen} bytes; the capture is corrupt from here on"
    assert capture.bytes_read == 24 + len(first_three)  # nothing past the bad record header was taken in
    analysis = analyze_file(str(path))
    assert analysis.damaged and analysis.capture.packets == 3


def test_pcapng_block_claiming_4_gb(tmp_path: Path) -> None:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 65535) + struct.pack("<I", 20)
    frame = b"\x02" * 12 + b"\x08\x00" + b"\x45" + b"\x00" * 19
    body = struct.pack("<IIIII", 0, 0, 0, len(frame), len(frame)) + frame + b"\x00" * 2
    epb = struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path = tmp_path / "huge.pcapng"
    path.write_bytes(shb + idb + epb + struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 64)
    analysis = analyze_file(str(path))
    assert analysis.capture.packets == 1 and analysis.damaged
    (problem,) = analysis.problems.kept
    assert (problem.kind, problem.frame, problem.offset) == ("corrupt_block", 2, len(shb + idb + epb))
    assert "block claims 4294967280 bytes" in problem.message


def test_a_flood_of_invented_methods_keeps_the_method_table_bounded() -> None:
    from sipwatch.core.analyzer import MAX_METHODS

    analyzer = Analyzer()
    for n in range(5000):
        request = invite(f"m{n}").replace(b"INVITE sip:", b"M%d sip:" % n, 1).replace(b"1 INVITE", b"1 M%d" % n)
        udp(analyzer, n + 1, request)
    requests = analyzer.stats.requests
    assert len(requests) == MAX_METHODS + 1  # the first 256 names, then "other"
    assert sum(requests.values()) == 5000 and requests["other"] == 5000 - MAX_METHODS


def test_a_short_body_is_reported_on_message_transports_too() -> None:
    """WebSocket, SCTP and TLS records carry whole messages: a body shorter than Content-Length is a finding
    there as on UDP (only TCP stream bytes are cut by the framer)."""
    analyzer = Analyzer()
    analyzer.feed(Datagram(1, 1.0, "10.0.0.1", 5060, "10.0.0.2", 5060, Transport.WS,
                           invite("ws1", content_length=b"100", body=b"v=0\r\n")))
    assert any("Content-Length 100" in m for m in messages_of(analyzer.problems, "content_length"))


def test_long_header_values_are_parsed_but_not_remembered() -> None:
    """From, To, Contact and Via values are remembered (a dialog repeats them), but only short ones: a
    capture of distinct megabyte-long values must not fill memory through the cache."""
    from sipwatch.sip import message

    message._name_addr.cache_clear()  # other tests may have filled it
    long_user = "a" * 100_000
    data = (invite(call_id="long-from", extra=f"Contact: <sip:{long_user}@h>\r\n".encode())
            .replace(b"From: <sip:alice@", f"From: <sip:{long_user}@".encode())
            .replace(b"To: <sip:bob@", b"To: <sip:bob-of-the-long-from-test@"))
    msg = SipMessage.parse(data)
    assert msg.from_.user == long_user and msg.contacts[0].user == long_user
    assert message._name_addr.cache_info().currsize == 1  # the ordinary To only
    SipMessage.parse(invite(call_id="short"))
    hits = message._name_addr.cache_info().hits
    SipMessage.parse(invite(call_id="short-again"))
    assert message._name_addr.cache_info().hits > hits
