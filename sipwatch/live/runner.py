"""The live runner: frames from a `FrameSource` through the frame decoder into the same sans-IO `Analyzer` as the
file path, with capture time and periodic ticks, until stopped.

Memory stays bounded on a run of days: a decided call is diagnosed, written out (events, calls.jsonl,
Parquet) and dropped; only the last `report_calls` decided calls are kept for the final report (all of them are
in calls.jsonl), the core expires idle state by capture time, and the dashboard's windows are per-second buckets.
At stop (SIGINT, SIGTERM, --duration, end of a stdin stream) the frames already captured are read, the calls
still open are decided, and the final report is written in the formats of `sipwatch report`.
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.live import FrameSource
from sipwatch.core.analyzer import Analyzer, AnalyzerConfig, CallFinished
from sipwatch.core.calls import Call
from sipwatch.core.findings import DIRECTIONS, capture_loss
from sipwatch.core.media import RtpStream
from sipwatch.core.result import Analysis, CaptureInfo
from sipwatch.diagnosis.attribution import diagnose
from sipwatch.live.output import CallStore, EventWriter, PcapRing
from sipwatch.live.stats import LiveStats
from sipwatch.model import ProblemLog, Severity
from sipwatch.pipeline import feed_block
from sipwatch.report.data import call_to_dict, iso, stream_to_dict
from sipwatch.report.tables import SCHEMA

TRIM_INTERVAL = 30.0  # wall seconds between handing freed heap pages back to the system (glibc malloc_trim)
TICK_LAG = 1.0  # ticks on a quiet line trail the source's clock: frames still in the ring are older than now
CHECK_INTERVAL = 1.0  # capture seconds between in-call checks (one-way audio, RTP timeout, drops)


@dataclass
class LiveOptions:
    out: Path
    events: EventWriter | None = None
    ring: PcapRing | None = None
    duration: float | None = None  # seconds of wall time
    report_calls: int = 200
    poll_timeout: float = 0.2
    config: AnalyzerConfig = field(default_factory=lambda: AnalyzerConfig(unattached_idle_timeout=60.0))
    hep: object = None  # a HepForwarder (sipwatch.live.hep): every datagram is offered to it


@dataclass
class LiveResult:
    report_json: Path
    report_md: Path
    calls_file: Path
    calls: int
    received: int
    dropped: int
    warnings: list[str] = field(default_factory=list)  # damage of the input (a stream cut or corrupt)
    forwarded: dict[str, int] | None = None  # HEP sender counters, with --hep-send


class LiveRunner:
    def __init__(self, source: FrameSource, options: LiveOptions, dashboard=None) -> None:
        self.source = source
        self.options = options
        self.dashboard = dashboard
        self.problems = ProblemLog()
        self.analyzer = Analyzer(options.config, self.problems)
        media = self.analyzer.media
        self.decoder = FrameDecoder(self.problems, rtp_lane=media.lane, rtp_block_lane=media.lane_block)
        self.store = CallStore(options.out, [name for name, _, _ in SCHEMA["calls"]])
        self.stats = LiveStats()
        self.kept: deque[Call] = deque(maxlen=options.report_calls)
        self.expired_streams: deque[RtpStream] = deque(maxlen=options.report_calls)
        self.frames = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.linktypes: set[int] = set()
        self._alerted: set[tuple] = set()  # (call number, alert) already emitted for calls in progress
        self._next_check = float("-inf")
        self._dropped = 0
        self._stop_reason: str | None = None
        self._next_trim = time.monotonic() + TRIM_INTERVAL
        self._trim = _malloc_trim()

    # --- running --------------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (safe in a signal handler): the source stops, what it holds is still read."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.source.stop()

    def run(self) -> LiveResult:
        self._emit({"event": "started", "source": self.source.name, "wall": iso(time.time())})
        deadline = time.monotonic() + self.options.duration if self.options.duration else None
        old = gc.get_threshold()
        gc.set_threshold(100_000, 50, 1000)  # as the file path: the frame loop allocates, cycles are rare
        try:
            for block in self.source.batches(self.options.poll_timeout):
                if block is not None:
                    self._block(block)
                else:
                    now = self.source.now() - TICK_LAG
                    self._finished(self.analyzer.tick(now))
                    self._check(now)
                if deadline is not None and time.monotonic() >= deadline:
                    self.stop("duration")
                if self.dashboard is not None:
                    self.dashboard.refresh(self)
                if self._trim is not None and time.monotonic() >= self._next_trim:
                    # calls come and go by the thousand: without this, glibc keeps the pages they freed (RSS
                    # creeps up on a run of days although nothing is kept)
                    self._next_trim = time.monotonic() + TRIM_INTERVAL
                    self._trim(0)
        finally:
            gc.set_threshold(*old)
        return self._finish()

    def _block(self, block) -> None:
        block.first_frame = self.frames + 1
        n = len(block)
        self.frames += n
        if not n:
            return
        if self.first_ts is None:
            self.first_ts = block.times[0]
        self.last_ts = block.times[n - 1]
        single = block.single_linktype
        if single is not None:
            self.linktypes.add(single)
        else:
            self.linktypes.update(set(block.linktypes))
        if self.options.ring is not None:
            self.options.ring.write(block)
        finished = feed_block(block, self.decoder, self.analyzer, self.problems, self.options.hep)
        self._finished(finished)
        self._check(self.last_ts)

    # --- decided calls ----------------------------------------------------------------------------

    def _finished(self, events: list[CallFinished]) -> None:
        for event in events:
            call = event.call
            diagnosis = diagnose([call])[call.number]
            record = call_to_dict(call, diagnosis)
            self.store.add(record)
            self.stats.call_decided(call, record)
            self._alerted.discard((call.number, "one_way_audio"))
            for direction in DIRECTIONS:
                self._alerted.discard((call.number, "rtp_timeout", direction))
            self._emit({
                "event": "call_ended", "ts": record["end"], "call": call.number, "call_id": call.call_id,
                "from": call.from_uri, "to": call.to_uri, "outcome": record["outcome"],
                "final_status": call.final_status, "cause": record["cause"], "cause_detail": record["cause_detail"],
                "duration_s": record["duration_s"], "streams": len(call.streams),
            })
            if diagnosis.cause is not None and diagnosis.principal is not None:
                principal = diagnosis.principal
                self._emit({
                    "event": "failure", "ts": iso(principal.ts if principal.ts is not None else call.end),
                    "call": call.number, "call_id": call.call_id, "outcome": record["outcome"],
                    "cause": str(diagnosis.cause), "kind": principal.kind, "detail": principal.detail,
                    "evidence": [e.to_dict() for e in principal.evidence],
                })
            self.kept.append(call)
        if events:
            self.store.flush()

    # --- in-call checks -----------------------------------------------------------------------------

    def _check(self, now: float | None) -> None:
        if now is None or now < self._next_check or not math.isfinite(now):  # no clock before the first frame
            return
        self._next_check = now + CHECK_INTERVAL
        self.stats.tick(now, self.analyzer)
        self.store.tick(now)
        for stream in self.analyzer.take_expired_streams():  # RTP nobody signalled, gone quiet: written, kept a while
            self.store.add_stream(stream_to_dict(stream))
            self.expired_streams.append(stream)
        limits = self.analyzer.config.media
        media = self.analyzer.media
        for call in list(self.analyzer.calls.values()):
            if call.answer_ts is None or call.outcome is not None:
                continue
            streams = media.streams_of(call.call_id)
            talk = now - call.answer_ts
            counts = dict.fromkeys(DIRECTIONS, 0)
            last: dict[str, float] = {}
            for stream in streams:
                recorder = stream.recorder
                if stream.direction in counts and len(recorder):
                    counts[stream.direction] += len(recorder)
                    last[stream.direction] = max(last.get(stream.direction, 0.0), max(recorder.arrivals[-8:]))
            self._one_way(call, counts, talk, limits, now)
            if call.bye_ts is None:
                for direction, ts in last.items():
                    silence = now - ts
                    key = (call.number, "rtp_timeout", direction)
                    if silence > limits.rtp_timeout_s and key not in self._alerted:
                        self._alerted.add(key)
                        self._emit({"event": "rtp_timeout", "ts": iso(now), "call": call.number,
                                    "call_id": call.call_id, "direction": direction,
                                    "silence_s": round(silence, 3), "last_packet": iso(ts),
                                    "after_s": round(ts - call.answer_ts, 3)})
                        self.stats.alerts["rtp_timeout"] += 1
        stats = self.source.stats()
        if stats.dropped > self._dropped:
            self._emit({"event": "capture_drops", "ts": iso(now), "source": self.source.name,
                        "dropped": stats.dropped - self._dropped, "total_dropped": stats.dropped,
                        "received": stats.received})
            self._dropped = stats.dropped

    def _one_way(self, call: Call, counts: dict[str, int], talk: float, limits, now: float) -> None:
        key = (call.number, "one_way_audio")
        if key in self._alerted or talk < limits.min_answered_s:
            return
        senders = {r.sender for r in call.sdp if any(r.ports)}
        if len(senders) < 2 or any(r.on_hold for r in call.sdp):
            return
        busy, quiet = sorted(DIRECTIONS, key=counts.get, reverse=True)
        if counts[busy] < limits.one_way_min_packets or counts[quiet] > limits.one_way_share * counts[busy]:
            return
        self._alerted.add(key)
        silent = quiet.split("->")[0]
        self.stats.alerts["one_way_audio"] += 1
        self._emit({"event": "one_way_audio", "ts": iso(now), "call": call.number, "call_id": call.call_id,
                    "after_s": round(talk, 3), "silent_side": silent, "packets": counts,
                    "from": call.from_uri, "to": call.to_uri})

    def _emit(self, event: dict) -> None:
        if self.options.events is not None:
            self.options.events.emit(event)
        if self.dashboard is not None:
            self.dashboard.event(event)

    # --- the end ---------------------------------------------------------------------------------

    def _finish(self) -> LiveResult:
        decoder, analyzer = self.decoder, self.analyzer
        decoder.fragments.close()
        decoder.tcp.close()
        end = self.source.now() if self.last_ts is None else max(self.last_ts, analyzer._now)
        if not math.isfinite(end):
            end = time.time()
        self._check(end)
        self._finished(analyzer.close())
        stats = self.source.stats()
        if stats.dropped > self._dropped:
            self._emit({"event": "capture_drops", "ts": iso(end), "source": self.source.name,
                        "dropped": stats.dropped - self._dropped, "total_dropped": stats.dropped,
                        "received": stats.received})
        damage = list(getattr(self.source, "problems", []))  # a stream cut or corrupt: what came before is analyzed
        self.problems.extend(damage)
        for stream in analyzer.unattached_streams():
            self.store.add_stream(stream_to_dict(stream))
        self.store.close()
        if self.options.ring is not None:
            self.options.ring.close()
        calls = sorted(self.kept, key=lambda c: (c.start, c.call_id))
        unattached = list(self.expired_streams) + analyzer.unattached_streams()
        info = CaptureInfo(
            file=f"live {self.source.name}", format="live", packets=self.frames, first=self.first_ts,
            last=self.last_ts, linktypes=sorted(self.linktypes), bytes=stats.bytes,
            tcp_retransmissions=decoder.tcp.retransmissions, reassembled_fragments=decoder.fragments.reassembled,
        )
        if stats.dropped:
            self.problems.report("capture_drops", f"the kernel dropped {stats.dropped} of "
                                 f"{stats.received + stats.dropped} frames (the capture could not keep up)",
                                 severity=Severity.ERROR)
        findings = capture_loss(calls, unattached, analyzer.config.media)
        analysis = Analysis(info, analyzer.stats, calls, self.problems, analyzer.config, unattached, findings)
        result = self._write_report(analysis, stats)
        result.warnings = [f"{self.source.name}: {problem}" for problem in damage]
        self._emit({"event": "stopped", "reason": self._stop_reason or "end of input", "wall": iso(time.time()),
                    "calls": self.store.count, "received": stats.received, "dropped": stats.dropped,
                    "report": str(result.report_json)})
        if self.options.events is not None:
            self.options.events.close()
        return result

    def _write_report(self, analysis: Analysis, stats) -> LiveResult:
        from sipwatch.report.data import analysis_to_dict
        from sipwatch.report.markdown import render_markdown, text

        out = self.options.out
        data = analysis_to_dict(analysis)
        data["live"] = {
            "source": self.source.name,
            "stopped_by": self._stop_reason or "end of input",
            "calls_decided": self.store.count,
            "calls_in_report": len(analysis.calls),
            "calls_file": str(self.store.jsonl),
            "parquet_files": [str(p) for p in self.store.parquet_files],
            "frames_received": stats.received,
            "frames_dropped_by_kernel": stats.dropped,
            "outcomes": dict(self.stats.outcomes.most_common()),
            "causes": dict(self.stats.causes.most_common()),
            "alerts": dict(self.stats.alerts),
            "pcap_ring": [str(p) for p in self.options.ring.files] if self.options.ring is not None else [],
        }
        report_json = out / "report.json"
        report_json.write_text(json.dumps(data) + "\n")
        report_md = out / "report.md"
        head = (f"Live capture on {text(self.source.name)}: {self.store.count} calls decided "
                f"({len(analysis.calls)} in this report; every call is in {self.store.jsonl.name}), "
                f"{stats.received} frames received, {stats.dropped} dropped by the kernel.\n\n")
        markdown = render_markdown(data)
        title, _, rest = markdown.partition("\n\n")
        report_md.write_text(f"{title}\n\n{head}{rest}")
        from sipwatch.report.html import render_html

        (out / "report.html").write_text(render_html(data), encoding="utf-8")
        return LiveResult(report_json, report_md, self.store.jsonl, self.store.count, stats.received, stats.dropped)


def _malloc_trim():
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
