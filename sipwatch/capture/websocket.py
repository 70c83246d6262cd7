"""SIP over WebSocket (RFC 7118): the HTTP/1.1 Upgrade handshake, then RFC 6455 frames.

The frame decoder hands this module the in-order bytes of TCP directions that may carry WebSocket: a
direction whose bytes open with `GET ` (a possible Upgrade request) or one already known to be
WebSocket. Once the server answers `101 Switching Protocols`, both directions are read as frames:
unmasked, fragmented messages joined, control frames (close, ping, pong) dropped, and each complete
text or binary message returned (RFC 7118 §5: one SIP message per WebSocket message).

Connections whose handshake the capture missed stay plain TCP (as in tshark, which needs the handshake
or a Decode As). permessage-deflate (RFC 7692) is inflated; other extensions are reported.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from struct import unpack_from

from sipwatch.model import ProblemLog

MAX_MESSAGE = 1 << 20  # a SIP message over WebSocket larger than this is not SIP: the connection is dropped
MAX_HEAD = 16 * 1024  # an HTTP handshake head longer than this is not a handshake
MAX_CONNECTIONS = 16384

_UPGRADE = re.compile(rb"\r\nupgrade[ \t]*:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)
_EXTENSIONS = re.compile(rb"\r\nsec-websocket-extensions[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_STATUS_101 = re.compile(rb"HTTP/1\.[01] 101[ \r]")

_CONTINUATION, _TEXT, _BINARY = 0, 1, 2
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2


@dataclass(slots=True)
class _Direction:
    """One direction of an upgraded connection: bytes not yet framed, and the message being joined."""

    buffer: bytearray = field(default_factory=bytearray)
    parts: list[bytes] | None = None  # fragments of the message in progress
    size: int = 0
    compressed: bool = False  # RSV1 on the message's first frame (permessage-deflate)
    inflater: object | None = None  # zlib decompressobj kept across messages (context takeover)


@dataclass(slots=True)
class _Handshake:
    """An Upgrade request seen on `client`; the reverse direction is expected to answer 101."""

    client: tuple
    deflate: bool  # the client offered permessage-deflate
    early: bytearray = field(default_factory=bytearray)  # client bytes after the request, before the answer


def _deflate_params(head: bytes) -> tuple[bool, tuple[bool, bool]]:
    match = _EXTENSIONS.search(head)
    if match is None:
        return False, (True, True)
    value = match.group(1).lower()
    if b"permessage-deflate" not in value:
        return False, (True, True)
    return True, (b"client_no_context_takeover" not in value, b"server_no_context_takeover" not in value)


def _head_end(data: bytes | bytearray) -> int:
    end = data.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def unmask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte masking key (RFC 6455 §5.3), as one big-integer operation."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


class WebSocketTracker:
    """Finds Upgrade handshakes on TCP directions and turns upgraded directions into messages."""

    def __init__(self, problems: ProblemLog) -> None:
        self.problems = problems
        self.directions: dict[tuple, _Direction] = {}
        self.awaiting: dict[tuple, _Handshake] = {}  # server->client direction -> the request
        self.clients: dict[tuple, _Handshake] = {}  # client->server direction -> its pending request
        self.heads: dict[tuple, bytearray] = {}  # `GET ` heads split over segments
        self.active = False  # any state at all: lets the decoder skip `watches()` on captures without WebSocket
        self.connections = 0
        self.messages = 0
        self._deflate: dict[tuple, bool] = {}  # direction -> context takeover, for permessage-deflate

    def watches(self, key: tuple) -> bool:
        if key in self.directions or key in self.awaiting or key in self.clients or key in self.heads:
            return True
        if not (self.directions or self.awaiting or self.clients or self.heads):
            self.active = False
        return False

    def stream(self, key: tuple, data: bytes, frame: int) -> list[bytes] | None:
        """Feed in-order bytes of TCP direction `key`; None means "not WebSocket, plain TCP bytes"."""
        direction = self.directions.get(key)
        if direction is not None:
            return self._frames(key, direction, data, frame)
        handshake = self.awaiting.get(key)
        if handshake is not None:
            return self._answer(key, handshake, data, frame)
        handshake = self.clients.get(key)
        if handshake is not None:  # more client bytes before the server answered
            if len(handshake.early) + len(data) <= MAX_MESSAGE:
                handshake.early += data
            return []
        return self._request(key, data, frame)

    # --- handshake ----------------------------------------------------------------------------------

    def _request(self, key: tuple, data: bytes, frame: int) -> list[bytes] | None:
        head = self.heads.pop(key, None)
        if head is not None:
            head += data
            data = bytes(head)
        elif not data.startswith(b"GET "):
            return None
        end = _head_end(data)
        if end < 0:
            if len(data) <= MAX_HEAD:
                self.heads[key] = bytearray(data)
                self.active = True
                return []
            return None
        if _UPGRADE.search(data, 0, end) is None:
            return None if head is None else []
        if len(self.awaiting) >= MAX_CONNECTIONS:
            self.forget(next(iter(self.awaiting)))
        deflate, _ = _deflate_params(data[:end])
        reverse = (key[2], key[3], key[0], key[1])
        self.awaiting[reverse] = self.clients[key] = _Handshake(key, deflate, bytearray(data[end:]))
        self.active = True
        return []

    def _answer(self, key: tuple, handshake: _Handshake, data: bytes, frame: int) -> list[bytes] | None:
        head = self.heads.pop(key, None)
        if head is not None:
            head += data
            data = bytes(head)
        end = _head_end(data)
        if end < 0:
            if len(data) <= MAX_HEAD:
                self.heads[key] = bytearray(data)
                return []
            self.forget(key)
            return None
        self.forget(key)
        if not _STATUS_101.match(data):
            status = data[:end].split(b"\r\n", 1)[0].decode("latin-1")[:80]
            self.problems.report(
                "websocket_refused", f"WebSocket upgrade not accepted ({status!r}); connection read as TCP", frame
            )
            return None
        if len(self.directions) >= MAX_CONNECTIONS:
            for old in list(self.directions)[:2]:
                del self.directions[old]
        # the answer holds the parameters the server accepted (RFC 7692 §5)
        deflate, (takeover_client, takeover_server) = _deflate_params(data[:end])
        deflate = deflate and handshake.deflate
        self.connections += 1
        client = self.directions[handshake.client] = _Direction()
        server = self.directions[key] = _Direction()
        self.active = True
        if deflate:
            self._deflate[handshake.client] = takeover_client
            self._deflate[key] = takeover_server
        out = self._frames(handshake.client, client, bytes(handshake.early), frame) if handshake.early else []
        out += self._frames(key, server, data[end:], frame)
        return out

    # --- frames -------------------------------------------------------------------------------------

    def _frames(self, key: tuple, d: _Direction, data: bytes, frame: int) -> list[bytes]:
        buf = d.buffer
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            off = pos + 2
            if length == 126:
                if n - off < 2:
                    break
                length = (buf[off] << 8) | buf[off + 1]
                off += 2
            elif length == 127:
                if n - off < 8:
                    break
                (length,) = unpack_from("!Q", buf, off)
                off += 8
            if length > MAX_MESSAGE:
                self._abandon(key, f"WebSocket frame of {length} bytes; the rest of this connection is skipped", frame)
                return out
            key_bytes = None
            if b1 & 0x80:
                if n - off < 4:
                    break
                key_bytes = bytes(buf[off : off + 4])
                off += 4
            if n - off < length:
                break
            payload = bytes(buf[off : off + length])
            pos = off + length
            if key_bytes is not None:
                payload = unmask(payload, key_bytes)
            message = self._frame(key, d, b0, payload, frame)
            if message is not None:
                out.append(message)
            if key not in self.directions:
                return out
        if pos:
            del buf[:pos]
        if len(buf) > MAX_MESSAGE + 14:
            self._abandon(key, "WebSocket frame never completed; the rest of this connection is skipped", frame)
        return out

    def _frame(self, key: tuple, d: _Direction, b0: int, payload: bytes, frame: int) -> bytes | None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode >= 8:  # close, ping, pong (RFC 6455 §5.5): never fragmented, may come between fragments
            if opcode > 10:
                self.problems.report("websocket_frame", f"WebSocket control frame with reserved opcode {opcode}", frame)
            return None
        if opcode == _CONTINUATION:
            if d.parts is None:
                self.problems.report("websocket_frame", "WebSocket continuation frame without a first fragment", frame)
                return None
            d.parts.append(payload)
            d.size += len(payload)
            if d.size > MAX_MESSAGE:
                self._abandon(key, "fragmented WebSocket message over 1 MiB; the rest of this connection is skipped",
                              frame)
                return None
            if not fin:
                return None
            payload = b"".join(d.parts)
            d.parts = None
        elif opcode in (_TEXT, _BINARY):
            if d.parts is not None:
                self.problems.report("websocket_frame", "WebSocket message started before the previous one ended; "
                                     "its fragments were dropped", frame)
                d.parts = None
            d.compressed = bool(b0 & 0x40) and key in self._deflate
            if not fin:
                d.parts = [payload]
                d.size = len(payload)
                return None
        else:
            self.problems.report("websocket_frame", f"WebSocket data frame with reserved opcode {opcode}", frame)
            return None
        if d.compressed:
            payload = self._inflate(key, d, payload, frame)
            if payload is None:
                return None
        self.messages += 1
        return payload

    def _inflate(self, key: tuple, d: _Direction, payload: bytes, frame: int) -> bytes | None:
        takeover = self._deflate[key]
        inflater = d.inflater if takeover and d.inflater is not None else zlib.decompressobj(-15)
        try:
            out = inflater.decompress(payload + _DEFLATE_TAIL, MAX_MESSAGE)
        except zlib.error as exc:
            self.problems.report("websocket_frame", f"WebSocket message does not inflate ({exc})", frame)
            d.inflater = None
            return None
        d.inflater = inflater if takeover else None
        return out

    def _abandon(self, key: tuple, why: str, frame: int) -> None:
        self.problems.report("websocket_frame", why, frame)
        self.directions.pop(key, None)
        self._deflate.pop(key, None)

    def forget(self, key: tuple) -> None:
        """Drop what is known of direction `key` (and of a handshake it takes part in)."""
        self.directions.pop(key, None)
        self.heads.pop(key, None)
        self._deflate.pop(key, None)
        handshake = self.awaiting.pop(key, None) or self.clients.pop(key, None)
        if handshake is not None:
            self.clients.pop(handshake.client, None)
            self.awaiting.pop((handshake.client[2], handshake.client[3], handshake.client[0], handshake.client[1]), None)
