"""HOMER's HEP (HEPv3, and the older HEPv1/v2 "EEP") decoded into raw IP frames, and HEPv3 encoded.

A HEP packet carries one captured payload (a SIP message, an RTCP report, a log line) plus where and when it
was captured. `decode_hep` reads one; `HepUnwrapper` turns it into a synthetic raw IPv4/IPv6 + UDP/TCP frame
(link type 101) that the ordinary frame decoder analyzes; `encode_hep3` writes one.

HEPv3 (HEP3_rev12): "HEP3", a 16-bit total length, then chunks of vendor id (16), type id (16), length
(16, header included) and body; all big-endian. HEPv1/v2: a fixed 8-byte header (version, header length,
address family, IP protocol, ports), the addresses, and for v2 a time header in the sender's byte order.
Bad input never raises: `decode_hep` returns a `HepError` naming the byte offset.
"""

from __future__ import annotations

import json
import socket
import zlib
from dataclasses import dataclass
from struct import Struct, pack, unpack_from
from typing import NamedTuple

from sipwatch.model import Problem, ProblemLog, Transport

HEP_PORT = 9060
LINKTYPE_RAW = 101
# First byte of a HEP packet: "H" of "HEP3", or version 1 or 2. A cheap test before `is_hep` on a hot path.
HEP_LEAD_BYTES = frozenset((0x48, 0x01, 0x02))

# Chunk types of vendor 0 (generic), HEP3_rev12 and heplify-server's decoder.
CHUNK_IP_FAMILY = 0x0001
CHUNK_IP_PROTO = 0x0002
CHUNK_IPV4_SRC = 0x0003
CHUNK_IPV4_DST = 0x0004
CHUNK_IPV6_SRC = 0x0005
CHUNK_IPV6_DST = 0x0006
CHUNK_SRC_PORT = 0x0007
CHUNK_DST_PORT = 0x0008
CHUNK_TS_SEC = 0x0009
CHUNK_TS_USEC = 0x000A
CHUNK_PROTO_TYPE = 0x000B
CHUNK_CAPTURE_ID = 0x000C
CHUNK_KEEPALIVE = 0x000D
CHUNK_AUTH_KEY = 0x000E
CHUNK_PAYLOAD = 0x000F
CHUNK_COMPRESSED_PAYLOAD = 0x0010
CHUNK_CORRELATION_ID = 0x0011
CHUNK_VLAN = 0x0012
CHUNK_NODE_NAME = 0x0013

# Body sizes the spec fixes; a chunk of another size is malformed.
_FIXED_SIZE = {
    CHUNK_IP_FAMILY: 1, CHUNK_IP_PROTO: 1, CHUNK_IPV4_SRC: 4, CHUNK_IPV4_DST: 4, CHUNK_IPV6_SRC: 16,
    CHUNK_IPV6_DST: 16, CHUNK_SRC_PORT: 2, CHUNK_DST_PORT: 2, CHUNK_TS_SEC: 4, CHUNK_TS_USEC: 4,
    CHUNK_PROTO_TYPE: 1, CHUNK_KEEPALIVE: 2, CHUNK_VLAN: 2,
}
# Other generic chunk types heplify, captagent and the spec define (MACs, ethertype, TCP flags, TOS, MOS,
# R-factor, geo location, jitter, transaction type, JSON keys, tags...): read past without comment.
_KNOWN_IGNORED = frozenset(range(0x0014, 0x0030))

# Protocol types (chunk 0x000b).
PROTO_SIP = 1
PROTO_RTP = 4
PROTO_RTCP_JSON = 5
PROTO_LOG = 100
PROTO_TYPE_NAMES = {
    1: "sip", 2: "xmpp", 3: "sdp", 4: "rtp", 5: "rtcp", 6: "mgcp", 7: "megaco", 8: "m2ua", 9: "m3ua", 10: "iax",
    11: "h322", 12: "h321", 13: "m2pa", 34: "rtpagent", 35: "rtcpxr", 38: "horaclifix", 53: "dns", 100: "log",
}

IPPROTO_TCP = 6
IPPROTO_UDP = 17
_AF_INET = 2
_AF_INET6 = frozenset((10, 23, 24, 28, 30))  # Linux, Windows, OpenBSD, FreeBSD, macOS

