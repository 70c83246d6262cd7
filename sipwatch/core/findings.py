"""Media detectors: what is wrong with the audio of a call, decided from its streams and its SDP.

Each detector is a small function of (call, streams, thresholds, end of capture) returning findings with the
evidence behind them. Thresholds live in `MediaThresholds`, documented in docs/findings.md.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sipwatch.core.calls import Call
from sipwatch.core.media import RtpStream
from sipwatch.media.mos import estimate_mos
from sipwatch.model import Evidence, Finding, hostport

DIRECTIONS = ("caller->callee", "callee->caller")
ACK_WAIT_S = 64 * 0.5  # 64*T1: how long a UAS retransmits a 2xx waiting for its ACK (RFC 3261 §13.3.1.4)
# ... and when the capture ends before that, how many 2xx (3.5 s without an ACK, at T1 doubling) make the case
EDGE_MIN_2XX = 4


@dataclass(frozen=True, slots=True)
class MediaThresholds:
    min_answered_s: float = 2.0  # calls shorter than this are not judged for one-way audio / no media
    one_way_share: float = 0.05  # the quiet direction carries less than this share of the busy one's packets
    one_way_min_packets: int = 50  # the busy direction must carry at least this many packets
    rtp_timeout_s: float = 5.0  # a direction silent this long while the dialog is up
    media_after_bye_s: float = 1.0  # RTP this long after BYE is reported
    poor_loss_pct: float = 3.0
    poor_jitter_ms: float = 40.0
    poor_mos: float = 3.6
    capture_loss_window_s: float = 0.04  # gaps this close together in several streams are one event
    capture_loss_min_streams: int = 3  # ... in at least this many streams
    capture_loss_share: float = 0.8  # ... and at least this share of the streams active then


def call_findings(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    """Every detector's findings for a decided call: signalling first, then media (answered calls only)."""
    findings = _timeout(call) + _missing_ack(call, capture_end)
    if call.answer_ts is not None:
        for detector in _DETECTORS:
            findings.extend(detector(call, streams, limits, capture_end))
    return findings


def _timeout(call: Call) -> list[Finding]:
    """Timer B ran out (RFC 3261 §17.1.1.2): which of the three ways tells where to look."""
    if call.timeout_kind is None or call.invite_ts is None:
        return []
    invites = [r for r in call.records if r.cseq_method == "INVITE" and r.status is None]
    heard = {
        "no_response": "nothing came back at all",
        "trying_only": "only 100 Trying came back",
        "ringing": "it rang, but no final response came",
    }[call.timeout_kind]
    evidence = [Evidence("INVITE", f"sent {len(invites)} times (retransmissions included)", call.invite_frame,
                         call.invite_ts)]
    if call.trying_ts is not None:
        evidence.append(Evidence("100 Trying", None, None, call.trying_ts))
    if call.ringing_ts is not None:
        evidence.append(Evidence(f"{call.ringing_status} ringing", None, None, call.ringing_ts))
    return [Finding(
        f"timeout_{call.timeout_kind}", f"no final response to the INVITE within 32 s: {heard}", evidence,
        call.invite_ts, {"invites": len(invites)},
    )]


def _missing_ack(call: Call, capture_end: float) -> list[Finding]:
    """2xx retransmitted and never ACKed: the ACK is lost on the way back, typically a NAT or SIP ALG that
    routes by the Contact; the UAS gives up after 64*T1 and tears the call down (RFC 3261 §13.3.1.4)."""
    if call.answer_ts is None or call.ack_ts is not None or call.started_before_capture:
        return []
    answers = [r for r in call.records if r.cseq_method == "INVITE" and r.status is not None and 200 <= r.status < 300]
    if len(answers) < 2:
        return []
    if call.bye_ts is None and capture_end - call.answer_ts < ACK_WAIT_S and len(answers) < EDGE_MIN_2XX:
        return []  # the capture ended while the UAS still waited: one late ACK cannot be told from a lost one
    evidence = [Evidence("2xx", f"{answers[0].label}, then {len(answers) - 1} retransmissions", answers[0].frame,
                         answers[0].ts),
                Evidence("last 2xx retransmission", None, answers[-1].frame, answers[-1].ts)]
    data = {"retransmissions": len(answers) - 1}
    if call.bye_ts is not None:
        evidence.append(Evidence("BYE", f"from the {call.bye_by}, {call.bye_ts - call.answer_ts:.1f} s after the answer",
                                 call.bye_frame, call.bye_ts))
        data["bye_after_s"] = round(call.bye_ts - call.answer_ts, 3)
    return [Finding(
        "missing_ack", f"the 2xx was sent {len(answers)} times and never acknowledged", evidence, call.answer_ts, data,
    )]


