"""The analysis as plain data: the JSON contract (docs/json.md) and the flat tables CSV is made of.

Every output format starts here, so a field has one name and one meaning everywhere.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime

from sipwatch.core.calls import Call, MessageRecord
from sipwatch.core.kpi import compute_kpis
from sipwatch.core.media import RtpStream
from sipwatch.core.result import Analysis
from sipwatch.diagnosis.attribution import (
    Attributed,
    Diagnoser,
    Diagnosis,
    attribute,
    diagnose,
    diagnose_capture,
)
from sipwatch.media.mos import estimate_mos
from sipwatch.media.rtpstats import clock_rate_for
from sipwatch.model import hostport
from sipwatch.sip.codes import lookup

SCHEMA_VERSION = 1


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with microseconds. The whole-second part is cached: a capture's timestamps share few
    seconds, and formatting a datetime costs more than all the rest of a stream's output."""
    if ts is None:
        return None
    seconds = math.floor(ts)
    fraction = round((ts - seconds) * 1_000_000)  # ts - floor(ts) is exact; rounds half to even as datetime does
    if fraction == 1_000_000:
        seconds, fraction = seconds + 1, 0
    text = _SECONDS.get(seconds)
    if text is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        text = _SECONDS[seconds] = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{fraction:06d}Z"


_SECONDS: dict[int, str] = {}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def call_to_dict(call: Call, diagnosis: Diagnosis | None = None) -> dict:
    if diagnosis is None:
        diagnosis = diagnose([call])[call.number]
    return {
        "number": call.number,
        "call_id": call.call_id,
        "from": call.from_uri,
        "to": call.to_uri,
        "from_user": call.from_user,
        "to_user": call.to_user,
        "caller": call.caller,
        "callee": call.callee,
        "transport": call.transport,
        "start": iso(call.start),
        "end": iso(call.end),
        "start_ts": round(call.start, 6),
        "end_ts": round(call.end, 6),
        "final_status": call.final_status,
        "reason": {
            "phrase": call.final_phrase,
            "header": [str(r) for r in call.reasons],
            "q850_cause": next((r.cause for r in call.reasons if r.protocol == "Q.850"), None),
            "source": call.reason_source,
        },
        "outcome": str(call.outcome) if call.outcome else None,
        "timeout_kind": call.timeout_kind,
        "pdd_ms": _round(call.pdd_ms, 1),
        "setup_ms": _round(call.setup_ms, 1),
        "duration_s": _round(call.duration_s, 3),
        "messages": call.messages,
        "retransmissions": call.retransmissions,
        "partial": call.partial,
        "started_before_capture": call.started_before_capture,
        "open_at_end": call.open_at_end,
        "attempts": call.attempts,
        "auth_challenges": call.auth_challenges,
        "ringing_status": call.ringing_status,
        "forks": len(call.early_tags),
        "answered_at": iso(call.answer_ts),
        "ack_seen": call.ack_ts is not None,
        "cancelled_at": iso(call.cancel_ts),
        "bye_at": iso(call.bye_ts),
        "bye_by": call.bye_by,
        "retry_after": call.retry_after,
        "user_agent": call.user_agent,
        "server": call.server,
        "identity": None if (identity := call.identity) is None else identity.to_dict(),
        "first_frame": call.first_frame,
        "final_frame": call.final_frame,
        "anomalies": list(call.anomalies),
        "cause": str(diagnosis.cause) if diagnosis.cause else None,
        "cause_detail": diagnosis.principal.detail if diagnosis.principal and diagnosis.cause else None,
        "streams": [stream_to_dict(s) for s in call.streams],
        "findings": [finding_to_dict(f) for f in diagnosis.findings],
        "signalling": [message_to_dict(m) for m in call.records],
        "signalling_dropped": call.records_dropped,
    }


def message_to_dict(record: MessageRecord) -> dict:
    """One SIP message of a call: a row of the ladder and of the messages table."""
    return {
        "frame": record.frame,
        "at": iso(record.ts),
        "ts": round(record.ts, 6),
        "src": record.src,
        "dst": record.dst,
        "transport": record.transport,
        "label": record.label,
        "cseq": record.cseq,
        "cseq_method": record.cseq_method,
        "status": record.status,
        "retransmission": record.retransmission,
    }


