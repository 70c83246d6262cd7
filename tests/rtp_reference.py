"""The reference road for RTP statistics in tests: every datagram through RtpStreamStats.update(), keyed as
tshark keys streams. sipwatch itself records packets and computes at the end (core.media); tests compare both
with tshark."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sipwatch.media.rtp import parse_rtp_header
from sipwatch.media.rtpstats import RtpStreamStats

StreamKey = tuple[str, int, str, int, int]
CodecLookup = Callable[[str, int, str, int], "tuple[Mapping[int, int] | None, Mapping[int, str] | None] | None"]


class RtpStreamTable:
    """RTP streams keyed like tshark's: (src, sport, dst, dport, SSRC), in order of first packet.

    `codecs(src, sport, dst, dport)` may return (clock_rates, encodings) for a new stream (from the SDP that
    negotiated it), or None. `add()` takes every UDP datagram the caller believes is RTP and returns the
    stream it was counted in, or None when it is not RTP (or is RTCP sharing the port).
    """

    __slots__ = ("streams", "codecs", "not_rtp", "rtcp")

    def __init__(self, codecs: CodecLookup | None = None) -> None:
        self.streams: dict[StreamKey, RtpStreamStats] = {}
        self.codecs = codecs
        self.not_rtp = 0  # datagrams parse_rtp_header refused
        self.rtcp = 0  # payload types 72-76: RTCP multiplexed on the RTP port (RFC 5761), not RTP

    def add(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int,
            payload: bytes) -> RtpStreamStats | None:
        header = parse_rtp_header(payload)
        if header is None:
            self.not_rtp += 1
            return None
        pt, marker, seq, rtp_ts, ssrc, hlen, plen = header
        if 72 <= pt <= 76:
            self.rtcp += 1
            return None
        key = (src, sport, dst, dport, ssrc)
        stats = self.streams.get(key)
        if stats is None:
            found = self.codecs(src, sport, dst, dport) if self.codecs else None
            stats = self.streams[key] = RtpStreamStats(ssrc, *(found or (None, None)))
        stats.update(ts, frame, pt, marker, seq, rtp_ts, plen, payload, hlen)
        return stats
