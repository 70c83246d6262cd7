"""From a capture file to an analysis: the reader, the frame decoder and the core, wired together.

This is the only place where a capture adapter meets the core; it holds no protocol logic.
"""

from __future__ import annotations

from collections.abc import Callable

from sipwatch.capture.decode import LINKTYPE_NAMES, FrameDecoder
from sipwatch.capture.reader import CaptureFile, open_capture
from sipwatch.core.analyzer import Analyzer, AnalyzerConfig
from sipwatch.core.calls import Call
from sipwatch.core.result import Analysis, CaptureInfo
from sipwatch.model import ProblemLog, Severity, UnsupportedLinkType

Progress = Callable[[int, int], None]  # (bytes read so far, total bytes or 0)


def analyze_file(path: str, config: AnalyzerConfig | None = None, progress: Progress | None = None) -> Analysis:
    """Analyze one capture file ('-' for standard input)."""
    capture = open_capture(path)
    try:
        return analyze_capture(capture, config, progress)
    finally:
        capture.close()


def analyze_capture(
    capture: CaptureFile, config: AnalyzerConfig | None = None, progress: Progress | None = None
) -> Analysis:
    problems = ProblemLog()
    decoder = FrameDecoder(problems)
    analyzer = Analyzer(config, problems)
    decode = decoder.decode
    feed = analyzer.feed
    calls: list[Call] = []
    total = capture.size or 0
    for frame, ts, linktype, data in capture.frames():
        try:
            datagram = decode(frame, ts, linktype, data)
            if datagram is not None:
                events = feed(datagram)
                if events:
                    calls.extend(event.call for event in events)
        except Exception as exc:  # an analyzer bug must cost one frame, not the analysis
            problems.report(
                "internal_error", f"sipwatch failed on this frame ({type(exc).__name__}: {exc}); please report it",
                frame, severity=Severity.ERROR,
            )
        if progress is not None and not frame & 0x3FFF:
            progress(capture.position, total)
    decoder.fragments.close()
    decoder.tcp.close()
    calls.extend(event.call for event in analyzer.close())
    problems.extend(capture.problems)
    calls.sort(key=lambda c: (c.start, c.call_id))
    if progress is not None:
        progress(capture.position, total)

    linktypes = sorted(capture.linktypes)
    if linktypes and all(not decoder.supports(lt) for lt in linktypes):
        names = ", ".join(f"{lt} ({LINKTYPE_NAMES.get(lt, 'unknown')})" for lt in linktypes)
        raise UnsupportedLinkType(f"{capture.name}: link type {names} is not supported")
    info = CaptureInfo(
        file=capture.name,
        format=capture.format,
        packets=capture.packets,
        first=capture.first_ts,
        last=capture.last_ts,
        linktypes=linktypes,
        bytes=capture.bytes_read,
        sctp_packets=decoder.sctp_packets,
        tcp_retransmissions=decoder.tcp.retransmissions,
        reassembled_fragments=decoder.fragments.reassembled,
    )
    if decoder.sctp_packets:
        problems.report("unsupported_transport", f"{decoder.sctp_packets} SCTP packets skipped: SIP over SCTP is not decoded yet")
    return Analysis(info, analyzer.stats, calls, problems, analyzer.config, analyzer.unattached_streams())
