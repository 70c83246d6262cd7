"""Per-RTP-stream statistics that reproduce tshark 4.0's `-z rtp,streams` table.

A stream is one (source address, source port, destination address, destination port, SSRC); the caller
keys the streams and feeds each one its packets in capture order with `RtpStreamStats.update()`.

The packet count, lost count, min/mean/max delta and min/mean/max jitter follow Wireshark 4.0's
`rtppacket_analyse()` (ui/tap-rtp-analysis.c) and `rtpstream_info_calculate()` (ui/tap-rtp-common.c) rule
for rule, including their quirks; docs/rtp.md lists the rules. On top of that the stream keeps an
RFC 3550-style view of the sequence space (duplicates, reordering, the gaps still open at the end), the loss
runs the E-model needs, and RFC 4733 telephone-event (DTMF) events.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from struct import Struct
from typing import Any

import numpy as np

from sipwatch.media.mos import burst_ratio as _burst_ratio
from sipwatch.media.mos import estimate_mos
from sipwatch.media.rtp import parse_rtp_header

# an RtpRecorder's 16-byte records: first byte, marker/PT, sequence, timestamp, SSRC, RFC 4733 event word
_RECORD16 = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4"), ("word", ">u4")])

__all__ = [
    "DYNAMIC_CLOCK_RATES",
    "STATIC_CLOCK_RATES",
    "DtmfEvent",
    "RtpStreamStats",
    "clock_rate_for",
]

# Wireshark's clock_map (ui/tap-rtp-analysis.c): static payload types with a known sampling clock.
# Payload types below 96 that are missing here (including 35-95 even when SDP maps them) get no jitter.
STATIC_CLOCK_RATES: dict[int, int] = {
    0: 8000, 1: 8000, 2: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
    10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025, 17: 22050, 18: 8000,
    19: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000, 33: 90000, 34: 90000,
}

# Wireshark's mimetype_and_clock_map: clock rates for dynamic payload types known only by encoding name
# (used when the SDP rtpmap gives a name without a usable rate). Matched as a case-insensitive prefix of the
# encoding name, trying the entries from last to first, as Wireshark does.
DYNAMIC_CLOCK_RATES: tuple[tuple[str, int], ...] = (
    ("amr", 8000), ("amr-wb", 16000), ("bmpeg", 90000), ("bt656", 90000), ("dv", 90000), ("evrc", 8000),
    ("evrc0", 8000), ("evrc1", 8000), ("evrcb", 8000), ("evrcb0", 8000), ("evrcb1", 8000),
    ("evrcwb", 16000), ("evrcwb0", 16000), ("evrcwb1", 16000), ("evs", 16000), ("g7221", 16000),
    ("g726-16", 8000), ("g726-24", 8000), ("g726-32", 8000), ("g726-40", 8000), ("g729d", 8000),
    ("g729e", 8000), ("gsm-efr", 8000), ("h263-1998", 90000), ("h263-2000", 90000), ("h264", 90000),
    ("mp1s", 90000), ("mp2p", 90000), ("mp4v-es", 90000), ("mpa-robust", 90000), ("opus", 48000),
    ("pointer", 90000), ("raw", 90000), ("red", 1000), ("smv", 8000), ("smv0", 8000), ("t140", 1000),
    ("telephone-event", 8000),
)

_TELEPHONE_EVENT = "telephone-event"
_EVENT = Struct("!BBH")  # RFC 4733 §2.3: event, E/R/volume, duration
_HEAD16 = Struct("!xBHI8x")  # a recorded 16-byte head: M/PT, sequence number, timestamp
_unpack_event = _EVENT.unpack_from
_DTMF_NAMES = "0123456789*#ABCD"
_gap_start = itemgetter(0)
_INF = float("inf")


def clock_rate_for(pt: int, clock_rates: Mapping[int, int] | None = None,
                   encodings: Mapping[int, str] | None = None) -> int:
    """The clock rate tshark uses for a payload type's jitter: 0 means "no jitter for these packets".

    Below 96: Wireshark's static table only (SDP is not consulted). 96-127: 0 for telephone-event; else the
    SDP rtpmap rate; else the rate Wireshark knows for the encoding name; else 0 (unknown dynamic type).
    """
    if pt < 96:
        return STATIC_CLOCK_RATES.get(pt, 0)
    name = encodings.get(pt) if encodings else None
    if name is not None and name[:15].lower() == _TELEPHONE_EVENT:
        return 0
    rate = clock_rates.get(pt, 0) if clock_rates else 0
    if rate:
        return rate
    if name is None:
        return 0
    lowered = name.lower()
    for prefix, value in reversed(DYNAMIC_CLOCK_RATES):
        if lowered.startswith(prefix):
            return value
    return 0


def _pt_table(clock_rates: Mapping[int, int] | None, encodings: Mapping[int, str] | None) -> list[int]:
    """Per payload type (0-127): tshark's samples per millisecond, clock_rate // 1000 in integer arithmetic
    (0: no jitter); telephone-event types, whose RFC 4733 events are collected, are stored as -(value + 1).
    Tables are shared between streams negotiated alike (most calls of a capture are)."""
    key = (
        None if clock_rates is None else tuple(sorted(clock_rates.items())),
        None if encodings is None else tuple(sorted(encodings.items())),
    )
    table = _PT_TABLES.get(key)
    if table is None:
        if len(_PT_TABLES) > 1024:
            _PT_TABLES.clear()
        table = _PT_TABLES[key] = _build_pt_table(clock_rates, encodings)
    return table


_PT_TABLES: dict[tuple, list[int]] = {}


def _build_pt_table(clock_rates: Mapping[int, int] | None, encodings: Mapping[int, str] | None) -> list[int]:
    if encodings is None:
        events = {101}  # the conventional number, and tshark's default rtpevent payload type
    else:
        events = {pt for pt, name in encodings.items() if name[:15].lower() == _TELEPHONE_EVENT}
    table = []
    for pt in range(128):
        per_ms = clock_rate_for(pt, clock_rates, encodings) // 1000
        table.append(-(per_ms + 1) if pt in events else per_ms)
    return table


_DEFAULT_PT_TABLE = _pt_table(None, None)


@dataclass(slots=True)
class DtmfEvent:
    """One RFC 4733 telephone-event: all the packets sharing one RTP timestamp."""

    event: int  # 0-9, 10 '*', 11 '#', 12-15 A-D, 16 flash, others per RFC 4733 §3
    start: float  # arrival of its first packet, capture time in seconds
    frame: int  # frame number of its first packet
    rtp_timestamp: int
    duration: int  # largest duration field seen, timestamp units
    duration_ms: float
    volume: int  # dBm0 below zero (0-63)
    ended: bool  # an end-of-event packet was seen
    packets: int

    @property
    def digit(self) -> str:
        return _DTMF_NAMES[self.event] if self.event < 16 else ("flash" if self.event == 16 else f"event-{self.event}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "digit": self.digit, "event": self.event, "start": self.start, "frame": self.frame,
            "duration_ms": round(self.duration_ms, 3), "volume": self.volume, "ended": self.ended,
            "packets": self.packets,
        }


_CHUNK = 256
_DECAY = (15.0 / 16.0) ** np.arange(1, _CHUNK + 1)  # (15/16)^(i+1)
_GROWTH = (16.0 / 15.0) ** np.arange(1, _CHUNK + 1) / 16.0  # (16/15)^(k+1) / 16: at most e^16.6


def jitter_recurrence(d: np.ndarray) -> np.ndarray:
    """RFC 3550 A.8 over a whole stream: J(i) = (15 J(i-1) + |D(i)|) / 16 from J = 0, for |D| = `d`.

    The first-order recurrence unrolls to J(i) = (15/16)^(i+1) * (J(-1) + sum_k<=i (16/15)^(k+1) d(k) / 16):
    a cumulative sum per chunk of 256 samples, short enough that the growing weights stay far from overflow;
    the chunks run one after another carrying J. Same values as the scalar loop to ~1e-15 relative (every
    term is positive: no cancellation).
    """
    n = len(d)
    out = np.empty(n)
    carried = 0.0
    for lo in range(0, n, _CHUNK):
        part = d[lo : lo + _CHUNK]
        m = len(part)
        out[lo : lo + m] = _DECAY[:m] * (np.cumsum(_GROWTH[:m] * part) + carried)
        carried = float(out[lo + m - 1])
    return out


class RtpStreamStats:
    """Statistics of one RTP stream, fed packet by packet in capture order.

    `clock_rates` maps payload type -> clock rate (SDP a=rtpmap) and `encodings` payload type -> encoding
    name; both only matter for dynamic payload types (96-127): below 96 tshark's static table is used (see
    `clock_rate_for`). Payload types named telephone-event never get jitter; their RFC 4733 events (and, when
    no `encodings` are given, those of payload type 101) are collected in `dtmf_events` when `update()` gets
    the packet bytes. Payload types must be 0-127, as parse_rtp_header returns them.
    """

    __slots__ = (
        "ssrc", "packets", "bytes", "first", "last", "first_frame", "last_frame",
        "sequence_errors", "wrong_timestamps", "marker_packets", "problem", "duplicates", "out_of_order",
        "seq_jumps", "dtmf_events", "jitter_samples", "gap_arrivals",
        "_kind", "_event_rates", "_pt_counts", "_pt_seen",
        # tshark's tap_rtp_stat_t
        "_start_seq", "_stop_seq", "_seq_num", "_cycles", "_under", "_first_ts", "_time", "_last_nominal",
        "_pt", "_jitter", "_jitter_known", "_max_delta", "_min_delta", "_mean_delta", "_max_jitter",
        "_min_jitter", "_mean_jitter", "_max_delta_frame",
        # RFC 3550 view of the sequence space
        "_max_ext", "_gaps", "_event",
    )

    def __init__(self, ssrc: int, clock_rates: Mapping[int, int] | None = None,
                 encodings: Mapping[int, str] | None = None) -> None:
        self.ssrc = ssrc
        self.packets = 0
        self.bytes = 0
        self.first = self.last = 0.0
        self.first_frame = self.last_frame = 0
        self.sequence_errors = 0  # tshark's "sequence errors" (jumps, late and duplicated packets)
        self.wrong_timestamps = 0  # packets whose timestamp is before the first packet's
        self.marker_packets = 0
        self.problem = False  # tshark's "Problems?" column
        self.duplicates = 0
        self.out_of_order = 0
        self.seq_jumps = 0
        self.gap_arrivals: list[tuple[float, int]] = []  # (arrival of the packet after a gap, packets missing)
        self.jitter_samples = 0
        self.dtmf_events: list[DtmfEvent] = []
        self._kind = (_DEFAULT_PT_TABLE if clock_rates is None and encodings is None
                      else _pt_table(clock_rates, encodings))
        self._event_rates = clock_rates or {}
        self._pt_counts = [0] * 128
        self._pt_seen: tuple[int, dict[int, int]] = (0, {})
        self._start_seq = self._stop_seq = self._seq_num = 0
        self._cycles = 0
        self._under = False
        self._first_ts = 0
        self._time = 0.0
        self._last_nominal = 0.0
        self._pt = -1
        self._jitter = 0.0
        self._jitter_known = False
        self._max_delta = 0.0
        self._min_delta = _INF  # tshark's -1 "not set yet"
        self._mean_delta = 0.0
        self._max_jitter = 0.0
        self._min_jitter = _INF
        self._mean_jitter = 0.0
        self._max_delta_frame = 0
        self._max_ext = 0  # extended highest sequence number, relative to the first packet's
        self._gaps: list[list[int]] = []  # [first missing extended seq, count], ascending
        self._event: DtmfEvent | None = None

    @classmethod
    def from_recording(cls, recording: Any, clock_rates: Mapping[int, int] | None = None,
                       encodings: Mapping[int, str] | None = None) -> RtpStreamStats:
        """Statistics of a recorded stream (sipwatch.media.recorder.RtpRecorder), as `update()` gives them.

        The recording holds `ssrc`; `headers`, the first 16 bytes of each packet back to back; `arrivals`,
        `frames`, `lengths` (whole RTP packet lengths); `odd`, packet index -> whole packet where the first byte
        is not 0x80 (padding, extension or CSRCs). A clean stream -- plain headers, one payload type that is
        neither comfort noise nor telephone-event, no marker after the first packet, each sequence number one
        above the last, no timestamp before the first -- is computed with a few numpy array operations (and
        one float loop for the jitter recurrence); any other stream is replayed through `update()`.
        tests/test_rtpstats.py checks that both give the same figures.
        """
        stats = cls(recording.ssrc, clock_rates, encodings)
        if hasattr(recording, "in_order"):
            recording = recording.in_order()
        n = len(recording.arrivals)
        if n >= 64 and not recording.odd:  # below that, numpy's call overhead costs more than the loop
            fields = np.frombuffer(recording.headers, dtype=_RECORD16)
            clean = stats._clean_sequence(fields)
            if clean is not None:
                stats._vectorised(recording, fields, *clean)
                return stats
        stats._replay(recording)
        return stats

    def _clean_sequence(self, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(sequence numbers, timestamps) as int64 when the stream is clean (see from_recording), else None.
        Array methods rather than numpy's functions: on streams of a few hundred packets their call overhead
        is most of the cost."""
        b1 = fields["b1"]
        pt = int(b1[0]) & 0x7F
        if pt in (13, 19) or self._kind[pt] < 0 or int(b1[1]) != pt or (b1[2:] != b1[1]).any():
            return None
        seq = fields["seq"].astype(np.int64)
        if ((seq[1:] - seq[:-1]) & 0xFFFF != 1).any():
            return None
        ts = fields["ts"].astype(np.int64)
        if ((ts - ts[0]) & 0xFFFFFFFF >= 0x80000000).any():
            return None
        return seq, ts

    def _vectorised(self, recording: Any, fields: np.ndarray, seq: np.ndarray, ts: np.ndarray) -> None:
        n = len(recording.arrivals)
        arrivals = np.frombuffer(recording.arrivals, dtype=np.float64)
        frames = recording.frames
        b1 = fields["b1"]
        pt = int(b1[0]) & 0x7F
        self.packets = n
        self.bytes = int(np.frombuffer(recording.lengths, dtype=np.dtype(recording.lengths.typecode)).sum()) - 12 * n
        self.first, self.last = float(arrivals[0]), float(arrivals[-1])
        self.first_frame, self.last_frame = frames[0], frames[-1]
        self._pt_counts[pt] = n
        self._pt_seen = (n, {pt: n})
        self.marker_packets = int(b1[0] >> 7)
        self._start_seq = int(seq[0])
        self._stop_seq = self._seq_num = int(seq[-1])
        self._cycles = int((seq[1:] == 0).sum())
        self._under = bool(self._cycles and seq[-1] <= seq[0])
        self._max_ext = n - 1
        self._first_ts = int(ts[0])
        self._time = self.last
        self._pt = pt
        delta = (arrivals[1:] - arrivals[:-1]) * 1000.0
        top = int(delta.argmax())
        if delta[top] > 0.0:
            self._max_delta = float(delta[top])
            self._max_delta_frame = frames[top + 1]
        self._min_delta = float(delta.min())
        self._mean_delta = float(delta.sum()) / (n - 1)  # update()'s running mean over all of them
        per_ms = self._kind[pt]
        if not per_ms:
            return
        nominal = ((ts - ts[0]) & 0xFFFFFFFF) / per_ms
        values = jitter_recurrence(np.abs(delta - (nominal[1:] - nominal[:-1])))
        self._jitter = float(values[-1])
        self._jitter_known = True
        self._last_nominal = float(nominal[-1])
        self.jitter_samples = n - 1
        self._max_jitter = max(0.0, float(values.max()))
        self._min_jitter = float(values.min())
        self._mean_jitter = float(values.sum()) / (n - 1)

    def _replay(self, recording: Any) -> None:
        update = self.update
        heads = recording.headers
        odd = recording.odd
        rows = zip(_HEAD16.iter_unpack(heads), recording.arrivals, recording.frames, recording.lengths, strict=False)
        for i, ((b1, seq, ts), arrival, frame, length) in enumerate(rows):
            if odd and i in odd:
                packet = odd[i]
                header = parse_rtp_header(packet)
                if header is not None:
                    pt, marker, seq, ts, _, hlen, plen = header
                    update(arrival, frame, pt, marker, seq, ts, plen, packet, hlen)
            else:
                # plain 12-byte header; the event word of RFC 4733 packets is the recorded 13th-16th byte
                update(arrival, frame, b1 & 0x7F, b1 > 0x7F, seq, ts, length - 12, heads, 16 * i + 12)

    # --- the hot path ---------------------------------------------------------------------------------

    def update(self, arrival: float, frame: int, pt: int, marker: bool, seq: int, rtp_ts: int,
               payload_len: int, packet: bytes | None = None, header_len: int = 12) -> None:
        """Account one RTP packet: capture time in seconds, frame number and the header fields.

        `packet` (the RTP packet bytes) and `header_len` are only read for telephone-event payload types,
        to collect DTMF events; pass them when you have them.
        """
        n = self.packets  # tshark's total_nr before this packet
        self.packets = n + 1
        self.bytes += payload_len
        self.last = arrival
        self.last_frame = frame
        self._pt_counts[pt] += 1
        per_ms = self._kind[pt]
        if per_ms < 0:  # telephone-event
            per_ms = -per_ms - 1
            if packet is not None:
                self._telephone_event(arrival, frame, rtp_ts, packet, header_len, pt)
        if marker:
            self.marker_packets += 1

        if not n:
            self.first = self._time = arrival
            self.first_frame = frame
            self._start_seq = self._stop_seq = self._seq_num = seq
            self._first_ts = rtp_ts
            self._pt = pt
            return

        # RFC 3550 view: extended highest sequence number, open gaps, duplicates, reordering.
        start_seq = self._start_seq
        max_ext = self._max_ext
        step = (seq - start_seq - max_ext) & 0xFFFF
        if step == 1:
            self._max_ext = max_ext + 1
        elif step and step < 0x8000:
            self._gaps.append([max_ext + 1, step - 1])
            self.seq_jumps += 1
            if len(self.gap_arrivals) < 10_000:
                self.gap_arrivals.append((arrival, step - 1))
            self._max_ext = max_ext + step
        elif step:
            self._late(max_ext - 0x10000 + step)
        else:
            self.duplicates += 1

        # tshark: is the timestamp at or after the first packet's, modulo 2^32 (at most 2^31 ahead)?
        first_ts = self._first_ts
        elapsed = (rtp_ts - first_ts) & 0xFFFFFFFF
        in_time = elapsed < 0x80000000 if rtp_ts >= first_ts else elapsed <= 0x80000000

        # tshark: sequence-number cycles, for "expected"
        if in_time:
            if not self._under:
                if seq < start_seq or (seq == 0 and self._stop_seq == 65535):
                    self._cycles += 1
                    self._under = True
            elif seq > start_seq:
                self._under = False

        # tshark: sequence errors
        last_seq = self._seq_num
        if in_time and (last_seq + 1 == seq or (last_seq == 65535 and seq == 0)):
            self._seq_num = seq
        elif in_time and (last_seq + 1 < seq or last_seq - seq > 0xFF00):
            self._seq_num = seq
            self.sequence_errors += 1
            self.problem = True
        elif last_seq + 1 > seq:
            self.sequence_errors += 1
            self.problem = True
        self._stop_seq = seq

        prev_pt = self._pt
        if pt != prev_pt:
            self._pt = pt
        if not in_time:
            self.wrong_timestamps += 1
            self.problem = True
            return
        delta = (arrival - self._time) * 1000.0
        self._time = arrival
        if per_ms:
            nominal = elapsed / per_ms
            diff = delta - (nominal - self._last_nominal)
            if diff < 0.0:
                diff = -diff
            jitter = self._jitter = (15.0 * self._jitter + diff) / 16.0
            self._jitter_known = True
            self._last_nominal = nominal
        # tshark's "regular" packets: no marker, no comfort noise and not right after it
        if marker or pt == 13 or pt == 19 or prev_pt == 13 or prev_pt == 19:
            return
        if delta > self._max_delta:
            self._max_delta = delta
            self._max_delta_frame = frame
        if delta < self._min_delta:
            self._min_delta = delta
        self._mean_delta = (self._mean_delta * (n - 1) + delta) / n
        if per_ms:
            self.jitter_samples += 1
            if jitter > self._max_jitter:
                self._max_jitter = jitter
            if jitter < self._min_jitter:
                self._min_jitter = jitter
            self._mean_jitter = (self._mean_jitter * (n - 1) + jitter) / n

    def _late(self, ext: int) -> None:
        """A packet below the highest sequence number: fills a gap (reordered) or repeats one (duplicate)."""
        gaps = self._gaps
        i = bisect_right(gaps, ext, key=_gap_start) - 1
        if i >= 0:
            gap = gaps[i]
            start, count = gap
            if ext < start + count:
                self.out_of_order += 1
                left = ext - start
                right = count - left - 1
                if left and right:
                    gap[1] = left
                    gaps.insert(i + 1, [ext + 1, right])
                elif left:
                    gap[1] = left
                elif right:
                    gap[0] = ext + 1
                    gap[1] = right
                else:
                    del gaps[i]
                return
        if ext < 0:
            self.out_of_order += 1  # older than the first packet seen: late, not a duplicate
        else:
            self.duplicates += 1

    def _telephone_event(self, arrival: float, frame: int, rtp_ts: int, packet: bytes, header_len: int,
                         pt: int) -> None:
        if len(packet) < header_len + 4:
            return
        event, flags, duration = _unpack_event(packet, header_len)
        current = self._event
        if current is None or current.rtp_timestamp != rtp_ts or current.event != event:
            current = self._event = DtmfEvent(event, arrival, frame, rtp_ts, 0, 0.0, flags & 0x3F, False, 0)
            self.dtmf_events.append(current)
        current.packets += 1
        if duration > current.duration:
            current.duration = duration
            current.duration_ms = duration * 1000.0 / (self._event_rates.get(pt) or 8000)
        if flags & 0x80:
            current.ended = True

    # --- tshark's columns -----------------------------------------------------------------------------

    @property
    def expected(self) -> int:
        """tshark's expected count: last packet's sequence number + 65536 x cycles - first one's + 1."""
        if not self.packets:
            return 0
        return self._stop_seq + self._cycles * 0x10000 - self._start_seq + 1

    @property
    def lost(self) -> int:
        """tshark's Lost: expected - received; negative when duplicates outnumber losses."""
        return self.expected - self.packets

    @property
    def lost_pct(self) -> float:
        expected = self.expected
        return self.lost * 100.0 / expected if expected else 0.0

    @property
    def max_delta_ms(self) -> float:
        """Largest arrival gap between consecutive packets, over tshark's regular packets (0 if none)."""
        return self._max_delta

    @property
    def min_delta_ms(self) -> float | None:
        """Smallest arrival gap over regular packets; None where tshark prints -1 (no regular packet)."""
        return None if self._min_delta == _INF else self._min_delta

    @property
    def mean_delta_ms(self) -> float:
        return self._mean_delta

    @property
    def payload_types(self) -> dict[int, int]:
        """Packets per payload type (a copy; worked out again only after new packets)."""
        if self._pt_seen[0] != self.packets:
            self._pt_seen = (self.packets, {pt: count for pt, count in enumerate(self._pt_counts) if count})
        return dict(self._pt_seen[1])

    @property
    def max_delta_frame(self) -> int:
        return self._max_delta_frame

    @property
    def max_jitter_ms(self) -> float | None:
        """Largest RFC 3550 jitter over regular packets; None where tshark prints 0 for want of a clock."""
        return self._max_jitter if self.jitter_samples else None

    @property
    def min_jitter_ms(self) -> float | None:
        return self._min_jitter if self.jitter_samples else None

    @property
    def mean_jitter_ms(self) -> float | None:
        """tshark's Mean Jitter (see docs/rtp.md: the running mean of |D(i-1,i)|, not of J)."""
        return self._mean_jitter if self.jitter_samples else None

    @property
    def last_jitter_ms(self) -> float | None:
        """The RFC 3550 interarrival jitter after the last packet, in ms (None: no clock rate known)."""
        return self._jitter if self._jitter_known else None

    # --- the RFC 3550 view and the loss pattern -------------------------------------------------------

    @property
    def highest_seq(self) -> int:
        """Extended highest sequence number (RFC 3550 A.1), counting from the first packet's."""
        return self._start_seq + self._max_ext

    @property
    def loss_bursts(self) -> list[int]:
        """Lengths of the runs of sequence numbers still missing at the end, in order."""
        return [count for _, count in self._gaps]

    @property
    def missing(self) -> int:
        """Sequence numbers between the first and the highest that never arrived."""
        return sum(count for _, count in self._gaps)

    @property
    def longest_loss_burst(self) -> int:
        return max((count for _, count in self._gaps), default=0)

    @property
    def burst_ratio(self) -> float:
        """G.107 BurstR of the loss pattern (1.0: random or no loss)."""
        return _burst_ratio(self.loss_bursts, self._max_ext + 1)

    @property
    def loss_pct(self) -> float:
        """Missing packets as a percentage of the sequence range seen: the E-model's Ppl."""
        span = self._max_ext + 1 if self.packets else 0
        return self.missing * 100.0 / span if span else 0.0

    @property
    def duration(self) -> float:
        return self.last - self.first

    def mos(self, codec: str | None, delay_ms: float = 0.0) -> float | None:
        """E-model MOS estimate from this stream's loss and burstiness (None: codec unknown)."""
        return estimate_mos(codec, self.loss_pct, self.burst_ratio, delay_ms)

    def to_dict(self) -> dict[str, Any]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "ssrc": f"0x{self.ssrc:08X}",
            "packets": self.packets,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "duration_s": round(self.duration, 6),
            "payload_types": self.payload_types,
            "expected": self.expected,
            "lost": self.lost,
            "lost_pct": round(self.lost_pct, 2),
            "sequence_errors": self.sequence_errors,
            "wrong_timestamps": self.wrong_timestamps,
            "problem": self.problem,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "seq_jumps": self.seq_jumps,
            "missing": self.missing,
            "loss_bursts": self.loss_bursts,
            "longest_loss_burst": self.longest_loss_burst,
            "burst_ratio": round(self.burst_ratio, 3),
            "min_delta_ms": ms(self.min_delta_ms),
            "mean_delta_ms": ms(self.mean_delta_ms),
            "max_delta_ms": ms(self.max_delta_ms),
            "max_delta_frame": self._max_delta_frame,
            "min_jitter_ms": ms(self.min_jitter_ms),
            "mean_jitter_ms": ms(self.mean_jitter_ms),
            "max_jitter_ms": ms(self.max_jitter_ms),
            "last_jitter_ms": ms(self.last_jitter_ms),
            "dtmf_events": [event.to_dict() for event in self.dtmf_events],
        }
