"""Crafted captures for decoder tests: realistic SIP messages, packets built with scapy, files written
byte by byte (pcap, nanosecond pcap, pcapng, gzip), and tshark's `sip,stat` as a reference count.

scapy is used here only to *build* packets; sipwatch itself never dissects with scapy.
"""

from __future__ import annotations

import gzip
import re
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

# --- SIP messages -----------------------------------------------------------------------------------

CRLF = "\r\n"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def sdp_body(ip: str, size: int = 0, session: int = 2890844526) -> bytes:
    """An SDP offer/answer; padded with `a=` attribute lines up to at least `size` bytes."""
    family = "IP6" if ":" in ip else "IP4"
    lines = [
        "v=0",
        f"o=- {session} {session} IN {family} {ip}",
        "s=-",
        f"c=IN {family} {ip}",
        "t=0 0",
        "m=audio 49170 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    body = CRLF.join(lines) + CRLF
    n = 0
    while len(body) < size:  # crypto-style attribute lines, as a big SRTP/ICE offer would carry
        body += f"a=x-candidate:{n} 1 UDP 2130706431 {ip} {50000 + n} typ host generation 0 pad{n:04d}" + CRLF
        n += 1
    return body.encode()


@dataclass
class Dialog:
    """Everything needed to write the messages of one call between two endpoints."""

    caller_ip: str
    caller_port: int
    callee_ip: str
    callee_port: int
    call_id: str = "a84b4c76e66710@pc33.atlanta.example.com"
    transport: str = "UDP"
    from_tag: str = "1928301774"
    to_tag: str = "a6c85cf"
    cseq: int = 314159
    invite_body_size: int = 0
    branches: dict[str, str] = field(default_factory=dict)

    @property
    def caller(self) -> tuple[str, int]:
        return self.caller_ip, self.caller_port

    @property
    def callee(self) -> tuple[str, int]:
        return self.callee_ip, self.callee_port

    def _branch(self, name: str) -> str:
        return self.branches.setdefault(name, f"z9hG4bK{name.lower()}{len(self.branches):02d}nashds8")

    def _via(self, ip: str, port: int, branch: str) -> str:
        return f"Via: SIP/2.0/{self.transport} {_host(ip)}:{port};branch={branch}"

    def _request(self, method: str, cseq: int, branch: str, from_caller: bool, to_tag: bool, body: bytes = b"") -> bytes:
        ip, port = self.caller if from_caller else self.callee
        peer_ip, peer_port = self.callee if from_caller else self.caller
        alice = f"Alice <sip:alice@atlanta.example.com>;tag={self.from_tag}"
        bob = "Bob <sip:bob@biloxi.example.com>" + (f";tag={self.to_tag}" if to_tag else "")
        uri = f"sip:bob@{_host(peer_ip)}:{peer_port}" if from_caller else f"sip:alice@{_host(peer_ip)}:{peer_port}"
        if method == "INVITE":
            uri = "sip:bob@biloxi.example.com"
        headers = [
            f"{method} {uri} SIP/2.0",
            self._via(ip, port, branch),
            "Max-Forwards: 70",
            f"From: {alice}" if from_caller else f"From: {bob}",
            f"To: {bob}" if from_caller else f"To: {alice}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{'alice' if from_caller else 'bob'}@{_host(ip)}:{port}>",
            "User-Agent: crafted-uac/1.0",
        ]
        if body:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(body)}")
        return (CRLF.join(headers) + CRLF + CRLF).encode() + body

    def _response(self, request: bytes, code: int, phrase: str, to_tag: bool = True, body: bytes = b"") -> bytes:
        """A response to `request`, copying Via, From, To (adding our tag), Call-ID and CSeq."""
        head = request.split(b"\r\n\r\n", 1)[0].decode().split(CRLF)
        copied = []
        for line in head[1:]:
            name = line.split(":", 1)[0].lower()
            if name in ("via", "from", "call-id", "cseq"):
                copied.append(line)
            elif name == "to":
                copied.append(line + (f";tag={self.to_tag}" if to_tag and ";tag=" not in line else ""))
        headers = [f"SIP/2.0 {code} {phrase}", *copied]
        if code != 100:
            headers.append(f"Contact: <sip:bob@{_host(self.callee_ip)}:{self.callee_port}>")
            headers.append("Server: crafted-uas/2.0")
        if body:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(body)}")
        return (CRLF.join(headers) + CRLF + CRLF).encode() + body

    # -- the messages of a call ----------------------------------------------------------------------

    def invite(self) -> bytes:
        body = sdp_body(self.caller_ip, self.invite_body_size)
        return self._request("INVITE", self.cseq, self._branch("INVITE"), True, False, body)

    def trying(self) -> bytes:
        return self._response(self.invite(), 100, "Trying", to_tag=False)

    def ringing(self) -> bytes:
        return self._response(self.invite(), 180, "Ringing")

    def ok_invite(self) -> bytes:
        return self._response(self.invite(), 200, "OK", body=sdp_body(self.callee_ip, session=3030303))

    def busy(self) -> bytes:
        return self._response(self.invite(), 486, "Busy Here")

    def ack(self) -> bytes:
        return self._request("ACK", self.cseq, self._branch("ACK"), True, True)

    def bye(self) -> bytes:
        return self._request("BYE", self.cseq + 1, self._branch("BYE"), True, True)

    def ok_bye(self) -> bytes:
        return self._response(self.bye(), 200, "OK")

    def flow(self) -> list[tuple[bool, bytes]]:
        """An answered call: INVITE, 100, 180, 200, ACK, BYE, 200. (from_caller, message) pairs."""
        return [
            (True, self.invite()),
            (False, self.trying()),
            (False, self.ringing()),
            (False, self.ok_invite()),
            (True, self.ack()),
            (True, self.bye()),
            (False, self.ok_bye()),
        ]

    def short_flow(self) -> list[tuple[bool, bytes]]:
        """INVITE, 200, ACK, BYE, 200."""
        return [
            (True, self.invite()),
            (False, self.ok_invite()),
            (True, self.ack()),
            (True, self.bye()),
            (False, self.ok_bye()),
        ]

    def endpoints(self, from_caller: bool) -> tuple[str, int, str, int]:
        if from_caller:
            return (*self.caller, *self.callee)
        return (*self.callee, *self.caller)


