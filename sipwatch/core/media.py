"""Media of calls: RTP streams found through the signalling, measured per SSRC and direction.

Every SDP (offer or answer, in INVITE, 18x, 2xx, ACK, re-INVITE, UPDATE, PRACK) says where its sender wants to
receive media. For each `m=` line two destinations are expected, as sngrep does: the `c=` address and, for a
NAT'd endpoint whose SDP carries a private address, the address the signalling really came from, on the same
port. RTP to either belongs to the call; which one matched is kept as evidence. Streams nobody signalled
(the capture began mid-call) are only followed with the RTP heuristic on, and listed as unattached.

Per packet this costs one dict lookup on the 4-tuple and one `RtpStreamStats.update`.
"""

from __future__ import annotations

import socket
from array import array
from dataclasses import dataclass, field
from struct import pack

import numpy as np

from sipwatch.media.recorder import RtpRecorder
from sipwatch.media.rtcp import (
    ExtendedReport,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    VoipMetrics,
    parse_compound,
)
from sipwatch.media.rtp import is_rtcp, parse_rtp_header, rtp_header_problem
from sipwatch.media.rtpstats import RtpStreamStats
from sipwatch.model import ProblemLog
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
class RtcpSummary:
    """What RTCP reports said about one RTP stream (RFC 3550 §6.4, RFC 3611 §4.7), from the other side."""

    sender_reports: int = 0  # SRs the stream's sender sent
    sender_packet_count: int | None = None  # the last SR's count of packets sent
    report_blocks: int = 0  # report blocks about this stream, from its receiver
    fraction_lost_max_pct: float = 0.0
    cumulative_lost: int | None = None  # from the last block
    jitter_max: int = 0  # RTP timestamp units; ms need the stream's clock rate
    rtt_ms: list[float] = field(default_factory=list)  # from LSR/DLSR, one per block that has them
    xr_mos_lq: float | None = None
    xr_r_factor: int | None = None
    xr_loss_pct: float | None = None
    first_frame: int | None = None

    def add_block(self, block: ReportBlock, arrival: float, frame: int, sr_seen: float | None) -> None:
        """`sr_seen`: when the capture saw the SR this block's LSR names (None: not captured)."""
        self.report_blocks += 1
        self.first_frame = self.first_frame or frame
        self.fraction_lost_max_pct = max(self.fraction_lost_max_pct, block.fraction_lost_pct)
        self.cumulative_lost = block.cumulative_lost
        self.jitter_max = max(self.jitter_max, block.jitter)
        if sr_seen is not None and len(self.rtt_ms) < 1000:
            # RFC 3550 §6.4.1 with capture times on both ends, as the endpoints' clocks are not ours: the
            # round trip between the capture point and the reporting side
            rtt = arrival - sr_seen - block.dlsr_seconds
            if rtt >= 0.0:
                self.rtt_ms.append(rtt * 1000.0)

    def add_voip_metrics(self, metrics: VoipMetrics) -> None:
        self.xr_mos_lq = metrics.mos_lq_value
        self.xr_r_factor = metrics.r_factor_value
        self.xr_loss_pct = metrics.loss_pct


@dataclass(slots=True)
class RtpStream:
    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    recorder: RtpRecorder
    clock_rates: dict[int, int] | None = None
    encodings: dict[int, str] | None = None
    call_id: str | None = None
    direction: str | None = None  # "caller->callee" or "callee->caller"
    expectation: MediaExpectation | None = None
    rtcp: RtcpSummary | None = None  # what the far end's RTCP reported about this stream
    capture_lost: int = 0  # of the lost packets, those the capture dropped (core.findings.capture_loss)
    frames: array | None = None  # every packet's frame number, kept only when asked (sipwatch extract)
    _stats: RtpStreamStats | None = None

    @property
    def stats(self) -> RtpStreamStats:
        """The stream's statistics, computed from its recording when first asked (then the recording goes)."""
        if self._stats is None:
            self._stats = RtpStreamStats.from_recording(self.recorder, self.clock_rates, self.encodings)
            self.recorder = RtpRecorder(self.ssrc)
        return self._stats

    @property
    def codec(self) -> str | None:
        payload_types = self.stats.payload_types
        if self.expectation is None or not payload_types:
            return None
        pt = max(payload_types, key=payload_types.get)
        rtpmap = self.expectation.media.codec(pt)
        return rtpmap.encoding if rtpmap else None


