"""From a capture file to an analysis through tshark (`--engine tshark`): the same core, the same Analysis.

tshark dissects and, given a key log, decrypts SIP over TLS (sipwatch.capture.tshark_engine); sipwatch's
reader still reads the file once for what the capture itself is (format, packets, times, damage). TLS
connections the key log does not open are reported as `tls_undecrypted` problems: their calls are not
invented, they are missing, and the analysis says so.
"""

from __future__ import annotations

from pathlib import Path

from sipwatch.capture.reader import open_capture
from sipwatch.core.analyzer import Analyzer, AnalyzerConfig
from sipwatch.core.calls import Call
from sipwatch.core.findings import capture_loss
from sipwatch.core.result import Analysis, CaptureInfo, FileInfo
from sipwatch.model import CaptureNotFound, ProblemLog, Severity, UsageError, hostport
from sipwatch.pipeline import _few_collections


def analyze_file_tshark(path: str, config: AnalyzerConfig | None = None, keylog: str | None = None) -> Analysis:
    """Analyze one capture file with tshark as the dissector (and TLS decryption with `keylog`)."""
    try:
        from sipwatch.capture import tshark_engine
    except ImportError as exc:  # pyshark is an optional dependency
        raise UsageError("--engine tshark needs pyshark: pip install 'sipwatch[tshark]'") from exc
    if path == "-":
        raise UsageError("--engine tshark reads a capture file, not standard input")
    if not Path(path).is_file():
        raise CaptureNotFound(f"{path}: no such capture file")
    keylog_path = None
    if keylog is not None:
        keylog_path = Path(keylog)
        if not keylog_path.is_file():
            raise UsageError(f"--tls-keylog {keylog}: no such file")

    capture = open_capture(path)  # the capture's own facts and damage, and a clear error if it is no capture
    try:
        for _ in capture.blocks():
            pass
    finally:
        capture.close()

    problems = ProblemLog()
    survey = tshark_engine.survey_tls(Path(path), keylog_path)
    for conn in survey.undecrypted:
        why = "no key for it in the key log" if keylog_path is not None else "no key log given (--tls-keylog FILE)"
        problems.report(
            "tls_undecrypted",
            f"TLS connection {hostport(*conn.client)} -> {hostport(*conn.server)} cannot be decrypted: {why}; "
            "any SIP inside is not analyzed",
            severity=Severity.ERROR,
        )
    with _few_collections():
        analyzer = Analyzer(config, problems)
        calls: list[Call] = []
        for datagram in tshark_engine.datagrams(Path(path), keylog_path, survey.sip_ports, problems):
            try:
                calls.extend(event.call for event in analyzer.feed(datagram))
            except Exception as exc:  # an analyzer bug must cost one message, not the analysis
                problems.report("internal_error", f"sipwatch failed on this frame ({type(exc).__name__}: {exc}); "
                                "please report it", datagram.frame, severity=Severity.ERROR)
        calls.extend(event.call for event in analyzer.close())
    problems.extend(capture.problems)
    calls.sort(key=lambda c: (c.start, c.call_id))
    linktypes = sorted(capture.linktypes)
    info = CaptureInfo(
        file=capture.name,
        format=capture.format,
        packets=capture.packets,
        first=capture.first_ts,
        last=capture.last_ts,
        linktypes=linktypes,
        bytes=capture.bytes_read,
        files=[FileInfo(capture.name, capture.format, 1, capture.packets, capture.first_ts, capture.last_ts,
                        linktypes, capture.bytes_read)],
    )
    unattached = analyzer.unattached_streams()
    findings = capture_loss(calls, unattached, analyzer.config.media)
    return Analysis(info, analyzer.stats, calls, problems, analyzer.config, unattached, findings)