MAX_DECOMPRESSED = 1 << 20  # a compressed payload may not inflate beyond this (zip bombs)

_HEADER = Struct("!4sH")
_CHUNK = Struct("!HHH")
_V1 = Struct("!BBBBHH")
_IPV4 = Struct("!BBHHHBBH4s4s")
_IPV6 = Struct("!IHBB16s16s")
_UDP = Struct("!HHHH")
_TCP = Struct("!HHIIBBHHH")


class HepError(NamedTuple):
    """Why a HEP packet cannot be used: `offset` is the byte in the HEP packet where reading failed."""

    offset: int
    message: str

    def problem(self, frame: int | None = None, where: str = "") -> Problem:
        origin = f" from {where}" if where else ""
        return Problem("hep_malformed", f"HEP packet{origin}, byte {self.offset}: {self.message}", frame=frame)


@dataclass(frozen=True, slots=True)
class HepPacket:
    """One decoded HEP packet. `ts` is None for HEPv1, which carries no time; `capture_id` the agent's id;
    `unknown_chunks` the (vendor, type, offset) of chunks read past without being understood."""

    version: int
    ts: float | None
    ip_version: int
    ip_proto: int
    src: str
    sport: int
    dst: str
    dport: int
    proto_type: int
    payload: bytes
    capture_id: int | None = None
    auth_key: bytes | None = None
    correlation_id: bytes | None = None
    node_name: str | None = None
    vlan: int | None = None
    keepalive: int | None = None
    compressed: bool = False
    unknown_chunks: tuple[tuple[int, int, int], ...] = ()

    @property
    def proto_name(self) -> str:
        return PROTO_TYPE_NAMES.get(self.proto_type, str(self.proto_type))

    @property
    def transport(self) -> Transport:
        """The transport the payload was captured on; anything but TCP (SCTP too) is analyzed as UDP."""
        return Transport.TCP if self.ip_proto == IPPROTO_TCP else Transport.UDP

    @property
    def is_frame_payload(self) -> bool:
        """True when the payload is wire bytes worth analyzing (SIP, RTP, binary RTCP), not an agent's JSON
        report or log line."""
        if self.proto_type in (PROTO_SIP, PROTO_RTP):
            return bool(self.payload)
        if self.proto_type == PROTO_RTCP_JSON:  # by convention JSON; a few agents send the RTCP itself
            p = self.payload
            return len(p) >= 8 and p[0] >> 6 == 2 and 200 <= p[1] <= 207
        return False


def is_hep(payload: bytes) -> bool:
    """Whether a UDP/TCP payload looks like a HEP packet: the "HEP3" magic, or a HEPv1/v2 header whose
    fields all hold plausible values (version 1 or 2, IPv4/IPv6, UDP/TCP, and room for the addresses)."""
    if payload[:4] == b"HEP3":
        return True
    n = len(payload)
    if n < 16 or payload[0] not in (1, 2) or payload[3] not in (IPPROTO_UDP, IPPROTO_TCP):
        return False
    family = payload[2]
    if family == _AF_INET:
        head = 16
    elif family in _AF_INET6:
        head = 40
    else:
        return False
    if payload[0] == 2:
        head += 12
    if n <= head:
        return False
    # A v1/v2 header has no magic: ask the payload to start like SIP (a method or "SIP/2.0": an uppercase
    # letter), the only thing agents sent with these versions, so that other UDP traffic is not taken for HEP.
    return 0x41 <= payload[head] <= 0x5A


def decode_hep(data: bytes) -> HepPacket | HepError:
    """Decode one HEP packet (v3, v2 or v1). Never raises on bad input."""
    if len(data) < 4:
        return HepError(0, f"{len(data)} bytes, too short for a HEP header")
    if data[:4] == b"HEP3":
        return _decode_v3(data)
    if data[0] in (1, 2):
        return _decode_v2(data)
    return HepError(0, f"not HEP: starts with {data[:4].hex()} (neither \"HEP3\" nor version 1/2)")


