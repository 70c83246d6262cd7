"""Attribution: each failed or degraded call gets a cause, the evidence for it, a confidence and advice.

The detectors in the core say *what* happened (a timeout, one-way audio, an unacknowledged 2xx). This module
adds the *why*: it reads the final response and its Reason header, the addresses the messages advertise, the
caller identity (STIR/SHAKEN) the INVITE carried, the calls around each call (a 503 followed at once by a new
INVITE is a route advance, not a failure; rejections in a burst point at capacity, not at one busy person),
and maps every conclusion onto the knowledge base, whose category, retry advice and texts it carries along.
`diagnose_capture` looks at the capture as a whole: failures crowded into its busiest seconds.

Every threshold is a constant below, documented in docs/findings.md.
"""

from __future__ import annotations

import functools
import ipaddress
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sipwatch.core.calls import Call
from sipwatch.diagnosis.knowledge import Category, Knowledge, for_finding, for_q850, for_status, knowledge
from sipwatch.model import Evidence, Finding, Outcome

BRIEF_ABANDON_S = 5.0  # the caller hung up within this long after dialling: "briefly abandoned"
ROUTE_ADVANCE_S = 2.0  # a new INVITE for the same caller and callee this soon after a 503 is a route advance
SHORT_CALL_S = 6.0  # an answered call hung up sooner than this is a short call (call analytics' "short duration")
SHORT_CALL_PATTERN = 3  # this many short calls from one caller in a capture make a pattern...
SHORT_CALL_SHARE = 0.5  # ...when they are at least this share of the caller's answered calls (analytics rate
# callers by their short-duration ratio: an agent with a few short calls among hundreds is not a robocaller)
BURST_CODES = frozenset((486, 480, 503))  # rejections that, crowded together, mean no room rather than one person
BURST_MIN_CALLS = 4  # ... at least this many of them
BURST_WINDOW_S = 2.0  # ... within this many seconds of each other
CAPACITY_CODES = frozenset((503, 486, 480, 408))  # failures counted for a capacity window (and INVITE timeouts)
CAPACITY_MIN_FAILURES = 3  # a capacity window needs at least this many of them
CAPACITY_BUSY_SHARE = 0.5  # a second is busy when its calls per second or concurrency reach this share of the peak
CAPACITY_CONCENTRATION = 0.75  # ... and at least this share of the failures fall in busy seconds
BLOCKING_CODES = frozenset((403, 603, 607, 608))  # refusals where a weak caller identity may be the reason
IDENTITY_CODES = frozenset((428, 436, 437, 438))  # refusals that name the caller identity (RFC 8224)
ALG_RESIZE_MAX = 64  # bytes: an ALG rewriting a few addresses changes a body by less; more is another fault
ACK_GIVE_UP_S = (28.0, 40.0)  # a BYE this long after an unacknowledged 2xx: the UAS gave up (64*T1 = 32 s)
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10",
))


@dataclass(slots=True)
class Attributed:
    """A finding with what the knowledge base says about it."""

    kind: str
    entry: Knowledge
    detail: str
    confidence: float
    evidence: list[Evidence]
    ts: float | None = None
    data: dict = field(default_factory=dict)

    @property
    def category(self) -> Category:
        return self.entry.category


@dataclass(slots=True)
class Diagnosis:
    findings: list[Attributed]
    cause: Category | None  # the category of the principal finding; None for a healthy call
    principal: Attributed | None


def diagnose(calls: list[Call]) -> dict[int, Diagnosis]:
    """A diagnosis for every call, by call number (a Call-ID can be reused by a later call)."""
    diagnoser = Diagnoser(calls)
    return {call.number: diagnoser(call) for call in calls}


class Diagnoser:
    """Diagnoses calls one at a time, knowing the capture's other calls: route advances, rejection bursts and
    short-call patterns are found over `calls` first (summaries will do: only times, statuses, numbers and
    users are read), then each call given is diagnosed whole."""

    def __init__(self, calls: Iterable[Call]) -> None:
        calls = list(calls)
        self._advanced = _route_advances(calls)
        self._bursts = _bursts(calls, self._advanced)
        self._short = _short_calls_by_caller(calls)

    def __call__(self, call: Call) -> Diagnosis:
        number = call.number
        return _diagnose(call, self._advanced.get(number), self._bursts.get(number), self._short)


