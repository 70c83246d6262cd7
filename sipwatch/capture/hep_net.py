"""HEP on the network: a collector that listens for HEP from capture agents, and a sender that forwards
SIP and RTCP to a HOMER server as HEPv3.

`HepListener` is a capture source: `poll()` returns a batch of (ts, linktype, frame) tuples, the frames
synthesized by `HepUnwrapper` (link type 101, raw IP), ready for `FrameDecoder.decode`. `HepSender` never
blocks the capture: a datagram the socket cannot take at once is dropped and counted.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sipwatch.capture.hep import (
    HEP_PORT,
    PROTO_RTCP_JSON,
    PROTO_SIP,
    HepUnwrapper,
    encode_hep3,
    rtcp_json,
)
from sipwatch.capture.live import CaptureStats
from sipwatch.capture.reader import FrameBlock, _Repeat
from sipwatch.model import Datagram, ProblemLog, Transport, UsageError

LINKTYPE_RAW = 101

SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux: the socket's receive-queue drop counter
MAX_HEP = 65535
FrameTuple = tuple[float, int, bytes]


@dataclass(frozen=True, slots=True)
class HepEndpoint:
    transport: str  # "udp" or "tcp"
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_endpoint(spec: str) -> HepEndpoint:
    """`udp:ADDR:PORT` or `tcp:ADDR:PORT` (IPv6 in brackets: `udp:[::1]:9060`); the port defaults to 9060."""
    transport, sep, rest = spec.partition(":")
    transport = transport.lower()
    if not sep or transport not in ("udp", "tcp") or not rest:
        raise UsageError(f"HEP address {spec!r}: expected udp:ADDR:PORT or tcp:ADDR:PORT")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise UsageError(f"HEP address {spec!r}: unbalanced brackets around the IPv6 address")
        port_text = tail[1:]
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
    else:
        host, port_text = rest, ""  # a bare IPv6 address or a host name without port
    try:
        port = int(port_text) if port_text else HEP_PORT
    except ValueError:
        raise UsageError(f"HEP address {spec!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"HEP address {spec!r}: port {port} out of range")
    return HepEndpoint(transport, host or "0.0.0.0", port)


def _resolve(endpoint: HepEndpoint, kind: int, passive: bool) -> tuple:
    try:
        infos = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=kind, flags=socket.AI_PASSIVE if passive else 0
        )
    except socket.gaierror as exc:
        raise UsageError(f"HEP address {endpoint}: {exc.strerror}") from None
    return infos[0]


class _TcpConnection:
    __slots__ = ("sock", "peer", "buf", "consumed", "garbage", "garbage_at")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.consumed = 0  # stream bytes before buf[0], for problem offsets
        self.garbage = 0  # bytes being skipped while looking for the next "HEP3"
        self.garbage_at = 0


class HepListener:
    """A HEP collector on `udp:ADDR:PORT` or `tcp:ADDR:PORT` (HEP3 framed by its length field on TCP).

    `poll(timeout)` waits up to `timeout` seconds for traffic and returns what arrived as frames; `batches()`
    loops over `poll` until `close()`. With `password`, packets whose authentication key (chunk 0x000e)
    differs are dropped and counted in `auth_failed`. `counters()` gives every figure at once.
    """

    MAX_BATCH = 2048
    MAX_CONNECTIONS = 256

    def __init__(
        self, spec: str, problems: ProblemLog | None = None, password: str | None = None,
        rcvbuf: int = 8 << 20, clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = parse_endpoint(spec)
        self.problems = problems if problems is not None else ProblemLog()
        self.unwrapper = HepUnwrapper(self.problems, password)
        self.clock = clock
        self.datagrams = 0  # UDP datagrams / TCP HEP messages received
        self.kernel_drops = 0
        self.connections = 0
        self.closed = False
        self._selector = selectors.DefaultSelector()
        self._conns: dict[int, _TcpConnection] = {}
        kind = socket.SOCK_STREAM if self.endpoint.transport == "tcp" else socket.SOCK_DGRAM
        family, _, _, _, address = _resolve(self.endpoint, kind, passive=True)
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:  # not for UDP: two collectors would share the port silently
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if kind == socket.SOCK_DGRAM:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                except OSError:
                    pass  # not Linux, or not allowed: no drop counter, smaller buffer
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(64)
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen for HEP on {self.endpoint}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        self.sock = sock
        self._selector.register(sock, selectors.EVENT_READ, None)

    @property
    def address(self) -> tuple[str, int]:
        """The bound address and port (useful with port 0)."""
        host, port = self.sock.getsockname()[:2]
        return host, port

    def counters(self) -> dict[str, int]:
        u = self.unwrapper
        return {
            "datagrams": self.datagrams, "packets": u.packets, "frames": u.frames, "malformed": u.malformed,
            "other": sum(u.other.values()), "unknown_chunks": u.unknown_chunks, "auth_failed": u.auth_failed,
            "kernel_drops": self.kernel_drops, "connections": self.connections,
        }

    def fileno(self) -> int:
        return self.sock.fileno()

    def poll(self, timeout: float | None = 0.0) -> list[FrameTuple]:
        """Frames of the HEP packets that arrived, waiting up to `timeout` seconds for the first."""
        out: list[FrameTuple] = []
        if self.closed:
            return out
        for key, _ in self._selector.select(timeout):
            conn = key.data
            if conn is not None:
                self._read_tcp(conn, out)
            elif self.endpoint.transport == "udp":
                self._read_udp(out)
            else:
                self._accept()
        return out

    def batches(self, timeout: float = 0.5) -> Iterator[list[FrameTuple]]:
        """Batches until `close()`; an empty batch every `timeout` seconds of silence, so a caller can tick."""
        while not self.closed:
            yield self.poll(timeout)

    def _read_udp(self, out: list[FrameTuple]) -> None:
        sock = self.sock
        space = socket.CMSG_SPACE(4)
        while len(out) < self.MAX_BATCH:
            try:
                data, ancdata, _, peer = sock.recvmsg(MAX_HEP, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            for level, ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET and ctype == SO_RXQ_OVFL and len(cdata) >= 4:
                    self.kernel_drops = int.from_bytes(cdata[:4], sys.byteorder)
            self.datagrams += 1
            self._take(data, f"{peer[0]}:{peer[1]}", out)

    def _take(self, data: bytes, where: str, out: list[FrameTuple]) -> None:
        got = self.unwrapper.unwrap(data, fallback_ts=self.clock(), where=where)
        if got is not None:
            out.append((got.ts, got.linktype, got.frame))

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(self._conns) >= self.MAX_CONNECTIONS:
                sock.close()
                self.problems.report("hep_connection_refused", f"HEP agent {peer[0]}:{peer[1]} refused: "
                                     f"{self.MAX_CONNECTIONS} connections already open")
                continue
            sock.setblocking(False)
            conn = _TcpConnection(sock, f"{peer[0]}:{peer[1]}")
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self.connections += 1

    def _read_tcp(self, conn: _TcpConnection, out: list[FrameTuple]) -> None:
        try:
            chunk = conn.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop_connection(conn)
            return
        buf = conn.buf
        buf += chunk
        n = len(buf)
        # HEP3 messages back to back, each framed by its own length field. Bytes that do not start one are
        # skipped up to the next "HEP3" magic and reported once, with their offset in the connection's stream.
        pos = 0
        while n - pos >= 4:
            if buf[pos : pos + 4] != b"HEP3":
                nxt = buf.find(b"HEP3", pos + 1)
                end = nxt if nxt >= 0 else n - 3
                if not conn.garbage:
                    conn.garbage_at = conn.consumed + pos
                conn.garbage += end - pos
                pos = end
                if nxt < 0:
                    break
                continue
            if conn.garbage:
                self._report_garbage(conn)
            if n - pos < 6:
                break
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            if length < 6:
                self.unwrapper.malformed += 1
                self.problems.report(
                    "hep_malformed",
                    f"HEP over TCP from {conn.peer}, stream byte {conn.consumed + pos + 4}: length {length} "
                    "is shorter than the header",
                )
                pos += 4
                continue
            if n - pos < length:
                break
            message = bytes(buf[pos : pos + length])
            pos += length
            self.datagrams += 1
            self._take(message, conn.peer, out)
        del buf[:pos]
        conn.consumed += pos

    def _report_garbage(self, conn: _TcpConnection) -> None:
        self.unwrapper.malformed += 1
        self.problems.report(
            "hep_malformed",
            f"HEP over TCP from {conn.peer}, stream byte {conn.garbage_at}: {conn.garbage} bytes that do not "
            'start with "HEP3" skipped',
        )
        conn.garbage = 0

    def _drop_connection(self, conn: _TcpConnection) -> None:
        if conn.garbage:
            self._report_garbage(conn)
        if conn.buf:
            self.problems.report(
                "hep_malformed",
                f"HEP over TCP from {conn.peer}, stream byte {conn.consumed}: connection closed inside a HEP "
                f"message ({len(conn.buf)} bytes left over)",
            )
            self.unwrapper.malformed += 1
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        self._conns.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn in list(self._conns.values()):
            self._drop_connection(conn)
        self._selector.close()
        self.sock.close()

    def __enter__(self) -> HepListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HepSender:
    """Forwards SIP messages and RTCP reports to a HEP collector (`udp:HOST:PORT`) as HEPv3.

    The socket is non-blocking: when its buffer is full the packet is dropped and counted in `dropped`;
    errors reported by the network (a collector that is down: ICMP port unreachable) count in `errors`.
    No method raises on traffic. RTCP goes as HOMER's JSON (protocol type 5), with the call's Call-ID as
    correlation id when the caller knows it.
    """

    def __init__(
        self, spec: str, capture_id: int = 0, password: str | None = None, node_name: str | None = None,
        sndbuf: int = 4 << 20,
    ) -> None:
        self.endpoint = parse_endpoint(spec)
        if self.endpoint.transport != "udp":
            raise UsageError(f"HEP sending to {self.endpoint}: only udp: is supported")
        if not 0 <= capture_id <= 0xFFFFFFFF:
            raise UsageError(f"HEP capture id {capture_id} is not a 32-bit unsigned number")
        self.capture_id = capture_id
        self.password = password
        self.node_name = node_name
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.oversize = 0
        self.not_rtcp = 0
        family, kind, proto, _, address = _resolve(self.endpoint, socket.SOCK_DGRAM, passive=False)
        sock = socket.socket(family, kind, proto)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot send HEP to {self.endpoint}: {exc.strerror or exc}") from None
        sock.setblocking(False)
        self.sock = sock

    def counters(self) -> dict[str, int]:
        return {
            "sent": self.sent, "dropped": self.dropped, "errors": self.errors, "oversize": self.oversize,
            "not_rtcp": self.not_rtcp,
        }

    def send(
        self, ts: float, src: str, sport: int, dst: str, dport: int, transport: Transport | str, payload: bytes,
        proto_type: int = PROTO_SIP, correlation_id: bytes | None = None,
    ) -> bool:
        """Encode and send one packet; False when it was dropped (buffer full, error, too big)."""
        try:
            packet = encode_hep3(
                ts, src, sport, dst, dport, transport, payload, self.capture_id, self.password, proto_type,
                correlation_id, self.node_name,
            )
        except (ValueError, OSError):
            self.oversize += 1
            return False
        try:
            self.sock.send(packet)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
            return False
        except OSError:
            self.errors += 1
            return False
        self.sent += 1
        return True

    def send_sip(self, message: Datagram) -> bool:
        """One SIP message (for TCP, one framed message, not an arbitrary piece of the stream)."""
        return self.send(
            message.ts, message.src, message.sport, message.dst, message.dport, message.transport, message.payload
        )

    def send_rtcp(self, packet: Datagram, call_id: str | bytes | None = None) -> bool:
        """One RTCP compound packet, as HOMER's RTCP JSON; False (counted in `not_rtcp`) without an SR/RR."""
        report = rtcp_json(packet.payload)
        if report is None:
            self.not_rtcp += 1
            return False
        cid = call_id.encode() if isinstance(call_id, str) else call_id
        return self.send(
            packet.ts, packet.src, packet.sport, packet.dst, packet.dport, packet.transport, report,
            PROTO_RTCP_JSON, cid,
        )

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> HepSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HepSource:
    """A HEP collector as a live frame source (`sipwatch live --hep-listen`, the FrameSource interface of
    sipwatch.capture.live): what the agents sent in one poll becomes one FrameBlock of raw IP frames (link
    type 101), in the order of the agents' capture times. `now()` runs on from the last capture time seen,
    so INVITE and RTP timeouts still fire when the agents fall silent."""

    def __init__(self, spec: str, problems: ProblemLog | None = None, password: str | None = None) -> None:
        self.listener = HepListener(spec, problems, password)
        self.name = f"HEP {spec}"
        self._stopped = False
        self._last: tuple[float, float] | None = None  # (capture time, wall time) of the latest frame

    def batches(self, timeout: float) -> Iterator[FrameBlock | None]:
        while not self._stopped and not self.listener.closed:
            frames = self.listener.poll(timeout)
            if not frames:
                yield None
                continue
            frames.sort(key=lambda f: f[0])  # agents' clocks interleave: the core wants capture order
            offsets, lengths, times = array("q"), array("q"), array("d")
            at = 0
            for ts, _, frame in frames:
                offsets.append(at)
                lengths.append(len(frame))
                times.append(ts)
                at += len(frame)
            self._last = (times[-1], time.monotonic())
            yield FrameBlock(b"".join(f[2] for f in frames), 0, offsets, lengths, times, _Repeat(LINKTYPE_RAW))

    def now(self) -> float:
        if self._last is None:
            return time.time()
        ts, wall = self._last
        return ts + (time.monotonic() - wall)

    def stats(self) -> CaptureStats:
        c = self.listener.counters()
        return CaptureStats(received=c["frames"], dropped=c["kernel_drops"])

    def stop(self) -> None:
        self._stopped = True

    def close(self) -> None:
        self.listener.close()