def _decode_v3(data: bytes) -> HepPacket | HepError:
    n = len(data)
    if n < 6:
        return HepError(4, f"{n} bytes, too short for the HEP3 length field")
    total = _HEADER.unpack_from(data)[1]
    if total > n:
        return HepError(4, f"total length {total} runs past the end of the packet ({n} bytes)")
    if total < 6:
        return HepError(4, f"total length {total} is shorter than the 6-byte header")
    fields: dict[int, bytes] = {}
    unknown: list[tuple[int, int, int]] = []
    off = 6
    while off < total:
        if total - off < 6:
            return HepError(off, f"{total - off} bytes left, too short for a chunk header (6 bytes)")
        vendor, ctype, clen = _CHUNK.unpack_from(data, off)
        if clen < 6:
            return HepError(off, f"chunk type 0x{ctype:04x} has length {clen}, less than its 6-byte header")
        if off + clen > total:
            return HepError(
                off, f"chunk type 0x{ctype:04x} of {clen} bytes runs past the end of the packet ({total} bytes)"
            )
        body = data[off + 6 : off + clen]
        if vendor != 0 or not CHUNK_IP_FAMILY <= ctype <= CHUNK_NODE_NAME:
            if vendor != 0 or ctype not in _KNOWN_IGNORED:
                unknown.append((vendor, ctype, off))
        else:
            size = _FIXED_SIZE.get(ctype)
            if size is not None and len(body) != size:
                return HepError(off, f"chunk type 0x{ctype:04x} has a {len(body)}-byte body, {size} expected")
            if ctype == CHUNK_CAPTURE_ID and len(body) not in (2, 4):
                return HepError(off, f"capture id chunk has a {len(body)}-byte body, 4 expected")
            if ctype in fields and ctype in (CHUNK_PAYLOAD, CHUNK_COMPRESSED_PAYLOAD):
                return HepError(off, "a second payload chunk")
            fields[ctype] = body
        off += clen
    return _packet_v3(fields, tuple(unknown), total)


def _packet_v3(fields: dict[int, bytes], unknown: tuple, total: int) -> HepPacket | HepError:
    get = fields.get
    if CHUNK_IPV4_SRC in fields or CHUNK_IPV4_DST in fields:
        ip_version, src, dst = 4, get(CHUNK_IPV4_SRC), get(CHUNK_IPV4_DST)
        if CHUNK_IPV6_SRC in fields or CHUNK_IPV6_DST in fields:
            return HepError(6, "both IPv4 and IPv6 address chunks")
        family = socket.AF_INET
    else:
        ip_version, src, dst = 6, get(CHUNK_IPV6_SRC), get(CHUNK_IPV6_DST)
        family = socket.AF_INET6
    if src is None or dst is None:
        return HepError(total, "no source or destination address chunk (types 0x0003-0x0006)")
    if CHUNK_SRC_PORT not in fields or CHUNK_DST_PORT not in fields:
        return HepError(total, "no source or destination port chunk (types 0x0007, 0x0008)")
    compressed = CHUNK_COMPRESSED_PAYLOAD in fields
    payload = get(CHUNK_PAYLOAD)
    if compressed:
        if payload is not None:
            return HepError(total, "both a payload and a compressed payload chunk")
        payload = _inflate(fields[CHUNK_COMPRESSED_PAYLOAD])
        if isinstance(payload, str):
            return HepError(total, payload)
    if payload is None:
        payload = b""  # a keep-alive or a packet without payload: decoded, but nothing to analyze
    ts = None
    if CHUNK_TS_SEC in fields:
        usec = unpack_from("!I", get(CHUNK_TS_USEC, b"\0\0\0\0"))[0]
        ts = unpack_from("!I", fields[CHUNK_TS_SEC])[0] + usec / 1e6
    cid = get(CHUNK_CAPTURE_ID)
    capture_id = None if cid is None else int.from_bytes(cid, "big")
    name = get(CHUNK_NODE_NAME)
    vlan = get(CHUNK_VLAN)
    keepalive = get(CHUNK_KEEPALIVE)
    return HepPacket(
        version=3,
        ts=ts,
        ip_version=ip_version,
        ip_proto=get(CHUNK_IP_PROTO, b"\x11")[0],
        src=socket.inet_ntop(family, src),
        sport=unpack_from("!H", fields[CHUNK_SRC_PORT])[0],
        dst=socket.inet_ntop(family, dst),
        dport=unpack_from("!H", fields[CHUNK_DST_PORT])[0],
        proto_type=get(CHUNK_PROTO_TYPE, b"\x01")[0],
        payload=payload,
        capture_id=capture_id,
        auth_key=get(CHUNK_AUTH_KEY),
        correlation_id=get(CHUNK_CORRELATION_ID),
        node_name=None if name is None else name.decode("utf-8", "replace"),
        vlan=None if vlan is None else unpack_from("!H", vlan)[0],
        keepalive=None if keepalive is None else unpack_from("!H", keepalive)[0],
        compressed=compressed,
        unknown_chunks=unknown,
    )