def attribute(finding: Finding) -> Attributed:
    """A detector's finding (call or capture level) with its knowledge-base entry."""
    return Attributed(finding.kind, for_finding(finding.kind), finding.detail, _CONFIDENCE.get(finding.kind, 0.8),
                      list(finding.evidence), finding.ts, dict(finding.data or {}))


# how sure a detector's finding is of itself (the evidence is in the capture; the cause is an inference)
_CONFIDENCE = {
    "timeout_no_response": 0.85, "timeout_trying_only": 0.8, "timeout_ringing": 0.8, "missing_ack": 0.85,
    "one_way_audio": 0.85, "no_media": 0.7, "rtp_timeout": 0.75, "media_address_mismatch": 0.8,
    "unexpected_payload_type": 0.7, "media_after_bye": 0.6, "poor_quality": 0.75, "capture_loss": 0.9,
}
_NAT_EXPLAINS = ("missing_ack", "one_way_audio", "media_address_mismatch", "no_media")


def _diagnose(call: Call, advanced_to: Call | None, burst: list[Call] | None,
              short: dict[str | None, list[Call]]) -> Diagnosis:
    found: list[Attributed] = []
    status = _status(call, advanced_to)
    if status is not None:
        found.append(status)
    found.extend(attribute(f) for f in call.findings)
    for finding in found:
        if finding.kind == "missing_ack":
            _gave_up(finding)
    for extra in (_identity(call, status), _burst(call, burst, status), _short_call(call, short)):
        if extra is not None:
            found.append(extra)
    for address in (_nat(call), _alg(call)):
        if address is None:
            continue
        found.append(address)
        # NAT and ALGs explain these: they become surer, and carry the address evidence
        for other in found:
            if other.kind in _NAT_EXPLAINS:
                other.confidence = min(0.95, other.confidence + 0.1)
                other.evidence.extend(address.evidence)
    principal = _principal(call, found)
    if call.started_before_capture or (call.open_at_end and call.outcome is not Outcome.ANSWERED):
        principal = None  # a partial call keeps its findings, but the capture does not hold why it ended
    cause = principal.category if principal is not None else None
    return Diagnosis(found, cause, principal)


def _principal(call: Call, found: list[Attributed]) -> Attributed | None:
    if not found:
        return None
    failed = call.outcome not in (Outcome.ANSWERED, Outcome.IN_PROGRESS)
    if failed:
        first = found[0]  # the final response (or the timeout) is what the caller met
        burst = next((f for f in found if f.kind == "failure_burst"), None)
        if burst is not None and first.category is Category.USER:
            return burst  # "busy" twenty times in two seconds is a full trunk, not twenty busy people
        return first
    # a lone short call is worth a note, not a cause; a caller making many of them is
    degraded = [f for f in found if f.category is not Category.NORMAL
                and not (f.kind == "short_call" and not f.data.get("pattern"))]
    if not degraded:
        return None
    # NAT behind an audio problem is the cause of that problem
    address = [f for f in degraded if f.kind in ("nat_private_address", "sip_alg_rewrite")]
    audio = [f for f in degraded if f not in address]
    if address and any(f.kind in _NAT_EXPLAINS for f in audio):
        return address[0]
    return max(audio or degraded, key=lambda f: f.confidence)


def _gave_up(finding: Attributed) -> None:
    """An unacknowledged 2xx followed by a BYE about 64*T1 later: the UAS ended the call as RFC 3261 says."""
    after = finding.data.get("bye_after_s")
    if after is not None and ACK_GIVE_UP_S[0] <= after <= ACK_GIVE_UP_S[1]:
        finding.detail += (f"; {finding.data.get('retransmissions')} retransmissions, then the callee gave up and "
                           f"tore the call down {after:.1f} s after answering (64*T1 = 32 s, RFC 3261 §13.3.1.4)")
        finding.confidence = min(0.95, finding.confidence + 0.05)