def _negotiated(call: Call) -> dict[str, bool]:
    """Which sides announced an active RTP audio destination in their SDP."""
    sides = {"caller": False, "callee": False}
    for record in call.sdp:
        if any(port for port in record.ports):
            sides[record.sender] = True
    return sides


def _talk_end(call: Call, capture_end: float) -> float:
    return call.bye_ts if call.bye_ts is not None else capture_end


def _packets_by_direction(streams: list[RtpStream]) -> dict[str, int]:
    counts = dict.fromkeys(DIRECTIONS, 0)
    for stream in streams:
        if stream.direction in counts:
            counts[stream.direction] += stream.stats.packets
    return counts


def _sender(direction: str) -> str:
    return direction.split("->", 1)[0]


def _no_media(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    negotiated = _negotiated(call)
    talk = _talk_end(call, capture_end) - call.answer_ts
    if not all(negotiated.values()) or talk < limits.min_answered_s or any(s.stats.packets for s in streams):
        return []
    if any(record.on_hold for record in call.sdp):
        return []
    evidence = [
        Evidence("sdp", f"{r.sender} announced {r.connections[0]}:{r.ports[0]}" if r.ports else r.sender, r.frame, r.ts)
        for r in call.sdp
    ]
    evidence.append(Evidence("answered", call.final_phrase, call.answer_frame, call.answer_ts))
    return [Finding("no_media", f"answered {talk:.1f} s but no RTP flowed in either direction", evidence, call.answer_ts,
                    {"talk_s": round(talk, 3)})]


def _one_way(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    negotiated = _negotiated(call)
    talk = _talk_end(call, capture_end) - call.answer_ts
    if not all(negotiated.values()) or talk < limits.min_answered_s or any(r.on_hold for r in call.sdp):
        return []
    counts = _packets_by_direction(streams)
    busy, quiet = sorted(DIRECTIONS, key=counts.get, reverse=True)
    if counts[busy] < limits.one_way_min_packets or counts[quiet] > limits.one_way_share * counts[busy]:
        return []
    silent = _sender(quiet)
    hearing_nothing = _sender(busy)
    busy_stream = max((s for s in streams if s.direction == busy), key=lambda s: s.stats.packets)
    evidence = [
        Evidence(f"rtp {busy}", f"{counts[busy]} packets {hostport(busy_stream.src, busy_stream.sport)} -> "
                 f"{hostport(busy_stream.dst, busy_stream.dport)}", busy_stream.stats.first_frame,
                 busy_stream.stats.first),
        Evidence(f"rtp {quiet}", f"{counts[quiet]} packets"),
    ]
    for record in call.sdp:
        if record.sender == silent:
            evidence.append(Evidence(f"sdp of the {silent}", f"c={record.connections} m={record.ports}", record.frame,
                                     record.ts))
    return [
        Finding(
            "one_way_audio",
            f"only {busy} audio flowed: the {silent} sent nothing, so the {hearing_nothing} heard nothing",
            evidence, call.answer_ts,
            {"silent_side": silent, "packets": counts},
        )
    ]


def _rtp_timeout(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    findings = []
    end = _talk_end(call, capture_end)
    ended_by = "bye" if call.bye_ts is not None else "open at end of capture"
    for direction in DIRECTIONS:
        flowing = [s for s in streams if s.direction == direction and s.stats.packets]
        if not flowing:
            continue
        last = max(s.stats.last for s in flowing)
        gap_mid = max(s.stats.max_delta_ms for s in flowing) / 1000.0
        stream = max(flowing, key=lambda s: s.stats.last)
        if end - last > limits.rtp_timeout_s:
            findings.append(Finding(
                "rtp_timeout",
                f"{direction} media stopped {end - last:.1f} s before the call ended ({ended_by})",
                [Evidence("last rtp packet", hostport(stream.src, stream.sport), stream.stats.last_frame, last),
                 Evidence("call end", ended_by, call.bye_frame, end)],
                last, {"direction": direction, "silence_s": round(end - last, 3), "ended_by": ended_by},
            ))
        elif gap_mid > limits.rtp_timeout_s:
            findings.append(Finding(
                "rtp_timeout",
                f"{direction} media paused {gap_mid:.1f} s in mid-call",
                [Evidence("longest gap", f"{gap_mid:.3f} s", stream.stats.last_frame)],
                None, {"direction": direction, "silence_s": round(gap_mid, 3), "ended_by": ended_by},
            ))
    return findings


def _address(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    findings = []
    seen: set[tuple] = set()
    for stream in streams:
        expectation = stream.expectation
        if expectation is None or not expectation.via_signalling_source:
            continue
        where = (expectation.receiver, expectation.sdp_address, expectation.media.port, stream.dst)
        if where in seen:  # one per announced destination, whatever the SSRCs sent to it
            continue
        seen.add(where)
        findings.append(Finding(
            "media_address_mismatch",
            f"SDP of the {expectation.receiver} announced {expectation.sdp_address}, but its media went to "
            f"{expectation.signalling_address} (the address its signalling came from): NAT without SDP rewrite",
            [Evidence("sdp c=", f"{expectation.sdp_address}:{expectation.media.port}", expectation.frame),
             Evidence("rtp destination", hostport(stream.dst, stream.dport), stream.stats.first_frame,
                      stream.stats.first)],
            stream.stats.first, {"sdp_address": expectation.sdp_address, "actual": stream.dst},
        ))
    return findings


def _payload_types(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    findings = []
    for stream in streams:
        if stream.expectation is None:
            continue
        offered = set(stream.expectation.media.payload_types)
        unexpected = sorted(pt for pt in stream.stats.payload_types if pt not in offered)
        if unexpected:
            findings.append(Finding(
                "unexpected_payload_type",
                f"{stream.direction} RTP carries payload type {unexpected} not in the negotiated SDP {sorted(offered)}",
                [Evidence("sdp m=", str(sorted(offered)), stream.expectation.frame),
                 Evidence("rtp payload types", str(unexpected), stream.stats.first_frame, stream.stats.first)],
                stream.stats.first, {"unexpected": unexpected, "negotiated": sorted(offered)},
            ))
    return findings


def _after_bye(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    if call.bye_ts is None:
        return []
    late = [s for s in streams if s.stats.packets and s.stats.last - call.bye_ts > limits.media_after_bye_s]
    if not late:
        return []
    worst = max(late, key=lambda s: s.stats.last)
    return [Finding(
        "media_after_bye",
        f"RTP went on {worst.stats.last - call.bye_ts:.1f} s after BYE ({worst.direction})",
        [Evidence("bye", call.bye_by, call.bye_frame, call.bye_ts),
         Evidence("last rtp", hostport(worst.src, worst.sport), worst.stats.last_frame, worst.stats.last)],
        call.bye_ts, {"seconds": round(worst.stats.last - call.bye_ts, 3)},
    )]


def _quality(call: Call, streams: list[RtpStream], limits: MediaThresholds, capture_end: float) -> list[Finding]:
    findings = []
    for stream in streams:
        stats = stream.stats
        if stats.packets < 10:
            continue
        # what the capture itself dropped is no fault of the network (see capture_loss below)
        loss_pct = 100.0 * max(0, stats.lost - stream.capture_lost) / stats.expected if stats.expected else 0.0
        mos = estimate_mos(stream.codec, loss_pct)
        problems = []
        if loss_pct > limits.poor_loss_pct:
            problems.append(f"loss {loss_pct:.1f}%")
        if (stats.max_jitter_ms or 0.0) > limits.poor_jitter_ms:
            problems.append(f"jitter up to {stats.max_jitter_ms:.1f} ms")
        if mos is not None and mos < limits.poor_mos:
            problems.append(f"estimated MOS {mos:.2f}")
        if problems:
            findings.append(Finding(
                "poor_quality",
                f"{stream.direction} audio degraded: " + ", ".join(problems),
                [Evidence("stream", f"{hostport(stream.src, stream.sport)} -> {hostport(stream.dst, stream.dport)}"
                          f" ssrc 0x{stream.ssrc:08x}", stats.first_frame, stats.first)],
                stats.first,
                {"loss_pct": round(loss_pct, 2), "capture_lost": stream.capture_lost,
                 "jitter_max_ms": stats.max_jitter_ms, "mos": mos},
            ))
    return findings


_DETECTORS: tuple[Callable[..., list[Finding]], ...] = (
    _no_media, _one_way, _rtp_timeout, _address, _payload_types, _after_bye, _quality,
)


def capture_loss(calls: list[Call], unattached: list[RtpStream], limits: MediaThresholds) -> list[Finding]:
    """Gaps that hit many streams at the same instant are the capture dropping packets, not the network.

    Every sequence gap of every stream is placed at the arrival of the packet after it. Where gaps of at least
    `capture_loss_min_streams` streams, and at least `capture_loss_share` of the streams active then, fall
    within `capture_loss_window_s`, the capture lost those packets: a capture-wide `capture_loss` finding is
    returned, each stream's `capture_lost` counts its share, and the calls' `poor_quality` findings are
    decided again on the network loss that remains.
    """
    findings = capture_loss_streams([s for c in calls for s in c.streams] + list(unattached), limits)
    if findings:
        for call in calls:
            requalify(call, limits)
    return findings


def capture_loss_streams(streams: list, limits: MediaThresholds) -> list[Finding]:
    """`capture_loss` over streams alone (or summaries of them: `stats.gap_arrivals`, `stats.packets`,
    `stats.first`, `stats.last` and `capture_lost` are all it reads); sets each stream's `capture_lost`."""
    events = sorted((t, missing, i) for i, s in enumerate(streams) for t, missing in s.stats.gap_arrivals)
    if not events:
        return []
    # the streams active at t (first <= t <= last) are those begun by t less those over before it: counted
    # by bisection in two sorted lists instead of a walk over every stream for every gap
    spans = [(st.first, st.last) for s in streams if (st := s.stats).packets and st.first <= st.last]
    firsts = sorted(first for first, _ in spans)
    lasts = sorted(last for _, last in spans)
    findings: list[Finding] = []
    window = limits.capture_loss_window_s
    # the gaps within `window` of gap i are events[i:j], j only ever moving on; `hit` counts them per stream
    hit: Counter[int] = Counter()
    i = j = 0
    while i < len(events):
        start = events[i][0]
        while j < len(events) and events[j][0] - start <= window:
            hit[events[j][2]] += 1
            j += 1
        active = bisect_right(firsts, start) - bisect_left(lasts, start)
        if len(hit) >= limits.capture_loss_min_streams and len(hit) >= limits.capture_loss_share * active:
            missing = 0
            for _, lost, k in events[i:j]:
                streams[k].capture_lost += lost
                missing += lost
            findings.append(Finding(
                "capture_loss",
                f"{len(hit)} of {active} RTP streams lost packets within {window * 1000:.0f} ms"
                f" of each other: the capture dropped {missing} packets there, the network did not",
                [Evidence("gap", f"{missing} packets over {len(hit)} streams", None, start)],
                start, {"streams": len(hit), "active_streams": active, "missing_packets": missing},
            ))
            hit.clear()
            i = j
        else:
            k = events[i][2]
            hit[k] -= 1
            if not hit[k]:
                del hit[k]
            i += 1
    return findings


def requalify(call: Call, limits: MediaThresholds) -> None:
    """A call some of whose lost packets the capture dropped: its `poor_quality` findings decided again on the
    network loss that remains (it may have none left). Idempotent."""
    if any(s.capture_lost for s in call.streams):
        call.findings = [f for f in call.findings if f.kind != "poor_quality"]
        call.findings.extend(_quality(call, call.streams, limits, 0.0))