# expected sipwatch / tshark counts of Dialog.flow() and Dialog.short_flow()
FLOW_REQUESTS = {"INVITE": 1, "ACK": 1, "BYE": 1}
FLOW_RESPONSES = {100: 1, 180: 1, 200: 2}
SHORT_FLOW_RESPONSES = {200: 2}


# --- packets ----------------------------------------------------------------------------------------

MAC_A = "00:1b:21:3a:4f:01"
MAC_B = "00:1b:21:3a:4f:02"


def ip_layer(src: str, dst: str, ident: int = 1, **kw) -> Packet:
    if ":" in src:
        return IPv6(src=src, dst=dst, hlim=64, **kw)
    return IP(src=src, dst=dst, id=ident, ttl=64, **kw)


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes, ident: int = 1) -> Packet:
    return ip_layer(src, dst, ident) / UDP(sport=sport, dport=dport) / Raw(payload)


def udp_flow_packets(dialog: Dialog, messages: Sequence[tuple[bool, bytes]] | None = None) -> list[Packet]:
    """The IP/UDP packets of a call."""
    packets = []
    for n, (from_caller, message) in enumerate(messages if messages is not None else dialog.flow()):
        src, sport, dst, dport = dialog.endpoints(from_caller)
        packets.append(udp_packet(src, sport, dst, dport, message, ident=0x1000 + n))
    return packets


def eth(packet: Packet) -> Packet:
    return Ether(src=MAC_A, dst=MAC_B) / packet