def _status(call: Call, advanced_to: Call | None) -> Attributed | None:
    """The final response, read with its Reason header; cancellations read as the seed's missed-call filters."""
    if call.outcome == Outcome.CANCELLED:
        return _cancelled(call)
    if call.outcome == Outcome.REDIRECTED and call.completed_elsewhere:
        return Attributed("completed_elsewhere", for_finding("completed_elsewhere"),
                          "the call was answered elsewhere (ring group) and this branch withdrawn", 0.9,
                          _reason_evidence(call), call.cancel_ts or call.final_ts)
    code = call.final_status
    if code is None or code < 300 or call.outcome in (Outcome.ANSWERED, Outcome.IN_PROGRESS):
        return None
    evidence = [Evidence("final response", f"{code} {call.final_phrase or ''}".strip(), call.final_frame,
                         call.final_ts)]
    evidence += _reason_evidence(call)
    if call.retry_after is not None:
        evidence.append(Evidence("Retry-After", f"{call.retry_after} s", call.final_frame, call.final_ts))
    if advanced_to is not None:
        evidence.append(Evidence("new INVITE", f"Call-ID {advanced_to.call_id}, "
                                 f"{advanced_to.invite_ts - call.final_ts:.3f} s later, outcome {advanced_to.outcome}",
                                 advanced_to.invite_frame, advanced_to.invite_ts))
        return Attributed("route_advance", for_finding("route_advance"),
                          f"{code} answered by an immediate new INVITE to the same callee: the call went on by "
                          "another route (least-cost routing), this attempt was not a failure", 0.85, evidence,
                          call.final_ts, {"next_call_id": advanced_to.call_id})
    q850 = next((r.cause for r in call.reasons if r.protocol == "Q.850" and r.cause), None)
    if q850 is not None:  # the Q.850 cause is the more precise statement of why
        entry = for_q850(q850)
        return Attributed(entry.key.replace(":", "_"), entry,
                          f"{code} {call.final_phrase or ''}, Q.850 cause {q850}: {entry.title}", 0.95, evidence,
                          call.final_ts, {"status": code, "q850": q850})
    entry = for_status(code)
    return Attributed(f"sip_{code}", entry, f"{code} {call.final_phrase or entry.title}", 0.9, evidence,
                      call.final_ts, {"status": code})


def _cancelled(call: Call) -> Attributed:
    waited = (call.cancel_ts - call.invite_ts) if call.cancel_ts is not None and call.invite_ts is not None else None
    kind = "briefly_abandoned" if waited is not None and waited < BRIEF_ABANDON_S else "abandoned"
    rang = "after ringing" if call.ringing_ts is not None else "before it rang"
    detail = f"the caller hung up {rang}" + (f", {waited:.1f} s after dialling" if waited is not None else "")
    evidence = [Evidence("CANCEL", None, call.cancel_frame, call.cancel_ts)] + _reason_evidence(call)
    return Attributed(kind, for_finding(kind), detail, 0.9, evidence, call.cancel_ts,
                      {"waited_s": None if waited is None else round(waited, 3)})


def _reason_evidence(call: Call) -> list[Evidence]:
    return [Evidence(f"Reason ({call.reason_source})", str(r), None, None) for r in call.reasons]


