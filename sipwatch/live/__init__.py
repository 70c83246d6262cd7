"""`sipwatch live`: analysis of calls as they happen, from interfaces or a pcap stream, for days (docs/live.md).

`start()` wires a frame source, the runner, the outputs and the dashboard together, and handles the signals.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from sipwatch.live.output import EventWriter, PcapRing, is_terminal, stamp
from sipwatch.live.runner import LiveOptions, LiveResult, LiveRunner
from sipwatch.model import UsageError


def start(
    interfaces: list[str], stdin: bool, capture_filter: str | None, out: Path | None, events: Path | None,
    write: Path | None, rotate_size: float, rotate_count: int, duration: float | None, rtp_heuristic: bool,
    buffer_mb: int, report_calls: int, dashboard: bool | None, hep_listen: str | None = None,
    hep_send: str | None = None, hep_id: int = 0, hep_password: str | None = None,
) -> LiveResult:
    if (stdin + bool(interfaces) + bool(hep_listen)) != 1:
        raise UsageError("give interfaces with -i (several allowed, or `any`), '-' for a pcap stream on stdin, or "
                         "--hep-listen udp:ADDR:PORT to collect HEP from capture agents")
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive")
    # from here on, Ctrl-C or SIGTERM ends the run cleanly, even while the sockets and files are being set up
    # (a second one gives up at once: the stdin stream may not even have sent its header)
    requested: list[tuple[int, str]] = []

    def during_setup(signum: int, _frame) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append((signum, signal.Signals(signum).name))

    previous = {sig: signal.signal(sig, during_setup) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(interfaces, stdin, capture_filter, out, events, write, rotate_size, rotate_count, duration,
                    rtp_heuristic, buffer_mb, report_calls, dashboard, requested,
                    (hep_listen, hep_send, hep_id, hep_password))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    interfaces: list[str], stdin: bool, capture_filter: str | None, out: Path | None, events: Path | None,
    write: Path | None, rotate_size: float, rotate_count: int, duration: float | None, rtp_heuristic: bool,
    buffer_mb: int, report_calls: int, dashboard: bool | None, requested: list[tuple[int, str]],
    hep: tuple = (None, None, 0, None),
) -> LiveResult:
    from sipwatch.capture.live import DEFAULT_FILTER, InterfaceSource, PcapStreamSource
    from sipwatch.core.analyzer import AnalyzerConfig

    hep_listen, hep_send, hep_id, hep_password = hep
    if (stdin or hep_listen) and capture_filter:
        raise UsageError("--filter applies to interfaces; filter the stream where it is captured")
    forwarder = None
    if hep_send:
        from sipwatch.live.hep import HepForwarder

        forwarder = HepForwarder(hep_send, hep_id, hep_password)
    if stdin:
        source = PcapStreamSource(sys.stdin.fileno())
    elif hep_listen:
        from sipwatch.capture.hep_net import HepSource

        source = HepSource(hep_listen, password=hep_password)
    else:
        source = InterfaceSource(interfaces, capture_filter or DEFAULT_FILTER, buffer_mb)
    try:
        out = out or Path(f"sipwatch-live-{stamp()}")
        out.mkdir(parents=True, exist_ok=True)
        if events is not None:
            events.parent.mkdir(parents=True, exist_ok=True)
            writer: EventWriter | None = EventWriter(events.open("a"), close=True)
        elif not is_terminal(sys.stdout):
            writer = EventWriter(sys.stdout)
        else:
            writer = None
        ring = PcapRing(write, rotate_size, rotate_count) if write is not None else None
        options = LiveOptions(out, writer, ring, duration, report_calls,
                              config=AnalyzerConfig(rtp_heuristic=rtp_heuristic, unattached_idle_timeout=60.0),
                              hep=forwarder)
        show = is_terminal(sys.stderr) if dashboard is None else dashboard
        board = None
        if show:
            from sipwatch.live.dashboard import Dashboard

            board = Dashboard()
        runner = LiveRunner(source, options, board)
        for _sig, why in requested:  # a signal that came while setting up still stops the run (at once)
            runner.stop(why)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: runner.stop(signal.Signals(signum).name))
        if board is not None:
            with board:
                result = runner.run()
                board.refresh(runner, force=True)
        else:
            result = runner.run()
    finally:
        source.close()
        if forwarder is not None:
            forwarder.close()
    if forwarder is not None:
        result.forwarded = forwarder.counters()
    return result


__all__ = ["LiveOptions", "LiveResult", "LiveRunner", "start"]
