"""A call's messages as a ladder diagram in text: one column per address, one line per message.

    time            127.0.0.1:5161        127.0.0.1:5061
    13:40:10.775    |------INVITE------->|
    13:40:10.776    |<----100 Trying-----|

Drawn from a call of the report data (`report.data.call_to_dict`), so a redacted report draws redacted ladders.
"""

from __future__ import annotations

_LANE = 40  # characters between two columns, at most


def endpoints(call: dict) -> list[str]:
    """The addresses of a call's messages, in order of first appearance: the ladder's columns."""
    seen: dict[str, None] = {}
    for message in call["signalling"]:
        seen.setdefault(message["src"])
        seen.setdefault(message["dst"])
    return list(seen)


def ladder(call: dict, width: int = 100) -> str:
    columns = endpoints(call)
    lane = max(12, min(_LANE, (width - 30) // (len(columns) - 1))) if len(columns) > 1 else _LANE
    header = " " * 16 + "".join(address.ljust(lane)[:lane] for address in columns)
    lines = [header.rstrip()]
    for message in call["signalling"]:
        a, b = columns.index(message["src"]), columns.index(message["dst"])
        left, right = min(a, b), max(a, b)
        span = max(2, (right - left) * lane - 1)
        label = message["label"] + (" (retransmission)" if message["retransmission"] else "")
        label = label[: max(1, span - 4)]
        # the arrow fills the space between the two columns' bars
        arrow = label.center(span - 1, "-") + ">" if a <= b else "<" + label.center(span - 1, "-")
        row = [" "] * (len(columns) * lane + lane)
        for i in range(len(columns)):
            row[i * lane] = "|"
        start = left * lane + 1
        row[start : start + len(arrow)] = arrow
        stamp = (message["at"] or "")[11:23]
        lines.append(f"{stamp:<16}" + "".join(row).rstrip() + f"   frame {message['frame']}")
    if call["signalling_dropped"]:
        lines.append(f"... {call['signalling_dropped']} more messages not kept")
    return "\n".join(lines)