def _nat(call: Call) -> Attributed | None:
    """Private addresses advertised in Contact, Via or SDP while the packets come from elsewhere; a Via whose
    received/rport (what the responder saw) disagrees with its sent-by."""
    evidence: list[Evidence] = []
    for record in call.addresses:
        if record.retransmission:
            continue
        own = [("Contact", record.contact_host)]
        if record.sender == "caller":  # a response's top Via is the caller's, not its sender's
            own.append(("Via sent-by", record.via_host))
        for what, host in own:
            if host and _private(host) and host != record.source:
                evidence.append(Evidence(f"{what} of the {record.sender} ({record.message})",
                                         f"{host}, packets from {record.source}", record.frame, record.ts))
        if record.via_received and record.via_host and record.via_received != record.via_host:
            evidence.append(Evidence(f"Via received ({record.message})",
                                     f"{record.via_received} (sent-by {record.via_host})", record.frame, record.ts))
        if record.via_rport and record.via_rport != (record.via_port or 5060):
            evidence.append(Evidence(f"Via rport ({record.message})",
                                     f"{record.via_rport} (sent-by port {record.via_port or 5060})",
                                     record.frame, record.ts))
    for record in call.sdp:
        for address in record.connections:
            if address and _private(address) and address != record.signalling_src:
                evidence.append(Evidence(f"SDP c= of the {record.sender} ({record.message})",
                                         f"{address}, signalling from {record.signalling_src}", record.frame, record.ts))
    if not evidence:
        return None
    sides = sorted({e.what.split(" of the ")[1].split(" ")[0] for e in evidence if " of the " in e.what})
    return Attributed("nat_private_address", knowledge("finding:nat_private_address"),
                      f"the {' and '.join(sides) or 'endpoint'} advertise{'s' if len(sides) == 1 else ''} a private "
                      "address the packets do not come from: NAT without rewriting", 0.7, evidence,
                      evidence[0].ts, {"sides": sides})


def _alg(call: Call) -> Attributed | None:
    """Fingerprints of a SIP ALG that rewrote part of a message: a body that no longer matches its
    Content-Length, a Contact rewritten but not the Via beside it (or differently in a retransmission),
    SDP o= and c= disagreeing (one rewritten, not the other)."""
    evidence: list[Evidence] = []
    kinds: list[str] = []
    first_contact: dict[tuple[str, str], str | None] = {}
    for record in call.addresses:
        where = f"{record.sender} ({record.message})"
        if 0 < abs(record.body_excess) <= ALG_RESIZE_MAX:
            more = record.body_excess > 0
            evidence.append(Evidence(f"Content-Length of the {where}",
                                     f"body {abs(record.body_excess)} bytes {'longer' if more else 'shorter'} than "
                                     "Content-Length", record.frame, record.ts))
            kinds.append("body_length" if more else "body_short")
        key = (record.sender, record.message)
        if not record.retransmission:  # the copy a retransmission repeats (forks: the latest 2xx)
            first_contact[key] = record.contact_host
        elif key in first_contact and record.contact_host != first_contact[key]:
            evidence.append(Evidence(f"Contact of the {where} retransmission",
                                     f"{record.contact_host}, first copy said {first_contact[key]}",
                                     record.frame, record.ts))
            kinds.append("contact_changed")
        if (record.sender == "caller" and not record.retransmission and record.contact_host and record.via_host
                and _ip(record.contact_host) and not _private(record.contact_host) and _private(record.via_host)):
            evidence.append(Evidence(f"Contact and Via of the {where}",
                                     f"Contact {record.contact_host} but Via sent-by {record.via_host}",
                                     record.frame, record.ts))
            kinds.append("contact_rewritten")
    for record in call.sdp:
        origin = (record.origin_address or "").strip("[]")
        connection = record.connections[0] if record.connections else None
        if origin and connection and connection not in ("0.0.0.0", "::") and (  # not a hold
            origin != connection and _private(origin) != _private(connection)
        ):  # one rewritten, not the other
            evidence.append(Evidence(f"SDP o= and c= of the {record.sender} ({record.message})",
                                     f"o={record.origin_address} c={record.connections[0]}", record.frame, record.ts))
            kinds.append("sdp_origin")
    if not evidence:
        return None
    distinct = sorted(set(kinds))
    # a short body alone may be the capture's snap length rather than an ALG
    confidence = 0.5 if distinct == ["body_short"] else min(0.9, 0.65 + 0.1 * len(distinct))
    return Attributed("sip_alg_rewrite", for_finding("sip_alg_rewrite"),
                      "a SIP ALG (or a half-done NAT fix-up) rewrote part of the message: " + ", ".join(
                          _ALG_TEXT[k] for k in distinct), confidence, evidence, evidence[0].ts,
                      {"fingerprints": distinct})


