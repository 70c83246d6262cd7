"""Capture loss is not network loss: gaps that hit many streams at one instant are the capture's.

Crafted with scapy (the loss pattern must be exact): six RTP streams on Ethernet/IPv4, 20 ms G.711 packets for
4 s. At t = 2 s the 'capture' drops 5 consecutive packets of every stream at once; one stream also loses 10 %
of its packets at random on its own (network loss).
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from sipwatch.core.analyzer import AnalyzerConfig
from sipwatch.core.findings import MediaThresholds, capture_loss_streams
from sipwatch.pipeline import analyze_file


def _rtp(seq: int, ts: int, ssrc: int) -> bytes:
    return bytes([0x80, 0x08]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + ssrc.to_bytes(4, "big") + bytes(160)


def _capture(path: Path) -> Path:
    rng = random.Random(7)
    frames = []
    for n in range(200):
        t = 1_700_000_000.0 + n * 0.02
        for s in range(6):
            if 100 <= n < 105:  # the capture drops these from every stream
                continue
            if s == 5 and n % 10 == 3:  # stream 5 also loses 10 % on the network
                continue
            packet = Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=20000 + 2 * s, dport=30000 + 2 * s)
            packet = packet / _rtp(1000 + n, 160 * n, 0x1000 + s)
            packet.time = t + s * 0.001 + rng.random() * 0.0005
            frames.append(packet)
    wrpcap(str(path), frames)  # keeps each packet's own time
    return path


def test_simultaneous_gaps_are_capture_loss(tmp_path: Path) -> None:
    analysis = analyze_file(str(_capture(tmp_path / "loss.pcap")), AnalyzerConfig(rtp_heuristic=True))
    streams = sorted(analysis.unattached_streams, key=lambda s: s.ssrc)
    assert len(streams) == 6
    (finding,) = [f for f in analysis.findings if f.kind == "capture_loss"]
    assert finding.data["streams"] == 6 and finding.data["missing_packets"] == 30
    assert abs(finding.ts - (1_700_000_000.0 + 105 * 0.02)) < 0.01
    for stream in streams[:5]:
        assert stream.stats.lost == 5 and stream.capture_lost == 5  # all of it the capture's
    # stream 5: its own 10 % network loss stays network loss (19 packets: the 20th fell in the capture's gap)
    assert streams[5].capture_lost == 5
    assert streams[5].stats.lost - streams[5].capture_lost == 19


def test_independent_losses_are_not_capture_loss(tmp_path: Path) -> None:
    rng = random.Random(3)
    frames = []
    for n in range(200):
        for s in range(4):
            if rng.random() < 0.05:
                continue
            packet = Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=20000 + 2 * s, dport=30000 + 2 * s)
            packet = packet / _rtp(1000 + n, 160 * n, 0x2000 + s)
            packet.time = 1_700_000_000.0 + n * 0.02 + s * 0.003
            frames.append(packet)
    wrpcap(str(tmp_path / "net.pcap"), frames)
    analysis = analyze_file(str(tmp_path / "net.pcap"), AnalyzerConfig(rtp_heuristic=True))
    assert sum(s.stats.lost for s in analysis.unattached_streams) > 20
    assert analysis.findings == []
    assert all(s.capture_lost == 0 for s in analysis.unattached_streams)


class _Stream:
    """What capture_loss_streams reads of a stream (its summary has the same shape)."""

    def __init__(self, packets: int, first: float, last: float, gaps: list[tuple[float, int]]) -> None:
        self.packets, self.first, self.last, self.gap_arrivals = packets, first, last, gaps
        self.capture_lost = 0

    @property
    def stats(self) -> _Stream:
        return self


def _walked(streams: list[_Stream], limits: MediaThresholds) -> tuple[list[tuple], list[int]]:
    """The detection as it was first written, walking every stream for every gap: the oracle."""
    events = sorted((t, missing, i) for i, s in enumerate(streams) for t, missing in s.gap_arrivals)
    out, lost = [], [0] * len(streams)
    i = 0
    while i < len(events):
        start = events[i][0]
        j = i
        while j < len(events) and events[j][0] - start <= limits.capture_loss_window_s:
            j += 1
        hit = {events[k][2] for k in range(i, j)}
        active = sum(1 for s in streams if s.packets and s.first <= start <= s.last)
        if len(hit) >= limits.capture_loss_min_streams and len(hit) >= limits.capture_loss_share * active:
            for k in range(i, j):
                lost[events[k][2]] += events[k][1]
            out.append((start, len(hit), active))
            i = j
        else:
            i += 1
    return out, lost


_times = st.integers(0, 12).map(lambda n: n / 100)  # whole centiseconds: equal times, and window edges hit
_streams = st.lists(st.builds(_Stream, st.integers(0, 3), _times, _times,
                              st.lists(st.tuples(_times, st.integers(1, 5)), max_size=3)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_streams)
def test_active_streams_counted_by_bisection_as_by_walking(streams: list[_Stream]) -> None:
    """Equal times, streams without packets and streams whose last arrival is before their first (a capture
    whose clock stepped back) included: the same findings and the same capture-lost counts."""
    limits = MediaThresholds()
    expected, lost = _walked(streams, limits)
    findings = capture_loss_streams(streams, limits)
    assert [(f.ts, f.data["streams"], f.data["active_streams"]) for f in findings] == expected
    assert [s.capture_lost for s in streams] == lost
    event(f"capture loss found: {bool(expected)}")