def _inflate(body: bytes) -> bytes | str:
    """zlib or gzip (HEP3_rev12: "gzip/inflate"), else raw deflate; an error message as a str."""
    for wbits in (47, -15):  # 47: zlib or gzip header detected; -15: raw deflate
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, MAX_DECOMPRESSED)
        except zlib.error:
            continue
        if inflater.unconsumed_tail:
            return f"compressed payload inflates to more than {MAX_DECOMPRESSED} bytes"
        return out
    return "compressed payload (chunk type 0x0010) is not zlib, gzip or deflate data"


def _decode_v2(data: bytes) -> HepPacket | HepError:
    n = len(data)
    if n < 8:
        return HepError(0, f"{n} bytes, too short for a HEPv{data[0]} header (8 bytes)")
    version, _hlen, family, proto, sport, dport = _V1.unpack_from(data)
    # The header length byte is not trusted: sngrep, for one, fills it with a byte of the total length.
    if family == _AF_INET:
        af, size = socket.AF_INET, 4
    elif family in _AF_INET6:
        af, size = socket.AF_INET6, 16
    else:
        return HepError(2, f"address family {family} is neither IPv4 (2) nor IPv6")
    off = 8 + 2 * size
    if n < off:
        return HepError(8, f"{n - 8} bytes left, too short for two IPv{4 if size == 4 else 6} addresses")
    src = socket.inet_ntop(af, data[8 : 8 + size])
    dst = socket.inet_ntop(af, data[8 + size : off])
    ts = None
    capture_id = None
    if version == 2:
        # struct hep_timehdr {u32 tv_sec; u32 tv_usec; u16 captid;} padded to 12 bytes, in the sender's
        # byte order: little-endian from every x86 agent. Big-endian is taken only when that alone is sane.
        if n < off + 12:
            return HepError(off, f"{n - off} bytes left, too short for the HEPv2 time header (12 bytes)")
        sec, usec, capture_id = unpack_from("<IIH", data, off)
        if usec >= 1_000_000:
            bsec, busec, bcid = unpack_from(">IIH", data, off)
            if busec < 1_000_000:
                sec, usec, capture_id = bsec, busec, bcid
        ts = sec + usec / 1e6
        off += 12
    return HepPacket(
        version=version, ts=ts, ip_version=4 if size == 4 else 6, ip_proto=proto, src=src, sport=sport, dst=dst,
        dport=dport, proto_type=PROTO_SIP, payload=data[off:], capture_id=capture_id,
    )


# --- synthetic frames ------------------------------------------------------------------------------------


class HepFrame(NamedTuple):
    """A HEP packet as a capture source gives frames: time, link type, raw IP frame; `hep` for its metadata."""

    ts: float
    linktype: int
    frame: bytes
    hep: HepPacket


