"""The post-mortem as one self-contained HTML page: summary, KPIs, charts, a card per failure with its ladder.

Built from the report data (`report.data.analysis_to_dict`, redacted or not), like the Markdown post-mortem,
and carrying at least what it carries. No script, no network: inline CSS and inline SVG only, so the file
can be mailed, attached to a ticket and printed. Every captured text goes through `svg.esc`.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import NamedTuple

from sipwatch.diagnosis.knowledge import CATEGORY_DESCRIPTIONS, Category
from sipwatch.report.data import status_label
from sipwatch.report.ladder import endpoints
from sipwatch.report.markdown import MAX_CARDS
from sipwatch.report.svg import (
    MEDIA_COLOUR,
    MESSAGE_COLOURS,
    Bar,
    Metric,
    bar_chart,
    esc,
    ladder_svg,
    metric_rows,
    nice_ticks,
    stacked_columns,
)

KPIS = [  # key, label, unit, meaning (docs/kpi.md)
    ("asr", "ASR", "%", "Answer-Seizure Ratio: answered / attempts"),
    ("ner", "NER", "%", "Network Effectiveness Ratio: outcomes the user decided / attempts"),
    ("ser", "SER", "%", "Session Establishment Ratio (RFC 6076)"),
    ("seer", "SEER", "%", "Session Establishment Effectiveness Ratio (RFC 6076)"),
    ("isa", "ISA", "%", "Ineffective Session Attempts (RFC 6076): 408, 500, 503, 504 or no answer at all"),
    ("scr", "SCR", "%", "Session Completion Ratio (RFC 6076): answered and ended by BYE"),
    ("pdd_ms", "PDD", " ms", "Post-Dial Delay: INVITE to first 18x"),
    ("srd_ms", "SRD", " ms", "Session Request Delay (RFC 6076): INVITE to first non-100 response"),
    ("acd_s", "ACD", " s", "Average Call Duration: answer to BYE"),
]
OUTCOME_COLOURS = {
    "answered": "#16a34a", "in_progress": "#94a3b8", "redirected": "#0891b2", "cancelled": "#eab308",
    "busy": "#f59e0b", "no_answer": "#fb923c", "declined": "#d97706", "not_found": "#a16207",
    "blocked": "#7c3aed", "auth_failed": "#db2777", "unavailable": "#ef4444", "capacity": "#dc2626",
    "timeout": "#991b1b", "server_error": "#7f1d1d", "failed": "#be123c",
}
CATEGORY_COLOURS = {
    "user": "#f59e0b", "dialing": "#a16207", "auth": "#db2777", "blocking": "#7c3aed", "capacity": "#dc2626",
    "nat_alg": "#0e7490", "network": "#991b1b", "codec": "#4f46e5", "server": "#7f1d1d", "normal": "#64748b",
}
CATEGORY_NAMES = {
    "user": "user behaviour", "dialing": "dialing / number", "auth": "auth / credentials",
    "blocking": "blocking / policy", "capacity": "capacity / congestion", "nat_alg": "NAT / ALG",
    "network": "network / reachability", "codec": "codec / negotiation", "server": "server error",
    "normal": "normal / system",
}
MOS_BANDS = [(4.0, "good", "#16a34a"), (3.6, "fair", "#84cc16"), (3.1, "poor", "#f59e0b"), (0.0, "bad", "#dc2626")]
MAX_STREAM_BARS = 25  # streams drawn in the quality chart
MAX_STREAM_ROWS = 20  # streams in the worst-streams table
MAX_CALL_ROWS = 500  # rows of the calls table
MAX_PROBLEMS = 50
_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_MAX_COLUMNS = 60


def render_html(data: dict) -> str:
    """The post-mortem page of the report data."""
    cap = data["capture"]
    seen = _Gathered(data)
    candidates = [
        _summary(data, seen),
        Section("failures", f"Failures and degraded calls ({seen.troubled})", _cards(seen)),
        _capture_findings(data["findings"]),
        _streams(seen),
        _calls_table(data["calls"]),
        _problems(data),
    ]
    sections = [section for section in candidates if section is not None]
    body = [
        _header(data),
        _contents(sections),
        *map(str, sections),
        f'<footer>sipwatch {esc(_version())} post-mortem · report schema {esc(data.get("schema"))} · '
        "self-contained: no script, no network · times in UTC</footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        "img-src data:\">"
        f"<title>Post-mortem: {esc(cap['file'])}</title>"
        '<link rel="icon" href="data:,">'
        f"<style>{_CSS}</style></head><body><main>" + "".join(body) + "</main></body></html>\n"
    )


class _Pattern:
    """Failed calls of one cause and principal finding: how many, the first of them (its position among the
    failed calls, and its row) and when the last one started."""

    __slots__ = ("calls", "first", "last_start")

    def __init__(self, first: tuple[int, dict]) -> None:
        self.calls = 0
        self.first = first
        self.last_start: str | None = None


class _Gathered:
    """What the page needs of the calls, gathered in one pass over them. A large capture's calls are read back
    from disk one at a time, so no more of them is held than the page shows: the first MAX_CARDS failed
    calls and the first call of each failure pattern (the cards), the worst MAX_STREAM_BARS streams, and per
    call only its start and outcome (the time chart). The calls table reads its first rows itself."""

    def __init__(self, data: dict) -> None:
        self.outcomes: Counter[str] = Counter()
        self.starts: list[tuple[float, str]] = []  # (start, outcome) of the calls with a start time
        self.troubled = 0
        self.first_troubled: list[tuple[int, dict]] = []  # (position among the failed calls, row)
        self.patterns: dict[tuple[str, str], _Pattern] = {}
        self.streams = 0
        self.bands: Counter[str] = Counter()
        # worst first (_badness), then in order of first packet as stream_rows lists them, then as they came
        self.worst = heapq.nsmallest(MAX_STREAM_BARS, self._walk(data),
                                     key=lambda s: (_badness(s), s["first"] or "", s["src"]))

    def _walk(self, data: dict) -> Iterator[dict]:
        """Every stream, the calls' then the unattached ones, gathering the rest on the way."""
        for call in data["calls"]:
            outcome = call["outcome"] or "unknown"
            self.outcomes[outcome] += 1
            if call.get("start_ts") is not None:
                self.starts.append((call["start_ts"], outcome))
            if call["cause"]:
                self._troubled(call)
            yield from self._counted(call["streams"])
        yield from self._counted(data["unattached_streams"])

    def _troubled(self, call: dict) -> None:
        at = (self.troubled, call)
        self.troubled += 1
        if len(self.first_troubled) < MAX_CARDS:
            self.first_troubled.append(at)
        pattern = self.patterns.get(key := _pattern_key(call))
        if pattern is None:
            pattern = self.patterns[key] = _Pattern(at)
        pattern.calls += 1
        pattern.last_start = call["start"]

    def _counted(self, streams: list[dict]) -> Iterator[dict]:
        for stream in streams:
            self.streams += 1
            mos = stream["mos"]
            self.bands[next(name for floor, name, _ in MOS_BANDS if mos >= floor) if mos is not None
                       else "unknown codec"] += 1
            yield stream


