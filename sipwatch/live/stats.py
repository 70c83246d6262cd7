"""Running figures for the dashboard, in bounded memory: per-second buckets over the last 15 minutes of capture
time, counters by outcome and cause, and the worst streams of the last 15 minutes."""

from __future__ import annotations

import math
from collections import Counter, deque

from sipwatch.core.calls import Call
from sipwatch.model import Outcome

WINDOW_S = 900
WORST = 10


class LiveStats:
    def __init__(self) -> None:
        self.outcomes: Counter = Counter()
        self.causes: Counter = Counter()
        self.alerts: Counter = Counter()
        self.decided = 0
        # per capture second: [second, attempts decided, answered, calls started]
        self._buckets: deque[list] = deque()
        self._worst: list[tuple] = []  # (mos, -loss, ts, label)
        self.active = 0
        self.started = 0
        self.now: float | None = None

    def _bucket(self, second: int) -> list:
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            return buckets[-1]
        if buckets and second < buckets[-1][0]:  # a late call: count it in the newest second
            return buckets[-1]
        bucket = [second, 0, 0, 0]
        buckets.append(bucket)
        while buckets and buckets[0][0] <= second - WINDOW_S:
            buckets.popleft()
        return bucket

    def call_decided(self, call: Call, record: dict) -> None:
        self.decided += 1
        self.outcomes[record["outcome"]] += 1
        if record["cause"]:
            self.causes[record["cause"]] += 1
        if call.started_before_capture or call.outcome in (None, Outcome.IN_PROGRESS):
            return
        bucket = self._bucket(int(call.end))
        bucket[1] += 1
        if call.outcome == Outcome.ANSWERED:
            bucket[2] += 1
        for stream in record["streams"]:
            if stream["packets"] < 50:
                continue
            mos = stream["mos"] if stream["mos"] is not None else 5.0
            label = f"{stream['src']} -> {stream['dst']} ({stream['codec'] or '?'}, call {call.number})"
            self._worst.append((mos, -stream["loss_pct"], call.end, label, stream["loss_pct"], stream["jitter_max_ms"]))
        if len(self._worst) > 4 * WORST:
            self._prune(call.end)

    def _prune(self, now: float) -> None:
        self._worst = sorted(w for w in self._worst if w[2] > now - WINDOW_S)[:WORST]

    def tick(self, now: float, analyzer) -> None:
        """Once a capture second: calls in progress and calls started."""
        self.now = now
        self.active = len(analyzer.calls)
        bucket = self._bucket(int(now))
        bucket[3] += analyzer.started - self.started
        self.started = analyzer.started
        self._prune(now)

    def asr(self, minutes: int) -> float | None:
        """Answered / decided attempts over the last `minutes` of capture time (%)."""
        if self.now is None:
            return None
        since = self.now - 60 * minutes
        attempts = answered = 0
        for second, n, a, _ in self._buckets:
            if second > since:
                attempts += n
                answered += a
        return round(100.0 * answered / attempts, 1) if attempts else None

    def cps(self, seconds: int = 10) -> float:
        if self.now is None:
            return 0.0
        since = self.now - seconds
        return sum(b[3] for b in self._buckets if b[0] > since) / seconds

    def worst(self) -> list[tuple]:
        return sorted(self._worst)[:WORST]


def fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value}{unit}"