class HepUnwrapper:
    """Turns HEP packets into raw IP frames (link type 101) the frame decoder reads like any capture.

    TCP payloads get consecutive sequence numbers per direction, so the TCP reassembler joins them into a
    stream in arrival order. Counters: `packets` (HEP packets decoded), `frames` (frames made), `malformed`,
    `other` (decoded, but an agent's report or log line rather than wire bytes, per protocol name),
    `unknown_chunks`, and `auth_failed` (with a `password`, packets whose key chunk differs: dropped).
    Problems go to `problems`.
    """

    MAX_FLOWS = 65536

    def __init__(self, problems: ProblemLog | None = None, password: str | None = None) -> None:
        self.problems = problems if problems is not None else ProblemLog()
        self.password = password.encode() if password else None
        self.auth_failed = 0
        self.packets = 0
        self.frames = 0
        self.malformed = 0
        self.unknown_chunks = 0
        self.other: dict[str, int] = {}
        self._seq: dict[tuple, int] = {}

    def unwrap(
        self, data: bytes, frame: int | None = None, fallback_ts: float | None = None, where: str = ""
    ) -> HepFrame | None:
        """Decode `data` (a HEP packet) into a frame; None when it is malformed (reported) or carries no
        wire payload (counted in `other`). `fallback_ts` stands in for HEPv1's missing time."""
        hep = decode_hep(data)
        if isinstance(hep, HepError):
            self.malformed += 1
            self.problems.add(hep.problem(frame, where))
            return None
        self.packets += 1
        if self.password is not None and hep.auth_key != self.password:
            self.auth_failed += 1
            return None
        if hep.unknown_chunks:
            self.unknown_chunks += len(hep.unknown_chunks)
            vendor, ctype, off = hep.unknown_chunks[0]
            self.problems.report(
                "hep_unknown_chunk",
                f"HEP packet{' from ' + where if where else ''}, byte {off}: chunk vendor 0x{vendor:04x} type "
                f"0x{ctype:04x} not understood, skipped ({len(hep.unknown_chunks)} such chunks in this packet)",
                frame,
            )
        if not hep.is_frame_payload:
            name = hep.proto_name if hep.payload else "empty"  # keep-alives carry no payload
            self.other[name] = self.other.get(name, 0) + 1
            return None
        ts = hep.ts if hep.ts is not None else fallback_ts
        if ts is None:
            ts = 0.0
        self.frames += 1
        return HepFrame(ts, LINKTYPE_RAW, self.frame(hep), hep)

    def frame(self, hep: HepPacket) -> bytes:
        """A raw IPv4/IPv6 frame carrying `hep.payload` over UDP, or TCP with PSH|ACK."""
        payload = hep.payload
        if hep.ip_proto == IPPROTO_TCP:
            key = (hep.src, hep.sport, hep.dst, hep.dport)
            seq = self._seq.pop(key, 1)
            if len(self._seq) >= self.MAX_FLOWS:  # bounded for long runs: forget the oldest direction
                del self._seq[next(iter(self._seq))]
            self._seq[key] = (seq + len(payload)) & 0xFFFFFFFF
            l4 = _TCP.pack(hep.sport, hep.dport, seq, 0, 0x50, 0x18, 0xFFFF, 0, 0) + payload
            proto = IPPROTO_TCP
        else:
            ulen = 8 + len(payload)
            l4 = _UDP.pack(hep.sport, hep.dport, ulen if ulen <= 0xFFFF else 0, 0) + payload
            proto = IPPROTO_UDP
        return ip_frame(hep.ip_version, proto, hep.src, hep.dst, l4)


def ip_frame(ip_version: int, proto: int, src: str, dst: str, l4: bytes) -> bytes:
    """A raw IP header in front of a transport segment. An IPv4 length beyond 65535 is written as 0, which
    the frame decoder (like tshark with TSO captures) reads as "trust the captured length"."""
    if ip_version == 4:
        total = 20 + len(l4)
        header = _IPV4.pack(
            0x45, 0, total if total <= 0xFFFF else 0, 0, 0x4000, 64, proto, 0,
            socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst),
        )
        return header + l4
    plen = len(l4)
    return _IPV6.pack(
        0x60000000, plen if plen <= 0xFFFF else 0, proto, 64,
        socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst),
    ) + l4


# --- encoding ------------------------------------------------------------------------------------------


def _chunk(ctype: int, body: bytes) -> bytes:
    return pack("!HHH", 0, ctype, 6 + len(body)) + body


