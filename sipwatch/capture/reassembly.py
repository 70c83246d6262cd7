"""IP fragment reassembly and TCP stream reassembly, both bounded in memory and driven by capture time.

A fragmented UDP INVITE must become one message; a SIP message over TCP may arrive split, merged,
reordered or retransmitted. Both reassemblers keep only what is still incomplete, cap it, and expire it
by capture time, so a fragment flood or a stream that never frames costs a bounded amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipwatch.model import ProblemLog

FRAGMENT_TIMEOUT = 30.0  # seconds of capture time, as Linux's ipfrag_time
MAX_PENDING_DATAGRAMS = 4096
MAX_DATAGRAM = 65535

TCP_MAX_PENDING_BYTES = 1 << 20  # out-of-order bytes held per direction before skipping a gap
TCP_MAX_PENDING_TOTAL = 32 << 20  # ... and over all directions
TCP_MAX_STREAMS = 65536
TCP_IDLE_TIMEOUT = 3600.0
TCP_MAX_CLOSED = 4096  # directions closed by FIN/RST whose end is remembered, to spot late retransmissions

_SYN = 0x02
_FIN = 0x01
_RST = 0x04


@dataclass(slots=True)
class _PendingDatagram:
    first_ts: float
    first_frame: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    size: int = 0


class FragmentReassembler:
    """IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5) fragments back into whole datagrams."""

    def __init__(self, problems: ProblemLog) -> None:
        self.problems = problems
        self.pending: dict[tuple, _PendingDatagram] = {}
        self.reassembled = 0

    def add(self, key: tuple, offset: int, more: bool, data: bytes, frame: int, ts: float) -> bytes | None:
        """Add one fragment; return the reassembled payload when it is complete."""
        pending = self.pending.get(key)
        if pending is None:
            if len(self.pending) >= MAX_PENDING_DATAGRAMS:  # the oldest gives way, without a scan of all
                oldest = next(iter(self.pending))
                self._drop(oldest, self.pending[oldest], "fragments of a datagram never completed")
            pending = self.pending[key] = _PendingDatagram(ts, frame)
        elif ts - pending.first_ts > FRAGMENT_TIMEOUT:
            self._drop(key, pending, "fragments of a datagram never completed within 30 s")
            pending = self.pending[key] = _PendingDatagram(ts, frame)
        if offset + len(data) > MAX_DATAGRAM:
            self._drop(key, pending, f"fragment at offset {offset} would exceed 65535 bytes", frame)
            return None
        if offset in pending.pieces:
            if pending.pieces[offset] != data:
                self.problems.report("overlapping_fragment", "fragment overlaps with different data; first kept", frame)
            return None
        pending.pieces[offset] = data
        pending.size += len(data)
        if pending.size > MAX_DATAGRAM:  # only overlaps hold more than a datagram can be
            del self.pending[key]
            self.problems.report(
                "overlapping_fragment", f"fragments of one datagram overlap beyond {MAX_DATAGRAM} bytes; dropped", frame
            )
            return None
        if not more:
            pending.total = offset + len(data)
        if pending.total is None or pending.size < pending.total:
            return None
        whole = self._assemble(pending)
        if whole is None:
            if pending.size > pending.total + MAX_DATAGRAM:
                self._drop(key, pending, "overlapping fragments never formed a datagram", frame)
            return None
        del self.pending[key]
        self.reassembled += 1
        return whole

    def _assemble(self, pending: _PendingDatagram) -> bytes | None:
        out = bytearray()
        for offset in sorted(pending.pieces):
            piece = pending.pieces[offset]
            if offset > len(out):
                return None  # a hole: wait for more
            if offset < len(out):
                piece = piece[len(out) - offset :]  # overlap: keep the bytes already placed
                self.problems.report("overlapping_fragment", "overlapping IP fragments; first data kept")
            out += piece
        if len(out) < pending.total:
            return None
        return bytes(out[: pending.total])

    def _drop(self, key: tuple, pending: _PendingDatagram, why: str, frame: int | None = None) -> None:
        self.pending.pop(key, None)
        self.problems.report("incomplete_fragments", why, frame if frame is not None else pending.first_frame)

    def _expire(self, now: float, force: bool = False) -> None:
        for key, pending in list(self.pending.items()):
            if force or now - pending.first_ts > FRAGMENT_TIMEOUT:
                self._drop(key, pending, "fragments of a datagram never completed")
                if force:
                    break

    def close(self) -> None:
        for key, pending in list(self.pending.items()):
            self._drop(key, pending, "capture ended before all fragments of a datagram arrived")


@dataclass(slots=True)
class _TcpDirection:
    next_seq: int | None
    last_ts: float
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0


class TcpReassembler:
    """One direction of a TCP connection into in-order bytes: retransmissions trimmed, reordering undone.

    Without a SYN (capture started mid-connection) the first data segment seen starts the stream. When
    more than TCP_MAX_PENDING_BYTES wait behind a hole (a segment the capture never saw), the hole is
    skipped and reported, so the stream goes on.
    """

    def __init__(self, problems: ProblemLog) -> None:
        self.problems = problems
        self.streams: dict[tuple, _TcpDirection] = {}
        self.closed: dict[tuple, int] = {}  # direction -> sequence number its data ended at (FIN/RST)
        self.retransmissions = 0
        self.out_of_order = 0
        self.pending_total = 0  # out-of-order bytes held over all directions

    def segment(self, key: tuple, seq: int, flags: int, payload: bytes, frame: int, ts: float) -> bytes | None:
        state = self.streams.get(key)
        if flags & _SYN:
            self.closed.pop(key, None)
            self.streams[key] = _TcpDirection((seq + 1) & 0xFFFFFFFF, ts)
            if len(self.streams) > TCP_MAX_STREAMS:
                self._expire(ts)
            return payload or None  # data on a SYN is rare (TFO); deliver it
        if state is None:
            if not payload:
                return None
            end = self.closed.pop(key, None)
            if end is not None and 0 < (end - seq) & 0xFFFFFFFF <= TCP_MAX_PENDING_BYTES:
                # data from just before the FIN/RST that closed this direction (often data+FIN sent again);
                # anything else is a new connection on the same ports whose SYN was not captured
                self.closed[key] = end
                self.retransmissions += 1
                return None
            state = self.streams[key] = _TcpDirection(seq, ts)
            if len(self.streams) > TCP_MAX_STREAMS:
                self._expire(ts)
        state.last_ts = ts
        out = None
        if payload:
            out = self._data(state, seq, payload, frame)
        if flags & (_FIN | _RST) and not state.pending:
            del self.streams[key]
            self.closed[key] = state.next_seq
            if len(self.closed) > TCP_MAX_CLOSED:
                del self.closed[next(iter(self.closed))]
        return out

    def _data(self, state: _TcpDirection, seq: int, payload: bytes, frame: int) -> bytes | None:
        rel = (seq - state.next_seq) & 0xFFFFFFFF
        if rel >= 0x80000000:  # before next_seq: retransmitted, possibly with new bytes at the end
            rel -= 0x100000000
            if len(payload) <= -rel:
                self.retransmissions += 1
                return None
            payload = payload[-rel:]
        elif rel > 0:  # a hole before it: hold it
            self.out_of_order += 1
            if seq not in state.pending or len(state.pending[seq]) < len(payload):
                added = len(payload) - len(state.pending.get(seq, b""))
                state.pending_bytes += added
                self.pending_total += added
                state.pending[seq] = payload
            if state.pending_bytes <= TCP_MAX_PENDING_BYTES and self.pending_total <= TCP_MAX_PENDING_TOTAL:
                return None
            hole_end = min(state.pending, key=lambda s: (s - state.next_seq) & 0xFFFFFFFF)
            self.problems.report(
                "tcp_gap",
                f"{(hole_end - state.next_seq) & 0xFFFFFFFF} bytes of a TCP stream never captured; skipped",
                frame,
            )
            state.next_seq = hole_end
            return self._drain(state, b"")
        state.next_seq = (state.next_seq + len(payload)) & 0xFFFFFFFF
        return self._drain(state, payload) if state.pending else payload

    def _drain(self, state: _TcpDirection, data: bytes) -> bytes | None:
        """Append held segments that the stream has now reached."""
        out = bytearray(data)
        pending = state.pending
        progress = True
        while pending and progress:
            progress = False
            for seq in list(pending):
                rel = (seq - state.next_seq) & 0xFFFFFFFF
                if rel >= 0x80000000 or rel == 0:
                    piece = pending.pop(seq)
                    state.pending_bytes -= len(piece)
                    self.pending_total -= len(piece)
                    skip = 0 if rel == 0 else 0x100000000 - rel
                    if skip < len(piece):
                        out += piece[skip:]
                        state.next_seq = (state.next_seq + len(piece) - skip) & 0xFFFFFFFF
                    progress = True
        return bytes(out) if out else None

    def _expire(self, now: float) -> None:
        for key, state in list(self.streams.items()):
            if now - state.last_ts > TCP_IDLE_TIMEOUT or len(self.streams) > TCP_MAX_STREAMS:
                del self.streams[key]

    def close(self) -> None:
        for state in self.streams.values():
            if state.pending:
                self.problems.report(
                    "tcp_gap", f"{state.pending_bytes} bytes of TCP data waited for a segment the capture never saw"
                )
        self.streams.clear()
        self.closed.clear()