@dataclass(slots=True)
class _Flow:
    """One UDP 4-tuple carrying RTP; usually one SSRC."""

    expectation: MediaExpectation | None
    streams: dict[bytes, RtpStream] = field(default_factory=dict)  # by the SSRC's 4 bytes


MAX_SSRCS_PER_FLOW = 16  # a flow that changes SSRC more often is not one call's media


class MediaTracker:
    """Follows RTP for the core. Fed every non-SIP UDP datagram; told about SDP by the call logic."""

    def __init__(self, heuristic: bool = False, keep_frames: bool = False, problems: ProblemLog | None = None) -> None:
        self.problems = problems if problems is not None else ProblemLog()
        self.heuristic = heuristic
        self.keep_frames = keep_frames
        self._expected: dict[tuple[str, int], MediaExpectation] = {}
        self._flows: dict[tuple, _Flow] = {}
        self._lane_flows: dict[bytes, _Flow] = {}  # the same IPv4 flows, by their 12 raw header bytes
        self.rtcp_errors = 0
        self._rtcp_expected: dict[tuple[str, int], str] = {}  # RTCP destination -> call id
        self._rtcp: dict[str, dict[int, RtcpSummary]] = {}  # call id -> reported-on SSRC -> what RTCP said
        self._sr_times: dict[str, dict[int, float]] = {}  # call id -> SR NTP middle 32 bits -> capture time
        self._keys_of_call: dict[str, list[tuple[str, int]]] = {}
        self._ignored: set[tuple] = set()  # 4-tuples seen that are not media of any call (negative cache)
        self._by_call: dict[str, list[RtpStream]] = {}
        self._unattached: list[RtpStream] = []
        self._expired: list[RtpStream] = []  # unattached streams gone idle, until taken

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
                self._keys_of_call.setdefault(call_id, []).append(key)
                if not media.rtcp_mux:  # RTCP on its own port: a=rtcp (RFC 3605), else the next one up
                    rtcp_key = (target, media.rtcp_port or media.port + 1)
                    self._rtcp_expected[rtcp_key] = call_id
                    self._keys_of_call[call_id].append(rtcp_key)
                added = True
        if added:
            # flows ignored before this SDP may be its media now (early media, port changes)
            self._ignored.clear()
            self._detach(call_id)

    def _detach(self, call_id: str) -> None:
        """Busy systems hand a call's media ports to the next call within seconds. A flow between two addresses
        this call announced (one side's SDP to the other's) that still belongs to another call ends here, so
        its next packet starts this call's stream. Looked up pair by pair (a handful per call): flows toward a
        port many calls share (a media server receiving every call on one port) are left alone."""
        keys = set(self._keys_of_call.get(call_id, ()))
        for dst in keys:
            for src in keys:
                if src == dst:
                    continue
                key = (src[0], src[1], dst[0], dst[1])
                flow = self._flows.get(key)
                if flow is not None and (flow.expectation is None or flow.expectation.call_id != call_id):
                    self._drop_flow(key, flow)

    def _add_flow(self, key: tuple, flow: _Flow) -> None:
        self._flows[key] = flow
        if ":" not in key[0]:
            self._lane_flows[_lane_key(*key)] = flow

    def _drop_flow(self, key: tuple, flow: _Flow) -> None:
        """Forget the flow `key` if it is still `flow` (a later call may own that 4-tuple by now)."""
        if self._flows.get(key) is not flow:
            return
        del self._flows[key]
        if ":" not in key[0]:
            self._lane_flows.pop(_lane_key(*key), None)

    def release(self, call_id: str) -> list[RtpStream]:
        """The call is finished: forget its expectations and flows, return its streams."""
        streams = self._by_call.pop(call_id, [])
        for key in self._keys_of_call.pop(call_id, ()):
            expectation = self._expected.get(key)
            if expectation is not None and expectation.call_id == call_id:
                del self._expected[key]
            if self._rtcp_expected.get(key) == call_id:
                del self._rtcp_expected[key]
        reports = self._rtcp.pop(call_id, {})
        self._sr_times.pop(call_id, None)
        for stream in streams:
            stream.rtcp = reports.get(stream.ssrc)
            if self.keep_frames:
                stream.frames = stream.recorder.frames
            key = (stream.src, stream.sport, stream.dst, stream.dport)
            flow = self._flows.get(key)
            if flow is not None and flow.expectation is not None and flow.expectation.call_id == call_id:
                self._drop_flow(key, flow)
        return streams

    def unattached(self) -> list[RtpStream]:
        return self._unattached

    def streams_of(self, call_id: str) -> list[RtpStream]:
        """The streams of a call still in progress (their recorders are still filling: read lengths, not stats)."""
        return self._by_call.get(call_id, [])

    def expire_unattached(self, before: float) -> None:
        """Unattached streams whose last packet came before `before` leave the tracker (see take_expired)."""
        keep = []
        for stream in self._unattached:
            arrivals = stream.recorder.arrivals
            if arrivals and arrivals[-1] >= before:
                keep.append(stream)
                continue
            self._expired.append(stream)
            key = (stream.src, stream.sport, stream.dst, stream.dport)
            flow = self._flows.get(key)
            if flow is not None:
                flow.streams.pop(stream.ssrc.to_bytes(4, "big"), None)
                if not flow.streams:
                    self._drop_flow(key, flow)
        self._unattached = keep

    def take_expired(self) -> list[RtpStream]:
        expired, self._expired = self._expired, []
        return expired

    def memory(self) -> dict[str, int]:
        return {"expected": len(self._expected), "flows": len(self._flows), "lane_flows": len(self._lane_flows),
                "rtcp_expected": len(self._rtcp_expected), "rtcp_calls": len(self._rtcp),
                "calls_with_keys": len(self._keys_of_call), "calls_with_streams": len(self._by_call),
                "unattached": len(self._unattached) + len(self._expired), "ignored": len(self._ignored)}

    # --- packets ---------------------------------------------------------------------------------

    def lane(self, key: bytes, frame: int, ts: float, data: bytes, start: int, end: int) -> bool:
        """The decoder's fast lane: a plain-header RTP packet of a stream already followed is recorded here
        without a Datagram; anything else returns False and comes back through `packet()`."""
        flow = self._lane_flows.get(key)
        if flow is None:
            return False
        stream = flow.streams.get(data[start + 8 : start + 12])
        if stream is None:
            return False
        stream.recorder.add_plain(data[start : start + 16], ts, frame, end - start)
        return True

    def lane_block(
        self, data: np.ndarray, key_at: np.ndarray, payload_at: np.ndarray, payload_len: np.ndarray,
        times: np.ndarray, frames: np.ndarray,
    ) -> np.ndarray:
        """The decoder's block lane: many plain-header RTP-over-IPv4 packets at once (numpy arrays: the frame
        bytes, where each 12-byte flow key and each payload starts, payload lengths, times, frame numbers).
        Packets of streams already followed are recorded; the returned mask says which were taken, the rest
        come back one by one through `packet()`."""
        taken = np.zeros(len(key_at), dtype=bool)
        if not self._lane_flows or not len(key_at):
            return taken
        # group by (addresses, ports + SSRC) as two integers: sorting integers is far cheaper than byte keys
        addresses = _u32(data, key_at) << np.uint64(32) | _u32(data, key_at + 4)
        ports_ssrc = _u32(data, key_at + 8) << np.uint64(32) | _u32(data, payload_at + 8)
        order = np.lexsort((ports_ssrc, addresses))  # packets of one stream together, in capture order
        addresses, ports_ssrc = addresses[order], ports_ssrc[order]
        change = np.flatnonzero((addresses[1:] != addresses[:-1]) | (ports_ssrc[1:] != ports_ssrc[:-1])) + 1
        bounds = [0, *change.tolist(), len(order)]
        heads = data[payload_at[order, None] + _SPAN16]
        times, frames, payload_len = times[order], frames[order], payload_len[order]
        flows = self._lane_flows
        for lo, hi in zip(bounds, bounds[1:], strict=False):
            head = heads[lo]
            at = key_at[order[lo]]
            flow = flows.get(data[at : at + 12].tobytes())
            if flow is None:
                continue
            stream = flow.streams.get(head[8:12].tobytes())
            if stream is None:
                continue
            stream.recorder.extend(heads[lo:hi].tobytes(), times[lo:hi].tobytes(), frames[lo:hi].tobytes(),
                                   payload_len[lo:hi].tobytes())
            taken[order[lo:hi]] = True
        return taken

    def packet(self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        flow = self._flows.get((src, sport, dst, dport))
        if flow is not None:
            if len(payload) >= 12 and payload[0] & 0xC0 == 0x80:
                stream = flow.streams.get(payload[8:12])
                if stream is not None:
                    if payload[0] != 0x80 and parse_rtp_header(payload) is None:
                        self.problems.report("rtp_parse", f"{rtp_header_problem(payload)}; packet skipped", frame)
                        return
                    stream.recorder.add(ts, frame, payload)
                    return
            else:
                return  # RTCP, STUN or keep-alives sharing the media port
        self._new_packet(frame, ts, src, sport, dst, dport, payload, flow)

    def _new_packet(
        self, frame: int, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes, flow: _Flow | None
    ) -> None:
        """The first packet of a flow or of a new SSRC in it: decide whether it is media we follow."""
        key = (src, sport, dst, dport)
        if flow is None and key in self._ignored:
            return
        if is_rtcp(payload):
            call_id = flow.expectation.call_id if flow is not None and flow.expectation else self._rtcp_expected.get(
                (dst, dport))
            if call_id is not None:
                self._rtcp_packet(call_id, ts, frame, payload)
            return
        header = parse_rtp_header(payload)
        if header is None or 72 <= header[0] <= 76:  # not RTP; 72-76 is RTCP sharing the port (RFC 5761 §4)
            # STUN or DTLS may open a media flow: with the heuristic on, its RTP may still follow
            if flow is None and not self.heuristic and (dst, dport) not in self._expected:
                self._ignore(key)
            return
        if flow is None:
            expectation = self._expected.get((dst, dport))
            if expectation is None and not self.heuristic:
                self._ignore(key)
                return
            flow = _Flow(expectation)
            self._add_flow(key, flow)
        if len(flow.streams) >= MAX_SSRCS_PER_FLOW:
            self.problems.report("ssrc_flood", f"more than {MAX_SSRCS_PER_FLOW} SSRCs on {src}:{sport} -> {dst}:{dport}; "
                                 f"SSRC 0x{header[4]:08x} not followed", frame)
            return
        stream = self._new_stream(flow, src, sport, dst, dport, header[4])
        flow.streams[payload[8:12]] = stream
        stream.recorder.add(ts, frame, payload)

    def _rtcp_packet(self, call_id: str, ts: float, frame: int, payload: bytes) -> None:
        try:
            packets = parse_compound(payload)
        except ValueError:
            self.rtcp_errors += 1
            return
        reports = self._rtcp.setdefault(call_id, {})
        sr_times = self._sr_times.setdefault(call_id, {})
        for packet in packets:
            if isinstance(packet, SenderReport):
                summary = reports.setdefault(packet.ssrc, RtcpSummary())
                summary.sender_reports += 1
                summary.sender_packet_count = packet.sender_info.packet_count
                if len(sr_times) < 10_000:
                    sr_times[packet.sender_info.ntp_middle32] = ts
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    seen = sr_times.get(block.lsr) if block.lsr else None
                    reports.setdefault(block.ssrc, RtcpSummary()).add_block(block, ts, frame, seen)
            elif isinstance(packet, ExtendedReport):
                for metrics in packet.voip_metrics:
                    reports.setdefault(metrics.ssrc, RtcpSummary()).add_voip_metrics(metrics)

    def _ignore(self, key: tuple) -> None:
        if len(self._ignored) > 100_000:  # bounded on a long live capture
            self._ignored.clear()
        self._ignored.add(key)

    def _new_stream(self, flow: _Flow, src: str, sport: int, dst: str, dport: int, ssrc: int) -> RtpStream:
        expectation = flow.expectation
        if expectation is None:
            stream = RtpStream(src, sport, dst, dport, ssrc, RtpRecorder(ssrc))
            self._unattached.append(stream)
            return stream
        media = expectation.media
        clock_rates = {pt: m.clock_rate for pt, m in media.rtpmaps.items()}
        encodings = {pt: m.encoding for pt, m in media.rtpmaps.items()}
        for pt in media.payload_types:
            codec = media.codec(pt)
            if codec is not None:
                clock_rates.setdefault(pt, codec.clock_rate)
                encodings.setdefault(pt, codec.encoding)
        stream = RtpStream(
            src, sport, dst, dport, ssrc, RtpRecorder(ssrc), clock_rates, encodings, expectation.call_id,
            "caller->callee" if expectation.receiver == "callee" else "callee->caller", expectation,
        )
        self._by_call.setdefault(expectation.call_id, []).append(stream)
        return stream


_SPAN16 = np.arange(16)


def _u32(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Big-endian 32-bit words at the given offsets, as uint64."""
    return np.frombuffer(data[at[:, None] + _SPAN4].tobytes(), dtype=">u4").astype(np.uint64)


_SPAN4 = np.arange(4)


def _lane_key(src: str, sport: int, dst: str, dport: int) -> bytes:
    """An IPv4 flow as the decoder's fast lane sees it: addresses and ports as on the wire."""
    return socket.inet_aton(src) + socket.inet_aton(dst) + pack("!HH", sport, dport)