class TcpConversation:
    """Builds the IP/TCP packets of one connection, tracking sequence numbers on both sides."""

    def __init__(self, client: tuple[str, int], server: tuple[str, int], isn_client=1_000_000, isn_server=7_000_000):
        self.client = client
        self.server = server
        self.seq = {True: isn_client, False: isn_server}  # from_client -> next sequence number

    def _packet(self, from_client: bool, flags: str, payload: bytes = b"", seq: int | None = None) -> Packet:
        src, sport = self.client if from_client else self.server
        dst, dport = self.server if from_client else self.client
        ack = self.seq[not from_client] & 0xFFFFFFFF
        seq = self.seq[from_client] if seq is None else seq
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq & 0xFFFFFFFF, ack=ack, window=65535)
        pkt = ip_layer(src, dst) / tcp
        if payload:
            pkt = pkt / Raw(payload)
        return pkt

    def handshake(self) -> list[Packet]:
        syn = self._packet(True, "S")
        self.seq[True] += 1
        synack = self._packet(False, "SA")
        self.seq[False] += 1
        ack = self._packet(True, "A")
        return [syn, synack, ack]

    def send(self, from_client: bool, data: bytes, pieces: int = 1) -> list[Packet]:
        """Data segments carrying `data`, split into `pieces` segments of (nearly) equal size."""
        size = -(-len(data) // pieces)
        out = []
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            out.append(self._packet(from_client, "PA", chunk))
            self.seq[from_client] += len(chunk)
        return out

    def ack(self, from_client: bool) -> Packet:
        return self._packet(from_client, "A")

    def fin(self, from_client: bool) -> Packet:
        pkt = self._packet(from_client, "FA")
        self.seq[from_client] += 1
        return pkt


# --- WebSocket (RFC 6455) and SCTP (RFC 9260) -------------------------------------------------------------

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample nonce and its accept value
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def ws_upgrade_request(host: str, port: int, extensions: str = "", protocol: str = "sip") -> bytes:
    lines = [
        "GET / HTTP/1.1", f"Host: {_host(host)}:{port}", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {WS_KEY}", "Sec-WebSocket-Version: 13", "Origin: http://www.example.com",
    ]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return (CRLF.join(lines) + CRLF + CRLF).encode()


def ws_upgrade_response(extensions: str = "", protocol: str = "sip", status: str = "101 Switching Protocols") -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    if status.startswith("101"):
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {WS_ACCEPT}"]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        if extensions:
            lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    else:
        lines.append("Content-Length: 0")
    return (CRLF.join(lines) + CRLF + CRLF).encode()


def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None, rsv1: bool = False,
             length_bytes: int | None = None) -> bytes:
    """One WebSocket frame (RFC 6455 §5.2). `length_bytes` forces the 7-bit (0), 16-bit (2) or 64-bit (8)
    length encoding; by default the shortest that fits."""
    n = len(payload)
    if length_bytes is None:
        length_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length_bytes == 0:
        head += bytes([mask_bit | n])
    elif length_bytes == 2:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def deflate_message(payload: bytes, compressor=None) -> bytes:
    """permessage-deflate (RFC 7692 §7.2.1): raw DEFLATE, sync-flushed, without the trailing 00 00 ff ff."""
    import zlib

    comp = compressor or zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    data = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def sctp_data_chunk(tsn: int, payload: bytes, stream: int = 0, ssn: int = 0, ppid: int = 0,
                    begin: bool = True, end: bool = True, unordered: bool = False) -> bytes:
    """A DATA chunk (RFC 9260 §3.3.1), padded to 4 bytes."""
    flags = (0x04 if unordered else 0) | (0x02 if begin else 0) | (0x01 if end else 0)
    chunk = struct.pack("!BBHIHHI", 0, flags, 16 + len(payload), tsn, stream, ssn, ppid) + payload
    return chunk + b"\0" * (-len(chunk) % 4)


def sctp_idata_chunk(tsn: int, payload: bytes, mid: int, fsn_or_ppid: int = 0, stream: int = 0,
                     begin: bool = True, end: bool = True) -> bytes:
    """An I-DATA chunk (RFC 8260 §2.1): the first fragment carries the PPID, the others their FSN."""
    flags = (0x02 if begin else 0) | (0x01 if end else 0)
    chunk = struct.pack("!BBHIHHII", 64, flags, 20 + len(payload), tsn, stream, 0, mid, fsn_or_ppid) + payload
    return chunk + b"\0" * (-len(chunk) % 4)


def sctp_sack_chunk(cum_tsn: int) -> bytes:
    return struct.pack("!BBHIIHH", 3, 0, 16, cum_tsn, 65535, 0, 0)


def sctp_packet(src: str, sport: int, dst: str, dport: int, chunks: Sequence[bytes], tag: int = 0x1234ABCD) -> Packet:
    """An IP/SCTP packet carrying the given chunks (scapy fills in the CRC32c checksum)."""
    from scapy.layers.sctp import SCTP

    return ip_layer(src, dst) / SCTP(sport=sport, dport=dport, tag=tag) / Raw(b"".join(chunks))


# --- capture files ----------------------------------------------------------------------------------

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276

T0_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
STEP_NS = 20_000_000  # 20 ms between frames unless told otherwise

Frame = bytes | Packet | tuple[int, bytes | Packet]


def _timed(frames: Iterable[Frame], t0_ns: int, step_ns: int) -> list[tuple[int, bytes]]:
    out = []
    for n, item in enumerate(frames):
        if isinstance(item, tuple):
            ts_ns, data = item
        else:
            ts_ns, data = t0_ns + n * step_ns, item
        out.append((ts_ns, bytes(data)))
    return out


