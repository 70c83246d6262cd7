"""Seed inputs for every target, taken from real traffic: the frames of captures/*.pcap, the SIP fixtures, the
RFC 4475/5118 torture messages. Mutating real frames reaches far deeper than random bytes do."""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import open_capture
from sipwatch.media.rtp import is_rtcp, looks_like_rtp
from sipwatch.model import Transport
from sipwatch.sip.message import starts_like_sip

from .targets import FRAME_SEPARATOR, LINKTYPES

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "captures"
FIXTURES = ROOT / "tests" / "fixtures"


def capture_paths() -> list[Path]:
    return sorted(p for p in CAPTURES.rglob("*.pcap") if p.is_file())


@cache
def real_frames(per_capture: int = 400) -> list[tuple[int, bytes]]:
    """(link type, frame) of the first frames of every capture, and every SIP-carrying one."""
    out: list[tuple[int, bytes]] = []
    for path in capture_paths():
        capture = open_capture(str(path))
        try:
            for number, _ts, linktype, data in capture.frames():
                if number <= per_capture or b"SIP/2.0" in data:
                    out.append((linktype, bytes(data)))
        finally:
            capture.close()
    return out


@cache
def payloads() -> dict[str, list[bytes]]:
    """Decoded transport payloads of the real frames, sorted into SIP, SDP, RTP, RTCP and TCP segments."""
    kinds: dict[str, list[bytes]] = {"sip": [], "sdp": [], "rtp": [], "rtcp": [], "tcp": []}
    for path in capture_paths():
        decoder = FrameDecoder()
        capture = open_capture(str(path))
        try:
            for number, ts, linktype, data in capture.frames():
                datagram = decoder.decode(number, ts, linktype, data)
                if datagram is None:
                    continue
                payload = datagram.payload
                if datagram.transport is Transport.TCP:
                    kinds["tcp"].append(payload)
                elif starts_like_sip(payload):
                    kinds["sip"].append(payload)
                    head, sep, body = payload.partition(b"\r\n\r\n")
                    if body.startswith(b"v=0"):
                        kinds["sdp"].append(body)
                elif is_rtcp(payload):
                    kinds["rtcp"].append(payload)
                elif looks_like_rtp(payload) and len(kinds["rtp"]) < 300:
                    kinds["rtp"].append(payload)
        finally:
            capture.close()
    for path in sorted((FIXTURES / "sip").glob("*")) + sorted((FIXTURES / "rfc4475").glob("*.dat")) + sorted(
        (FIXTURES / "rfc5118").glob("*")
    ):
        if path.suffix in (".py", ".md") or not path.is_file():
            continue
        data = path.read_bytes()
        kinds["sip"].append(data)
        head, sep, body = data.partition(b"\r\n\r\n")
        if body.startswith(b"v=0"):
            kinds["sdp"].append(body)
    kinds["rtcp"] += crafted_rtcp()
    return {k: _unique(v) for k, v in kinds.items()}


def _rtcp(pt: int, count: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def crafted_rtcp() -> list[bytes]:
    """RTCP the SIPp captures lack, built field by field: SR+SDES, RR, BYE with a reason, XR VoIP metrics, APP, NACK."""
    block = struct.pack("!IB3sIIII", 0x1234, 12, (5).to_bytes(3, "big"), 0x10064, 80, 0x12345678, 0x8000)
    sr = _rtcp(200, 1, struct.pack("!IIIIII", 0xABCD, 0xE8E8E8E8, 0x80000000, 16000, 100, 17200) + block)
    sdes = _rtcp(202, 1, struct.pack("!I", 0xABCD) + b"\x01\x0buser@host.x" + b"\x00" * 3)
    rr = _rtcp(201, 1, struct.pack("!I", 0xABCD) + block)
    bye = _rtcp(203, 1, struct.pack("!I", 0xABCD) + b"\x04done" + b"\x00" * 3)
    voip = struct.pack("!BBH", 7, 0, 8) + struct.pack("!IBBBBHHHHbbBBBBBBBxHHH", 0x1234, 10, 2, 30, 40, 100, 20, 50,
                                                       60, -20, -60, 93, 80, 41, 39, 127, 127, 11, 40, 80, 120)
    xr = _rtcp(207, 0, struct.pack("!I", 0xABCD) + voip)
    app = _rtcp(204, 1, struct.pack("!I", 0xABCD) + b"NAME" + b"data")
    nack = _rtcp(205, 1, struct.pack("!IIHH", 0xABCD, 0x1234, 100, 0x0003))
    return [sr + sdes, rr + sdes + bye, xr, sr + rr + xr + app + nack, rr, bye + b"\x00\x00"]


def _unique(items: list[bytes], limit: int = 400) -> list[bytes]:
    seen: dict[bytes, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)[:limit]


def _segments(stream: list[bytes]) -> bytes:
    """TCP payloads in the `tcp` target's encoding: in order, then the second one again (a retransmission)."""
    out = bytearray()
    seq = 1000
    for payload in stream:
        out += struct.pack("!IBH", seq, 0x18 | 0x80, len(payload)) + payload
        seq += len(payload)
    if stream:
        out += struct.pack("!IBH", 1000, 0x18 | 0x80, len(stream[0])) + stream[0]
    return bytes(out)


def seeds(target: str) -> list[bytes]:
    """Seed inputs for one target (see targets.TARGETS)."""
    kinds = payloads()
    if target in ("frame", "session"):
        return [bytes([LINKTYPES.index(lt) if lt in LINKTYPES else 1]) + data for lt, data in real_frames()]
    if target == "frames":
        frames = real_frames()
        groups = []
        for i in range(0, len(frames), 5):
            group = [d for lt, d in frames[i : i + 5] if lt == frames[i][0]]
            groups.append(bytes([LINKTYPES.index(frames[i][0]) if frames[i][0] in LINKTYPES else 1])
                          + FRAME_SEPARATOR.join(group))
        return groups
    if target == "tcp":
        tcp = kinds["tcp"]
        return [_segments(tcp[i : i + 4]) for i in range(0, len(tcp), 4)] or [b""]
    if target == "framer":
        sip = kinds["sip"]
        return [bytes([7]) + b"".join(sip[i : i + 3]) for i in range(0, len(sip), 3)] + kinds["tcp"]
    if target in ("sip", "sdp", "rtp", "rtcp"):
        return kinds[target] or [b""]
    if target == "media":
        rtp, rtcp = kinds["rtp"], kinds["rtcp"]
        return [FRAME_SEPARATOR.join(rtp[i : i + 8] + rtcp[i // 8 : i // 8 + 1]) for i in range(0, len(rtp), 8)]
    if target == "capture":
        return [p.read_bytes() for p in capture_paths() if p.stat().st_size < 200_000]
    raise KeyError(target)
