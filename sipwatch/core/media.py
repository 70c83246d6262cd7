"""Media of calls: RTP streams found through the signalling, measured per SSRC and direction.

Every SDP (offer or answer, in INVITE, 18x, 2xx, ACK, re-INVITE, UPDATE, PRACK) says where its sender wants to
receive media. For each `m=` line two destinations are expected, as sngrep does: the `c=` address and, for a
NAT'd endpoint whose SDP carries a private address, the address the signalling really came from, on the same
port. RTP to either belongs to the call; which one matched is kept as evidence. Streams nobody signalled
(the capture began mid-call) are only followed with the RTP heuristic on, and listed as unattached.

Per packet this costs one dict lookup on the 4-tuple and one `RtpStreamStats.update`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sipwatch.media.rtp import parse_rtp_header
from sipwatch.media.rtpstats import RtpStreamStats
from sipwatch.sip.sdp import MediaDescription, SessionDescription


@dataclass(slots=True)
class MediaExpectation:
    """One destination an SDP announced: media sent here belongs to `call_id`, towards `receiver`."""

    call_id: str
    receiver: str  # "caller" or "callee": who sent the SDP, i.e. who receives this media
    media: MediaDescription
    sdp_address: str | None  # the c= address
    signalling_address: str  # where the SDP's message really came from
    frame: int
    via_signalling_source: bool  # matched on the signalling source address, not on c= (NAT)


@dataclass(slots=True)
class RtpStream:
    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    stats: RtpStreamStats
    call_id: str | None = None
    direction: str | None = None  # "caller->callee" or "callee->caller"
    expectation: MediaExpectation | None = None

    @property
    def codec(self) -> str | None:
        if self.expectation is None or not self.stats.payload_types:
            return None
        pt = max(self.stats.payload_types, key=self.stats.payload_types.get)
        rtpmap = self.expectation.media.codec(pt)
        return rtpmap.encoding if rtpmap else None


@dataclass(slots=True)
class _Flow:
    """One UDP 4-tuple carrying RTP; usually one SSRC."""

    expectation: MediaExpectation | None
    streams: dict[int, RtpStream] = field(default_factory=dict)


class MediaTracker:
    """Follows RTP for the core. Fed every non-SIP UDP datagram; told about SDP by the call logic."""

    def __init__(self, heuristic: bool = False) -> None:
        self.heuristic = heuristic
        self._expected: dict[tuple[str, int], MediaExpectation] = {}
        self._flows: dict[tuple, _Flow] = {}
        self._ignored: set[tuple] = set()  # 4-tuples seen that are not media of any call (negative cache)
        self._by_call: dict[str, list[RtpStream]] = {}
        self._unattached: list[RtpStream] = []
        self.rtp_packets = 0

    # --- signalling side -------------------------------------------------------------------------

    def expect(self, call_id: str, receiver: str, sdp: SessionDescription, signalling_src: str, frame: int) -> None:
        """Register the destinations an SDP announces (its sender receives media there)."""
        added = False
        for media in sdp.media:
            if media.port == 0 or not media.protocol.upper().startswith("RTP"):
                continue
            address = media.connection
            targets = [(address, False)] if address else []
            if signalling_src != address:
                targets.append((signalling_src, True))
            for target, via_signalling in targets:
                key = (target, media.port)
                current = self._expected.get(key)
                if (
                    via_signalling and current is not None and current.call_id == call_id
                    and not current.via_signalling_source
                ):
                    continue  # an exact c= match is never replaced by a NAT guess
                self._expected[key] = MediaExpectation(
                    call_id, receiver, media, address, signalling_src, frame, via_signalling
                )
                added = True
        if added:
            # flows ignored before this SDP may be its media now (early media, port changes)
            self._ignored.clear()

    def streams_of(self, call_id: str) -> list[RtpStream]:
        return self._by_call.get(call_id, [])

    def release(self, call_id: str) -> list[RtpStream]:
        """The call is finished: forget its expectations and flows, return its streams."""
        streams = self._by_call.pop(call_id, [])
        for key in [k for k, e in self._expected.items() if e.call_id == call_id]:
            del self._expected[key]
        for stream in streams:
            self._flows.pop((stream.src, stream.sport, stream.dst, stream.dport), None)
        return streams

    def unattached(self) -> list[RtpStream]:
        return self._unattached

    # --- packets ---------------------------------------------------------------------------------

    def packet(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        key = (src, sport, dst, dport)
        flow = self._flows.get(key)
        if flow is None and key in self._ignored:
            return
        header = parse_rtp_header(payload)
        if header is None:
            if flow is None and (dst, dport) not in self._expected:
                self._ignore(key)
            return
        pt, marker, seq, rtp_ts, ssrc, _hlen, plen = header
        if flow is None:
            expectation = self._expected.get((dst, dport))
            if expectation is None and not self.heuristic:
                self._ignore(key)
                return
            flow = self._flows[key] = _Flow(expectation)
        stream = flow.streams.get(ssrc)
        if stream is None:
            stream = self._new_stream(flow, src, sport, dst, dport, ssrc)
        self.rtp_packets += 1
        stream.stats.update(ts, frame, pt, marker, seq, rtp_ts, plen)

    def _ignore(self, key: tuple) -> None:
        if len(self._ignored) > 100_000:  # bounded on a long live capture
            self._ignored.clear()
        self._ignored.add(key)

    def _new_stream(self, flow: _Flow, src: str, sport: int, dst: str, dport: int, ssrc: int) -> RtpStream:
        expectation = flow.expectation
        if expectation is None:
            stream = RtpStream(src, sport, dst, dport, ssrc, RtpStreamStats(ssrc))
            self._unattached.append(stream)
        else:
            media = expectation.media
            clock_rates = {pt: m.clock_rate for pt, m in media.rtpmaps.items()}
            encodings = {pt: m.encoding for pt, m in media.rtpmaps.items()}
            for pt in media.payload_types:
                codec = media.codec(pt)
                if codec is not None:
                    clock_rates.setdefault(pt, codec.clock_rate)
                    encodings.setdefault(pt, codec.encoding)
            stream = RtpStream(
                src, sport, dst, dport, ssrc, RtpStreamStats(ssrc, clock_rates, encodings),
                expectation.call_id,
                "caller->callee" if expectation.receiver == "callee" else "callee->caller",
                expectation,
            )
            self._by_call.setdefault(expectation.call_id, []).append(stream)
        flow.streams[ssrc] = stream
        return stream