_ALG_TEXT = {
    "body_length": "the body grew past its Content-Length",
    "body_short": "the body is shorter than its Content-Length",
    "contact_changed": "the Contact changed between retransmissions",
    "contact_rewritten": "the Contact was rewritten but not the Via",
    "sdp_origin": "SDP o= and c= disagree",
}


def _identity(call: Call, status: Attributed | None) -> Attributed | None:
    """A refusal read with the caller identity the INVITE carried (STIR/SHAKEN, RFC 8224/8588).

    428/436/437/438 name the identity; 403/603/607/608 may be caused by one that is absent or only partly
    attested. The finding's evidence is also added to the final response's.
    """
    code = call.final_status
    if status is None or status.kind == "route_advance" or code not in BLOCKING_CODES | IDENTITY_CODES:
        return None
    info = call.identity
    if info is None:
        return None  # the INVITE was not captured
    named = code in IDENTITY_CODES
    evidence = [Evidence("Identity header of the INVITE", info.describe(), info.frame, info.ts)]
    if info.state == "signed":
        evidence.append(Evidence("PASSporT", f"attest={info.attestation or '-'} orig.tn={info.orig_tn or '-'} "
                                 f"dest.tn={','.join(info.dest_tn) or '-'} iat={info.iat} origid={info.origid or '-'}",
                                 info.frame, info.ts))
        if info.info:
            evidence.append(Evidence("certificate (info)", info.info, info.frame, info.ts))
        if "orig_mismatch" in info.problems:
            evidence.append(Evidence("signed number vs From", f"orig.tn {info.orig_tn}, From user {call.from_user}",
                                     info.frame, info.ts))
        if "iat_skew" in info.problems:
            evidence.append(Evidence("iat vs capture time", f"{info.iat_offset_s:+.0f} s", info.frame, info.ts))
    if info.state == "absent":
        kind = "identity_absent"
        detail = "the INVITE carried no Identity header: the caller's number was not vouched for"
        confidence = {428: 0.95, 603: 0.35}.get(code, 0.6 if not named else 0.5)
    elif info.state == "malformed" or info.problems:
        kind = "identity_invalid"
        detail = f"the INVITE's Identity header would not pass verification: {info.describe()}"
        confidence = 0.9 if code in (436, 438) else 0.55
    elif info.attestation in ("B", "C") or info.attestation is None:
        kind = "identity_attestation"
        level = {"B": "partial (B)", "C": "gateway (C)"}.get(info.attestation or "", "unknown")
        detail = f"the caller's number was signed with {level} attestation only: not vouched for in full"
        confidence = 0.35 if code == 603 else 0.55
    elif named:
        kind = "identity_invalid"
        detail = (f"{code}: the terminating network could not verify the signature of a full (A) attestation; "
                  "sipwatch does not verify signatures: check the certificate at the info URL")
        confidence = 0.8
    else:
        return None  # a full attestation: the refusal had another reason
    status.evidence.extend(evidence)
    return Attributed(kind, for_finding(kind), detail, confidence, evidence, info.ts,
                      {"status": code, **info.to_dict()})


def _short_calls_by_caller(calls: list[Call]) -> dict[str | None, list[Call]]:
    """The short calls of each caller whose short calls make a pattern (enough of them, and a large enough
    share of the caller's answered calls); other callers' short calls are left out."""
    short: dict[str | None, list[Call]] = {}
    answered: Counter = Counter()
    for call in calls:
        if call.answer_ts is not None and not call.started_before_capture:
            answered[call.from_user] += 1
        if _is_short(call):
            short.setdefault(call.from_user, []).append(call)
    return {caller: same for caller, same in short.items()
            if len(same) >= SHORT_CALL_PATTERN and len(same) >= SHORT_CALL_SHARE * answered[caller]}


def _is_short(call: Call) -> bool:
    return (call.answer_ts is not None and call.bye_ts is not None and not call.started_before_capture
            and call.duration_s is not None and call.duration_s < SHORT_CALL_S)