def encode_hep3(
    ts: float, src: str, sport: int, dst: str, dport: int, transport: Transport | str, payload: bytes,
    capture_id: int = 0, password: str | None = None, proto_type: int = PROTO_SIP,
    correlation_id: bytes | None = None, node_name: str | None = None,
) -> bytes:
    """One HEPv3 packet. The chunks come in the order sngrep's and captagent's receivers expect (the
    fixed-size ones first, then addresses, key and payload); correlation id and node name follow the payload.
    Raises ValueError when the packet would exceed HEP's 65535 bytes or an address is not an IP address."""
    if len(payload) > 0xFFFF - 6:
        raise ValueError(f"a {len(payload)}-byte payload does not fit in a HEP chunk")
    six = ":" in src
    family = socket.AF_INET6 if six else socket.AF_INET
    sec = int(ts)
    usec = min(int(round((ts - sec) * 1e6)), 999_999)
    ip_proto = IPPROTO_TCP if str(transport) == "tcp" else IPPROTO_UDP
    parts = [
        _chunk(CHUNK_IP_FAMILY, bytes((10 if six else 2,))),
        _chunk(CHUNK_IP_PROTO, bytes((ip_proto,))),
        _chunk(CHUNK_SRC_PORT, pack("!H", sport)),
        _chunk(CHUNK_DST_PORT, pack("!H", dport)),
        _chunk(CHUNK_TS_SEC, pack("!I", sec & 0xFFFFFFFF)),
        _chunk(CHUNK_TS_USEC, pack("!I", usec)),
        _chunk(CHUNK_PROTO_TYPE, bytes((proto_type,))),
        _chunk(CHUNK_CAPTURE_ID, pack("!I", capture_id & 0xFFFFFFFF)),
        _chunk(CHUNK_IPV6_SRC if six else CHUNK_IPV4_SRC, socket.inet_pton(family, src)),
        _chunk(CHUNK_IPV6_DST if six else CHUNK_IPV4_DST, socket.inet_pton(family, dst)),
    ]
    if password:
        parts.append(_chunk(CHUNK_AUTH_KEY, password.encode()))
    parts.append(_chunk(CHUNK_PAYLOAD, payload))
    if correlation_id:
        parts.append(_chunk(CHUNK_CORRELATION_ID, correlation_id))
    if node_name:
        parts.append(_chunk(CHUNK_NODE_NAME, node_name.encode()))
    body = b"".join(parts)
    total = 6 + len(body)
    if total > 0xFFFF:
        raise ValueError(f"HEP packet would be {total} bytes, beyond HEP's 65535")
    return b"HEP3" + pack("!H", total) + body


def rtcp_json(payload: bytes) -> bytes | None:
    """The JSON HOMER stores for protocol type 5 (the keys captagent and rtpengine write) from a binary
    RTCP compound packet: the first SR or RR with its report blocks. None when it holds neither."""
    off = 0
    n = len(payload)
    while off + 8 <= n:
        first, pt, words = payload[off], payload[off + 1], unpack_from("!H", payload, off + 2)[0]
        end = off + 4 * (words + 1)
        if first >> 6 != 2 or end > n:
            return None
        if pt in (200, 201):
            ssrc = unpack_from("!I", payload, off + 4)[0]
            count = first & 0x1F
            report: dict = {}
            blocks_at = off + 8
            if pt == 200:
                if end < off + 28:
                    return None
                ntp_sec, ntp_frac, rtp_ts, packets, octets = unpack_from("!IIIII", payload, off + 8)
                report["sender_information"] = {
                    "ntp_timestamp_sec": ntp_sec, "ntp_timestamp_usec": ntp_frac, "octets": octets,
                    "rtp_timestamp": rtp_ts, "packets": packets,
                }
                blocks_at = off + 28
            blocks = []
            for i in range(count):
                at = blocks_at + 24 * i
                if at + 24 > end:
                    break
                source, lost_word, highest, jitter, lsr, dlsr = unpack_from("!IIIIII", payload, at)
                lost = lost_word & 0xFFFFFF
                blocks.append({
                    "source_ssrc": source, "highest_seq_no": highest, "fraction_lost": lost_word >> 24,
                    "ia_jitter": jitter, "packets_lost": lost - 0x1000000 if lost & 0x800000 else lost,
                    "lsr": lsr, "dlsr": dlsr,
                })
            report.update({"ssrc": ssrc, "type": pt, "report_count": len(blocks), "report_blocks": blocks})
            return json.dumps(report, separators=(",", ":")).encode()
        off = end
    return None