def stream_to_dict(stream: RtpStream) -> dict:
    st = stream.stats
    payload_types = st.payload_types
    main_pt = max(payload_types, key=payload_types.get) if payload_types else None
    codec = stream.codec
    return {
        "src": hostport(stream.src, stream.sport),
        "dst": hostport(stream.dst, stream.dport),
        "ssrc": stream.ssrc,
        "ssrc_hex": f"0x{stream.ssrc:08X}",
        "call_id": stream.call_id,
        "direction": stream.direction,
        "payload_type": main_pt,
        "payload_types": {str(pt): n for pt, n in payload_types.items()},
        "codec": codec,
        "packets": st.packets,
        "expected": st.expected,
        "lost": st.lost,
        "loss_pct": round(st.lost_pct, 3),
        "capture_lost": stream.capture_lost,
        "duplicates": st.duplicates,
        "out_of_order": st.out_of_order,
        "seq_jumps": st.seq_jumps,
        "longest_loss_burst": st.longest_loss_burst,
        "jitter_mean_ms": _round(st.mean_jitter_ms, 3),
        "jitter_max_ms": _round(st.max_jitter_ms, 3),
        "delta_mean_ms": _round(st.mean_delta_ms, 3),
        "delta_max_ms": _round(st.max_delta_ms, 3),
        "mos": estimate_mos(codec, max(0.0, st.lost_pct)),
        "first": iso(st.first),
        "last": iso(st.last),
        "first_frame": st.first_frame,
        "last_frame": st.last_frame,
        "dtmf": [event.to_dict() for event in st.dtmf_events],
        "rtcp": _rtcp(stream, main_pt),
        "matched_by": None if stream.expectation is None else (
            "signalling source" if stream.expectation.via_signalling_source else "sdp c="
        ),
    }


def _rtcp(stream: RtpStream, payload_type: int | None) -> dict | None:
    """What the far end's RTCP said about this stream, beside what the capture measured."""
    report = stream.rtcp
    if report is None:
        return None
    rate = clock_rate_for(payload_type, stream.clock_rates, stream.encodings) if payload_type is not None else 0
    rtt = report.rtt_ms
    return {
        "sender_reports": report.sender_reports,
        "sender_packet_count": report.sender_packet_count,
        "report_blocks": report.report_blocks,
        "fraction_lost_max_pct": round(report.fraction_lost_max_pct, 2),
        "cumulative_lost": report.cumulative_lost,
        "jitter_max_ms": round(report.jitter_max * 1000.0 / rate, 3) if rate else None,
        "rtt_ms_mean": round(sum(rtt) / len(rtt), 3) if rtt else None,
        "rtt_ms_max": round(max(rtt), 3) if rtt else None,
        "xr_mos_lq": report.xr_mos_lq,
        "xr_r_factor": report.xr_r_factor,
        "xr_loss_pct": None if report.xr_loss_pct is None else round(report.xr_loss_pct, 2),
    }


def finding_to_dict(finding: Attributed) -> dict:
    entry = finding.entry
    return {
        "kind": finding.kind,
        "category": str(entry.category),
        "confidence": round(finding.confidence, 2),
        "detail": finding.detail,
        "at": iso(finding.ts),
        "evidence": [
            {"what": e.what, "value": e.value, "frame": e.frame, "at": iso(e.ts)} for e in finding.evidence
        ],
        "retry_can_help": entry.retry_can_help,
        "advice": {"agent": entry.agent, "admin": entry.admin},
        "knowledge": entry.key,
        "data": finding.data,
    }


def summary(analysis: Analysis, diagnoses: Iterable[Diagnosis], capture_findings: list[Attributed]) -> dict:
    """Capture-wide counts and KPIs; `diagnoses` are every call's, `capture_findings` the capture's own."""
    calls = analysis.summaries
    kinds: Counter = Counter(f.kind for f in capture_findings)
    causes: Counter = Counter()
    for diagnosis in diagnoses:
        kinds.update(f.kind for f in diagnosis.findings)
        if diagnosis.cause:
            causes[str(diagnosis.cause)] += 1
    stats = analysis.stats
    outcomes = Counter(str(c.outcome) for c in calls)
    final = Counter(c.final_status for c in calls if c.final_status is not None)
    return {
        "calls": len(calls),
        "outcomes": dict(outcomes.most_common()),
        "final_status": {str(code): n for code, n in sorted(final.items())},
        "partial_calls": sum(1 for c in calls if c.partial),
        "messages": stats.messages,
        "retransmissions": stats.retransmissions,
        "requests": dict(stats.requests.most_common()),
        "responses": {str(code): n for code, n in sorted(stats.responses.items())},
        "transactions": {
            method: {str(k): n for k, n in counter.most_common()} for method, counter in sorted(stats.transactions.items())
        },
        "by_transport": dict(stats.by_transport),
        "parse_errors": stats.parse_errors,
        "truncated_messages": stats.truncated,
        "rtp_streams": sum(len(c.streams) for c in calls) + len(analysis.unattached_streams),
        "findings": dict(kinds.most_common()),
        "causes": dict(causes.most_common()),
        "kpi": compute_kpis(calls),
    }