def _contents(sections: list[Section]) -> str:
    links = " · ".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    return f'<nav aria-label="Sections">{links}</nav>'


def _version() -> str:
    try:
        return version("sipwatch")
    except PackageNotFoundError:
        return ""


class Section(NamedTuple):
    anchor: str
    title: str
    content: str

    def __str__(self) -> str:
        return f'<section id="{self.anchor}"><h2>{esc(self.title)}</h2>{self.content}</section>'


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 'es' if noun.endswith('s') else 's'}"


def _badge(text: object, colour: str, title: str = "") -> str:
    tip = f' title="{esc(title)}"' if title else ""
    return f'<span class="badge" style="background:{colour}"{tip}>{esc(text)}</span>'


def _outcome_badge(outcome: str | None) -> str:
    return _badge(outcome or "unknown", OUTCOME_COLOURS.get(outcome or "", "#64748b"))


def _cause_badge(cause: str | None) -> str:
    if not cause:
        return ""
    description = CATEGORY_DESCRIPTIONS.get(Category(cause), "") if cause in CATEGORY_COLOURS else ""
    return _badge(CATEGORY_NAMES.get(cause, cause), CATEGORY_COLOURS.get(cause, "#64748b"), description)


def _header(data: dict) -> str:
    cap, summ = data["capture"], data["summary"]
    period = f"{_time(cap['first'])} → {_time(cap['last'])}" if cap["first"] else "no packets"
    facts = [
        ("period", period), ("duration", f"{cap['duration_s'] or 0:.1f} s"), ("packets", f"{cap['packets']:,}"),
        ("SIP messages", f"{summ['messages']:,} ({summ['retransmissions']:,} retransmissions)"),
        ("calls", f"{summ['calls']:,} ({summ['partial_calls']} cut by the capture's edges)"),
        ("RTP streams", f"{summ['rtp_streams']:,}"), ("format", cap["format"]),
    ]
    out = [f"<header class=\"top\"><p class=\"kicker\">sipwatch post-mortem</p><h1>{esc(cap['file'])}</h1><dl class=\"facts\">"]
    out += [f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts]
    out.append("</dl>")
    if cap["damaged"]:
        out.append('<p class="warning" role="alert"><strong>The capture file is damaged</strong>: the analysis '
                   'covers what comes before the damage (see <a href="#problems">Problems</a>).</p>')
    troubled = sum(summ["causes"].values())
    verdict = ("every call the capture saw through was answered and healthy" if not troubled else
               f"{_count(troubled, 'call')} failed or degraded, with a cause attributed")
    out.append(f'<p class="verdict {"bad" if troubled else "good"}">{esc(verdict)}</p></header>')
    return "".join(out)


