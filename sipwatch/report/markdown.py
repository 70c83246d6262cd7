"""The post-mortem as Markdown, to paste into a ticket: what happened, to which calls, why, and what to do.

Built from the same data as the JSON report (`report.data`), so a figure has one meaning everywhere. Text
taken from the capture (URIs, User-Agents, Reason texts) is escaped so that it can never become Markdown or
HTML when the ticket system renders it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator

from sipwatch.report.ladder import ladder

_KPIS = [
    ("asr", "ASR", "%"), ("ner", "NER", "%"), ("ser", "SER", "%"), ("seer", "SEER", "%"), ("isa", "ISA", "%"),
    ("scr", "SCR", "%"), ("pdd_ms", "PDD", " ms"), ("srd_ms", "SRD", " ms"), ("acd_s", "ACD", " s"),
]
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")  # what could make links, HTML, emphasis or table cells
MAX_CARDS = 50
WORST_STREAMS = 10  # rows of the worst-streams table


def text(value: object) -> str:
    """Captured text made inert: no Markdown, no HTML, one line."""
    if value is None:
        return ""
    flat = " ".join(str(value).split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def render_markdown(data: dict) -> str:
    """The post-mortem of the report data (`report.data.analysis_to_dict`, redacted or not)."""
    cap, summ = data["capture"], data["summary"]
    out: list[str] = [f"# Post-mortem: {text(cap['file'])}", ""]
    out.append(
        f"{cap['packets']} packets from {cap['first'] or '-'} to {cap['last'] or '-'} "
        f"({cap['duration_s'] or 0:.1f} s); {_count(summ['messages'], 'SIP message')}, "
        f"{_count(summ['calls'], 'call')} ({summ['partial_calls']} cut by the capture's edges), "
        f"{_count(summ['rtp_streams'], 'RTP stream')}."
    )
    if cap["damaged"]:
        out.append("")
        out.append("**The capture file is damaged**: the analysis covers what comes before the damage "
                   "(see Problems).")
    out += ["", "## Summary", "", "| outcome | calls |", "|---|---:|"]
    out += [f"| {text(k)} | {n} |" for k, n in summ["outcomes"].items()]
    if summ["causes"]:
        out += ["", "| cause | calls |", "|---|---:|"]
        out += [f"| {text(k)} | {n} |" for k, n in summ["causes"].items()]
    kpi = summ["kpi"]
    out += ["", "| " + " | ".join(label for _, label, _ in _KPIS) + " |", "|" + "---:|" * len(_KPIS)]
    out.append("| " + " | ".join("-" if kpi.get(key) is None else f"{kpi[key]}{unit}" for key, _, unit in _KPIS)
               + " |")

    troubled, cards, streams = _troubled_and_worst(data["calls"])
    out += ["", f"## Failures and degraded calls ({troubled})", ""]
    if not troubled:
        out.append("None: every call that the capture saw through was answered and healthy.")
    for c in cards:
        out += _card(c)
    if troubled > MAX_CARDS:
        out.append(f"... {troubled - MAX_CARDS} more (see the JSON report for all).")

    for finding in data["findings"]:
        out += ["", f"## Capture: {text(finding['kind'])}", "", text(finding["detail"]), "",
                f"*Admin:* {text(finding['advice']['admin'])}"]

    if streams:
        out += ["", "## Worst RTP streams", "", "| stream | codec | packets | loss | jitter max | MOS | call |",
                "|---|---|---:|---:|---:|---:|---|"]
        for s in streams:
            jitter = "-" if s["jitter_max_ms"] is None else f"{s['jitter_max_ms']:.1f} ms"
            out.append(f"| {text(s['src'])} → {text(s['dst'])} | {text(s['codec'])} | {s['packets']} | "
                       f"{s['loss_pct']:.1f}% | {jitter} | {s['mos'] if s['mos'] is not None else '-'} | "
                       f"{text(s['call_id'])} |")
    if data["problems"]:
        out += ["", "## Problems reading the capture", ""]
        for p in data["problems"][:20]:
            where = f"frame {p['frame']}" if p["frame"] else f"byte {p['offset']}" if p["offset"] else ""
            out.append(f"- {text(p['kind'])} {where}: {text(p['message'])}")
    out.append("")
    return "\n".join(out)


def _troubled_and_worst(calls) -> tuple[int, list[dict], list[dict]]:
    """In one pass over the calls (a large capture's are read back from disk one at a time): how many failed
    or were degraded, the first MAX_CARDS of those, and the WORST_STREAMS worst streams (lowest MOS, then most
    loss; in call order where equal), without holding the other calls or streams."""
    troubled = 0
    first: list[dict] = []

    def streams() -> Iterator[dict]:
        nonlocal troubled
        for call in calls:
            if call["cause"]:
                troubled += 1
                if len(first) < MAX_CARDS:
                    first.append(call)
            yield from call["streams"]

    worst = heapq.nsmallest(WORST_STREAMS, streams(), key=lambda s: (s["mos"] or 5.0, -s["loss_pct"]))
    return troubled, first, worst


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _card(c: dict) -> list[str]:
    principal = c["findings"][0] if c["findings"] else None
    for finding in c["findings"]:
        if finding["category"] == c["cause"] and finding["detail"] == c["cause_detail"]:
            principal = finding
            break
    final = f"{c['final_status']} {c['reason']['phrase'] or ''}".strip() if c["final_status"] else "no final response"
    lines = [
        f"### Call {c['number']}: {text(c['from_user'] or c['from'])} → {text(c['to_user'] or c['to'])}, "
        f"{text(c['outcome'])} ({text(final)})",
        "",
        f"- **Cause:** {text(c['cause'])}"
        + (f" ({principal['confidence']:.0%} sure): {text(principal['detail'])}" if principal else ""),
        f"- **When:** {c['start']} · Call-ID `{c['call_id'].replace('`', '')}`",
    ]
    if c["reason"]["header"]:
        lines.append(f"- **Reason:** {text('; '.join(c['reason']['header']))}")
    if principal is not None:
        lines.append("- **Evidence:**")
        for e in principal["evidence"][:8]:
            value = f": {text(e['value'])}" if e["value"] else ""
            frame = f" (frame {e['frame']})" if e["frame"] else ""
            lines.append(f"  - {text(e['what'])}{value}{frame}")
        lines.append(f"- **Retry can help:** {'yes' if principal['retry_can_help'] else 'no'}")
        lines.append(f"- **Agent:** {text(principal['advice']['agent'])}")
        lines.append(f"- **Admin:** {text(principal['advice']['admin'])}")
    others = [f for f in c["findings"] if f is not principal]
    if others:
        lines.append("- **Also:** " + "; ".join(f"{text(f['kind'])} ({text(f['category'])})" for f in others))
    lines += ["", "```text", ladder(c).replace("```", "'''"), "```", ""]
    return lines
