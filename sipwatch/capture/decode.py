"""Link, network and transport layers decoded with `struct` on raw frame bytes.

One `FrameDecoder` per capture: it owns the IP fragment, TCP, WebSocket and SCTP state, and turns each
raw frame into a `Datagram` (UDP payload, newly in-order TCP bytes, or one WebSocket or SCTP user
message). A frame that carries several messages (SCTP bundling, several WebSocket frames in one TCP
segment) returns the first and leaves the others in `extra`, which the caller drains before the next
frame. Frames it has no use for (ARP, ICMP, unknown ethertypes) cost a few byte reads and allocate nothing.

Encapsulations: Ethernet, Linux cooked (SLL, SLL2), raw IPv4/IPv6, BSD null/loopback; 802.1Q, QinQ,
MPLS and PPPoE in front of IP; IP-in-IP, GRE (with ERSPAN type II and III, transparent Ethernet
bridging) and VXLAN tunnels.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from struct import Struct, unpack_from

import numpy as np

from sipwatch.capture.hep import HEP_LEAD_BYTES, HepUnwrapper, is_hep
from sipwatch.capture.reader import FrameBlock
from sipwatch.capture.reassembly import FragmentReassembler, TcpReassembler
from sipwatch.capture.sctp import SctpReader
from sipwatch.capture.websocket import WebSocketTracker
from sipwatch.model import Datagram, ProblemLog, Transport, hostport

# (source address + destination address + source port + destination port, as the 12 bytes of the IPv4 and
#  UDP headers), frame number, timestamp, frame bytes, payload start, payload end -> taken?
RtpLane = Callable[[bytes, int, float, bytes, int, int], bool]
# the same for many frames at once (numpy arrays): frame bytes, flow key offsets, payload offsets, payload
# lengths, times, frame numbers -> mask of the frames taken
RtpBlockLane = Callable[..., "np.ndarray"]

# Link-layer header types (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINKTYPE_NAMES = {
    0: "BSD loopback (NULL)", 1: "Ethernet", 6: "Token Ring", 9: "PPP", 10: "FDDI", 12: "raw IP", 14: "raw IP",
    101: "raw IP", 105: "IEEE 802.11", 108: "OpenBSD loopback", 113: "Linux cooked (SLL)", 127: "802.11 radiotap",
    147: "user-defined (DLT_USER0)", 192: "PPI", 195: "IEEE 802.15.4", 228: "raw IPv4", 229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
_MPLS_TYPES = frozenset((0x8847, 0x8848))
_PPPOE_SESSION = 0x8864
_TEB = 0x6558  # transparent Ethernet bridging (GRE carrying Ethernet)
_ERSPAN_II = 0x88BE
_ERSPAN_III = 0x22EB
_GRE_PPP = 0x880B  # PPTP's enhanced GRE (RFC 2637)
VXLAN_PORT = 4789

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47
IPPROTO_SCTP = 132
_IPV6_EXTENSIONS = frozenset((0, 43, 60, 51, 135, 139, 140))  # fragment (44) handled apart
_MAX_TUNNEL_DEPTH = 4

_UDP = Transport.UDP
_TCP = Transport.TCP
_WS = Transport.WS
_SCTP = Transport.SCTP
_TCP_SYN = 0x02
_TLS_RECORDS = frozenset((0x16, 0x17))  # handshake, application data

# The common case in one read: Ethernet, IPv4 without options or fragmentation, UDP. Fields: ethertype,
# version/IHL, total length, flags/fragment offset, protocol, source, destination, ports, UDP length.
_ETH_IP4_UDP = Struct("!12xHBxH2xHxB2x4s4sHHH")
_ETH_IP4_UDP_LEN = _ETH_IP4_UDP.size


def _address_cache(family: int):
    cache: dict[bytes, str] = {}
    ntop = socket.inet_ntop

    def to_text(raw: bytes) -> str:
        text = cache.get(raw)
        if text is None:
            if len(cache) > 65536:  # bounded for long live captures
                cache.clear()
            text = cache[raw] = ntop(family, raw)
        return text

    return to_text


class FrameDecoder:
    """Decodes raw frames into Datagrams, reassembling IP fragments and TCP streams on the way."""

    def __init__(
        self, problems: ProblemLog | None = None, rtp_lane: RtpLane | None = None,
        rtp_block_lane: RtpBlockLane | None = None,
    ) -> None:
        self.problems = problems if problems is not None else ProblemLog()
        self.rtp_block_lane = rtp_block_lane
        # Offered each Ethernet/IPv4/UDP frame whose payload starts like RTP, before a Datagram is built;
        # when it takes the frame (a packet of a stream it already follows), decode() returns None.
        self.rtp_lane = rtp_lane
        self.fragments = FragmentReassembler(self.problems)
        self.tcp = TcpReassembler(self.problems)
        self.ws = WebSocketTracker(self.problems)
        self.sctp = SctpReader(self.problems)
        self.hep = HepUnwrapper(self.problems)  # HEP (HOMER) packets found in UDP: unwrapped, analyzed
        # Datagrams of the last decoded frame after the one decode() returned (replaced, never appended to,
        # so a caller that never drains it holds one frame's worth at most).
        self.extra: list[Datagram] = []
        self._ip4 = _address_cache(socket.AF_INET)
        self._ip6 = _address_cache(socket.AF_INET6)
        self.unsupported_linktypes: dict[int, int] = {}
        self.tls_connections = 0
        self._tls_seen: set[tuple] = set()
        self._links = {
            LINKTYPE_ETHERNET: self._ethernet,
            LINKTYPE_LINUX_SLL: self._sll,
            LINKTYPE_LINUX_SLL2: self._sll2,
            LINKTYPE_RAW: self._raw_ip,
            12: self._raw_ip,
            14: self._raw_ip,
            LINKTYPE_IPV4: self._raw_ip,
            LINKTYPE_IPV6: self._raw_ip,
            LINKTYPE_NULL: self._null,
            LINKTYPE_LOOP: self._loop,
        }

    def block_lane_rest(self, block: FrameBlock) -> list[int]:
        """Offer a block's plain RTP-over-IPv4/UDP Ethernet frames to the block lane at once; return the
        indices of the frames left to `decode()` one by one, in order.

        The mask below is the Ethernet/IPv4/UDP fast path of `_ethernet` in array form: no VLAN, no IP options,
        not a fragment, not VXLAN, a payload of at least 16 bytes whose first byte is 0x80 (RTP version 2
        without padding, extension or CSRCs)."""
        n = len(block)
        lane = self.rtp_block_lane
        if lane is None or n < 64 or block.single_linktype != LINKTYPE_ETHERNET:
            return list(range(n))
        data = np.frombuffer(block.data, dtype=np.uint8)
        start = np.frombuffer(block.offsets, dtype=np.int64)
        caplen = np.frombuffer(block.lengths, dtype=np.int64)
        candidates = np.flatnonzero(caplen >= 58)
        s = start[candidates]
        cap = caplen[candidates]
        total = data[s + 16].astype(np.int64) << 8 | data[s + 17]
        ulen = data[s + 38].astype(np.int64) << 8 | data[s + 39]
        end = np.where((total > 0) & (14 + total <= cap), 14 + total, cap)
        pend = np.where((ulen >= 8) & (34 + ulen <= end), 34 + ulen, end)
        plain = (
            (data[s + 12] == 0x08) & (data[s + 13] == 0x00) & (data[s + 14] == 0x45) & (data[s + 23] == IPPROTO_UDP)
            & ((data[s + 20] & 0x3F) == 0) & (data[s + 21] == 0) & (data[s + 42] == 0x80) & (pend >= 58)
            & ~((data[s + 36] == VXLAN_PORT >> 8) & (data[s + 37] == VXLAN_PORT & 0xFF))
        )
        picked = candidates[plain]
        if not len(picked):
            return list(range(n))
        s = start[picked]
        frames = picked.astype(np.int64) + block.first_frame
        times = np.frombuffer(block.times, dtype=np.float64)[picked]
        taken = lane(data, s + 26, s + 42, pend[plain] - 42, times, frames)
        rest = np.ones(n, dtype=bool)
        rest[picked[taken]] = False
        return np.flatnonzero(rest).tolist()

    @property
    def sctp_packets(self) -> int:
        return self.sctp.packets

    def close(self) -> None:
        """The capture ended: report what never completed."""
        self.fragments.close()
        self.tcp.close()
        self.sctp.close()

    def supports(self, linktype: int) -> bool:
        return linktype in self._links

    def decode(self, frame: int, ts: float, linktype: int, data: bytes) -> Datagram | None:
        handler = self._links.get(linktype)
        if handler is None:
            seen = self.unsupported_linktypes.get(linktype, 0)
            if not seen:
                name = LINKTYPE_NAMES.get(linktype, "unknown")
                self.problems.report(
                    "unsupported_linktype", f"link type {linktype} ({name}) is not supported; frames skipped", frame
                )
            self.unsupported_linktypes[linktype] = seen + 1
            return None
        return handler(data, frame, ts)

    # --- link layers -------------------------------------------------------------------------------

    def _ethernet(self, data: bytes, frame: int, ts: float, off: int = 0, depth: int = 0) -> Datagram | None:
        if not off and len(data) >= _ETH_IP4_UDP_LEN:
            etype, vihl, total, frag, proto, src, dst, sport, dport, ulen = _ETH_IP4_UDP.unpack_from(data)
            if etype == ETH_IPV4 and vihl == 0x45 and proto == IPPROTO_UDP and not frag & 0x3FFF and dport != VXLAN_PORT:
                end = 14 + total if total > 0 and 14 + total <= len(data) else len(data)
                pend = 34 + ulen if ulen >= 8 and 34 + ulen <= end else end
                lane = self.rtp_lane
                if lane is not None and pend >= 58 and data[42] == 0x80 and lane(data[26:38], frame, ts, data, 42, pend):
                    return None
                if pend > 42 and data[42] in HEP_LEAD_BYTES and is_hep(data[42:pend]):
                    return self._hep(data[42:pend], frame, ts, 0)
                ip = self._ip4
                return Datagram(frame, ts, ip(src), sport, ip(dst), dport, _UDP, data[42:pend])
        if len(data) < off + 14:
            return None
        etype = (data[off + 12] << 8) | data[off + 13]
        return self._ethertype(etype, data, off + 14, frame, ts, depth)

    def _ethertype(self, etype: int, data: bytes, off: int, frame: int, ts: float, depth: int) -> Datagram | None:
        while etype in _VLAN_TYPES:  # 802.1Q, QinQ: a 4-byte tag each
            if len(data) < off + 4:
                return None
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if etype == ETH_IPV4:
            return self._ipv4(data, off, frame, ts, depth)
        if etype == ETH_IPV6:
            return self._ipv6(data, off, frame, ts, depth)
        if etype in _MPLS_TYPES:
            while len(data) >= off + 4:
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    return self._ip_by_version(data, off, frame, ts, depth)
            return None
        if etype == _PPPOE_SESSION:
            return self._ppp(data, off + 6, frame, ts, depth)
        return None

    def _ppp(self, data: bytes, off: int, frame: int, ts: float, depth: int) -> Datagram | None:
        if data[off : off + 2] == b"\xff\x03":  # HDLC address and control
            off += 2
        if len(data) < off + 2:
            return None
        if data[off] & 1:  # protocol field compressed to one byte (RFC 1661 §6.5)
            proto, off = data[off], off + 1
        else:
            proto, off = (data[off] << 8) | data[off + 1], off + 2
        if proto == 0x21:
            return self._ipv4(data, off, frame, ts, depth)
        if proto == 0x57:
            return self._ipv6(data, off, frame, ts, depth)
        return None

    def _sll(self, data: bytes, frame: int, ts: float) -> Datagram | None:
        if len(data) < 16:
            return None
        return self._ethertype((data[14] << 8) | data[15], data, 16, frame, ts, 0)

    def _sll2(self, data: bytes, frame: int, ts: float) -> Datagram | None:
        if len(data) < 20:
            return None
        return self._ethertype((data[0] << 8) | data[1], data, 20, frame, ts, 0)

    def _raw_ip(self, data: bytes, frame: int, ts: float) -> Datagram | None:
        return self._ip_by_version(data, 0, frame, ts, 0)

    def _null(self, data: bytes, frame: int, ts: float) -> Datagram | None:
        # The family is in the writer's byte order: AF_INET is 2 everywhere, AF_INET6 is 24, 28 or 30.
        if len(data) < 4:
            return None
        family = data[0] if data[0] else data[3]
        if family == 2:
            return self._ipv4(data, 4, frame, ts, 0)
        if family in (24, 28, 30):
            return self._ipv6(data, 4, frame, ts, 0)
        return None

    def _loop(self, data: bytes, frame: int, ts: float) -> Datagram | None:
        return self._null(data, frame, ts)

    # --- network layer ---------------------------------------------------------------------------------

    def _ip_by_version(self, data: bytes, off: int, frame: int, ts: float, depth: int) -> Datagram | None:
        if len(data) <= off:
            return None
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(data, off, frame, ts, depth)
        if version == 6:
            return self._ipv6(data, off, frame, ts, depth)
        return None

    def _ipv4(self, data: bytes, off: int, frame: int, ts: float, depth: int) -> Datagram | None:
        if len(data) < off + 20:
            return None
        ihl = (data[off] & 0x0F) * 4
        if ihl < 20 or data[off] >> 4 != 4:
            return None
        total, ident, frag = unpack_from("!HHH", data, off + 2)
        # total == 0 happens with TCP segmentation offload: trust the captured length then.
        end = off + total if total > 0 and off + total <= len(data) else len(data)
        proto = data[off + 9]
        src = data[off + 12 : off + 16]
        dst = data[off + 16 : off + 20]
        start = off + ihl
        if frag & 0x3FFF:  # more-fragments flag or a non-zero offset
            whole = self.fragments.add(
                (4, src, dst, ident, proto), (frag & 0x1FFF) * 8, bool(frag & 0x2000), data[start:end], frame, ts
            )
            if whole is None:
                return None
            data, start, end = whole, 0, len(whole)
        ip = self._ip4
        return self._transport(proto, data, start, end, ip(src), ip(dst), frame, ts, depth)

    def _ipv6(self, data: bytes, off: int, frame: int, ts: float, depth: int) -> Datagram | None:
        if len(data) < off + 40:
            return None
        plen = (data[off + 4] << 8) | data[off + 5]
        nxt = data[off + 6]
        src = data[off + 8 : off + 24]
        dst = data[off + 24 : off + 40]
        start = off + 40
        end = start + plen if plen > 0 and start + plen <= len(data) else len(data)
        reassembled = False
        while True:
            if nxt in _IPV6_EXTENSIONS:
                if end < start + 8:
                    return None
                length = (data[start + 1] + 2) * 4 if nxt == 51 else (data[start + 1] + 1) * 8
                nxt = data[start]
                start += length
            elif nxt == 44 and not reassembled:  # fragment header (RFC 8200 §4.5)
                if end < start + 8:
                    return None
                offset_flags, ident = unpack_from("!HI", data, start + 2)
                nxt = data[start]
                start += 8
                if start > end:
                    return None
                # What follows is the fragmentable part (it may open with more extension headers):
                # reassemble it first, then go on walking headers in the whole payload.
                whole = self.fragments.add(
                    (6, src, dst, ident, 0), offset_flags & 0xFFF8, bool(offset_flags & 1), data[start:end], frame, ts
                )
                if whole is None:
                    return None
                data, start, end = whole, 0, len(whole)
                reassembled = True
            else:
                break
            if start > end:
                return None
        ip = self._ip6
        return self._transport(nxt, data, start, end, ip(src), ip(dst), frame, ts, depth)

    # --- transport and tunnels ---------------------------------------------------------------------------

    def _transport(
        self, proto: int, data: bytes, off: int, end: int, src: str, dst: str, frame: int, ts: float, depth: int
    ) -> Datagram | None:
        if proto == IPPROTO_UDP:
            if end < off + 8:
                return None
            sport, dport, ulen = unpack_from("!HHH", data, off)
            pend = off + ulen if ulen >= 8 and off + ulen <= end else end
            if dport == VXLAN_PORT and pend - off >= 16 and data[off + 8] & 0x08 and depth < _MAX_TUNNEL_DEPTH:
                return self._ethernet(data[off + 16 : pend], frame, ts, 0, depth + 1)
            if pend > off + 8 and data[off + 8] in HEP_LEAD_BYTES and is_hep(data[off + 8 : pend]):
                return self._hep(data[off + 8 : pend], frame, ts, depth)
            return Datagram(frame, ts, src, sport, dst, dport, _UDP, data[off + 8 : pend])
        if proto == IPPROTO_TCP:
            if end < off + 20:
                return None
            sport, dport, seq = unpack_from("!HHI", data, off)
            hlen = (data[off + 12] >> 4) * 4
            flags = data[off + 13]
            payload = data[off + hlen : end] if hlen >= 20 else b""
            key = (src, sport, dst, dport)
            ws = self.ws
            watching = ws.active and ws.watches(key)
            if watching and flags & _TCP_SYN:  # a new connection on the same addresses and ports
                ws.forget(key)
                watching = False
            stream = self.tcp.segment(key, seq, flags, payload, frame, ts)
            if stream is None:
                return None
            first = stream[0]
            if watching or (first == 0x47 and stream.startswith(b"GET ")):
                messages = ws.stream(key, stream, frame)
                if messages is not None:
                    return self._messages(messages, frame, ts, src, sport, dst, dport, _WS)
            elif first in _TLS_RECORDS and stream[1:2] == b"\x03":
                self._tls(stream, src, sport, dst, dport, frame)
            return Datagram(frame, ts, src, sport, dst, dport, _TCP, stream)
        if depth >= _MAX_TUNNEL_DEPTH:
            return None
        if proto == IPPROTO_IPIP:
            return self._ipv4(data[off:end], 0, frame, ts, depth + 1)
        if proto == IPPROTO_IPV6:
            return self._ipv6(data[off:end], 0, frame, ts, depth + 1)
        if proto == IPPROTO_GRE:
            return self._gre(data[off:end], frame, ts, depth + 1)
        if proto == IPPROTO_SCTP:
            if end < off + 12:
                return None
            sport, dport = unpack_from("!HH", data, off)
            messages = self.sctp.packet((src, sport, dst, dport), data, off, end, frame)
            return self._messages(messages, frame, ts, src, sport, dst, dport, _SCTP)
        return None

    def _tls(self, stream: bytes, src: str, sport: int, dst: str, dport: int, frame: int) -> None:
        """A TLS record (RFC 8446 §5.1) opens these bytes: say once per connection that it is encrypted."""
        pair = (src, sport, dst, dport) if (src, sport) < (dst, dport) else (dst, dport, src, sport)
        if pair in self._tls_seen:
            return
        hello = stream[0] == 0x16 and stream[5:6] == b"\x01"  # handshake record, ClientHello
        if len(self._tls_seen) >= 4096:
            self._tls_seen.clear()
        self._tls_seen.add(pair)
        self.tls_connections += 1
        client, server = ((src, sport), (dst, dport)) if hello else sorted(((src, sport), (dst, dport)))
        self.problems.report(
            "tls_encrypted",
            f"TLS connection {hostport(*client)} {'->' if hello else '<->'} {hostport(*server)} is encrypted and "
            "not analyzed (SIP over TLS: sipwatch analyze --engine tshark --tls-keylog FILE)",
            frame,
        )

    def _messages(
        self, messages: list[bytes], frame: int, ts: float, src: str, sport: int, dst: str, dport: int,
        transport: Transport,
    ) -> Datagram | None:
        """The first message as the frame's Datagram, the others in `extra`."""
        if not messages:
            return None
        if len(messages) > 1:
            self.extra[:] = [Datagram(frame, ts, src, sport, dst, dport, transport, m) for m in messages[1:]]
        return Datagram(frame, ts, src, sport, dst, dport, transport, messages[0])

    def _hep(self, payload: bytes, frame: int, ts: float, depth: int) -> Datagram | None:
        """A HEP packet (HOMER encapsulation): the frame it carries, at the time the agent captured it."""
        if depth >= _MAX_TUNNEL_DEPTH:
            return None
        got = self.hep.unwrap(payload, frame, fallback_ts=ts)
        if got is None:
            return None
        return self._ip_by_version(got.frame, 0, frame, got.ts, depth + 1)

    def _gre(self, data: bytes, frame: int, ts: float, depth: int) -> Datagram | None:
        if len(data) < 4:
            return None
        flags = data[0]
        ptype = (data[2] << 8) | data[3]
        off = 4
        if flags & 0x80:  # checksum present (+ reserved)
            off += 4
        if flags & 0x20:  # key present
            off += 4
        if flags & 0x10:  # sequence number present
            off += 4
        if data[1] & 0x07 == 1 and data[1] & 0x80:  # enhanced GRE (version 1) acknowledgment number
            off += 4
        if ptype == _GRE_PPP:
            return self._ppp(data, off, frame, ts, depth)
        if ptype == _ERSPAN_II:  # type I has no sequence number and no ERSPAN header
            return self._ethernet(data, frame, ts, off + (8 if flags & 0x10 else 0), depth)
        if ptype == _ERSPAN_III:
            if len(data) < off + 12:
                return None
            # the O flag announces an 8-byte platform-specific subheader
            extra = 8 if data[off + 11] & 0x01 else 0
            return self._ethernet(data, frame, ts, off + 12 + extra, depth)
        if ptype == _TEB:
            return self._ethernet(data, frame, ts, off, depth)
        return self._ethertype(ptype, data, off, frame, ts, depth)
