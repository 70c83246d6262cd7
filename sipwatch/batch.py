"""`sipwatch batch`: independent captures analyzed in parallel, one report per capture.

Each capture (a file, or a directory read as one timeline) is analyzed in its own process, up to `jobs` at a
time; each process writes its reports and sends back one summary line, so nothing large crosses between
processes. A capture that cannot be read costs its own line, never the batch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from sipwatch.core.analyzer import AnalyzerConfig
from sipwatch.model import SipwatchError
from sipwatch.pipeline import analyze_files


@dataclass
class Line:
    capture: str
    text: str
    failed: bool = False
    damaged: bool = False


def run_batch(captures: list[str], output: Path, jobs: int, formats: list[str], rtp_heuristic: bool,
              redact: bool) -> Iterator[Line]:
    """Yield a line per capture as each finishes."""
    output.mkdir(parents=True, exist_ok=True)
    stems = _stems(captures)
    if jobs == 1 or len(captures) == 1:
        for capture in captures:
            yield _one(capture, str(output / stems[capture]), formats, rtp_heuristic, redact)
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        futures = [pool.submit(_one, c, str(output / stems[c]), formats, rtp_heuristic, redact) for c in captures]
        for future in as_completed(futures):
            yield future.result()


def _stems(captures: list[str]) -> dict[str, str]:
    """A distinct report name per capture (two `x.pcap` in different folders get `x` and `x-2`)."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for capture in captures:
        base = re.sub(r"(\.pcapng|\.pcap|\.cap)?(\.gz)?$", "", os.path.basename(os.path.normpath(capture))) or "capture"
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        stems[capture] = stem
    return stems


def _one(capture: str, stem: str, formats: list[str], rtp_heuristic: bool, redact: bool) -> Line:
    from sipwatch.report.data import analysis_to_dict, write_json

    try:
        analysis = analyze_files([capture], AnalyzerConfig(rtp_heuristic=rtp_heuristic))
    except SipwatchError as exc:
        return Line(capture, f"error: {exc}", failed=True)
    data = analysis_to_dict(analysis)
    if redact:
        from sipwatch.report.redact import redact as redact_data

        data = redact_data(data)
    written = []
    for fmt in formats:
        path = f"{stem}.{fmt}"
        written.append(path)
        if fmt == "json":  # streamed: a large capture's calls are read back from disk one at a time
            with open(path, "w", encoding="utf-8") as fh:
                write_json(data, fh)
                fh.write("\n")
            continue
        if fmt == "md":
            from sipwatch.report.markdown import render_markdown

            text = render_markdown(data)
        else:
            from sipwatch.report.html import render_html

            text = render_html(data)
        Path(path).write_text(text, encoding="utf-8")
    summ = data["summary"]
    causes = ", ".join(f"{k} {n}" for k, n in summ["causes"].items()) or "none"
    text = (f"{summ['calls']} calls, ASR {summ['kpi'].get('asr', '-')}%, causes: {causes}; "
            f"wrote {', '.join(written)}")
    return Line(capture, text, damaged=analysis.damaged)