def _short_call(call: Call, short: dict[str | None, list[Call]]) -> Attributed | None:
    """An answered call hung up within SHORT_CALL_S: robocalling and fraud traffic look like this, and so does a
    callee who heard nothing. Call analytics flag callers with many of them, which leads to blocking."""
    if not _is_short(call):
        return None
    duration = call.duration_s or 0.0
    packets = sum(s.stats.packets for s in call.streams)
    evidence = [Evidence("answered", call.final_phrase, call.answer_frame, call.answer_ts),
                Evidence("BYE", f"from the {call.bye_by or 'unknown side'}, {duration:.1f} s after the answer",
                         call.bye_frame, call.bye_ts),
                Evidence("RTP", f"{packets} packets")]
    same = short.get(call.from_user, [])
    pattern = bool(same)
    detail = f"answered but hung up by the {call.bye_by or 'unknown side'} after {duration:.1f} s"
    if pattern:
        evidence.append(Evidence("pattern", f"{len(same)} calls from {call.from_user} lasted under {SHORT_CALL_S:g} s",
                                 same[0].answer_frame, same[0].answer_ts))
        detail += (f", one of {len(same)} such calls from this caller (most of its answered calls): the pattern "
                   "analytics flag as robocalling")
    else:
        detail += ": alone, harmless; many of them look like robocalling, or audio that did not work"
    return Attributed("short_call", for_finding("short_call"), detail, 0.6 if pattern else 0.3, evidence,
                      call.answer_ts, {"duration_s": round(duration, 3), "bye_by": call.bye_by, "rtp_packets": packets,
                                       "pattern": pattern, "short_calls_from_caller": len(same)})


def _bursts(calls: list[Call], advanced: dict[int, Call]) -> dict[int, list[Call]]:
    """Rejections of BURST_CODES, at least BURST_MIN_CALLS within BURST_WINDOW_S: each call's burst."""
    rejected = sorted((c for c in calls if c.final_status in BURST_CODES and c.final_ts is not None
                       and c.number not in advanced and c.answer_ts is None), key=lambda c: c.final_ts)
    marked = [False] * len(rejected)
    j = 0
    for i, call in enumerate(rejected):
        j = max(j, i)
        while j + 1 < len(rejected) and rejected[j + 1].final_ts - call.final_ts <= BURST_WINDOW_S:
            j += 1
        if j - i + 1 >= BURST_MIN_CALLS:
            for k in range(i, j + 1):
                marked[k] = True
    out: dict[int, list[Call]] = {}
    group: list[Call] = []
    for call, hit in zip(rejected, marked, strict=True):
        if hit and group and call.final_ts - group[-1].final_ts > BURST_WINDOW_S:
            group = []
        if hit:
            group.append(call)  # the list object is shared by the burst's calls and grows as it is built
            out[call.number] = group
        else:
            group = []
    return out


def _burst(call: Call, burst: list[Call] | None, status: Attributed | None) -> Attributed | None:
    if not burst:
        return None
    codes = Counter(c.final_status for c in burst)
    span = burst[-1].final_ts - burst[0].final_ts
    listed = ", ".join(f"{n}x {code}" for code, n in sorted(codes.items()))
    evidence = [Evidence("rejection burst", f"{len(burst)} calls rejected within {span:.1f} s ({listed})",
                         burst[0].final_frame, burst[0].final_ts),
                Evidence("last of the burst", f"{burst[-1].final_status} to Call-ID {burst[-1].call_id}",
                         burst[-1].final_frame, burst[-1].final_ts)]
    if status is not None:
        status.evidence.extend(evidence)
    return Attributed("failure_burst", for_finding("failure_burst"),
                      f"one of {len(burst)} calls rejected ({listed}) within {span:.1f} s: the trunk or server had "
                      "no room, rather than one person being busy", 0.8 if codes.get(503) else 0.65, evidence,
                      call.final_ts, {"calls": len(burst), "span_s": round(span, 3),
                                      "by_status": {str(k): v for k, v in sorted(codes.items())}})


