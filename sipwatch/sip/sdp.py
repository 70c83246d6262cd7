"""SDP (RFC 8866) session descriptions: what media each side offers or accepts, and where.

Only what call analysis needs is kept: origin, connection addresses (session and per media), media lines
with port, protocol and payload types, rtpmap/fmtp, rtcp port and the direction attribute. Unknown lines
are ignored as RFC 8866 §5 asks; a line that breaks the grammar raises SdpParseError.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipwatch.sip.text import to_int

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 3551 static payload types: (encoding, clock rate)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000), 3: ("GSM", 8000), 4: ("G723", 8000), 5: ("DVI4", 8000), 6: ("DVI4", 16000),
    7: ("LPC", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000), 10: ("L16", 44100), 11: ("L16", 44100),
    12: ("QCELP", 8000), 13: ("CN", 8000), 14: ("MPA", 90000), 15: ("G728", 8000), 16: ("DVI4", 11025),
    17: ("DVI4", 22050), 18: ("G729", 8000), 25: ("CelB", 90000), 26: ("JPEG", 90000), 28: ("nv", 90000),
    31: ("H261", 90000), 32: ("MPV", 90000), 33: ("MP2T", 90000), 34: ("H263", 90000),
}


class SdpParseError(ValueError):
    """The SDP body breaks the grammar in a way that loses information."""


@dataclass(frozen=True, slots=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1


@dataclass(slots=True)
class MediaDescription:
    media: str  # audio, video, image (T.38), application
    port: int
    protocol: str  # RTP/AVP, RTP/SAVP, udptl...
    formats: list[str]
    connection: str | None = None  # c= of this m= section (or inherited from the session)
    direction: str = "sendrecv"
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    rtcp_port: int | None = None
    rtcp_address: str | None = None
    rtcp_mux: bool = False

    @property
    def payload_types(self) -> list[int]:
        return [pt for pt in map(to_int, self.formats) if pt is not None]

    def codec(self, payload_type: int) -> RtpMap | None:
        """The codec for a payload type: from a=rtpmap, else RFC 3551's static table."""
        found = self.rtpmaps.get(payload_type)
        if found is None and payload_type in STATIC_PAYLOAD_TYPES:
            name, rate = STATIC_PAYLOAD_TYPES[payload_type]
            found = RtpMap(payload_type, name, rate)
        return found

    @property
    def on_hold(self) -> bool:
        """RFC 3264 §8.4 hold: not receiving (sendonly/inactive) or the old c=0.0.0.0 form."""
        return self.direction in ("sendonly", "inactive") or self.connection in ("0.0.0.0", "::")


@dataclass(slots=True)
class SessionDescription:
    origin_address: str | None
    origin_session: str | None
    origin_version: str | None
    connection: str | None
    media: list[MediaDescription]
    direction: str = "sendrecv"

    @classmethod
    def parse(cls, body: bytes) -> SessionDescription:
        text = body.decode("utf-8", "replace")
        origin_address = origin_session = origin_version = None
        session_connection = None
        session_direction = "sendrecv"
        media: list[MediaDescription] = []
        current: MediaDescription | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if len(line) < 2 or line[1] != "=":
                continue
            kind, value = line[0], line[2:].strip()
            if kind == "o":
                parts = value.split()
                if len(parts) >= 6:
                    origin_session, origin_version, origin_address = parts[1], parts[2], parts[5]
            elif kind == "c":
                parts = value.split()
                if len(parts) < 3:
                    raise SdpParseError(f"bad c= line {line[:60]!r}")
                address = parts[2].split("/", 1)[0]
                if current is None:
                    session_connection = address
                else:
                    current.connection = address
            elif kind == "m":
                parts = value.split()
                if len(parts) < 3:
                    raise SdpParseError(f"bad m= line {line[:60]!r}")
                port = to_int(parts[1].split("/", 1)[0])
                if port is None or port > 65535:
                    raise SdpParseError(f"bad media port in {line[:60]!r}")
                current = MediaDescription(parts[0], port, parts[2], parts[3:], direction=session_direction)
                media.append(current)
            elif kind == "a":
                name, _, attr = value.partition(":")
                if name in DIRECTIONS:
                    if current is None:
                        session_direction = name
                    else:
                        current.direction = name
                elif current is not None:
                    _media_attribute(current, name, attr)
        for m in media:
            if m.connection is None:
                m.connection = session_connection
        return cls(origin_address, origin_session, origin_version, session_connection, media, session_direction)


def _media_attribute(media: MediaDescription, name: str, value: str) -> None:
    if name == "rtpmap":
        pt_text, _, encoding = value.partition(" ")
        parts = encoding.strip().split("/")
        pt = to_int(pt_text)
        rate = to_int(parts[1]) if len(parts) >= 2 else None
        if pt is not None and rate is not None:
            channels = to_int(parts[2]) if len(parts) > 2 else None
            media.rtpmaps[pt] = RtpMap(pt, parts[0], rate, 1 if channels is None else channels)
    elif name == "fmtp":
        pt_text, _, params = value.partition(" ")
        pt = to_int(pt_text)
        if pt is not None:
            media.fmtp[pt] = params.strip()
    elif name == "rtcp":
        parts = value.split()
        port = to_int(parts[0]) if parts else None
        if port is not None:
            media.rtcp_port = port
            if len(parts) >= 4:
                media.rtcp_address = parts[3]
    elif name == "rtcp-mux":
        media.rtcp_mux = True