def _clock(iso: str | None) -> str:
    """Time of day to the millisecond (UTC), for tables."""
    return "–" if not iso else esc(iso[11:23])


def _time(iso: str | None) -> str:
    return "–" if not iso else f"{iso[:10]} {iso[11:23]} UTC"


def _kpis(kpi: dict) -> str:
    tiles = []
    for key, label, unit, meaning in KPIS:
        value = kpi.get(key)
        shown = "–" if value is None else f"{value:g}{unit}"
        tiles.append(f'<div class="kpi" title="{esc(meaning)}"><span class="k">{label}</span>'
                     f'<span class="v">{esc(shown)}</span></div>')
    attempts = kpi.get("attempts")
    note = f'<p class="note">over {_count(attempts, "decided call attempt")}; definitions in docs/kpi.md</p>' \
        if attempts is not None else ""
    return f'<div class="kpis" role="group" aria-label="Key performance indicators">{"".join(tiles)}</div>{note}'


def _summary(data: dict, seen: _Gathered) -> Section:
    summ = data["summary"]
    figures = [_figure("Calls over time, by outcome", _time_chart(seen.starts, seen.outcomes), "wide")]
    outcome_table = "".join(
        f"<tr><td>{_outcome_badge(k)}</td><td class=\"n\">{n}</td></tr>" for k, n in summ["outcomes"].items()
    )
    figures.append(f'<div class="panel"><h3>Outcomes</h3><table class="compact"><thead><tr><th scope="col">'
                   f'outcome</th><th scope="col" class="n">calls</th></tr></thead><tbody>'
                   f"{outcome_table or '<tr><td colspan=2>no calls</td></tr>'}</tbody></table></div>")
    codes = [Bar(status_label(int(code)), n, _status_colour(int(code))) for code, n in summ["final_status"].items()]
    figures.append(_figure("Final responses to the INVITE (calls per status code)",
                           bar_chart(codes, "Calls per final status code", empty="no final responses")))
    healthy = summ["calls"] - sum(summ["causes"].values())
    causes = [Bar(CATEGORY_NAMES.get(k, k), n, CATEGORY_COLOURS.get(k, "#64748b")) for k, n in summ["causes"].items()]
    figures.append(_figure(f"Causes of failed or degraded calls ({healthy} healthy)",
                           bar_chart(causes, "Calls per cause category", empty="no failed or degraded calls")))
    if summ["responses"] or summ["requests"]:
        responses = [Bar(status_label(int(code)), n, _status_colour(int(code)))
                     for code, n in summ["responses"].items()]
        requests = [Bar(method, n, MESSAGE_COLOURS["req"]) for method, n in summ["requests"].items()]
        figures.append(_figure("SIP messages: requests per method and responses per code",
                               bar_chart(requests + responses, "SIP messages per method and status code")))
    return Section("summary", "Summary", _kpis(summ["kpi"]) + f'<div class="grid">{"".join(figures)}</div>')


def _figure(caption: str, svg: str, cls: str = "") -> str:
    return f'<figure class="panel {cls}"><figcaption>{esc(caption)}</figcaption>{svg}</figure>'


def _status_colour(code: int) -> str:
    return {1: MESSAGE_COLOURS["prov"], 2: "#16a34a", 3: MESSAGE_COLOURS["redir"], 4: "#ea580c"}.get(
        code // 100, "#b91c1c"
    )


