"""From a capture file to an analysis: the reader, the frame decoder and the core, wired together.

This is the only place where a capture adapter meets the core; it holds no protocol logic.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sipwatch.capture.decode import LINKTYPE_NAMES, FrameDecoder
from sipwatch.capture.reader import CaptureFile, FrameBlock, open_capture
from sipwatch.core.analyzer import Analyzer, AnalyzerConfig
from sipwatch.core.findings import capture_loss_streams, requalify
from sipwatch.core.result import Analysis, CaptureInfo, FileInfo
from sipwatch.model import CaptureError, CaptureNotFound, Datagram, ProblemLog, Severity, UnsupportedLinkType
from sipwatch.spill import DecidedCalls

Progress = Callable[[int, int], None]  # (bytes read so far, total bytes or 0)


def analyze_file(path: str, config: AnalyzerConfig | None = None, progress: Progress | None = None) -> Analysis:
    """Analyze one capture file ('-' for standard input)."""
    capture = open_capture(path)
    try:
        return analyze_capture(capture, config, progress)
    finally:
        capture.close()


def analyze_files(paths: list[str], config: AnalyzerConfig | None = None, progress: Progress | None = None) -> Analysis:
    """Analyze captures as one timeline: files (and the capture files of directories, e.g. a rotated ring
    buffer) in order of their first packet, read one after the other into the same core, so a call that
    spans two files is one call. Frame numbers run on across files (`CaptureInfo.files` maps them back)."""
    files = capture_files(paths)
    if len(files) == 1:
        return analyze_file(files[0], config, progress)
    ordered = sorted(files, key=_first_timestamp)
    with _few_collections():
        return _analyze(_opened(ordered), config, progress, sum(_size(f) for f in ordered))


def capture_files(paths: list[str]) -> list[str]:
    """The files named, with a directory standing for the capture files in it (not recursively)."""
    files: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            inside = sorted(e.path for e in os.scandir(path) if e.is_file() and not e.name.startswith("."))
            inside = [f for f in inside if _looks_like_capture(f)]
            if not inside:
                raise CaptureError(f"{path}: a directory with no capture files (pcap, pcapng, gzip)")
            files += inside
        else:
            files.append(path)
    if "-" in files and len(files) > 1:
        raise CaptureError("standard input ('-') cannot be combined with other captures")
    return files


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError:
        return False
    return magic[:2] == b"\x1f\x8b" or magic in _MAGICS


_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a"}


def _first_timestamp(path: str) -> tuple[float, str]:
    """The time of a file's first packet (files with none sort first; the name breaks ties)."""
    try:
        capture = open_capture(path)
    except (CaptureNotFound, CaptureError):
        return (float("-inf"), path)  # analyzed first, so its error is reported at once
    try:
        for block in capture.blocks():
            if len(block):
                return (block.times[0], path)
        return (float("-inf"), path)
    finally:
        capture.close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _opened(paths: list[str]) -> Iterator[CaptureFile]:
    """Each capture opened in turn (one file open at a time), closed once read."""
    for path in paths:
        capture = open_capture(path)
        try:
            yield capture
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
        return _analyze([capture], config, progress, capture.size or 0)


def _analyze(captures, config: AnalyzerConfig | None, progress: Progress | None, total: int) -> Analysis:
    problems = ProblemLog()
    analyzer = Analyzer(config, problems)
    decoder = FrameDecoder(problems, rtp_lane=analyzer.media.lane, rtp_block_lane=analyzer.media.lane_block)
    calls = DecidedCalls()
    files: list[FileInfo] = []
    done = 0  # bytes of the files already read, for progress
    for capture in captures:
        base = files[-1].first_frame + files[-1].packets - 1 if files else 0
        _read(capture, base, analyzer, decoder, problems, calls, progress, done, total)
        done += capture.size or 0
        if files and files[-1].last is not None and capture.first_ts is not None and capture.first_ts < files[-1].last:
            problems.report("overlapping_captures", f"{capture.name} starts before {files[-1].file} ends: the "
                            "files overlap in time (two capture points?); merge them by time first (mergecap) "
                            "or analyze them separately", base + 1)
        files.append(FileInfo(capture.name, capture.format, base + 1, capture.packets, capture.first_ts,
                              capture.last_ts, sorted(capture.linktypes), capture.bytes_read))
        for problem in capture.problems:
            frame = None if problem.frame is None else problem.frame + base
            message = problem.message if len(files) == 1 else f"{capture.name}: {problem.message}"
            problems.add(dataclasses.replace(problem, frame=frame, message=message))
    decoder.close()
    calls.extend(event.call for event in analyzer.close())
    calls.finish(analyzer.config.media)
    if progress is not None:
        progress(done, total)
    return _result(files, analyzer, decoder, problems, calls)


