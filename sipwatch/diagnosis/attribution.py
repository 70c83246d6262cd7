"""Attribution: each failed or degraded call gets a cause, the evidence for it, a confidence and advice.

The detectors in the core say *what* happened (a timeout, one-way audio, an unacknowledged 2xx). This module
adds the *why*: it reads the final response and its Reason header, the addresses the messages advertise, the
calls around each call (a 503 followed at once by a new INVITE is a route advance, not a failure), and maps
every conclusion onto the knowledge base, whose category, retry advice and texts it carries along.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from sipwatch.core.calls import Call
from sipwatch.diagnosis.knowledge import Category, Knowledge, for_finding, for_q850, for_status, knowledge
from sipwatch.model import Evidence, Finding, Outcome

BRIEF_ABANDON_S = 5.0  # the caller hung up within this long after dialling: "briefly abandoned"
ROUTE_ADVANCE_S = 2.0  # a new INVITE for the same caller and callee this soon after a 503 is a route advance
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
    advanced = _route_advances(calls)
    return {call.number: _diagnose(call, advanced.get(call.number)) for call in calls}


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


def _diagnose(call: Call, advanced_to: Call | None) -> Diagnosis:
    found: list[Attributed] = []
    status = _status(call, advanced_to)
    if status is not None:
        found.append(status)
    found.extend(attribute(f) for f in call.findings)
    nat = _nat(call)
    if nat is not None:
        found.append(nat)
        # NAT explains these: they become surer, and carry the address evidence
        for other in found:
            if other.kind in ("missing_ack", "one_way_audio", "media_address_mismatch", "no_media"):
                other.confidence = min(0.95, other.confidence + 0.1)
                other.evidence.extend(nat.evidence)
    principal = _principal(call, found)
    cause = principal.category if principal is not None else None
    return Diagnosis(found, cause, principal)


def _principal(call: Call, found: list[Attributed]) -> Attributed | None:
    if not found:
        return None
    failed = call.outcome not in (Outcome.ANSWERED, Outcome.IN_PROGRESS)
    if failed:
        return found[0]  # the final response (or the timeout) is what the caller met
    degraded = [f for f in found if f.category is not Category.NORMAL]
    if not degraded:
        return None
    # NAT behind an audio problem is the cause of that problem
    audio = [f for f in degraded if f.kind != "nat_private_address"]
    nat = [f for f in degraded if f.kind == "nat_private_address"]
    if nat and any(f.kind in ("missing_ack", "one_way_audio", "media_address_mismatch", "no_media") for f in audio):
        return nat[0]
    return max(audio or degraded, key=lambda f: f.confidence)


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
    """Private addresses advertised in Contact, Via or SDP while the packets come from elsewhere."""
    evidence: list[Evidence] = []
    for record in call.addresses:
        for what, host in (("Contact", record.contact_host), ("Via sent-by", record.via_host)):
            if host and _private(host) and host != record.source:
                evidence.append(Evidence(f"{what} of the {record.sender} ({record.message})",
                                         f"{host}, packets from {record.source}", record.frame, record.ts))
        if record.via_received and record.via_host and record.via_received != record.via_host:
            evidence.append(Evidence("Via received", f"{record.via_received} (sent-by {record.via_host})",
                                     record.frame, record.ts))
    for record in call.sdp:
        for address in record.connections:
            if address and _private(address) and address != record.signalling_src:
                evidence.append(Evidence(f"SDP c= of the {record.sender} ({record.message})",
                                         f"{address}, signalling from {record.signalling_src}", record.frame, record.ts))
        if record.origin_address and record.connections and record.connections[0] and (
            record.origin_address != record.connections[0] and _private(record.origin_address)
            != _private(record.connections[0])
        ):  # one rewritten, not the other: a SIP ALG's fingerprint
            evidence.append(Evidence("SDP o= and c= disagree", f"o={record.origin_address} c={record.connections[0]}",
                                     record.frame, record.ts))
    if not evidence:
        return None
    sides = sorted({e.what.split(" of the ")[1].split(" ")[0] for e in evidence if " of the " in e.what})
    return Attributed("nat_private_address", knowledge("finding:nat_private_address"),
                      f"the {' and '.join(sides) or 'endpoint'} advertise{'s' if len(sides) == 1 else ''} a private "
                      "address the packets do not come from: NAT without rewriting", 0.7, evidence,
                      evidence[0].ts, {"sides": sides})


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
