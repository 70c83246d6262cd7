"""SIP over SCTP (RFC 4168): the user messages of DATA and I-DATA chunks, bundling and fragmentation undone.

An SCTP packet (RFC 9260 §3) is a 12-byte common header and chunks, each padded to 4 bytes. Only DATA
(type 0) and I-DATA (type 64, RFC 8260) carry user messages; every other chunk (INIT, SACK, HEARTBEAT...)
is skipped. A packet may bundle several chunks, so several SIP messages. A message too big for one
chunk is fragmented: B (first) and E (last) flags, consecutive TSNs for DATA, a message identifier and
fragment sequence numbers for I-DATA. A chunk whose TSN was already seen is a retransmission and is
dropped (the SIP layer must not mistake it for a SIP retransmission). The payload protocol identifier
is not trusted to say SIP (it is 0 in practice): the SIP layer decides by the start line, as on UDP.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from struct import unpack_from

from sipwatch.model import ProblemLog

MAX_MESSAGE = 1 << 20
MAX_PENDING_BYTES = 1 << 20  # fragments held per direction
MAX_ASSOCIATIONS = 16384
RECENT_TSNS = 4096  # TSNs remembered per direction to spot retransmitted chunks

CHUNK_DATA = 0
CHUNK_IDATA = 64
_FLAG_E, _FLAG_B, _FLAG_U = 0x01, 0x02, 0x04


@dataclass(slots=True)
class _Direction:
    seen: set[int] = field(default_factory=set)
    order: deque = field(default_factory=deque)
    fragments: dict = field(default_factory=dict)  # DATA: tsn -> (flags, payload); I-DATA: (sid, mid) -> {fsn: ...}
    pending: int = 0


class SctpReader:
    """User messages out of SCTP packets, one state per association direction."""

    def __init__(self, problems: ProblemLog) -> None:
        self.problems = problems
        self.directions: dict[tuple, _Direction] = {}
        self.packets = 0
        self.chunks = 0
        self.retransmissions = 0

    def packet(self, key: tuple, data: bytes, off: int, end: int, frame: int) -> list[bytes]:
        """The complete user messages of one SCTP packet; `off` is where its common header starts."""
        self.packets += 1
        out: list[bytes] = []
        pos = off + 12
        while end - pos >= 4:
            ctype, flags, length = data[pos], data[pos + 1], (data[pos + 2] << 8) | data[pos + 3]
            if length < 4 or pos + length > end:
                self.problems.report(
                    "sctp_chunk", f"SCTP chunk of length {length} runs past the packet ({end - pos} bytes left)",
                    frame,
                )
                break
            if ctype == CHUNK_DATA and length >= 16:
                tsn, sid, _ssn, _ppid = unpack_from("!IHHI", data, pos + 4)
                self._chunk(key, tsn, flags, data[pos + 16 : pos + length], None, out, frame)
            elif ctype == CHUNK_IDATA and length >= 20:
                tsn, sid, mid, fsn = unpack_from("!IH2xII", data, pos + 4)
                self._chunk(key, tsn, flags, data[pos + 20 : pos + length], (sid, mid, 0 if flags & _FLAG_B else fsn),
                            out, frame)
            pos += (length + 3) & ~3
        return out

    def _direction(self, key: tuple) -> _Direction:
        d = self.directions.get(key)
        if d is None:
            if len(self.directions) >= MAX_ASSOCIATIONS:
                del self.directions[next(iter(self.directions))]
            d = self.directions[key] = _Direction()
        return d

    def _chunk(self, key: tuple, tsn: int, flags: int, payload: bytes, idata: tuple | None, out: list[bytes],
               frame: int) -> None:
        self.chunks += 1
        d = self._direction(key)
        if tsn in d.seen:
            self.retransmissions += 1
            return
        d.seen.add(tsn)
        d.order.append(tsn)
        if len(d.order) > RECENT_TSNS:
            d.seen.discard(d.order.popleft())
        if flags & (_FLAG_B | _FLAG_E) == _FLAG_B | _FLAG_E:
            out.append(payload)
            return
        if d.pending + len(payload) > MAX_PENDING_BYTES:
            self.problems.report("sctp_fragments", "too many SCTP fragments waiting for their message; dropped", frame)
            d.fragments.clear()
            d.pending = 0
        if idata is None:
            old = d.fragments.get(tsn)  # a TSN seen so long ago it was forgotten: the newer chunk wins
            d.pending += len(payload) - (len(old[1]) if old else 0)
            d.fragments[tsn] = (flags, payload)
            whole = self._data_message(d, tsn)
        else:
            sid, mid, fsn = idata
            pieces = d.fragments.setdefault((sid, mid), {})
            old = pieces.get(fsn)
            d.pending += len(payload) - (len(old[1]) if old else 0)
            pieces[fsn] = (flags, payload)
            whole = self._idata_message(d, (sid, mid), pieces)
        if whole is not None:
            if len(whole) > MAX_MESSAGE:
                self.problems.report("sctp_fragments", f"SCTP message of {len(whole)} bytes dropped", frame)
            else:
                out.append(whole)

    def _data_message(self, d: _Direction, tsn: int) -> bytes | None:
        """DATA fragments occupy consecutive TSNs, B first and E last (RFC 9260 §6.9)."""
        first = tsn
        while True:
            piece = d.fragments.get(first)
            if piece is None:
                return None
            if piece[0] & _FLAG_B:
                break
            first = (first - 1) & 0xFFFFFFFF
        last = tsn
        while True:
            piece = d.fragments.get(last)
            if piece is None:
                return None
            if piece[0] & _FLAG_E:
                break
            last = (last + 1) & 0xFFFFFFFF
        parts = []
        t = first
        while True:
            flags, payload = d.fragments.pop(t)
            d.pending -= len(payload)
            parts.append(payload)
            if t == last:
                break
            t = (t + 1) & 0xFFFFFFFF
        return b"".join(parts)

    def _idata_message(self, d: _Direction, key: tuple, pieces: dict) -> bytes | None:
        """I-DATA fragments of one message share its MID and count FSN from 0 (RFC 8260 §2.1)."""
        last = next((fsn for fsn, (flags, _) in pieces.items() if flags & _FLAG_E), None)
        if last is None or len(pieces) <= last or any(fsn not in pieces for fsn in range(last + 1)):
            return None
        del d.fragments[key]
        parts = [pieces[fsn][1] for fsn in range(last + 1)]
        d.pending -= sum(map(len, parts))
        return b"".join(parts)

    def close(self) -> None:
        for d in self.directions.values():
            if d.fragments:
                self.problems.report("sctp_fragments", f"{d.pending} bytes of fragmented SCTP messages never completed")
        self.directions.clear()
