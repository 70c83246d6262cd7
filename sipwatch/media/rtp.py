"""RTP (RFC 3550 §5.1) fixed-header parsing and the cheap tests that tell RTP from RTCP.

Everything here runs once per UDP datagram on the media hot path, so the functions are plain module
functions over a precompiled `struct.Struct`, allocate nothing but their result tuple, and never raise
on malformed input: a datagram that is not a sane version-2 RTP packet gives None / False.
"""

from __future__ import annotations

from struct import Struct

__all__ = [
    "RTP_HEADER_LEN",
    "RtpHeader",
    "is_rtcp",
    "looks_like_rtp",
    "parse_rtp_header",
    "rtp_header_problem",
]

RTP_HEADER_LEN = 12

# V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_FIXED = Struct("!BBHII")
_unpack_fixed = _FIXED.unpack_from
_EXT = Struct("!2xH")  # RFC 3550 §5.3.1: profile-defined 16 bits, then the length in 32-bit words
_unpack_ext = _EXT.unpack_from

# (payload_type, marker, seq, timestamp, ssrc, header_len, payload_len)
RtpHeader = tuple[int, bool, int, int, int, int, int]


def parse_rtp_header(payload: bytes) -> RtpHeader | None:
    """Decode an RTP fixed header, or None when `payload` is not a sane RTP version 2 packet.

    Returns (payload_type, marker, seq, timestamp, ssrc, header_len, payload_len): `header_len` covers the
    fixed header, the CSRC list and the header extension; `payload_len` excludes padding. None when: shorter
    than 12 bytes, version is not 2, the CSRC list or the extension (header and its declared length) runs
    past the end, or the padding bit is set with a padding count of 0 or larger than what follows the
    header.
    """
    n = len(payload)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = _unpack_fixed(payload)
    if b0 & 0xC0 != 0x80:
        return None
    hlen = 12 + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if n < hlen + 4:
            return None
        hlen += 4 + (_unpack_ext(payload, hlen)[0] << 2)
    if hlen > n:
        return None
    plen = n - hlen
    if b0 & 0x20:
        pad = payload[-1]
        if pad == 0 or pad > plen:
            return None
        plen -= pad
    return (b1 & 0x7F, b1 > 0x7F, seq, ts, ssrc, hlen, plen)


def rtp_header_problem(payload: bytes) -> str | None:
    """Why `parse_rtp_header` refuses `payload`, in words a problem report can carry; None when it accepts it.

    Off the hot path: called only for a packet already refused, to say exactly what is wrong with it.
    """
    n = len(payload)
    if n < 12:
        return f"RTP packet of {n} bytes is shorter than the 12-byte fixed header"
    if payload[0] >> 6 != 2:
        return f"RTP version is {payload[0] >> 6}, not 2"
    count = payload[0] & 0x0F
    hlen = 12 + 4 * count
    if hlen > n:
        return f"RTP packet has truncated CSRC list: {count} CSRCs need {hlen} bytes, the packet has {n}"
    if payload[0] & 0x10:
        if n < hlen + 4:
            return f"RTP header extension header is truncated ({n} bytes)"
        words = _unpack_ext(payload, hlen)[0]
        if hlen + 4 + 4 * words > n:
            return f"RTP header extension of {words} words runs past the end of the {n}-byte packet"
        hlen += 4 + 4 * words
    if payload[0] & 0x20:
        pad = payload[-1]
        if pad == 0 or pad > n - hlen:
            return f"RTP padding count {pad} does not fit the {n - hlen} bytes after the header"
    return None


def looks_like_rtp(payload: bytes) -> bool:
    """Heuristic RTP test: at least 12 bytes, version 2, payload type outside 72-76.

    Payload types 72-76 with the marker bit are where RTCP packet types 200-204 land when RTCP shares the
    port with RTP (RFC 5761 §4), so they are taken for RTCP, never RTP.
    """
    return len(payload) >= 12 and payload[0] & 0xC0 == 0x80 and not 72 <= payload[1] & 0x7F <= 76


def is_rtcp(payload: bytes) -> bool:
    """RTCP test: at least a 4-byte header, version 2, packet type 200-207 (SR, RR, SDES, BYE, APP, RTPFB,
    PSFB, XR)."""
    return len(payload) >= 4 and payload[0] & 0xC0 == 0x80 and 200 <= payload[1] <= 207