def _time_chart(starts: list[tuple[float, str]], present: Counter[str]) -> str:
    """`starts`: (start, outcome) of each call with a start time; `present`: calls per outcome, all of them."""
    if not starts:
        return bar_chart([], "Calls over time: no calls")
    first, last = min(t for t, _ in starts), max(t for t, _ in starts)
    step = next((s for s in _BUCKETS if (last - first) / s < _MAX_COLUMNS), _BUCKETS[-1])
    origin = math.floor(first / step) * step
    count = int((last - origin) // step) + 1
    buckets: list[Counter[str]] = [Counter() for _ in range(count)]
    for start, outcome in starts:
        buckets[int((start - origin) // step)][outcome] += 1
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%Y-%m-%d"
    named = [(datetime.fromtimestamp(origin + i * step, UTC).strftime(fmt), dict(b)) for i, b in enumerate(buckets)]
    keys = [k for k in OUTCOME_COLOURS if k in present] + [k for k in present if k not in OUTCOME_COLOURS]
    legend = "".join(f'<span><i style="background:{OUTCOME_COLOURS.get(k, "#888")}"></i>{esc(k)} {present[k]}</span>'
                     for k in keys)
    label = f"Calls started per {step} s interval (UTC), stacked by outcome"
    return (stacked_columns(named, keys, OUTCOME_COLOURS, label)
            + f'<p class="legend">{legend}<span class="muted">one column = {_duration(step)} of call starts</span></p>')


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


# --- failure cards ----------------------------------------------------------------------------------------------


def _cards(seen: _Gathered) -> str:
    if not seen.troubled:
        return '<p class="good">None: every call that the capture saw through was answered and healthy.</p>'
    patterns = dict(sorted(seen.patterns.items(), key=lambda item: -item[1].calls))  # the most frequent first
    shown = _pick_cards(seen, patterns)
    out = [_patterns_table(patterns, shown, seen.troubled), _LADDER_LEGEND]
    out += [_card(c) for c in shown]
    if seen.troubled > len(shown):
        out.append(f'<p class="more">… {seen.troubled - len(shown)} more failed or degraded calls are not shown as '
                   "cards: every failure pattern above has at least its first call shown (see the calls table below "
                   "and the JSON report for all).</p>")
    return "".join(out)


def _pattern_key(call: dict) -> tuple[str, str]:
    principal = principal_finding(call)
    return call["cause"] or "", principal["kind"] if principal else ""


def _pick_cards(seen: _Gathered, patterns: dict[tuple[str, str], _Pattern]) -> list[dict]:
    """At most MAX_CARDS calls, in call order: the first call of every pattern, then the earliest others."""
    chosen = dict(pattern.first for pattern in list(patterns.values())[:MAX_CARDS])
    for at, call in seen.first_troubled:
        if len(chosen) >= MAX_CARDS:
            break
        chosen.setdefault(at, call)
    return [chosen[at] for at in sorted(chosen)]


def _patterns_table(patterns: dict[tuple[str, str], _Pattern], shown: list[dict], total: int) -> str:
    rows = []
    for key, pattern in patterns.items():
        cause, kind = key
        first = pattern.first[1]
        principal = principal_finding(first)
        examples = ", ".join([f'<a href="#call-{c["number"]}">{c["number"]}</a>' for c in shown
                              if _pattern_key(c) == key][:5])
        rows.append(
            f"<tr><td>{_cause_badge(cause)}</td><td class=\"mono\">{esc(kind)}</td>"
            f"<td>{esc(principal['detail'] if principal else '')}</td><td class=\"n\">{pattern.calls}</td>"
            f'<td class="n">{100 * pattern.calls / total:.0f}%</td>'
            f'<td class="mono">{_clock(first["start"])}</td>'
            f'<td class="mono">{_clock(pattern.last_start)}</td><td>{examples or "–"}</td></tr>'
        )
    head = "".join(f'<th scope="col"{" class=n" if n else ""}>{h}</th>' for h, n in (
        ("cause", False), ("finding", False), ("detail (first call)", False), ("calls", True), ("share", True),
        ("first (UTC)", False), ("last", False), ("cards", False)))
    return (f'<div class="scroll patterns"><table><caption>Failure patterns: calls per cause and principal finding'
            f'</caption><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def principal_finding(call: dict) -> dict | None:
    """The finding the call's cause comes from (as the Markdown post-mortem picks it)."""
    for finding in call["findings"]:
        if finding["category"] == call["cause"] and finding["detail"] == call["cause_detail"]:
            return finding
    return call["findings"][0] if call["findings"] else None


def _card(c: dict) -> str:
    principal = principal_finding(c)
    anchor = f"call-{c['number']}"
    drawn = {m["frame"] for m in c["signalling"]}
    final = f"{c['final_status']} {c['reason']['phrase'] or ''}".strip() if c["final_status"] else "no final response"
    who = f"{c['from_user'] or c['from'] or '?'} → {c['to_user'] or c['to'] or '?'}"
    colour = CATEGORY_COLOURS.get(c["cause"] or "", "#64748b")
    out = [f'<article class="card" id="{anchor}" style="border-left-color:{colour}">'
           f'<header><h3>Call {c["number"]}: {esc(who)}</h3><div class="badges">{_outcome_badge(c["outcome"])}'
           f'{_badge(final, _status_colour(c["final_status"]) if c["final_status"] else "#475569")}'
           f'{_cause_badge(c["cause"])}</div></header>']
    if principal is not None:
        out.append(f'<p class="cause"><strong>Cause: {esc(CATEGORY_NAMES.get(c["cause"], c["cause"]))}</strong> — '
                   f'{esc(principal["detail"])} {_confidence(principal["confidence"])}</p>')
    out.append(_call_facts(c))
    if principal is not None:
        out.append(f"<h4>Evidence <span class=\"muted\">({esc(principal['kind'])})</span></h4>"
                   + _evidence(principal["evidence"], anchor, drawn))
        retry = principal["retry_can_help"]
        out.append(f'<p class="retry {"yes" if retry else "no"}"><strong>Retry can help:</strong> '
                   f'{"yes — the same call placed again can succeed" if retry else "no — placing the same call again will fail the same way"}</p>')
        out.append(_advice(principal["advice"]))
    others = [f for f in c["findings"] if f is not principal]
    if others:
        out.append(f"<details class=\"others\" open><summary>Other findings ({len(others)})</summary>"
                   + "".join(_finding(f, anchor, drawn, 4) for f in others) + "</details>")
    if c["streams"]:
        out.append("<h4>RTP streams of the call</h4>" + _stream_table(c["streams"], with_call=False))
    messages = c["signalling"]
    if messages:
        columns = endpoints(c)
        dropped = c.get("signalling_dropped") or 0
        drawn_media = sum(1 for s in c["streams"] if s["direction"])
        media = f", with {_count(drawn_media, 'RTP stream')}" if drawn_media else ""
        out.append(f'<details class="ladder" open><summary>Ladder: {_count(len(messages), "SIP message")} between '
                   f'{_count(len(columns), "address")}{media}'
                   f'{f", {dropped} more not kept" if dropped else ""}</summary>'
                   f'<div class="scroll">{ladder_svg(c, columns, anchor)}</div></details>')
    out.append("</article>")
    return "".join(out)


def _confidence(value: float) -> str:
    pct = round(value * 100)
    return (f'<span class="conf" title="confidence of the attribution"><meter min="0" max="100" value="{pct}">'
            f"{pct}%</meter> {pct}% sure</span>")


def _call_facts(c: dict) -> str:
    facts: list[tuple[str, object]] = [
        ("start", _time(c["start"])), ("Call-ID", c["call_id"]), ("From", c["from"]), ("To", c["to"]),
        ("caller", c["caller"]), ("callee", c["callee"]), ("transport", c["transport"]),
        ("messages", f"{c['messages']} ({c['retransmissions']} retransmissions)"),
    ]
    optional: list[tuple[str, object, str]] = [
        ("PDD", c["pdd_ms"], " ms"), ("setup", c["setup_ms"], " ms"), ("talk time", c["duration_s"], " s"),
        ("Reason", "; ".join(c["reason"]["header"]), ""), ("timeout", c["timeout_kind"], ""),
        ("Retry-After", c["retry_after"], " s"), ("User-Agent", c["user_agent"], ""), ("Server", c["server"], ""),
        ("BYE by", c["bye_by"], ""), ("auth challenges", c["auth_challenges"] or None, ""),
    ]
    facts += [(k, f"{v}{unit}") for k, v, unit in optional if v not in (None, "")]
    if c["partial"]:
        facts.append(("partial", "started before the capture" if c["started_before_capture"] else "open at its end"))
    if c["anomalies"]:
        facts.append(("anomalies", "; ".join(c["anomalies"])))
    return '<dl class="meta">' + "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts) + "</dl>"


def _evidence(evidence: list[dict], anchor: str, drawn: set[int]) -> str:
    """The evidence table; a frame drawn in the card's ladder links to its arrow."""
    if not evidence:
        return '<p class="muted">no evidence items</p>'
    rows = []
    for e in evidence:
        frame = (f'<a href="#{anchor}-f{e["frame"]}">{e["frame"]}</a>' if e["frame"] in drawn
                 else str(e["frame"]) if e["frame"] else "–")
        rows.append(f'<tr><td class="n">{frame}</td><td class="mono">{_clock(e["at"])}'
                    f'</td><td>{esc(e["what"])}</td><td>{esc(e["value"]) or "–"}</td></tr>')
    return ('<table class="evidence"><thead><tr><th scope="col" class="n">frame</th><th scope="col">time (UTC)</th>'
            '<th scope="col">what</th><th scope="col">value</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _advice(advice: dict) -> str:
    return (f'<div class="advice"><div><h4>For the agent</h4><p>{esc(advice["agent"])}</p></div>'
            f'<div><h4>For the admin</h4><p>{esc(advice["admin"])}</p></div></div>')


def _finding(f: dict, anchor: str, drawn: set[int], level: int) -> str:
    retry = "retry can help" if f["retry_can_help"] else "retry will not help"
    return (f'<div class="finding"><h{level}>{esc(f["kind"])} {_cause_badge(f["category"])} '
            f'{_confidence(f["confidence"])}</h{level}><p>{esc(f["detail"])} <span class="muted">({retry})</span></p>'
            + _evidence(f["evidence"], anchor, drawn) + _advice(f["advice"]) + "</div>")


# --- capture-wide -----------------------------------------------------------------------------------------------


def _capture_findings(findings: list[dict]) -> Section | None:
    if not findings:
        return None
    return Section("capture-findings", f"Capture-wide findings ({len(findings)})",
                    "".join(f'<article class="card wide">{_finding(f, "capture", set(), 3)}</article>' for f in findings))


def _mos_colour(mos: float) -> str:
    return next(colour for floor, _, colour in MOS_BANDS if mos >= floor)


def _streams(seen: _Gathered) -> Section:
    if not seen.streams:
        return Section("streams", "RTP quality", '<p class="muted">No RTP streams in the capture.</p>')
    worst = seen.worst
    drawn = worst[:MAX_STREAM_BARS]
    rows = [(f"{s['src']} → {s['dst']} {s['codec'] or ''}".strip(),
             f"{s['src']} → {s['dst']} · SSRC {s['ssrc_hex']} · {s['codec'] or 'unknown codec'} · "
             f"{s['packets']} packets · call {s['call_id'] or '-'}",
             [s["loss_pct"], s["jitter_max_ms"], s["mos"]]) for s in drawn]
    max_loss = nice_ticks(max(5.0, *(s["loss_pct"] for s in drawn)))[-1]
    max_jitter = nice_ticks(max(50.0, *((s["jitter_max_ms"] or 0.0) for s in drawn)))[-1]
    metrics = [
        Metric("loss", "%", max_loss, lambda v: "#dc2626" if v > 3 else "#f59e0b" if v > 1 else "#16a34a"),
        Metric("jitter max", " ms", max_jitter, lambda v: "#dc2626" if v > 40 else "#f59e0b" if v > 20 else "#16a34a"),
        Metric("MOS", "", 5.0, _mos_colour),
    ]
    total = seen.streams
    title = (f"Loss, maximum jitter and estimated MOS per RTP stream, worst first"
             f"{f' ({len(drawn)} of {total} drawn)' if len(drawn) < total else ''}")
    bands = seen.bands
    band_bars = [Bar(f"MOS {name} ({'≥' + str(floor) if floor else '<3.1'})", bands[name], colour)
                 for floor, name, colour in MOS_BANDS] + (
        [Bar("MOS unknown", bands["unknown codec"], "#94a3b8")] if bands["unknown codec"] else [])
    more = (f'<p class="more">{total - len(drawn)} better streams not drawn.</p>'
            if total > len(drawn) else "")
    band_title = f"Streams per estimated MOS band ({_count(total, 'stream')})"
    content = (
        f'<div class="grid">{_figure(title, metric_rows(rows, metrics, title), "wide")}'
        f"{_figure(band_title, bar_chart(band_bars, 'Streams per MOS band'))}"
        "</div>" + more
        + f"<h3 class=\"sub\">Worst RTP streams</h3>{_stream_table(worst[:MAX_STREAM_ROWS], with_call=True)}"
    )
    return Section("streams", "RTP quality", content)


def _badness(stream: dict) -> tuple[float, float, float]:
    """Worst first: lowest MOS, then most loss (duplicates make it negative: not loss), then most jitter."""
    mos = stream["mos"] if stream["mos"] is not None else 5.0
    return mos, -max(0.0, stream["loss_pct"]), -(stream["jitter_max_ms"] or 0.0)


def _stream_table(streams: list[dict], with_call: bool) -> str:
    head = ["stream", "SSRC", "codec", "packets", "lost", "loss", "jitter max", "MOS", "RTCP loss / RTT"]
    if with_call:
        head.append("call")
    rows = []
    for s in streams:
        jitter = "–" if s["jitter_max_ms"] is None else f"{s['jitter_max_ms']:.1f} ms"
        mos = "–" if s["mos"] is None else f'<span class="dot" style="background:{_mos_colour(s["mos"])}"></span>{s["mos"]}'
        rtcp = s.get("rtcp")
        rtcp_text = "–"
        if rtcp:
            rtt = "" if rtcp["rtt_ms_max"] is None else f" / {rtcp['rtt_ms_max']:.0f} ms"
            rtcp_text = f"{rtcp['fraction_lost_max_pct']:.1f}%{rtt}"
        cells = [f'<td class="mono">{esc(s["src"])} → {esc(s["dst"])}</td>', f'<td class="mono">{esc(s["ssrc_hex"])}</td>',
                 f"<td>{esc(s['codec']) or '–'}</td>", f'<td class="n">{s["packets"]}</td>',
                 f'<td class="n">{s["lost"]}</td>', f'<td class="n">{s["loss_pct"]:.1f}%</td>',
                 f'<td class="n">{jitter}</td>', f'<td class="n">{mos}</td>', f'<td class="n">{esc(rtcp_text)}</td>']
        if with_call:
            cells.append(f'<td class="mono">{esc(s["call_id"]) or "unattached"}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f'<th scope="col"{" class=n" if h in ("packets", "lost", "loss", "jitter max", "MOS") else ""}>'
                     f"{h}</th>" for h in head)
    return f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _calls_table(calls: list[dict]) -> Section:
    if not calls:
        return Section("calls", "Calls (0)", '<p class="muted">No INVITE-initiated calls in the capture.</p>')
    rows = []
    for c in calls[:MAX_CALL_ROWS]:
        number = (f'<a href="#call-{c["number"]}">{c["number"]}</a>' if c["cause"] else str(c["number"]))
        final = f"{c['final_status']} {c['reason']['phrase'] or ''}".strip() if c["final_status"] else "–"
        rows.append(
            f'<tr><td class="n">{number}</td><td class="mono">{_clock(c["start"])}</td>'
            f"<td>{esc(c['from_user'] or c['from'])}</td><td>{esc(c['to_user'] or c['to'])}</td>"
            f"<td>{_outcome_badge(c['outcome'])}</td><td>{esc(final)}</td><td>{_cause_badge(c['cause'])}</td>"
            f'<td class="n">{"–" if c["pdd_ms"] is None else c["pdd_ms"]}</td>'
            f'<td class="n">{"–" if c["duration_s"] is None else c["duration_s"]}</td>'
            f'<td class="n">{c["messages"]}</td><td class="n">{len(c["streams"])}</td></tr>'
        )
    more = (f'<p class="more">… {len(calls) - MAX_CALL_ROWS} more calls (see the JSON report).</p>'
            if len(calls) > MAX_CALL_ROWS else "")
    head = "".join(f'<th scope="col"{" class=n" if n else ""}>{h}</th>' for h, n in (
        ("#", True), ("start (UTC)", False), ("from", False), ("to", False), ("outcome", False), ("final", False),
        ("cause", False), ("PDD ms", True), ("talk s", True), ("msgs", True), ("streams", True)))
    return Section("calls", f"Calls ({len(calls)})",
                    f'<div class="scroll"><table class="calls"><thead><tr>{head}</tr></thead>'
                    f'<tbody>{"".join(rows)}</tbody></table></div>{more}')


def _problems(data: dict) -> Section | None:
    problems, omitted = data["problems"], data.get("problems_omitted") or {}
    if not problems and not omitted:
        return None
    rows = []
    for p in problems[:MAX_PROBLEMS]:
        where = ", ".join(([f"frame {p['frame']}"] if p["frame"] else [])
                          + ([f"byte {p['offset']:,}"] if p["offset"] is not None else [])) or "–"
        rows.append(f'<tr><td>{esc(p["severity"])}</td><td>{esc(p["kind"])}</td><td class="mono">{esc(where)}</td>'
                    f"<td>{esc(p['message'])}</td></tr>")
    extra = len(problems) - min(len(problems), MAX_PROBLEMS) + sum(omitted.values())
    more = f'<p class="more">… {extra} more problems not listed.</p>' if extra else ""
    return Section("problems", "Problems reading the capture",
                    '<table><thead><tr><th scope="col">severity</th><th scope="col">kind</th><th scope="col">where'
                    f'</th><th scope="col">message</th></tr></thead><tbody>{"".join(rows)}</tbody></table>{more}')


_LADDER_LEGEND = (
    '<p class="legend ladder-key"><strong>Ladders:</strong>'
    + "".join(f'<span><i style="background:{MESSAGE_COLOURS[k]}"></i>{name}</span>' for k, name in (
        ("req", "request"), ("prov", "1xx provisional"), ("ok", "2xx success"), ("redir", "3xx redirect"),
        ("err", "4xx–6xx error")))
    + '<span><i class="dashed"></i>retransmission (retr.)</span>'
    f'<span><i class="media" style="background:{MEDIA_COLOUR}"></i>RTP stream, at its first packet</span>'
    '<span class="muted">time column: capture time (UTC) '
    "and seconds since the call's first message; #: frame number</span></p>"
)

_CSS = """
:root{--ink:#0f172a;--muted:#64748b;--line:#e2e8f0;--panel:#fff;--bg:#f1f5f9;--accent:#1d4ed8}
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;background:var(--bg);color:var(--ink);font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",Arial,sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px 20px 32px}
h1{font-size:20px;margin:2px 0 8px;word-break:break-all}
h2{font-size:16px;margin:22px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--ink)}
h3{font-size:14px;margin:0}
h3.sub{margin:16px 0 6px}
h4{font-size:12px;margin:12px 0 4px;text-transform:uppercase;letter-spacing:.04em;color:#334155}
a{color:var(--accent)}
.mono,.meta dd,svg .time,svg .delta,svg .frame{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
.muted{color:var(--muted)}
header.top{background:var(--ink);color:#f8fafc;border-radius:6px;padding:14px 18px}
header.top .kicker{margin:0;text-transform:uppercase;letter-spacing:.12em;font-size:11px;color:#94a3b8}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0}
.facts div{display:flex;flex-direction:column}
.facts dt{font-size:10px;text-transform:uppercase;letter-spacing:.06em;color:#94a3b8}
.facts dd{margin:0;font-weight:600}
.verdict{margin:10px 0 0;font-weight:600}.verdict.good{color:#bbf7d0}.verdict.bad{color:#fecaca}
.verdict.good::before{content:"\\25CF  ";color:#4ade80}
.verdict.bad::before{content:"\\25CF  ";color:#f87171}
.warning{background:#fef2f2;color:#991b1b;border:1px solid #fecaca;border-radius:4px;padding:8px 10px}
.kpis{display:grid;grid-template-columns:repeat(9,1fr);gap:8px;margin-top:12px}
.kpi{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:6px 10px}
.kpi .k{display:block;font-size:11px;color:var(--muted);font-weight:600;letter-spacing:.05em}
.kpi .v{display:block;font-size:18px;font-weight:700}
.note{color:var(--muted);font-size:11px;margin:4px 0 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:12px}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:0}
.panel.wide{grid-column:1/-1}
figcaption{font-weight:600;margin-bottom:6px}
svg{max-width:100%;height:auto;display:block}
svg text{font-size:12px;fill:var(--ink)}
svg .axis{font-size:10px;fill:var(--muted)}
svg .value{font-size:11px;fill:#334155}
svg .muted{fill:var(--muted)}
svg .head{font-size:11px;font-weight:600;fill:#334155}
svg .grid{stroke:var(--line)}
svg .base{stroke:#94a3b8}
svg .stripe{fill:#f8fafc}
svg.chart.metrics text{font-size:11px}
svg.ladder .box{fill:#f1f5f9;stroke:#94a3b8}
svg.ladder .addr{font-size:11px;font-weight:600}
svg.ladder .role{font-size:10px;fill:var(--muted)}
svg.ladder .life{stroke:#94a3b8;stroke-width:1.5}
svg.ladder .time,svg.ladder .delta,svg.ladder .frame{font-size:10.5px;fill:#475569}
svg.ladder .label{font-size:11px;font-weight:600}
svg.ladder .err .label{font-weight:800}
svg.ladder .retr .label{font-style:italic;font-weight:400}
svg.ladder .media-label{font-size:10.5px;font-weight:600}
svg.ladder .msg:target .label,svg.ladder .msg:hover .label{text-decoration:underline}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0 0;font-size:11px}
.legend i{display:inline-block;width:12px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.legend i.dashed{background:none;border-top:2px dashed #475569;width:22px;height:0;vertical-align:3px}
.ladder-key{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:6px 10px;margin:0 0 12px}
table{border-collapse:collapse;width:100%;background:var(--panel)}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:#334155;background:#f8fafc}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.patterns td.mono,.calls td.mono,.evidence td.mono{white-space:nowrap}
table.compact td{padding:2px 8px}
caption{text-align:left;font-weight:600;padding:6px 8px;background:var(--panel)}
.patterns{margin-bottom:12px;border:1px solid var(--line);border-radius:6px}
.scroll{overflow-x:auto}
.badge{display:inline-block;color:#fff;font-size:11px;font-weight:600;border-radius:3px;padding:1px 7px;
margin-right:4px;white-space:nowrap}
.card{background:var(--panel);border:1px solid var(--line);border-left:6px solid #64748b;border-radius:6px;
padding:10px 14px;margin:0 0 14px}
.card>header{display:flex;flex-wrap:wrap;gap:6px 12px;align-items:center;justify-content:space-between;
border-bottom:1px solid var(--line);padding-bottom:6px}
.cause{font-size:14px;margin:8px 0}
.conf{font-size:11px;color:var(--muted);white-space:nowrap}
meter{width:60px;height:9px;vertical-align:-1px}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:2px 16px;margin:6px 0}
.meta div{display:flex;gap:8px;min-width:0}
.meta dt{color:var(--muted);flex:0 0 90px}
.meta dd{margin:0;overflow-wrap:anywhere;font-size:12px}
.evidence{table-layout:fixed}.evidence th:nth-child(1){width:64px}.evidence th:nth-child(2){width:120px}
.evidence th:nth-child(3){width:30%}.evidence td:nth-child(2){white-space:nowrap}
.retry{margin:8px 0}.retry.yes strong{color:#15803d}.retry.no strong{color:#b91c1c}
.advice{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.advice>div{background:#f8fafc;border:1px solid var(--line);border-radius:4px;padding:2px 10px}
.advice p{margin:4px 0 8px}
details{margin-top:10px}
summary{cursor:pointer;font-weight:600}
.finding{border-top:1px dashed var(--line);margin-top:8px;padding-top:4px}
.finding>h3,.finding>h4{display:flex;flex-wrap:wrap;gap:8px;align-items:center;text-transform:none;letter-spacing:0}
.more{color:var(--muted);font-style:italic}
.good{color:#15803d}
.dot{display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:5px}
nav{margin:10px 2px 0;font-size:12px;color:var(--muted)}nav a{text-decoration:none;font-weight:600}
@media print{nav{display:none}}
footer{margin-top:24px;color:var(--muted);font-size:11px;border-top:1px solid var(--line);padding-top:8px}
@media (max-width:900px){.kpis{grid-template-columns:repeat(3,1fr)}.advice{grid-template-columns:1fr}}
@media print{body{background:#fff;font-size:11px}main{max-width:none;padding:0}
.card,.panel,.kpi,tr{break-inside:avoid}details.ladder{break-inside:auto}h2,h3,h4{break-after:avoid}
header.top{background:#fff;color:var(--ink);border:2px solid var(--ink)}
header.top .kicker,.facts dt{color:var(--muted)}.verdict.good{color:#15803d}.verdict.bad{color:#b91c1c}
.kpis{grid-template-columns:repeat(9,1fr);gap:4px}.kpi{padding:3px 6px}.kpi .v{font-size:13px}
.grid{grid-template-columns:1fr 1fr}.scroll{overflow:visible}a{color:inherit;text-decoration:none}}
"""
