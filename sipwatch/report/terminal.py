"""The analysis on a terminal: a summary a support engineer reads first, then one line per call."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from sipwatch.report.data import status_label

_OUTCOME_STYLE = {
    "answered": "green", "in_progress": "cyan", "cancelled": "yellow", "no_answer": "yellow", "busy": "yellow",
    "declined": "yellow", "redirected": "blue",
}

_KPI_LABELS = [
    ("attempts", "Call attempts (decided)", ""),
    ("asr", "ASR answer-seizure ratio", "%"),
    ("ner", "NER network effectiveness", "%"),
    ("ser", "SER session establishment", "%"),
    ("seer", "SEER establishment effectiveness", "%"),
    ("isa", "ISA ineffective attempts", "%"),
    ("scr", "SCR session completion", "%"),
    ("srd_ms", "SRD session request delay", " ms"),
    ("pdd_ms", "PDD post-dial delay", " ms"),
    ("setup_ms", "Setup time (INVITE to 2xx)", " ms"),
    ("acd_s", "ACD average call duration", " s"),
]


def render(data: dict, console: Console, show_calls: bool = True, max_calls: int = 200) -> None:
    """The report data (`report.data.analysis_to_dict`) on a terminal."""
    cap = data["capture"]
    summ = data["summary"]
    console.print(
        Text.assemble(
            ("sipwatch ", "bold"), (cap["file"], "bold cyan"),
            f"  {cap['format']}, {cap['packets']} packets, {cap['first'] or '-'} .. {cap['last'] or '-'}",
        )
    )
    console.print(
        f"SIP messages: {summ['messages']} ({summ['retransmissions']} retransmissions, "
        f"{summ['parse_errors']} malformed, {summ['truncated_messages']} cut short)   calls: {summ['calls']}"
        f" ({summ['partial_calls']} partial)"
    )

    outcomes = Table(title="Calls by outcome", box=box.SIMPLE_HEAD)
    outcomes.add_column("outcome")
    outcomes.add_column("calls", justify="right")
    for outcome, n in summ["outcomes"].items():
        outcomes.add_row(Text(outcome, style=_OUTCOME_STYLE.get(outcome, "red")), str(n))

    causes = Table(title="Calls by cause", box=box.SIMPLE_HEAD)
    causes.add_column("cause")
    causes.add_column("calls", justify="right")
    for cause, n in summ["causes"].items():
        causes.add_row(Text(cause, style="yellow" if cause in ("normal", "user") else "red"), str(n))

    codes = Table(title="SIP responses (all messages)", box=box.SIMPLE_HEAD)
    codes.add_column("status")
    codes.add_column("messages", justify="right")
    for code, n in summ["responses"].items():
        codes.add_row(status_label(int(code)), str(n))

    methods = Table(title="SIP requests", box=box.SIMPLE_HEAD)
    methods.add_column("method")
    methods.add_column("messages", justify="right")
    methods.add_column("transactions: final status", overflow="fold")
    for method, n in summ["requests"].items():
        tx = summ["transactions"].get(method, {})
        methods.add_row(method, str(n), ", ".join(f"{k}x{v}" for k, v in tx.items()))

    kpis = Table(title="KPIs", box=box.SIMPLE_HEAD)
    kpis.add_column("indicator")
    kpis.add_column("value", justify="right")
    for key, label, unit in _KPI_LABELS:
        value = summ["kpi"].get(key)
        kpis.add_row(label, "-" if value is None else f"{value}{unit}")

    if console.width >= 150:
        grid = Table.grid(padding=(0, 2))
        grid.add_row(outcomes, causes, codes, methods, kpis)
        console.print(grid)
    else:
        for table in (outcomes, causes, codes, methods, kpis):
            console.print(table)

    calls = data["calls"]
    if show_calls and calls:
        console.print(_calls_table(calls, max_calls, wide=console.width >= 140))
    streams, findings = _first_streams_and_findings(calls, max_calls)
    streams += data["unattached_streams"][: max_calls - len(streams)]
    if show_calls and streams:
        render_streams(streams, console, limit=max_calls, total=summ["rtp_streams"])
    if findings:
        # every call finding is counted in the summary, beside the capture's own (data["findings"])
        total = sum(summ["findings"].values()) - len(data["findings"])
        console.print(_findings_table(findings, total))
    if data["problems"]:
        console.print(_problems_table(data))


def _first_streams_and_findings(calls, limit: int) -> tuple[list[dict], list[tuple[dict, dict]]]:
    """The first `limit` streams and call findings, in call order. The calls are gone through only as far as
    these need: on a large capture most calls are on disk, and each row read is a call read back."""
    streams: list[dict] = []
    findings: list[tuple[dict, dict]] = []
    for call in calls:
        streams.extend(call["streams"][: limit - len(streams)])
        findings.extend((call, f) for f in call["findings"][: limit - len(findings)])
        if len(streams) >= limit and len(findings) >= limit:
            break
    return streams, findings


def _calls_table(calls: list[dict], limit: int, wide: bool) -> Group | Table:
    table = Table(title="Calls", box=box.SIMPLE_HEAD)
    columns = [
        ("start", "left"), ("from", "left"), ("to", "left"), ("outcome", "left"), ("cause", "left"),
        ("final", "left"), ("PDD ms", "right"), ("setup ms", "right"), ("dur s", "right"), ("msgs", "right"),
        ("call-id", "left"),
    ]
    for column, justify in columns if wide else columns[:6] + columns[8:10]:
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column in ("start", "PDD ms", "dur s"))
    for call in calls[:limit]:
        final = f"{call['final_status']} {call['reason']['phrase'] or ''}".strip() if call["final_status"] else ""
        if call["reason"]["header"]:
            final += f" [{'; '.join(call['reason']['header'])}]"
        outcome = call["outcome"] or ""
        if call["partial"]:
            outcome += " (partial)"
        cells = [
            (call["start"] or "")[11:23], call["from_user"] or call["from"] or "", call["to_user"] or call["to"] or "",
            Text(outcome, style=_OUTCOME_STYLE.get(call["outcome"], "red")), call["cause"] or "", final,
            _num(call["pdd_ms"]), _num(call["setup_ms"]), _num(call["duration_s"]), str(call["messages"]),
            call["call_id"],
        ]
        table.add_row(*(cells if wide else cells[:6] + cells[8:10]))
    if len(calls) > limit:
        return Group(table, Text(f"... {len(calls) - limit} more calls (use --format json or csv for all)"))
    return table


def _problems_table(data: dict) -> Table:
    table = Table(title="Problems reading the capture", box=box.SIMPLE_HEAD)
    table.add_column("kind")
    table.add_column("frame", justify="right")
    table.add_column("offset", justify="right")
    table.add_column("message", overflow="fold")
    for problem in data["problems"][:50]:
        table.add_row(
            problem["kind"], _num(problem["frame"]), _num(problem["offset"]), problem["message"],
        )
    omitted = sum(data["problems_omitted"].values()) + max(0, len(data["problems"]) - 50)
    if omitted:
        table.caption = f"{omitted} more problems not shown (see --format json)"
    return table


def _num(value) -> str:
    return "" if value is None else str(value)


def render_streams(rows: list[dict], console: Console, limit: int = 500, total: int | None = None) -> None:
    """One line per stream, the first `limit` of `total` (default: as many as `rows`); a terminal under 140
    columns gets the essentials only."""
    total = len(rows) if total is None else total
    wide = console.width >= 140
    table = Table(title="RTP streams", box=box.SIMPLE_HEAD, padding=(0, 1))
    if wide:
        columns = ["stream", "SSRC", "codec", "pkts", "lost", "max delta ms", "jitter mean/max ms", "MOS", "call"]
    else:
        columns = ["stream", "codec", "pkts", "loss", "jitter ms", "MOS"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("stream", "SSRC", "codec", "call") else "right",
                         no_wrap=column != "call", overflow="fold")
    for row in rows[:limit]:
        codec = row["codec"] or (f"PT {row['payload_type']}" if row["payload_type"] is not None else "")
        stream = f"{row['src']} -> {row['dst']}"
        if wide:
            jitter = "" if row["jitter_max_ms"] is None else f"{row['jitter_mean_ms']:.2f} / {row['jitter_max_ms']:.2f}"
            table.add_row(
                stream, row["ssrc_hex"], codec, str(row["packets"]), f"{row['lost']} ({row['loss_pct']:.1f}%)",
                _num(row["delta_max_ms"]), jitter, _num(row["mos"]), row["call_id"] or "unattached",
            )
        else:
            jitter = "" if row["jitter_max_ms"] is None else f"{row['jitter_max_ms']:.1f}"
            table.add_row(stream, codec[:6], str(row["packets"]), f"{row['loss_pct']:.1f}%", jitter, _num(row["mos"]))
    if total > limit:
        table.caption = f"{total - limit} more streams (use sipwatch streams or --format json)"
    console.print(table)


def _findings_table(findings: list[tuple[dict, dict]], total: int) -> Table:
    table = Table(title="Findings and causes", box=box.SIMPLE_HEAD)
    if total > len(findings):
        table.caption = f"{total - len(findings)} more findings (use sipwatch report or --format json)"
    table.add_column("call", overflow="fold", max_width=24)
    table.add_column("finding")
    table.add_column("cause")
    table.add_column("detail", overflow="fold")
    for call, finding in findings:
        style = "yellow" if finding["category"] in ("normal", "user") else "red"
        table.add_row(call["call_id"][:24], Text(finding["kind"], style=style),
                      f"{finding['category']} ({finding['confidence']:.0%})", finding["detail"])
    return table