def _capture_findings(analysis: Analysis) -> list[Attributed]:
    """Findings about the capture as a whole: capture loss (core), capacity windows (diagnosis)."""
    return [attribute(f) for f in analysis.findings] + diagnose_capture(analysis.summaries)


def analysis_to_dict(analysis: Analysis) -> dict:
    """The report data. Its "calls" is a list; for calls kept on disk (a large capture, sipwatch.spill) it is
    a `CallRows`, which builds each row as it is iterated, and `write_json` streams it."""
    cap = analysis.capture
    problems = analysis.problems
    diagnoser = Diagnoser(analysis.summaries)
    capture_findings = _capture_findings(analysis)
    if isinstance(analysis.calls, list):
        diagnoses = [diagnoser(c) for c in analysis.calls]
        calls: list | CallRows = [call_to_dict(c, d) for c, d in zip(analysis.calls, diagnoses, strict=True)]
    else:  # one pass for the summary's counts, then rows built whenever the report goes through them
        diagnoses = (diagnoser(c) for c in analysis.calls)
        calls = CallRows(analysis.calls, lambda call: call_to_dict(call, diagnoser(call)))
    return {
        "schema": SCHEMA_VERSION,
        "capture": {
            "file": cap.file,
            "format": cap.format,
            "packets": cap.packets,
            "bytes": cap.bytes,
            "first": iso(cap.first),
            "last": iso(cap.last),
            "duration_s": _round(cap.last - cap.first, 6) if cap.first is not None and cap.last is not None else None,
            "link_types": cap.linktypes,
            "damaged": analysis.damaged,
            "files": [
                {"file": f.file, "first_frame": f.first_frame, "packets": f.packets, "first": iso(f.first),
                 "last": iso(f.last)} for f in cap.files
            ],
        },
        "summary": summary(analysis, diagnoses, capture_findings),
        "calls": calls,
        "unattached_streams": [stream_to_dict(s) for s in analysis.unattached_streams],
        "findings": [finding_to_dict(f) for f in capture_findings],
        "problems": [p.to_dict() for p in problems.kept],
        "problems_omitted": problems.omitted(),
    }


def status_label(code: int) -> str:
    return f"{code} {lookup(code).phrase}"


def stream_rows(data: dict) -> list[dict]:
    """Every RTP stream of the report data, attached or not, in order of first packet."""
    rows = [s for c in data["calls"] for s in c["streams"]] + list(data["unattached_streams"])
    rows.sort(key=lambda r: (r["first"] or "", r["src"]))
    return rows


class CallRows:
    """The report rows of calls kept on disk, built one at a time each time they are iterated: what a
    reader of report data does with a list (iterate, len, truth, index, slice) without holding every row."""

    def __init__(self, calls: Sequence[Call], row: Callable[[Call], dict]) -> None:
        self._calls = calls
        self._row = row

    def __iter__(self) -> Iterator[dict]:
        row = self._row
        for call in self._calls:
            yield row(call)

    def __len__(self) -> int:
        return len(self._calls)

    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        if isinstance(index, slice):
            return [self._row(call) for call in self._calls[index]]
        return self._row(self._calls[index])

    def map(self, change: Callable[[dict], dict]) -> CallRows:
        """The same rows, each passed through `change` (redaction)."""
        row = self._row
        return CallRows(self._calls, lambda call: change(row(call)))


def write_json(data: dict, out, indent: int | None = None) -> None:
    """The report data as JSON on `out` (a text file), exactly `json.dumps(data, indent=indent)`: written
    at once when every value is in memory, row by row when calls are `CallRows`."""
    if indent is not None or not any(isinstance(v, CallRows) for v in data.values()):
        out.write(json.dumps(_listed(data), indent=indent))
        return
    out.write("{")
    for i, (key, value) in enumerate(data.items()):
        out.write(f"{', ' if i else ''}{json.dumps(key)}: ")
        if isinstance(value, CallRows):
            out.write("[")
            for j, row in enumerate(value):
                out.write(f"{', ' if j else ''}{json.dumps(row)}")
            out.write("]")
        else:
            out.write(json.dumps(value))
    out.write("}")


def _listed(data: dict) -> dict:
    return {k: list(v) if isinstance(v, CallRows) else v for k, v in data.items()}
