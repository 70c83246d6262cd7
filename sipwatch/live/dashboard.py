"""The terminal dashboard (rich Live), redrawn once a second of wall time: active calls, calls per second, ASR
over 1/5/15 minutes, failures by cause, worst streams, capture counters and the latest events."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sipwatch.live.stats import fmt


class Dashboard:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, auto_refresh=False, transient=False)
        self._next = 0.0
        self.recent: deque[str] = deque(maxlen=8)

    def __enter__(self) -> Dashboard:
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def event(self, event: dict) -> None:
        kind = event.get("event")
        if kind in ("started", "stopped"):
            return
        what = {
            "call_ended": lambda e: f"call {e['call']} {e['outcome']}" + (f" ({e['cause']})" if e["cause"] else ""),
            "failure": lambda e: f"call {e['call']} failure: {e['cause']}: {e['detail']}",
            "one_way_audio": lambda e: f"call {e['call']} one-way audio ({e['silent_side']} silent) {e['after_s']:.0f} s in",
            "rtp_timeout": lambda e: f"call {e['call']} RTP timeout {e['direction']} ({e['silence_s']:.0f} s)",
            "capture_drops": lambda e: f"capture dropped {e['dropped']} frames",
        }.get(kind)
        if what is not None:
            self.recent.append(f"{(event.get('ts') or '')[11:19]} {what(event)}")

    def refresh(self, runner, force: bool = False) -> None:
        wall = time.monotonic()
        if wall < self._next and not force:
            return
        self._next = wall + 1.0
        self.live.update(self.render(runner), refresh=True)

    def render(self, runner) -> Group:
        stats = runner.stats
        capture = runner.source.stats()
        head = Text.assemble(
            ("sipwatch live ", "bold"), (runner.source.name, "bold"),
            f"  active calls {stats.active}  CPS {stats.cps():.1f}  ASR 1m {fmt(stats.asr(1), '%')} "
            f"5m {fmt(stats.asr(5), '%')} 15m {fmt(stats.asr(15), '%')}\n",
            f"decided {stats.decided}  frames {capture.received}  ",
            (f"kernel drops {capture.dropped}", "bold red" if capture.dropped else ""),
            f"  one-way {stats.alerts['one_way_audio']}  RTP timeouts {stats.alerts['rtp_timeout']}",
        )
        causes = Table(title="failures by cause", expand=False)
        causes.add_column("cause")
        causes.add_column("calls", justify="right")
        for cause, n in stats.causes.most_common(8):
            causes.add_row(cause, str(n))
        worst = Table(title="worst streams (15 min)", expand=False)
        for name in ("stream", "loss", "jitter max", "MOS"):
            worst.add_column(name, no_wrap=name != "stream")
        for mos, _, _, label, loss, jitter in stats.worst()[:6]:
            worst.add_row(label, f"{loss:.1f}%", fmt(jitter, " ms"), f"{mos:.2f}")
        tables = Table.grid(padding=(0, 4))
        tables.add_row(causes, worst)
        events = Text("\n".join(self.recent) or "no events yet", style="dim")
        return Group(head, tables, events)
