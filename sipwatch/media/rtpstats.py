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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from struct import Struct
from typing import Any

from sipwatch.media.mos import burst_ratio as _burst_ratio
from sipwatch.media.mos import estimate_mos
from sipwatch.media.rtp import parse_rtp_header

__all__ = [
    "DYNAMIC_CLOCK_RATES",
    "STATIC_CLOCK_RATES",
    "DtmfEvent",
    "RtpStreamStats",
    "RtpStreamTable",
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
_CN_PTS = (13, 19)  # comfort noise, and its pre-RFC 3551 number
_EVENT = Struct("!BBH")  # RFC 4733 §2.3: event, E/R/volume, duration
_unpack_event = _EVENT.unpack_from
_DTMF_NAMES = "0123456789*#ABCD"
_gap_start = itemgetter(0)


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


def _divisors(clock_rates: Mapping[int, int] | None, encodings: Mapping[int, str] | None) -> dict[int, int]:
    """pt -> clock_rate // 1000, Wireshark's (integer) samples-per-millisecond; absent when no jitter."""
    pts = set(STATIC_CLOCK_RATES)
    if clock_rates:
        pts.update(clock_rates)
    if encodings:
        pts.update(encodings)
    out: dict[int, int] = {}
    for pt in pts:
        if 0 <= pt < 128:
            per_ms = clock_rate_for(pt, clock_rates, encodings) // 1000
            if per_ms:
                out[pt] = per_ms
    return out


_DEFAULT_DIVISORS = _divisors(None, None)


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


class RtpStreamStats:
    """Statistics of one RTP stream, fed packet by packet in capture order.

    `clock_rates` maps payload type -> clock rate (SDP a=rtpmap) and `encodings` payload type -> encoding
    name; both only matter for dynamic payload types (96-127): below 96 tshark's static table is used.
    Telephone-event payload types (by encoding name; 101 when no encodings are given) never get jitter
    and have their RFC 4733 events collected in `dtmf_events` when `update()` gets the packet bytes.
    """

    __slots__ = (
        "ssrc", "packets", "bytes", "first", "last", "first_frame", "last_frame", "payload_types",
        "sequence_errors", "wrong_timestamps", "marker_packets", "problem", "duplicates", "out_of_order",
        "seq_jumps", "dtmf_events", "jitter_samples",
        "_div", "_event_pts", "_event_rates",
        # tshark's tap_rtp_stat_t
        "_start_seq", "_stop_seq", "_seq_num", "_cycles", "_under", "_first_ts", "_time", "_last_nominal",
        "_pt", "_delta", "_jitter", "_jitter_known", "_max_delta", "_min_delta", "_mean_delta", "_max_jitter",
        "_min_jitter", "_mean_jitter", "_max_delta_frame",
        # RFC 3550 view of the sequence space
        "_max_seq", "_max_ext", "_base_ext", "_gaps", "_event",
    )

    def __init__(self, ssrc: int, clock_rates: Mapping[int, int] | None = None,
                 encodings: Mapping[int, str] | None = None) -> None:
        self.ssrc = ssrc
        self.packets = 0
        self.bytes = 0
        self.first = self.last = 0.0
        self.first_frame = self.last_frame = 0
        self.payload_types: dict[int, int] = {}
        self.sequence_errors = 0  # tshark's "sequence errors" (jumps, late and duplicated packets)
        self.wrong_timestamps = 0  # packets whose timestamp is before the first packet's
        self.marker_packets = 0
        self.problem = False  # tshark's "Problems?" column
        self.duplicates = 0
        self.out_of_order = 0
        self.seq_jumps = 0
        self.jitter_samples = 0
        self.dtmf_events: list[DtmfEvent] = []
        self._div = _DEFAULT_DIVISORS if clock_rates is None and encodings is None else _divisors(
            clock_rates, encodings)
        if encodings is None:
            events = {101}
        else:
            events = {pt for pt, name in encodings.items() if name[:15].lower() == _TELEPHONE_EVENT}
        self._event_pts = frozenset(events)
        self._event_rates = {pt: (clock_rates or {}).get(pt) or 8000 for pt in events}
        self._start_seq = self._stop_seq = self._seq_num = 0
        self._cycles = 0
        self._under = False
        self._first_ts = 0
        self._time = 0.0
        self._last_nominal = 0.0
        self._pt = -1
        self._delta = 0.0
        self._jitter = 0.0
        self._jitter_known = False
        self._max_delta = 0.0
        self._min_delta = -1.0
        self._mean_delta = 0.0
        self._max_jitter = 0.0
        self._min_jitter = -1.0
        self._mean_jitter = 0.0
        self._max_delta_frame = 0
        self._max_seq = 0
        self._max_ext = 0
        self._base_ext = 0
        self._gaps: list[list[int]] = []  # [first missing extended seq, count], ascending
        self._event: DtmfEvent | None = None

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
        pts = self.payload_types
        pts[pt] = pts.get(pt, 0) + 1
        if marker:
            self.marker_packets += 1
        if pt in self._event_pts and packet is not None:
            self._telephone_event(arrival, frame, rtp_ts, packet, header_len, pt)

        if not n:
            self.first = self._time = arrival
            self.first_frame = frame
            self._start_seq = self._stop_seq = self._seq_num = self._max_seq = seq
            self._first_ts = rtp_ts
            self._pt = pt
            return

        # RFC 3550 view: extended highest sequence number, open gaps, duplicates, reordering.
        step = (seq - self._max_seq) & 0xFFFF
        if step and step < 0x8000:
            if step > 1:
                self._gaps.append([self._max_ext + 1, step - 1])
                self.seq_jumps += 1
            self._max_seq = seq
            self._max_ext += step
        elif step:
            self._late(self._max_ext - 0x10000 + step)
        else:
            self.duplicates += 1

        # tshark: is the timestamp at or after the first packet's, modulo 2^32 (at most 2^31 ahead)?
        first_ts = self._first_ts
        elapsed = (rtp_ts - first_ts) & 0xFFFFFFFF
        in_time = elapsed < 0x80000000 if rtp_ts >= first_ts else elapsed <= 0x80000000

        # tshark: sequence-number cycles, for "expected"
        if in_time:
            if not self._under:
                if seq < self._start_seq or (seq == 0 and self._stop_seq == 65535):
                    self._cycles += 1
                    self._under = True
            elif seq > self._start_seq:
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

        prev_pt = self._pt
        self._pt = pt
        per_ms = self._div.get(pt, 0)
        if in_time:
            delta = (arrival - self._time) * 1000.0
            self._delta = delta
            if per_ms:
                nominal = elapsed / per_ms
                diff = delta - (nominal - self._last_nominal)
                if diff < 0.0:
                    diff = -diff
                jitter = self._jitter = (15.0 * self._jitter + diff) / 16.0
                self._jitter_known = True
                self._last_nominal = nominal
            self._time = arrival
            # tshark's "regular" packets: no marker, no comfort noise and not right after it
            if not marker and pt != 13 and pt != 19 and prev_pt != 13 and prev_pt != 19:
                if delta > self._max_delta:
                    self._max_delta = delta
                    self._max_delta_frame = frame
                if self._min_delta == -1.0 or delta < self._min_delta:
                    self._min_delta = delta
                self._mean_delta = (self._mean_delta * (n - 1) + delta) / n
                if per_ms:
                    self.jitter_samples += 1
                    if jitter > self._max_jitter:
                        self._max_jitter = jitter
                    self._mean_jitter = (self._mean_jitter * (n - 1) + jitter) / n
                    if self._min_jitter == -1.0 or jitter < self._min_jitter:
                        self._min_jitter = jitter
        else:
            self.wrong_timestamps += 1
            self.problem = True
        self._stop_seq = seq

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
        if ext < self._base_ext:
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
            current.duration_ms = duration * 1000.0 / self._event_rates.get(pt, 8000)
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
        return None if self._min_delta == -1.0 else self._min_delta

    @property
    def mean_delta_ms(self) -> float:
        return self._mean_delta

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
            "payload_types": dict(sorted(self.payload_types.items())),
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


StreamKey = tuple[str, int, str, int, int]
CodecLookup = Callable[[str, int, str, int], "tuple[Mapping[int, int] | None, Mapping[int, str] | None] | None"]


class RtpStreamTable:
    """RTP streams keyed like tshark's: (src, sport, dst, dport, SSRC), in order of first packet.

    `codecs(src, sport, dst, dport)` may return (clock_rates, encodings) for a new stream (from the SDP that
    negotiated it), or None. `add()` takes every UDP datagram the caller believes is RTP.
    """

    __slots__ = ("streams", "codecs", "not_rtp")

    def __init__(self, codecs: CodecLookup | None = None) -> None:
        self.streams: dict[StreamKey, RtpStreamStats] = {}
        self.codecs = codecs
        self.not_rtp = 0

    def add(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int,
            payload: bytes) -> RtpStreamStats | None:
        header = parse_rtp_header(payload)
        if header is None:
            self.not_rtp += 1
            return None
        pt, marker, seq, rtp_ts, ssrc, hlen, plen = header
        key = (src, sport, dst, dport, ssrc)
        stats = self.streams.get(key)
        if stats is None:
            found = self.codecs(src, sport, dst, dport) if self.codecs else None
            stats = self.streams[key] = RtpStreamStats(ssrc, *(found or (None, None)))
        stats.update(ts, frame, pt, marker, seq, rtp_ts, plen, payload, hlen)
        return stats