def _read(capture: CaptureFile, base: int, analyzer: Analyzer, decoder: FrameDecoder, problems: ProblemLog,
          calls: DecidedCalls, progress: Progress | None, done: int, total: int) -> None:
    """Every frame of one capture into the core; frame numbers shifted by `base` (files read before)."""
    for block in capture.blocks():
        if base:
            block = dataclasses.replace(block, first_frame=block.first_frame + base)
        calls.extend(event.call for event in feed_block(block, decoder, analyzer, problems))
        if progress is not None:
            progress(done + capture.position, total)


def feed_block(block: FrameBlock, decoder: FrameDecoder, analyzer: Analyzer, problems: ProblemLog,
               tap: Callable[[Datagram], None] | None = None) -> list:
    """One block of frames through the decoder into the core (files and live capture alike); returns the
    CallFinished events. `tap` sees every datagram too (the live HEP forwarder). A sipwatch bug costs one
    frame (or a block's fast lane), never the analysis."""
    finished: list = []
    data, offsets, lengths, times, linktypes = block.data, block.offsets, block.lengths, block.times, block.linktypes
    first = block.first_frame
    try:
        rest = decoder.block_lane_rest(block)
    except Exception as exc:
        problems.report("internal_error", f"sipwatch failed on a block of frames ({type(exc).__name__}: {exc}); "
                        "please report it", first, severity=Severity.ERROR)
        rest = range(len(block))
    decode = decoder.decode
    extra = decoder.extra
    feed = analyzer.feed
    for i in rest:
        start = offsets[i]
        try:
            datagram = decode(first + i, times[i], linktypes[i], data[start : start + lengths[i]])
            if datagram is not None:
                if tap is not None:
                    tap(datagram)
                events = feed(datagram)
                if events:
                    finished.extend(events)
                if extra:  # more messages in the same frame (SCTP bundling, WebSocket)
                    more = extra.copy()
                    extra.clear()
                    for datagram in more:
                        if tap is not None:
                            tap(datagram)
                        finished.extend(feed(datagram))
        except Exception as exc:
            problems.report(
                "internal_error", f"sipwatch failed on this frame ({type(exc).__name__}: {exc}); please report it",
                first + i, severity=Severity.ERROR,
            )
    return finished


def _result(files: list[FileInfo], analyzer: Analyzer, decoder: FrameDecoder, problems: ProblemLog,
             calls: DecidedCalls) -> Analysis:
    linktypes = sorted({lt for f in files for lt in f.linktypes})
    if linktypes and all(not decoder.supports(lt) for lt in linktypes):
        names = ", ".join(f"{lt} ({LINKTYPE_NAMES.get(lt, 'unknown')})" for lt in linktypes)
        raise UnsupportedLinkType(f"{files[-1].file}: link type {names} is not supported")
    firsts = [f.first for f in files if f.first is not None]
    lasts = [f.last for f in files if f.last is not None]
    info = CaptureInfo(
        file=files[0].file if len(files) == 1 else f"{files[0].file} (+{len(files) - 1} more files)",
        format=files[0].format,
        packets=sum(f.packets for f in files),
        first=min(firsts) if firsts else None,
        last=max(lasts) if lasts else None,
        linktypes=linktypes,
        bytes=sum(f.bytes for f in files),
        files=files,
        sctp_packets=decoder.sctp_packets,
        tcp_retransmissions=decoder.tcp.retransmissions,
        reassembled_fragments=decoder.fragments.reassembled,
    )
    unattached = analyzer.unattached_streams()
    # capture loss over every stream (of calls on disk, their summaries: each learns its share when read back)
    limits = analyzer.config.media
    findings = capture_loss_streams([s for c in calls.summaries for s in c.streams] + unattached, limits)
    if findings:
        for call in calls.kept():
            requalify(call, limits)
    return Analysis(info, analyzer.stats, calls if calls.spilled else calls.kept(), problems, analyzer.config,
                    unattached, findings)
