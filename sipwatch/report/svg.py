"""Inline SVG drawings for the HTML post-mortem: bar charts, a time chart and a call's ladder diagram.

Plain strings, no library. Every text that may come from the capture goes through `esc`, inside `<text>` and
`<title>` alike. Sizes are in CSS pixels; each drawing has a viewBox so that it shrinks to the page (print).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHAR_W = 0.6  # average glyph width of the report's fonts, in ems: enough to lay out labels


def esc(value: object) -> str:
    """Any value as inert HTML text: markup escaped (quotes too), control characters and lone surrogates replaced."""
    if value is None:
        return ""
    text = str(value)
    text = text.encode("utf-8", "replace").decode("utf-8")
    return html.escape(_CONTROL.sub("\ufffd", text), quote=True)


def clip(value: object, chars: int) -> str:
    """Text shortened to `chars` characters with an ellipsis (escape it afterwards)."""
    text = "" if value is None else str(value)
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def text_width(text: str, size: float) -> float:
    return len(text) * size * _CHAR_W


def nice_ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    """Round axis ticks from 0 to at least `top` (whole numbers only, for counts, when `whole`)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1.0) if whole else top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _num(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def _open(width: float, height: float, label: str, cls: str) -> str:
    return (
        f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>'
    )


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    colour: str
    title: str = ""
    shown: str | None = None  # the value as printed, when not the number itself


def bar_chart(bars: Sequence[Bar], label: str, unit: str = "", width: int = 460, scale_to: float = 0.0,
              empty: str = "none") -> str:
    """Horizontal bars, one per row, with the label left and the value right of each bar."""
    row = 22
    font = 12
    label_w = min(220.0, max(60.0, max((text_width(b.label, font) for b in bars), default=60.0) + 10))
    value_w = max(44.0, max((text_width(b.shown or _num(b.value) + unit, font) for b in bars), default=0.0) + 10)
    plot = width - label_w - value_w
    top = max([scale_to] + [b.value for b in bars]) or 1.0
    height = row * max(1, len(bars)) + 8
    out = [_open(width, height, label, "chart bars")]
    if not bars:
        out.append(f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="muted">{esc(empty)}</text>')
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = max(1.0, plot * b.value / top) if b.value > 0 else 0.0
        tip = esc(b.title or f"{b.label}: {b.shown or _num(b.value) + unit}")
        out.append(
            f'<g class="bar"><title>{tip}</title>'
            f'<text x="{label_w - 8:.1f}" y="{y + 15}" text-anchor="end">{esc(clip(b.label, int(label_w / 7)))}</text>'
            f'<rect x="{label_w:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" rx="2" fill="{b.colour}"/>'
            f'<text x="{label_w + w + 5:.1f}" y="{y + 15}" class="value">{esc(b.shown or _num(b.value) + unit)}</text>'
            "</g>"
        )
    out.append("</svg>")
    return "".join(out)


def stacked_columns(
    buckets: Sequence[tuple[str, dict[str, int]]], keys: Sequence[str], colours: dict[str, str], label: str,
    width: int = 1130, height: int = 180,
) -> str:
    """Columns over time, each a stack of counts per key (bottom first), with a y axis and sparse x labels."""
    left, right, top_pad, bottom = 36, 8, 10, 26
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    totals = [sum(counts.values()) for _, counts in buckets]
    ticks = nice_ticks(max(totals, default=0) or 1, 4, whole=True)
    top = ticks[-1]
    out = [_open(width, height, label, "chart time")]
    for t in ticks:
        y = top_pad + plot_h - plot_h * t / top
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" class="axis">{_num(t)}</text>')
    n = max(1, len(buckets))
    slot = plot_w / n
    bar_w = min(48.0, max(1.0, slot * 0.8))
    every = max(1, math.ceil(n / max(1, plot_w // 90)))
    for i, (name, counts) in enumerate(buckets):
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        parts = [f"{k}: {counts[k]}" for k in keys if counts.get(k)]
        out.append(f'<g class="column"><title>{esc(name)}: {sum(counts.values())} calls'
                   f'{esc(" (" + ", ".join(parts) + ")") if parts else ""}</title>')
        for key in keys:
            count = counts.get(key, 0)
            if not count:
                continue
            h = plot_h * count / top
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                       f'fill="{colours.get(key, "#888")}"/>')
        out.append("</g>")
        if i % every == 0:
            out.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - 8}" text-anchor="middle" '
                       f'class="axis">{esc(name)}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" class="base"/>')
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Metric:
    """One column of `metric_rows`: a value per row drawn as a bar against `scale`."""

    name: str
    unit: str
    scale: float
    colour_of: object  # callable: value -> colour


def metric_rows(rows: Sequence[tuple[str, str, Sequence[float | None]]], metrics: Sequence[Metric], label: str,
                width: int = 1130) -> str:
    """Small multiples: per row (label, tooltip, values) one bar per metric, side by side."""
    row, font = 20, 11
    label_w = min(330.0, max(120.0, max((text_width(r[0], font) for r in rows), default=0.0) + 12))
    col_w = (width - label_w) / max(1, len(metrics))
    height = 22 + row * len(rows) + 4
    out = [_open(width, height, label, "chart metrics")]
    for j, m in enumerate(metrics):
        x = label_w + j * col_w
        out.append(f'<text x="{x + 4:.1f}" y="14" class="head">{esc(m.name)} (0–{_num(m.scale)}{esc(m.unit)})</text>')
    for i, (name, tip, values) in enumerate(rows):
        y = 22 + i * row
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row}" class="stripe"/>')
        out.append(f'<g class="stream"><title>{esc(tip)}</title>'
                   f'<text x="{label_w - 8:.1f}" y="{y + 14}" text-anchor="end">{esc(clip(name, int(label_w / 6.6)))}</text>')
        for j, (m, v) in enumerate(zip(metrics, values, strict=True)):
            x = label_w + j * col_w + 4
            span = col_w - 60
            if v is None:
                out.append(f'<text x="{x:.1f}" y="{y + 14}" class="muted">n/a</text>')
                continue
            w = max(1.0, span * min(1.0, max(0.0, v) / m.scale)) if v > 0 else 0.0
            out.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 8}" rx="2" '
                       f'fill="{m.colour_of(v)}"/>'  # type: ignore[operator]
                       f'<text x="{x + w + 4:.1f}" y="{y + 14}" class="value">{_num(round(v, 2))}{esc(m.unit)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# --- ladder -----------------------------------------------------------------------------------------------------

