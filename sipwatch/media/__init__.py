"""Media layer: RTP header parsing, per-stream RTP statistics (tshark-compatible), RTCP and an E-model MOS."""

from sipwatch.media.mos import burst_ratio, estimate_mos
from sipwatch.media.rtp import is_rtcp, looks_like_rtp, parse_rtp_header
from sipwatch.media.rtpstats import DtmfEvent, RtpStreamStats

__all__ = [
    "DtmfEvent",
    "RtpStreamStats",
    "burst_ratio",
    "estimate_mos",
    "is_rtcp",
    "looks_like_rtp",
    "parse_rtp_header",
]