def diagnose_capture(calls: list[Call]) -> list[Attributed]:
    """Capture-wide findings: `capacity_window` where capacity failures crowd into the busiest seconds.

    Each second of the capture gets its calls per second (initial INVITEs sent in it) and its concurrency (the
    most calls in progress, ringing or answered, at any instant of it). A second is busy when either reaches
    CAPACITY_BUSY_SHARE of the capture's peak and exceeds the median active second's. A run of adjacent busy
    seconds holding at least CAPACITY_MIN_FAILURES capacity failures (503, 486, 480, 408 or an INVITE timeout,
    each placed at the second its INVITE was sent; route advances excluded) is a window, reported when at
    least CAPACITY_CONCENTRATION of the capture's capacity failures fall in busy seconds, the quiet seconds saw
    at least CAPACITY_MIN_FAILURES attempts, and calls failed more often in busy seconds than in quiet ones.
    """
    placed = [c for c in calls if c.invite_ts is not None and not c.started_before_capture]
    if not placed:
        return []
    advanced = _route_advances(calls)
    first = math.floor(min(c.invite_ts for c in placed))
    last = math.floor(max(max(c.invite_ts, c.end) for c in placed))
    if last - first > 1_000_000:  # beyond ~11 days a per-second table is not worth building
        return []
    size = last - first + 1
    cps = [0] * size
    fails = [0] * size
    failed: list[list[Call]] = [[] for _ in range(size)]
    for call in placed:
        second = math.floor(call.invite_ts) - first
        cps[second] += 1
        if _capacity_failure(call) and call.number not in advanced:
            fails[second] += 1
            failed[second].append(call)
    concurrent = _concurrency(placed, first, size)
    total = sum(fails)
    if total < CAPACITY_MIN_FAILURES:
        return []
    active = [s for s in range(size) if cps[s] or concurrent[s]]
    # busy: near the peak, and above the typical (median) second, so that steady traffic has no busy seconds
    typical_cps = sorted(cps[s] for s in active)[len(active) // 2]
    typical_conc = sorted(concurrent[s] for s in active)[len(active) // 2]
    peak_cps, peak_conc = max(cps), max(concurrent)
    busy = [(cps[s] >= CAPACITY_BUSY_SHARE * peak_cps and cps[s] > typical_cps)
            or (concurrent[s] >= CAPACITY_BUSY_SHARE * peak_conc and concurrent[s] > typical_conc)
            for s in range(size)]
    quiet = [s for s in active if not busy[s]]
    in_busy = sum(fails[s] for s in range(size) if busy[s])
    attempts_busy = sum(cps[s] for s in range(size) if busy[s])
    attempts_quiet = sum(cps[s] for s in quiet)
    if attempts_quiet < CAPACITY_MIN_FAILURES or in_busy < CAPACITY_CONCENTRATION * total:
        return []  # nothing quiet to compare with, or the failures are not where the load is
    rate_busy = in_busy / attempts_busy if attempts_busy else 0.0
    rate_quiet = (total - in_busy) / attempts_quiet if attempts_quiet else 0.0
    if rate_busy <= rate_quiet:
        return []
    out = []
    s = 0
    while s < size:
        if not busy[s]:
            s += 1
            continue
        end = s
        while end + 1 < size and busy[end + 1]:
            end += 1
        window = range(s, end + 1)
        if sum(fails[w] for w in window) >= CAPACITY_MIN_FAILURES:
            out.append(_capacity_window(first, window, cps, concurrent, failed, total, rate_busy, rate_quiet,
                                        max((cps[q] for q in quiet), default=0),
                                        max((concurrent[q] for q in quiet), default=0)))
        s = end + 1
    return out


def _concurrency(calls: list[Call], first: int, size: int) -> list[int]:
    """For each second, the most calls in progress (INVITE to end) at any instant of it."""
    # (time, 0 for a start / 1 for an end, step): at equal times a start comes first, so a call that ended
    # as it began still counts
    events = sorted([(c.invite_ts, 0, 1) for c in calls] + [(max(c.invite_ts, c.end), 1, -1) for c in calls])
    peak = [0] * size
    running = 0
    second = 0
    for ts, _, step in events:
        now = math.floor(ts) - first
        while second < now:  # seconds without an event keep the count they started with
            second += 1
            peak[second] = max(peak[second], running)
        running += step
        peak[now] = max(peak[now], running)
    return peak


def _capacity_failure(call: Call) -> bool:
    if call.answer_ts is not None:
        return False
    return call.final_status in CAPACITY_CODES or call.outcome is Outcome.TIMEOUT


def _capacity_window(first: int, window: range, cps: list[int], concurrent: list[int], failed: list[list[Call]],
                     total: int, rate_busy: float, rate_quiet: float, quiet_cps: int, quiet_conc: int) -> Attributed:
    start, end = first + window[0], first + window[-1] + 1
    calls = [c for w in window for c in failed[w]]
    attempts = sum(cps[w] for w in window)
    peak_cps = max(cps[w] for w in window)
    peak_conc = max(concurrent[w] for w in window)
    by_status = Counter(str(c.final_status) if c.final_status else "timeout" for c in calls)
    listed = ", ".join(f"{n}x {k}" for k, n in sorted(by_status.items()))
    evidence = [
        Evidence("window", f"{end - start} s, capture time {start} to {end}", None, float(start)),
        Evidence("calls per second", f"peak {peak_cps} in the window, at most {quiet_cps} elsewhere"),
        Evidence("concurrent calls", f"peak {peak_conc} in the window, at most {quiet_conc} elsewhere"),
        Evidence("failures", f"{len(calls)} of the capture's {total} capacity failures ({listed}); {len(calls)} of "
                 f"{attempts} attempts failed in the window"),
        Evidence("failure rate", f"{rate_busy:.0%} in busy seconds, {rate_quiet:.0%} elsewhere"),
    ]
    evidence += [Evidence(f"{c.final_status or 'timeout'}", f"Call-ID {c.call_id}", c.final_frame or c.invite_frame,
                          c.final_ts or c.invite_ts) for c in calls[:5]]
    share = len(calls) / total
    return Attributed(
        "capacity_window", for_finding("capacity_window"),
        f"{len(calls)} of {total} capacity failures ({listed}) fell in the {end - start} busiest second(s), at up to "
        f"{peak_cps} calls per second and {peak_conc} concurrent calls: a limit was reached under load",
        round(min(0.9, 0.6 + 0.3 * share * (1.0 - rate_quiet)), 2), evidence, float(start),
        {"start_ts": start, "end_ts": end, "seconds": end - start, "peak_cps": peak_cps,
         "peak_concurrent": peak_conc, "attempts": attempts, "failures": len(calls), "failures_total": total,
         "by_status": dict(sorted(by_status.items())), "failure_rate": round(rate_busy, 3),
         "failure_rate_elsewhere": round(rate_quiet, 3), "quiet_peak_cps": quiet_cps,
         "quiet_peak_concurrent": quiet_conc},
    )


def _ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)  # a capture's calls advertise few addresses, each many times
def _private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a host name
    return any(ip in net for net in _PRIVATE)


def _route_advances(calls: list[Call]) -> dict[int, Call]:
    """503 (or 5xx) answered within ROUTE_ADVANCE_S by a new INVITE from the same caller to the same callee."""
    out: dict[int, Call] = {}
    by_pair: dict[tuple, list[Call]] = {}
    for call in calls:
        if call.invite_ts is not None and call.to_user:
            by_pair.setdefault((call.from_user, call.to_user), []).append(call)
    for group in by_pair.values():
        group.sort(key=lambda c: c.invite_ts)
        for failed, following in zip(group, group[1:], strict=False):
            if (failed.final_status is not None and 500 <= failed.final_status < 600 and failed.final_ts is not None
                    and 0 <= following.invite_ts - failed.final_ts <= ROUTE_ADVANCE_S):
                out[failed.number] = following
    return out
