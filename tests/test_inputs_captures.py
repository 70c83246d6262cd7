"""The public captures of the inputs sipwatch added late (WebSocket, SCTP, TLS) through both engines.

tests/test_tshark_parity.py holds every shared capture to tshark's counts. Here: the TLS captures that come
without their key are analyzed and *say* they could not be read (no call is invented), with either engine;
and the tshark engine (`--engine tshark`) finds the same messages, calls, outcomes, transports and RTP
streams as sipwatch's own decoder on the captures both can read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_CAPTURES

from sipwatch.pipeline import analyze_file

# SIP over TLS (5061) and over secure WebSocket whose keys were never published: a real limit, said as such
TLS_WITHOUT_KEY = {
    "sngrep/tlssaved.pcap": 2,  # TLS connections in it
    "wireshark-notes/webrtc-freeswitch.pcapng": 1,
}
BOTH_ENGINES = [
    "heplify/sip_sctp.pcap",
    "heplify/sip_tcp_websocket.pcap",
    "wireshark-notes/websocket-sip.pcapng",
    "heplify/rtp_rtcp_sip_ipv4_udp.pcap",
]


def _shared(rel: str) -> Path:
    path = SHARED_CAPTURES / rel
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


@pytest.mark.parametrize("rel", sorted(TLS_WITHOUT_KEY))
def test_tls_without_key_is_said_not_guessed(rel: str) -> None:
    path = _shared(rel)
    builtin = analyze_file(str(path))
    assert builtin.calls == [] and builtin.stats.messages == 0
    assert builtin.problems.counts.get("tls_encrypted") == TLS_WITHOUT_KEY[rel]
    assert all("--engine tshark --tls-keylog" in p.message for p in builtin.problems.kept if p.kind == "tls_encrypted")

    pytest.importorskip("pyshark")
    from sipwatch.pipeline_tshark import analyze_file_tshark

    deep = analyze_file_tshark(str(path))
    assert deep.calls == [] and deep.stats.messages == 0
    assert deep.problems.counts.get("tls_undecrypted") == TLS_WITHOUT_KEY[rel]


@pytest.mark.parametrize("rel", BOTH_ENGINES)
def test_tshark_engine_agrees_with_builtin(rel: str) -> None:
    pytest.importorskip("pyshark")
    from sipwatch.pipeline_tshark import analyze_file_tshark

    path = _shared(rel)
    builtin, deep = analyze_file(str(path)), analyze_file_tshark(str(path))
    assert deep.stats.messages == builtin.stats.messages > 0
    assert dict(deep.stats.requests) == dict(builtin.stats.requests)
    assert dict(deep.stats.responses) == dict(builtin.stats.responses)
    assert dict(deep.stats.by_transport) == dict(builtin.stats.by_transport)

    def calls(analysis) -> list[tuple]:
        return [(c.call_id, c.outcome, c.transport, c.first_frame, len(c.records)) for c in analysis.calls]

    def streams(analysis) -> list[tuple]:
        return sorted((s.src, s.sport, s.dst, s.dport, s.ssrc, s.stats.packets, s.stats.first_frame)
                      for c in analysis.calls for s in c.streams)

    assert calls(deep) == calls(builtin)
    assert streams(deep) == streams(builtin)
    assert deep.capture.packets == builtin.capture.packets
