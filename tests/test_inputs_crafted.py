"""SIP over WebSocket and over SCTP in crafted captures: each odd encoding sipwatch claims to read (masking,
extended lengths, fragmentation, control frames between fragments, several frames per segment, a frame over
several segments, permessage-deflate; SCTP bundling, fragmented DATA, I-DATA, retransmitted TSNs), analyzed
end to end and, where tshark reads it too, checked against tshark's `sip,stat` on the very same file.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest
from crafted import (
    FLOW_REQUESTS,
    FLOW_RESPONSES,
    Dialog,
    TcpConversation,
    deflate_message,
    eth,
    parse_sip_stat,
    sctp_data_chunk,
    sctp_idata_chunk,
    sctp_packet,
    sctp_sack_chunk,
    tshark_available,
    write_pcap,
    ws_frame,
    ws_upgrade_request,
    ws_upgrade_response,
)

from sipwatch.core.result import Analysis
from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file

BROWSER, PROXY = ("192.0.2.50", 50123), ("198.51.100.80", 10080)
SCTP_A, SCTP_B = ("192.0.2.60", 5060), ("198.51.100.61", 5070)
MASKS = [bytes([0x37, 0xFA, 0x21, 0x3D]), bytes([0x00, 0x00, 0x00, 0x00]), bytes([0xFF, 0x01, 0x80, 0x7E])]


def tshark_stat(path: Path, http_port: int | None = None) -> tuple[int, dict, dict]:
    """tshark's SIP counts: (messages, requests, responses); `http_port` is decoded as HTTP (so its
    WebSocket Upgrade is followed whatever the port)."""
    if not tshark_available():
        pytest.skip("tshark is not installed")
    cmd = ["tshark", "-n", "-r", str(path), "-q", "-z", "sip,stat"]
    if http_port is not None:
        cmd += ["-d", f"tcp.port=={http_port},http"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    stat = parse_sip_stat(done.stdout)
    return stat.messages, dict(stat.requests), dict(stat.responses)


def counts(analysis: Analysis) -> tuple[int, dict, dict]:
    s = analysis.stats
    return s.messages, dict(s.requests), dict(s.responses)


def ws_dialog(**kw) -> Dialog:
    return Dialog(*BROWSER, *PROXY, transport="WS", call_id="ws-crafted-1@browser.example.com", **kw)


def ws_capture(path: Path, dialog: Dialog, encode, *, extensions: str = "", status: str = "101 Switching Protocols",
               pieces: int = 1, handshake: bool = True) -> Path:
    """A WebSocket connection carrying the dialog's flow; `encode(n, from_caller, message)` makes the bytes
    of message n (one or more frames)."""
    conv = TcpConversation(BROWSER, PROXY)
    packets = conv.handshake()
    if handshake:
        packets += conv.send(True, ws_upgrade_request(PROXY[0], PROXY[1], extensions))
        packets += conv.send(False, ws_upgrade_response(extensions, status=status))
    for n, (from_caller, message) in enumerate(dialog.flow()):
        packets += conv.send(from_caller, encode(n, from_caller, message), pieces=pieces)
        packets.append(conv.ack(not from_caller))
    packets += [conv.fin(True), conv.fin(False)]
    return write_pcap(path, [eth(p) for p in packets])


def assert_ws_call(analysis: Analysis, dialog: Dialog) -> None:
    assert counts(analysis) == (7, FLOW_REQUESTS, FLOW_RESPONSES), analysis.problems.kept
    assert dict(analysis.stats.by_transport) == {"ws": 7}
    (call,) = analysis.calls
    assert call.call_id == dialog.call_id
    assert call.outcome is Outcome.ANSWERED
    assert call.transport == "ws"
    assert analysis.stats.retransmissions == 0


# --- WebSocket ---------------------------------------------------------------------------------------------


def test_ws_masked_client_frames(tmp_path: Path) -> None:
    """Client frames masked (RFC 6455 §5.3), each message with another key; server frames plain."""
    dialog = ws_dialog()

    def encode(n: int, from_caller: bool, message: bytes) -> bytes:
        return ws_frame(message, mask=MASKS[n % 3] if from_caller else None)

    path = ws_capture(tmp_path / "ws-masked.pcap", dialog, encode)
    analysis = analyze_file(str(path))
    assert_ws_call(analysis, dialog)
    assert not analysis.problems.counts
    assert counts(analysis) == tshark_stat(path, PROXY[1])


def test_ws_extended_lengths(tmp_path: Path) -> None:
    """7-bit, 16-bit (126) and 64-bit (127) payload lengths, the 64-bit one both needed (a 70 kB INVITE over
    several TCP segments) and not (a short message in the long form)."""
    dialog = ws_dialog(invite_body_size=70_000)

    def encode(n: int, from_caller: bool, message: bytes) -> bytes:
        mask = MASKS[0] if from_caller else None
        if n == 0:
            assert len(message) > 65535
            return ws_frame(message, mask=mask)  # 64-bit length
        if n in (1, 4):
            return ws_frame(message, mask=mask, length_bytes=8)  # short message, 64-bit form
        if n in (2, 5):
            return ws_frame(message, mask=mask, length_bytes=2)
        return ws_frame(message, mask=mask)

    path = ws_capture(tmp_path / "ws-lengths.pcap", dialog, encode, pieces=3)
    analysis = analyze_file(str(path))
    assert_ws_call(analysis, dialog)
    invite = analysis.calls[0]
    assert invite.messages == 7
    assert counts(analysis) == tshark_stat(path, PROXY[1])


def test_ws_fragmented_messages_and_control_frames(tmp_path: Path) -> None:
    """Messages fragmented into continuation frames with a ping and a pong between the fragments; the 100,
    180 and 200 in one TCP segment (three messages from one frame); the ACK's frame split over segments."""
    dialog = ws_dialog()
    flow = dialog.flow()
    conv = TcpConversation(BROWSER, PROXY)
    packets = conv.handshake()
    packets += conv.send(True, ws_upgrade_request(*PROXY))
    packets += conv.send(False, ws_upgrade_response())
    invite = flow[0][1]
    third = len(invite) // 3
    fragments = (
        ws_frame(invite[:third], opcode=1, fin=False, mask=MASKS[0])
        + ws_frame(b"keepalive", opcode=9, mask=MASKS[1])  # ping between fragments (RFC 6455 §5.4)
        + ws_frame(invite[third : 2 * third], opcode=0, fin=False, mask=MASKS[2])
    )
    packets += conv.send(True, fragments)
    packets += conv.send(False, ws_frame(b"keepalive", opcode=10))  # the pong
    packets += conv.send(True, ws_frame(invite[2 * third :], opcode=0, fin=True, mask=MASKS[0]))
    packets += conv.send(False, b"".join(ws_frame(m) for _, m in flow[1:4]))
    packets += conv.send(True, ws_frame(flow[4][1], mask=MASKS[2]), pieces=3)  # header split too
    packets += conv.send(True, ws_frame(flow[5][1][:40], fin=False, mask=MASKS[1])
                         + ws_frame(flow[5][1][40:], opcode=0, mask=MASKS[1]))
    packets += conv.send(False, ws_frame(flow[6][1]))
    packets += conv.send(True, ws_frame(b"\x03\xe8", opcode=8, mask=MASKS[0]))  # close 1000
    packets += [conv.fin(True), conv.fin(False)]
    path = write_pcap(tmp_path / "ws-fragments.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert_ws_call(analysis, dialog)
    assert not analysis.problems.counts, analysis.problems.kept
    assert counts(analysis) == tshark_stat(path, PROXY[1])


@pytest.mark.parametrize("takeover", [True, False])
def test_ws_binary_frames_and_permessage_deflate(tmp_path: Path, takeover: bool) -> None:
    """Binary frames, and text frames compressed with permessage-deflate (RFC 7692): with the window kept
    from message to message in each direction (context takeover: later messages refer back into earlier
    ones), or a fresh window per message as negotiated with *_no_context_takeover."""
    dialog = ws_dialog()
    compressors = {True: zlib.compressobj(6, zlib.DEFLATED, -15), False: zlib.compressobj(6, zlib.DEFLATED, -15)}

    def encode(n: int, from_caller: bool, message: bytes) -> bytes:
        mask = MASKS[n % 3] if from_caller else None
        if n % 2:
            return ws_frame(message, opcode=2, mask=mask)
        compressor = compressors[from_caller] if takeover else None
        return ws_frame(deflate_message(message, compressor), mask=mask, rsv1=True)

    extensions = "permessage-deflate" + ("" if takeover else "; client_no_context_takeover; server_no_context_takeover")
    path = ws_capture(tmp_path / "ws-deflate.pcap", dialog, encode, extensions=extensions)
    analysis = analyze_file(str(path))
    assert_ws_call(analysis, dialog)
    assert counts(analysis) == tshark_stat(path, PROXY[1])


def test_ws_refused_upgrade_is_not_websocket(tmp_path: Path) -> None:
    """A 403 to the Upgrade: the connection stays HTTP; nothing is read as SIP, and the refusal is said."""
    dialog = ws_dialog()
    path = ws_capture(tmp_path / "ws-refused.pcap", dialog, lambda n, c, m: ws_frame(m, mask=MASKS[0] if c else None),
                      status="403 Forbidden")
    analysis = analyze_file(str(path))
    assert analysis.stats.messages == 0
    assert not analysis.calls
    assert analysis.problems.counts.get("websocket_refused") == 1
    problem = next(p for p in analysis.problems.kept if p.kind == "websocket_refused")
    assert "403 Forbidden" in problem.message and problem.frame == 5  # the 101 would have been here
    assert counts(analysis) == tshark_stat(path, PROXY[1])


def test_ws_without_handshake_stays_tcp(tmp_path: Path) -> None:
    """A capture that missed the Upgrade cannot know the connection is WebSocket (tshark cannot either)."""
    dialog = ws_dialog()
    path = ws_capture(tmp_path / "ws-nohandshake.pcap", dialog, lambda n, c, m: ws_frame(m), handshake=False)
    analysis = analyze_file(str(path))
    assert analysis.stats.messages == 0
    assert counts(analysis) == tshark_stat(path, PROXY[1])


def test_ws_tls_record_bytes_in_short_segments(tmp_path: Path) -> None:
    """Segments of one or two bytes that open like TLS records cost nothing and break nothing."""
    conv = TcpConversation(BROWSER, PROXY)
    packets = conv.handshake() + conv.send(True, b"\x16") + conv.send(True, b"\x17\x03") + conv.send(False, b"G")
    path = write_pcap(tmp_path / "short.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert "internal_error" not in analysis.problems.counts
    assert analysis.stats.messages == 0


def test_ws_oversized_frame_is_bounded(tmp_path: Path) -> None:
    """A frame claiming 2**63 bytes: reported with its frame number, the connection dropped, no hang."""
    conv = TcpConversation(BROWSER, PROXY)
    packets = conv.handshake()
    packets += conv.send(True, ws_upgrade_request(*PROXY))
    packets += conv.send(False, ws_upgrade_response())
    packets += conv.send(True, b"\x81\xff" + (1 << 63).to_bytes(8, "big") + MASKS[0] + b"INVITE")
    path = write_pcap(tmp_path / "ws-huge.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    problem = next(p for p in analysis.problems.kept if p.kind == "websocket_frame")
    assert problem.frame == 6 and "9223372036854775808 bytes" in problem.message
    assert analysis.stats.messages == 0


# --- SCTP --------------------------------------------------------------------------------------------------


def sctp_dialog() -> Dialog:
    return Dialog(*SCTP_A, *SCTP_B, transport="SCTP", call_id="sctp-crafted-1@a.example.com")


def test_sctp_bundled_chunks(tmp_path: Path) -> None:
    """Several DATA chunks per packet (100, 180 and 200 together; a SACK bundled before ACK and BYE)."""
    dialog = sctp_dialog()
    m = [message for _, message in dialog.flow()]
    a, b = (*SCTP_A,), (*SCTP_B,)
    packets = [
        sctp_packet(*a, *b, [sctp_data_chunk(100, m[0], ssn=0)]),
        sctp_packet(*b, *a, [sctp_sack_chunk(100), sctp_data_chunk(500, m[1], ssn=0),
                             sctp_data_chunk(501, m[2], ssn=1), sctp_data_chunk(502, m[3], ssn=2)]),
        sctp_packet(*a, *b, [sctp_sack_chunk(502), sctp_data_chunk(101, m[4], ssn=1),
                             sctp_data_chunk(102, m[5], ssn=2)]),
        sctp_packet(*b, *a, [sctp_data_chunk(503, m[6], ssn=3), sctp_sack_chunk(102)]),
    ]
    path = write_pcap(tmp_path / "sctp-bundled.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert counts(analysis) == (7, FLOW_REQUESTS, FLOW_RESPONSES)
    assert dict(analysis.stats.by_transport) == {"sctp": 7}
    (call,) = analysis.calls
    assert call.outcome is Outcome.ANSWERED and call.transport == "sctp"
    assert [r.frame for r in call.records] == [1, 2, 2, 2, 3, 3, 4]
    assert not analysis.problems.counts
    assert analysis.capture.sctp_packets == 4
    assert counts(analysis) == tshark_stat(path)


def test_sctp_fragmented_data(tmp_path: Path) -> None:
    """An INVITE fragmented into three DATA chunks (B, middle, E; consecutive TSNs) over two packets,
    the last fragment bundled with the next message."""
    dialog = sctp_dialog()
    m = [message for _, message in dialog.flow()]
    invite = m[0]
    third = len(invite) // 3
    a, b = SCTP_A, SCTP_B
    packets = [
        sctp_packet(*a, *b, [sctp_data_chunk(7, invite[:third], end=False),
                             sctp_data_chunk(8, invite[third : 2 * third], begin=False, end=False)]),
        sctp_packet(*a, *b, [sctp_data_chunk(9, invite[2 * third :], begin=False)]),
        *[sctp_packet(*b, *a, [sctp_data_chunk(300 + n, m[n], ssn=n)]) for n in (1, 2, 3)],
        sctp_packet(*a, *b, [sctp_data_chunk(10, m[4], ssn=1), sctp_data_chunk(11, m[5], ssn=2)]),
        sctp_packet(*b, *a, [sctp_data_chunk(304, m[6], ssn=4)]),
    ]
    path = write_pcap(tmp_path / "sctp-fragments.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert counts(analysis) == (7, FLOW_REQUESTS, FLOW_RESPONSES)
    assert analysis.calls[0].outcome is Outcome.ANSWERED
    assert counts(analysis) == tshark_stat(path)


def test_sctp_idata_chunks(tmp_path: Path) -> None:
    """I-DATA (RFC 8260): whole messages, and one fragmented by FSN with its fragments out of order."""
    dialog = sctp_dialog()
    m = [message for _, message in dialog.flow()]
    a, b = SCTP_A, SCTP_B
    invite = m[0]
    half = len(invite) // 2
    packets = [
        sctp_packet(*a, *b, [sctp_idata_chunk(21, invite[half:], mid=0, fsn_or_ppid=1, begin=False)]),
        sctp_packet(*a, *b, [sctp_idata_chunk(20, invite[:half], mid=0, end=False)]),
        sctp_packet(*b, *a, [sctp_idata_chunk(40 + n, m[n], mid=n - 1) for n in (1, 2, 3)]),
        sctp_packet(*a, *b, [sctp_idata_chunk(22, m[4], mid=1), sctp_idata_chunk(23, m[5], mid=2)]),
        sctp_packet(*b, *a, [sctp_idata_chunk(44, m[6], mid=3)]),
    ]
    path = write_pcap(tmp_path / "sctp-idata.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert counts(analysis) == (7, FLOW_REQUESTS, FLOW_RESPONSES)
    assert analysis.calls[0].outcome is Outcome.ANSWERED
    assert not analysis.problems.counts
    assert counts(analysis) == tshark_stat(path)


def test_sctp_retransmitted_tsn_is_not_a_sip_retransmission(tmp_path: Path) -> None:
    """The same DATA chunk sent twice (SCTP's own retransmission) is one SIP message, not a SIP resend."""
    dialog = sctp_dialog()
    m = [message for _, message in dialog.flow()]
    a, b = SCTP_A, SCTP_B
    first = sctp_packet(*a, *b, [sctp_data_chunk(100, m[0])])
    packets = [first, first, *[sctp_packet(*b, *a, [sctp_data_chunk(500 + n, m[n], ssn=n)]) for n in (1, 2, 3)]]
    path = write_pcap(tmp_path / "sctp-retrans.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert analysis.stats.messages == 4
    assert analysis.stats.retransmissions == 0
    assert analysis.stats.requests["INVITE"] == 1
    assert counts(analysis) == tshark_stat(path)  # tshark drops the repeated TSN too


def test_sctp_chunk_past_the_packet(tmp_path: Path) -> None:
    """A chunk whose length runs past the packet: the chunks before it are read, the problem located."""
    dialog = sctp_dialog()
    invite = dialog.invite()
    bad = bytearray(sctp_data_chunk(2, b"x" * 20))
    bad[2:4] = (400).to_bytes(2, "big")
    packets = [sctp_packet(*SCTP_A, *SCTP_B, [sctp_data_chunk(1, invite), bytes(bad)])]
    path = write_pcap(tmp_path / "sctp-bad.pcap", [eth(p) for p in packets])
    analysis = analyze_file(str(path))
    assert analysis.stats.requests == {"INVITE": 1}
    problem = next(p for p in analysis.problems.kept if p.kind == "sctp_chunk")
    assert problem.frame == 1 and "length 400" in problem.message
