"""The whole pipeline against tshark's `-z rtp,streams`: same streams, found the same way.

sipwatch finds RTP through the SDP of each call (or, with --rtp-heuristic, by the look of the packets) and
must end up with tshark's streams, packet counts and lost counts exactly, and its delta and jitter figures
within 0.01 ms. tshark runs here, in the test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CAPTURES, SHARED_CAPTURES
from test_rtpstats import assert_same, run_tshark

from sipwatch.core.analyzer import AnalyzerConfig
from sipwatch.pipeline import analyze_file

SIGNALLED = [
    CAPTURES / "answered_rtp.pcap",
    CAPTURES / "one_way_audio.pcap",
    CAPTURES / "any_interface.pcap",
    SHARED_CAPTURES / "heplify" / "sip_ipv4_tcp.pcap",
    SHARED_CAPTURES / "sngrep" / "aaa.pcap",
    SHARED_CAPTURES / "nDPI" / "sip.pcap",
]
HEURISTIC = [
    # SIP calls plus a stream set up by MGCP (which tshark follows): found by the heuristic, unattached
    SHARED_CAPTURES / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap",
    SHARED_CAPTURES / "sipp" / "g711a.pcap",
    SHARED_CAPTURES / "sipp" / "dtmf_2833_5.pcap",
    SHARED_CAPTURES / "nDPI" / "rtp.pcapng",
    SHARED_CAPTURES / "testsuite" / "16_bit_48khz_60_fec_dropped.pcapng",
    SHARED_CAPTURES / "testsuite" / "ulaw-2013785496.pcap",
    SHARED_CAPTURES / "testsuite" / "40msalaw.pcap",
]


def _compare(path: Path, heuristic: bool) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present")
    analysis = analyze_file(str(path), AnalyzerConfig(rtp_heuristic=heuristic))
    ours = {(s.src, s.sport, s.dst, s.dport, s.ssrc): s for c in analysis.calls for s in c.streams}
    ours.update({(s.src, s.sport, s.dst, s.dport, s.ssrc): s for s in analysis.unattached_streams})
    extra = [arg for transport, port in sorted(analysis.stats.ports) if port not in (5060, 5061)
             for arg in ("-d", f"{transport}.port=={port},sip")]
    if heuristic:
        extra += ["--enable-heuristic", "rtp_udp"]
    theirs, _ = run_tshark(path, extra)
    assert theirs, "tshark found no RTP: not a useful case"
    assert sorted(ours) == sorted(t.key for t in theirs)
    for stream in theirs:
        assert_same(ours[stream.key].stats, stream, f"{path.name} {stream.key}")


@pytest.mark.parametrize("path", SIGNALLED, ids=lambda p: p.name)
def test_streams_found_through_sdp_equal_tshark(path: Path) -> None:
    _compare(path, heuristic=False)


@pytest.mark.parametrize("path", HEURISTIC, ids=lambda p: p.name)
def test_streams_found_by_heuristic_equal_tshark(path: Path) -> None:
    _compare(path, heuristic=True)


def test_streams_are_attached_to_their_calls() -> None:
    analysis = analyze_file(str(CAPTURES / "answered_rtp.pcap"))
    (call,) = analysis.calls
    assert {s.call_id for s in call.streams} == {call.call_id}
    assert analysis.unattached_streams == []


def test_rtcp_reports_attach_to_their_streams() -> None:
    """heplify's call carries RTCP on port+1: SR/RR blocks land on the stream they report on."""
    path = SHARED_CAPTURES / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
    if not path.exists():
        pytest.skip("shared captures not present")
    call = analyze_file(str(path)).calls[0]
    reports = {s.ssrc: s.rtcp for s in call.streams}
    assert all(r is not None for r in reports.values())
    sent = {s.ssrc: s.stats.packets for s in call.streams}
    for ssrc, report in reports.items():
        assert report.sender_reports > 0 and report.report_blocks > 0
        assert report.cumulative_lost == 0
        # a sender's last SR counts no more packets than the capture saw from it
        assert 0 < report.sender_packet_count <= sent[ssrc]
    assert any(report.rtt_ms for report in reports.values())
    assert all(0 <= rtt < 100 for report in reports.values() for rtt in report.rtt_ms)
