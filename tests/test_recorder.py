"""The media hot path records; RtpStreamStats.from_recording computes. Both ways must give update()'s figures.

Real streams (SIPp G.711 on loopback, the public captures) go through the vectorised path; streams with
loss, reordering, DTMF or odd headers through the replay path. Each is checked against feeding update()
packet by packet.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTURES, SHARED_CAPTURES

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import open_capture
from sipwatch.media.recorder import RtpRecorder
from sipwatch.media.rtp import parse_rtp_header
from sipwatch.media.rtpstats import _RECORD16, RtpStreamStats
from sipwatch.model import Transport
from sipwatch.sip.message import starts_like_sip


def _streams(path: Path) -> dict[tuple, list[tuple[float, int, bytes]]]:
    capture = open_capture(str(path))
    decoder = FrameDecoder()
    streams: dict[tuple, list] = {}
    for frame, ts, linktype, data in capture.frames():
        dgram = decoder.decode(frame, ts, linktype, data)
        if dgram is None or dgram.transport is not Transport.UDP:
            continue
        header = parse_rtp_header(dgram.payload)
        if header is None or 72 <= header[0] <= 76 or starts_like_sip(dgram.payload):
            continue
        key = (dgram.src, dgram.sport, dgram.dst, dgram.dport, header[4])
        streams.setdefault(key, []).append((ts, frame, dgram.payload))
    return {k: v for k, v in streams.items() if len(v) >= 3}


def _compare(packets: list[tuple[float, int, bytes]], ssrc: int) -> bool:
    direct = RtpStreamStats(ssrc)
    recorder = RtpRecorder(ssrc)
    for ts, frame, payload in packets:
        pt, marker, seq, rtp_ts, _, hlen, plen = parse_rtp_header(payload)
        direct.update(ts, frame, pt, marker, seq, rtp_ts, plen, payload, hlen)
        recorder.add(ts, frame, payload)
    recorded = RtpStreamStats.from_recording(recorder)
    a, b = direct.to_dict(), recorded.to_dict()
    for key, value in a.items():
        if isinstance(value, float):
            assert math.isclose(value, b[key], rel_tol=1e-9, abs_tol=1e-9), key
        else:
            assert value == b[key], key
    return not recorder.odd


@pytest.mark.parametrize(
    "path",
    [
        CAPTURES / "answered_rtp.pcap",
        CAPTURES / "any_interface.pcap",
        SHARED_CAPTURES / "sipp" / "g711a.pcap",
        SHARED_CAPTURES / "sipp" / "dtmf_2833_1.pcap",
        SHARED_CAPTURES / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap",
        SHARED_CAPTURES / "testsuite" / "16_bit_48khz_60_fec_dropped.pcapng",
        SHARED_CAPTURES / "nDPI" / "FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    ],
    ids=lambda p: p.name,
)
def test_recording_gives_update_figures(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present")
    streams = _streams(path)
    assert streams
    for (_src, _sport, _dst, _dport, ssrc), packets in streams.items():
        _compare(packets, ssrc)


def test_clean_stream_takes_the_vectorised_path_and_wraps() -> None:
    """A clean stream across a sequence wrap: the numpy path, same figures as update()."""
    packets = []
    for i in range(400):
        seq = (65300 + i) & 0xFFFF
        head = bytes([0x80, 0x08 | (0x80 if i == 0 else 0)]) + seq.to_bytes(2, "big")
        head += (1000 + 160 * i).to_bytes(4, "big") + (0xCAFE).to_bytes(4, "big")
        arrival = 10.0 + 0.02 * i + (0.003 if i % 7 == 0 else 0.0)
        packets.append((arrival, i + 1, head + bytes(160)))
    assert _compare(packets, 0xCAFE)
    recorder = RtpRecorder(0xCAFE)
    for arrival, frame, payload in packets:
        recorder.add(arrival, frame, payload)
    stats = RtpStreamStats.from_recording(recorder)
    fields = np.frombuffer(recorder.headers, dtype=_RECORD16)
    assert stats._clean_sequence(fields) is not None  # so the figures above came from the numpy path
    assert stats.expected == 400 and stats.lost == 0
    assert stats.max_jitter_ms > 0.1
