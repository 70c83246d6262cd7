"""Hostile bytes into the WebSocket and SCTP readers (a bounded hypothesis run): nothing raises, memory stays
bounded, and what cannot be read is reported as a problem."""

from __future__ import annotations

import struct

from crafted import sctp_data_chunk, ws_frame, ws_upgrade_request, ws_upgrade_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.capture.sctp import MAX_PENDING_BYTES, SctpReader
from sipwatch.capture.websocket import MAX_MESSAGE, WebSocketTracker, unmask
from sipwatch.model import ProblemLog

CLIENT = ("192.0.2.1", 40000, "192.0.2.2", 80)
SERVER = ("192.0.2.2", 80, "192.0.2.1", 40000)


def _upgraded() -> WebSocketTracker:
    ws = WebSocketTracker(ProblemLog())
    assert ws.stream(CLIENT, ws_upgrade_request("192.0.2.2", 80), 1) == []
    assert ws.stream(SERVER, ws_upgrade_response(), 2) == []
    return ws


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=200)), max_size=20))
def test_websocket_takes_any_bytes_after_the_handshake(chunks: list) -> None:
    ws = _upgraded()
    for n, (from_client, data) in enumerate(chunks):
        key = CLIENT if from_client else SERVER
        if ws.watches(key):
            out = ws.stream(key, data, n + 3)
            assert out is not None
            assert all(len(m) <= MAX_MESSAGE for m in out)
    for direction in ws.directions.values():
        assert len(direction.buffer) <= MAX_MESSAGE + 14


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_websocket_takes_any_handshake(request: bytes, response: bytes) -> None:
    ws = WebSocketTracker(ProblemLog())
    ws.stream(CLIENT, b"GET " + request, 1)
    if ws.watches(SERVER):
        ws.stream(SERVER, response, 2)


@given(st.binary(max_size=64), st.binary(min_size=4, max_size=4))
def test_unmask_is_its_own_inverse(payload: bytes, key: bytes) -> None:
    masked = ws_frame(payload, mask=key)[-len(payload):] if payload else b""
    assert unmask(masked, key) == payload
    assert unmask(unmask(payload, key), key) == payload


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_sctp_takes_any_packet(bodies: list) -> None:
    reader = SctpReader(ProblemLog())
    for n, body in enumerate(bodies):
        packet = struct.pack("!HHII", 5060, 5060, 1, 0) + body
        reader.packet(("a", 1, "b", 2), packet, 0, len(packet), n + 1)
    reader.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans(), st.booleans(), st.binary(max_size=64)), max_size=40))
def test_sctp_fragments_in_any_order_stay_bounded(chunks: list) -> None:
    reader = SctpReader(ProblemLog())
    key = ("a", 1, "b", 2)
    for n, (tsn, begin, end, payload) in enumerate(chunks):
        packet = struct.pack("!HHII", 5060, 5060, 1, 0) + sctp_data_chunk(tsn, payload, begin=begin, end=end)
        for message in reader.packet(key, packet, 0, len(packet), n + 1):
            assert len(message) <= 40 * 64
    direction = reader.directions.get(key)
    assert direction is None or 0 <= direction.pending <= MAX_PENDING_BYTES