def pcap_bytes(frames: Iterable[Frame], linktype: int = LINKTYPE_ETHERNET, *, nano: bool = False,
               t0_ns: int = T0_NS, step_ns: int = STEP_NS, snaplen: int = 262144) -> bytes:
    """A classic pcap file (little-endian; microsecond or nanosecond timestamps)."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for ts_ns, data in _timed(frames, t0_ns, step_ns):
        sec, frac_ns = divmod(ts_ns, 1_000_000_000)
        frac = frac_ns if nano else frac_ns // 1000
        out += struct.pack("<IIII", sec, frac, len(data), len(data)) + data
    return bytes(out)


def write_pcap(path: Path, frames: Iterable[Frame], linktype: int = LINKTYPE_ETHERNET, *, nano: bool = False,
               compress: bool = False, t0_ns: int = T0_NS, step_ns: int = STEP_NS) -> Path:
    data = pcap_bytes(frames, linktype, nano=nano, t0_ns=t0_ns, step_ns=step_ns)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _block(block_type: int, body: bytes) -> bytes:
    pad = b"\0" * (-len(body) % 4)
    length = 12 + len(body) + len(pad)
    return struct.pack("<II", block_type, length) + body + pad + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng_bytes(interfaces: Sequence[int], frames: Iterable[tuple[int, Frame]], *, tsresol_exp: int = 6,
                 t0_ns: int = T0_NS, step_ns: int = STEP_NS) -> bytes:
    """A pcapng file: one IDB per link type in `interfaces`, frames as (interface index, frame)."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out = bytearray(shb)
    for linktype in interfaces:
        options = b""
        if tsresol_exp != 6:
            options += _option(9, bytes([tsresol_exp]))  # if_tsresol
        if options:
            options += _option(0, b"")
        out += _block(1, struct.pack("<HHI", linktype, 0, 262144) + options)
    items = list(frames)
    timed = _timed([frame for _, frame in items], t0_ns, step_ns)
    for (iface, _), (ts_ns, data) in zip(items, timed, strict=True):
        units = ts_ns // 10 ** (9 - tsresol_exp)
        body = struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
        out += _block(6, body + data + b"\0" * (-len(data) % 4))
    return bytes(out)


# --- tshark as a reference --------------------------------------------------------------------------


@dataclass
class TsharkSipStat:
    messages: int
    requests: Counter
    responses: Counter
    resent: int = 0


_MESSAGES = re.compile(r"Number of SIP messages:\s*(\d+)")
_RESENT = re.compile(r"Number of resent SIP messages:\s*(\d+)")
_RESPONSE = re.compile(r"^\s*SIP (\d{3}) .*?:\s*(\d+) Packets", re.MULTILINE)
_REQUEST = re.compile(r"^\s*([A-Z][A-Z_-]*)\s*:\s*(\d+) Packets", re.MULTILINE)


def parse_sip_stat(text: str) -> TsharkSipStat:
    """Parse the text of `tshark -q -z sip,stat`."""
    match = _MESSAGES.search(text)
    if match is None:
        raise ValueError(f"no 'Number of SIP messages' in tshark output:\n{text}")
    resent = _RESENT.search(text)
    responses = Counter({int(code): int(n) for code, n in _RESPONSE.findall(text)})
    requests = Counter({method: int(n) for method, n in _REQUEST.findall(text) if method != "SIP"})
    return TsharkSipStat(int(match.group(1)), requests, responses, int(resent.group(1)) if resent else 0)


def tshark_available() -> bool:
    return shutil.which("tshark") is not None


def tshark_sip_stat(path: Path, udp_ports: Sequence[int] = (), tcp_ports: Sequence[int] = (),
                    prefs: Sequence[str] = (), decode: Sequence[str] = ()) -> TsharkSipStat:
    """`decode`: more Decode As rules, e.g. `tls.port==5062,sip`."""
    cmd = ["tshark", "-n", "-r", str(path), "-q", "-z", "sip,stat"]
    for rule in decode:
        cmd += ["-d", rule]
    for port in udp_ports:
        cmd += ["-d", f"udp.port=={port},sip"]
    for port in tcp_ports:
        cmd += ["-d", f"tcp.port=={port},sip"]
    for pref in prefs:
        cmd += ["-o", pref]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return parse_sip_stat(done.stdout)


def write_sip_exchange(path: Path, messages: Sequence[str], caller: str = "192.0.2.1", callee: str = "192.0.2.2") -> Path:
    """SIP messages over UDP 5060 between two hosts, alternating caller -> callee and back, 0.1 s apart, as a
    pcap (for texts no SIPp scenario sends: hostile headers, broken grammar)."""
    frames = []
    for n, sip in enumerate(messages):
        src, dst = (caller, callee) if n % 2 == 0 else (callee, caller)
        packet = Ether() / IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / sip.encode()
        packet.time = 1_700_000_000.0 + n * 0.1
        frames.append(packet)
    wrpcap(str(path), frames)
    return path
