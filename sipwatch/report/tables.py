"""The analysis as four tables for tools: calls, messages, streams and findings (pandas; CSV, JSON, Parquet).

Built from the report data (`report.data.analysis_to_dict`, redacted or not), so a column means what the JSON
field of the same name means (docs/json.md). `SCHEMA` is the one definition of every column: its type and
its meaning; docs/tables.md is generated from it (`tables_markdown`) and checked by the tests. Types are
pandas' nullable ones, so a missing value stays missing (not 0, not NaN-as-float) in Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# table -> [(column, pandas dtype, meaning)]
SCHEMA: dict[str, list[tuple[str, str, str]]] = {
    "calls": [
        ("number", "Int64", "call number, 1, 2, ... in order of first message (unique even if a Call-ID is reused)"),
        ("call_id", "string", "Call-ID"),
        ("start", "string", "first message of the call, ISO 8601 UTC"),
        ("end", "string", "last message of the call, ISO 8601 UTC"),
        ("start_ts", "Float64", "first message, seconds since the epoch"),
        ("end_ts", "Float64", "last message, seconds since the epoch"),
        ("from", "string", "From URI of the initial INVITE"),
        ("to", "string", "To URI of the initial INVITE"),
        ("from_user", "string", "user part of From (the calling number)"),
        ("to_user", "string", "user part of To (the called number)"),
        ("caller", "string", "ip:port the initial INVITE came from"),
        ("callee", "string", "ip:port the initial INVITE went to"),
        ("transport", "string", "UDP, TCP, ..."),
        ("outcome", "string", "answered, busy, rejected, failed, cancelled, timeout, ... (docs/json.md)"),
        ("cause", "string", "category of the principal finding; empty for a healthy call"),
        ("cause_detail", "string", "the principal finding in one sentence"),
        ("final_status", "Int64", "final response code to the INVITE"),
        ("reason_phrase", "string", "its reason phrase"),
        ("reason_header", "string", "Reason headers (final response, CANCEL or BYE), joined by '; '"),
        ("q850_cause", "Int64", "Q.850 cause from a Reason header"),
        ("timeout_kind", "string", "no_response, trying_only or ringing for an INVITE timeout"),
        ("pdd_ms", "Float64", "post-dial delay: INVITE to first 18x (or final), ms"),
        ("setup_ms", "Float64", "INVITE to 200 OK, ms"),
        ("duration_s", "Float64", "200 OK to BYE (or the capture's end), s"),
        ("messages", "Int64", "SIP messages of the call"),
        ("retransmissions", "Int64", "of which retransmissions"),
        ("partial", "boolean", "cut by the capture's start or end (excluded from failure rates)"),
        ("started_before_capture", "boolean", "the capture starts inside the call"),
        ("open_at_end", "boolean", "the call was still up when the capture ended"),
        ("attempts", "Int64", "initial INVITE transactions (an auth challenge adds one)"),
        ("auth_challenges", "Int64", "401/407 challenges"),
        ("bye_by", "string", "caller or callee: who hung up"),
        ("user_agent", "string", "User-Agent of the caller"),
        ("server", "string", "Server (or User-Agent) of the callee"),
        ("streams", "Int64", "RTP streams of the call"),
        ("findings", "Int64", "findings about the call"),
        ("first_frame", "Int64", "frame number of the first message"),
        ("final_frame", "Int64", "frame number of the final response"),
    ],
    "messages": [
        ("call_number", "Int64", "the call (calls.number)"),
        ("call_id", "string", "Call-ID"),
        ("frame", "Int64", "frame number in the capture (1-based, as in Wireshark)"),
        ("at", "string", "capture time, ISO 8601 UTC"),
        ("ts", "Float64", "capture time, seconds since the epoch"),
        ("src", "string", "ip:port of the sender"),
        ("dst", "string", "ip:port of the receiver"),
        ("transport", "string", "UDP, TCP, ..."),
        ("label", "string", "method, or status code and phrase"),
        ("cseq", "Int64", "CSeq number"),
        ("cseq_method", "string", "CSeq method"),
        ("status", "Int64", "status code of a response; empty for a request"),
        ("retransmission", "boolean", "a retransmission of an earlier message"),
    ],
    "streams": [
        ("call_number", "Int64", "the call (calls.number); empty for a stream tied to no call"),
        ("call_id", "string", "Call-ID of the call"),
        ("src", "string", "ip:port of the sender"),
        ("dst", "string", "ip:port of the receiver"),
        ("ssrc", "Int64", "RTP SSRC"),
        ("ssrc_hex", "string", "the SSRC as tshark shows it"),
        ("direction", "string", "caller->callee or callee->caller"),
        ("payload_type", "Int64", "most frequent RTP payload type"),
        ("codec", "string", "its encoding name from the SDP rtpmap (or the static table)"),
        ("packets", "Int64", "RTP packets received"),
        ("expected", "Int64", "packets expected from the extended sequence numbers (RFC 3550 A.3)"),
        ("lost", "Int64", "expected - received (negative with duplicates, as tshark)"),
        ("loss_pct", "Float64", "lost / expected, %"),
        ("capture_lost", "Int64", "lost packets explained by capture loss (gaps shared by many streams)"),
        ("duplicates", "Int64", "duplicate packets"),
        ("out_of_order", "Int64", "packets out of sequence"),
        ("seq_jumps", "Int64", "sequence jumps"),
        ("longest_loss_burst", "Int64", "longest run of consecutive lost packets"),
        ("jitter_mean_ms", "Float64", "mean RFC 3550 interarrival jitter, ms"),
        ("jitter_max_ms", "Float64", "maximum RFC 3550 interarrival jitter, ms"),
        ("delta_mean_ms", "Float64", "mean interval between packets, ms"),
        ("delta_max_ms", "Float64", "longest interval between packets, ms"),
        ("mos", "Float64", "estimated MOS (ITU-T G.107 E-model, docs/rtp.md)"),
        ("first", "string", "first packet, ISO 8601 UTC"),
        ("last", "string", "last packet, ISO 8601 UTC"),
        ("first_frame", "Int64", "frame number of the first packet"),
        ("last_frame", "Int64", "frame number of the last packet"),
        ("dtmf_events", "Int64", "RFC 4733 DTMF events"),
        ("matched_by", "string", "how the stream was tied to its call: sdp c= or signalling source"),
    ],
    "findings": [
        ("call_number", "Int64", "the call (calls.number); empty for a finding about the whole capture"),
        ("call_id", "string", "Call-ID of the call"),
        ("kind", "string", "what was found (docs/findings.md, docs/knowledge.md)"),
        ("category", "string", "user, dialing, auth, blocking, capacity, nat_alg, network, codec, server, normal"),
        ("principal", "boolean", "this finding is the call's cause"),
        ("confidence", "Float64", "how sure, 0..1"),
        ("detail", "string", "the finding in one sentence"),
        ("at", "string", "when, ISO 8601 UTC"),
        ("retry_can_help", "boolean", "whether trying again can succeed"),
        ("agent", "string", "what an agent should understand"),
        ("admin", "string", "what an admin should do"),
        ("knowledge", "string", "the knowledge-base entry (sipwatch explain KEY)"),
        ("evidence", "string", "the evidence as a JSON list of {what, value, frame, at}"),
    ],
}
FORMATS = ("parquet", "csv", "json")


def tables(data: dict) -> dict[str, pd.DataFrame]:
    """The four tables of the report data, typed by SCHEMA."""
    rows: dict[str, list[dict]] = {"calls": [], "messages": [], "streams": [], "findings": []}
    for call in data["calls"]:
        owner = {"call_number": call["number"], "call_id": call["call_id"]}
        rows["calls"].append(call_row(call))
        rows["messages"] += [{**owner, **message} for message in call["signalling"]]
        rows["streams"] += [_stream(stream, owner) for stream in call["streams"]]
        rows["findings"] += [
            _finding(finding, owner, call["cause"] is not None and finding["detail"] == call["cause_detail"])
            for finding in call["findings"]
        ]
    rows["streams"] += [_stream(stream, {"call_number": None}) for stream in data["unattached_streams"]]
    rows["findings"] += [_finding(finding, {"call_number": None, "call_id": None}, False)
                         for finding in data["findings"]]
    return {name: frame(rows[name], name) for name in SCHEMA}


def call_row(call: dict) -> dict:
    """A call of the report data as a row of the calls table."""
    return {
        **call,
        "reason_phrase": call["reason"]["phrase"],
        "reason_header": "; ".join(call["reason"]["header"]),
        "q850_cause": call["reason"]["q850_cause"],
        "streams": len(call["streams"]),
        "findings": len(call["findings"]),
    }


def _stream(stream: dict, owner: dict) -> dict:
    return {**stream, **owner, "dtmf_events": len(stream["dtmf"])}


def _finding(finding: dict, owner: dict, principal: bool) -> dict:
    return {
        **finding, **owner, "principal": principal,
        "agent": finding["advice"]["agent"], "admin": finding["advice"]["admin"],
        "evidence": json.dumps(finding["evidence"], ensure_ascii=False),
    }


def frame(rows: list[dict], table: str) -> pd.DataFrame:
    """Rows of one table as a DataFrame with SCHEMA's columns and types."""
    schema = SCHEMA[table]
    columns = [name for name, _, _ in schema]
    frame = pd.DataFrame([[row.get(name) for name in columns] for row in rows], columns=columns, dtype=object)
    return frame.astype({name: dtype for name, dtype, _ in schema})


def write_tables(data: dict, directory: Path, fmt: str = "parquet") -> list[Path]:
    """calls, messages, streams and findings as DIRECTORY/<table>.<fmt>; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables(data).items():
        path = directory / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        elif fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        written.append(path)
    return written


def tables_markdown() -> str:
    """docs/tables.md: every table and column, from SCHEMA."""
    out = [
        "# Tables",
        "",
        "`sipwatch tables CAPTURE -o DIR` writes four tables: `calls`, `messages`, `streams` and `findings`, as",
        "Parquet (default), CSV (`--format csv`) or JSON lines (`--format json`). `sipwatch analyze -f csv` prints",
        "the calls table. Columns mean what the JSON fields of the same name mean (docs/json.md); types are",
        "pandas' nullable types (Int64, Float64, boolean, string), so an empty cell is a missing value.",
        "Tables join on `call_number`. This page is generated from `sipwatch/report/tables.py` (SCHEMA).",
    ]
    for name, schema in SCHEMA.items():
        out += ["", f"## {name}", "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{column}` | {dtype} | {meaning} |" for column, dtype, meaning in schema]
    return "\n".join(out) + "\n"
