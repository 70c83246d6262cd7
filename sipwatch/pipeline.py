"""From a capture file to an analysis: the reader, the frame decoder and the core, wired together.

This is the only place where a capture adapter meets the core; it holds no protocol logic.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from contextlib import contextmanager

from sipwatch.capture.decode import LINKTYPE_NAMES, FrameDecoder
from sipwatch.capture.reader import CaptureFile, open_capture
from sipwatch.core.analyzer import Analyzer, AnalyzerConfig
from sipwatch.core.calls import Call
from sipwatch.core.findings import capture_loss
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


@contextmanager
def _few_collections():
    """The frame loop allocates a tuple or two per frame and keeps every call: with the default thresholds
    the cyclic collector walks the growing heap over and over, a quarter of the run time on the benchmark
    capture. Collect 100x less often while analyzing (reference counting still frees all but cycles)."""
    old = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*old)


def analyze_capture(
    capture: CaptureFile, config: AnalyzerConfig | None = None, progress: Progress | None = None
) -> Analysis:
    with _few_collections():
        return _analyze(capture, config, progress)


def _analyze(capture: CaptureFile, config: AnalyzerConfig | None, progress: Progress | None) -> Analysis:
    problems = ProblemLog()
    analyzer = Analyzer(config, problems)
    decoder = FrameDecoder(problems, rtp_lane=analyzer.media.lane, rtp_block_lane=analyzer.media.lane_block)
    decode = decoder.decode
    feed = analyzer.feed
    calls: list[Call] = []
    total = capture.size or 0
    for block in capture.blocks():
        data, offsets, lengths, times, linktypes = block.data, block.offsets, block.lengths, block.times, block.linktypes
        first = block.first_frame
        try:
            rest = decoder.block_lane_rest(block)
        except Exception as exc:  # an analyzer bug must cost a block's fast lane, not the analysis
            problems.report("internal_error", f"sipwatch failed on a block of frames ({type(exc).__name__}: {exc}); "
                            "please report it", first, severity=Severity.ERROR)
            rest = range(len(block))
        for i in rest:
            start = offsets[i]
            try:
                datagram = decode(first + i, times[i], linktypes[i], data[start : start + lengths[i]])
                if datagram is not None:
                    events = feed(datagram)
                    if events:
                        calls.extend(event.call for event in events)
            except Exception as exc:  # an analyzer bug must cost one frame, not the analysis
                problems.report(
                    "internal_error",
                    f"sipwatch failed on this frame ({type(exc).__name__}: {exc}); please report it",
                    first + i, severity=Severity.ERROR,
                )
        if progress is not None:
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
    unattached = analyzer.unattached_streams()
    findings = capture_loss(calls, unattached, analyzer.config.media)
    return Analysis(info, analyzer.stats, calls, problems, analyzer.config, unattached, findings)
