"""A call's messages as a ladder diagram in text: one column per address, one line per message.

    time            127.0.0.1:5161        127.0.0.1:5061
    13:40:10.775    |------INVITE------->|
    13:40:10.776    |<----100 Trying-----|
"""

from __future__ import annotations

from sipwatch.core.calls import Call
from sipwatch.report.data import iso

_LANE = 40  # characters between two columns, at most


def ladder(call: Call, width: int = 100) -> str:
    endpoints: list[str] = []
    for record in call.records:
        for address in (record.src, record.dst):
            if address not in endpoints:
                endpoints.append(address)
    lane = max(12, min(_LANE, (width - 30) // (len(endpoints) - 1))) if len(endpoints) > 1 else _LANE
    header = " " * 16 + "".join(address.ljust(lane)[:lane] for address in endpoints)
    lines = [header.rstrip()]
    for record in call.records:
        a, b = endpoints.index(record.src), endpoints.index(record.dst)
        left, right = min(a, b), max(a, b)
        span = (right - left) * lane - 1
        label = record.label + (" (retransmission)" if record.retransmission else "")
        label = label[: max(1, span - 4)]
        # the arrow fills the space between the two columns' bars
        arrow = label.center(span - 1, "-") + ">" if a < b else "<" + label.center(span - 1, "-")
        row = [" "] * (len(endpoints) * lane)
        for i in range(len(endpoints)):
            row[i * lane] = "|"
        start = left * lane + 1
        row[start : start + len(arrow)] = arrow
        stamp = (iso(record.ts) or "")[11:23]
        lines.append(f"{stamp:<16}" + "".join(row).rstrip() + f"   frame {record.frame}")
    if call.records_dropped:
        lines.append(f"... {call.records_dropped} more messages not kept")
    return "\n".join(lines)