_LADDER_WIDTH = 1100  # what fits a card on a 1280-pixel screen; more endpoints scroll sideways
MEDIA_COLOUR = "#a21caf"
MESSAGE_COLOURS = {"req": "#1d4ed8", "prov": "#64748b", "ok": "#15803d", "redir": "#0e7490", "err": "#b91c1c"}


def message_class(message: dict) -> str:
    status = message["status"]
    if status is None:
        return "req"
    if status < 200:
        return "prov"
    if status < 300:
        return "ok"
    if status < 400:
        return "redir"
    return "err"


def ladder_svg(call: dict, endpoints: Sequence[str], anchor: str) -> str:
    """A call's messages as a sequence diagram: one lifeline per address, one arrow per message.

    Arrows are coloured by kind (request, provisional, 2xx, 3xx, error); retransmissions are dashed and marked.
    Each arrow is a `<g class="msg">` with an id `{anchor}-f{frame}` so that evidence can link to it. The call's
    RTP streams are drawn too, as broad `<g class="media">` arrows between caller and callee at their first
    packet, so that media that never flowed one way shows as a missing band.
    """
    messages = call["signalling"]
    n = len(endpoints)
    time_w, frame_w, head, row = 150, 56, 50, 24
    lane = max(150, min(380, (_LADDER_WIDTH - time_w - frame_w - 220) // max(1, n - 1)))
    box = min(lane - 16, 210)
    xs = [time_w + box // 2 + 6 + i * lane for i in range(n)]
    where = {address: xs[i] for i, address in enumerate(endpoints)}
    sides = {"caller": call.get("caller"), "callee": call.get("callee")}
    media = [s for s in call.get("streams", []) if _media_ends(s, sides, where)]
    rows = sorted([(m["frame"], 0, m) for m in messages] + [(s["first_frame"] or 0, 1, s) for s in media],
                  key=lambda r: (r[0], r[1]))
    width = xs[-1] + box // 2 + frame_w if xs else time_w + frame_w
    height = head + row * len(rows) + 16
    roles = {address: role for role, address in sides.items()}
    label = (f"Ladder diagram of call {call['number']}: {len(messages)} SIP messages between {n} addresses"
             f"{f' and {len(media)} RTP streams' if media else ''}")
    out = [_open(width, height, label, "ladder")]
    for i in range(len(rows)):
        if i % 2:
            out.append(f'<rect x="0" y="{head + i * row - row / 2 - 2:.0f}" width="{width}" height="{row}" '
                       f'class="stripe"/>')
    for address, x in where.items():
        role = roles.get(address)
        out.append(f'<g class="endpoint"><title>{esc(address)}{esc(" (" + role + ")") if role else ""}</title>'
                   f'<rect x="{x - box / 2:.0f}" y="4" width="{box}" height="{34 if role else 24}" rx="3" '
                   f'class="box"/><text x="{x}" y="20" text-anchor="middle" class="addr">'
                   f'{esc(clip(address, int((box - 8) / 7)))}</text>')
        if role:
            out.append(f'<text x="{x}" y="33" text-anchor="middle" class="role">{role}</text>')
        out.append(f'<line x1="{x}" x2="{x}" y1="{38 if role else 28}" y2="{height - 6}" class="life"/></g>')
    t0 = messages[0]["ts"] if messages else None
    for i, (_, is_media, item) in enumerate(rows):
        y = head + i * row
        if is_media:
            out.append(_media_row(item, sides, where, y, t0, width, time_w))
        else:
            out.append(_message_row(item, where, y, t0, width, time_w, anchor))
    out.append("</svg>")
    return "".join(out)


def _media_ends(stream: dict, sides: dict, where: dict) -> bool:
    direction = stream.get("direction") or ""
    a, _, b = direction.partition("->")
    return sides.get(a) in where and sides.get(b) in where and a != b


def _time_cells(at: str | None, ts: float | None, t0: float | None, time_w: int, y: int) -> str:
    delta = f"+{ts - t0:.3f}" if ts is not None and t0 is not None else ""
    return (f'<text x="6" y="{y + 4}" class="time">{esc((at or "")[11:23])}</text>'
            f'<text x="{time_w - 8}" y="{y + 4}" text-anchor="end" class="delta">{delta}</text>')


def _arrow(x1: float, x2: float, y: int, colour: str, stroke: float, dash: str = "") -> str:
    direction = 1 if x2 > x1 else -1
    tip_x = x2 - direction * 2
    head = 9 + stroke
    return (f'<line x1="{x1}" x2="{tip_x - direction * (head - 1)}" y1="{y + 4}" y2="{y + 4}" stroke="{colour}" '
            f'stroke-width="{stroke}"{dash}/>'
            f'<polygon points="{tip_x},{y + 4} {tip_x - direction * head},{y + 4 - head / 2:.1f} '
            f'{tip_x - direction * head},{y + 4 + head / 2:.1f}" fill="{colour}"/>')


def _message_row(m: dict, where: dict, y: int, t0: float | None, width: int, time_w: int, anchor: str) -> str:
    kind = message_class(m)
    colour = MESSAGE_COLOURS[kind]
    x1, x2 = where[m["src"]], where[m["dst"]]
    retr = m["retransmission"]
    name = m["label"] + (" (retr.)" if retr else "")
    cseq = f"CSeq {m['cseq']} {m['cseq_method']}" if m["cseq"] is not None else ""
    tip = (f"frame {m['frame']} · {m['at']} · {m['src']} → {m['dst']} · {m['label']}"
           f"{' (retransmission)' if retr else ''} · {cseq} · {m['transport']}")
    out = [f'<g class="msg {kind}{" retr" if retr else ""}" id="{anchor}-f{m["frame"]}" data-frame="{m["frame"]}">'
           f"<title>{esc(tip)}</title>", _time_cells(m["at"], m["ts"], t0, time_w, y)]
    dash = ' stroke-dasharray="6 4"' if retr else ""
    if x1 == x2:  # a message to its own address: a loop
        out.append(f'<path d="M{x1} {y - 6} h30 v10 h-24" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>'
                   f'<polygon points="{x1},{y + 4} {x1 + 8},{y} {x1 + 8},{y + 8}" fill="{colour}"/>'
                   f'<text x="{x1 + 36}" y="{y + 2}" class="label" fill="{colour}">{esc(clip(name, 40))}</text>')
    else:
        out.append(_arrow(x1, x2, y, colour, 1.3 if retr else 1.8, dash))
        chars = int((abs(x2 - x1) + 4) / (11 * _CHAR_W))  # may reach over a lifeline a little
        out.append(f'<text x="{(x1 + x2) / 2:.0f}" y="{y}" text-anchor="middle" class="label" fill="{colour}">'
                   f"{esc(clip(name, chars))}</text>")
    out.append(f'<text x="{width - 6}" y="{y + 4}" text-anchor="end" class="frame">#{m["frame"]}</text></g>')
    return "".join(out)


def _media_row(s: dict, sides: dict, where: dict, y: int, t0: float | None, width: int, time_w: int) -> str:
    a, _, b = s["direction"].partition("->")
    x1, x2 = where[sides[a]], where[sides[b]]
    loss = f"{s['loss_pct']:.1f}% loss"
    mos = f" · MOS {s['mos']}" if s["mos"] is not None else ""
    name = f"RTP {s['codec'] or ''} · {s['packets']} pkts · {loss}{mos}"
    tip = (f"RTP {s['src']} → {s['dst']} · SSRC {s['ssrc_hex']} · {s['codec'] or 'unknown codec'} · {s['packets']} "
           f"packets from {s['first']} to {s['last']} (frames {s['first_frame']}–{s['last_frame']}) · {loss}"
           f"{mos}")
    ts = _epoch(s["first"])
    chars = int((abs(x2 - x1) + 4) / (10.5 * _CHAR_W))
    return (f'<g class="media" data-frame="{s["first_frame"]}"><title>{esc(tip)}</title>'
            + _time_cells(s["first"], ts, t0, time_w, y)
            + _arrow(x1, x2, y, MEDIA_COLOUR, 5.0)
            + f'<text x="{(x1 + x2) / 2:.0f}" y="{y - 1}" text-anchor="middle" class="label media-label" '
            f'fill="{MEDIA_COLOUR}">{esc(clip(name, chars))}</text>'
            f'<text x="{width - 6}" y="{y + 4}" text-anchor="end" class="frame">#{s["first_frame"]}</text></g>')


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
