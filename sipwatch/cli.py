"""The `sipwatch` command. Commands are thin: options here, the work in the pipeline and the reports.

Exit codes (docs/cli.md): 0 analyzed; 1 internal error; 2 usage error; 3 no such file;
4 not a capture (empty, text, damaged file header); 5 unsupported link type;
6 analyzed, but the capture is truncated or corrupt (the output covers what could be read).
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sipwatch.model import SipwatchError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_DAMAGED = 6

app = typer.Typer(
    name="sipwatch",
    help="SIP packet-capture analyzer: every call, its outcome, every failure and why it failed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


_SUFFIX_FORMATS = {".json": Format.json, ".csv": Format.csv, ".txt": Format.table}
_CAPTURES_HELP = ("Capture files (pcap, pcapng, gzip) or directories of them (a rotated ring buffer), read as one "
                  "timeline in order of their first packet; or '-' for a pcap stream on stdin.")
_REPORT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".html": "html", ".htm": "html"}

Redact = Annotated[
    bool,
    typer.Option("--redact", help="Replace phone numbers, user parts, names and IP addresses by consistent pseudonyms."),
]


def _data(analysis, redact: bool) -> dict:
    """The report data every output is rendered from (redacted when asked)."""
    import gc

    from sipwatch.report.data import analysis_to_dict

    # the analysis lives until the command exits: keep the collector from walking it again and again while
    # the report allocates (a fifth of the report's time on the benchmark capture)
    gc.freeze()
    data = analysis_to_dict(analysis)
    if redact:
        from sipwatch.report.redact import redact as redact_data

        data = redact_data(data)
    return data


class Engine(StrEnum):
    builtin = "builtin"
    tshark = "tshark"


_ENGINE_HELP = "builtin: sipwatch's own decoder (fast); tshark: tshark dissects (and decrypts TLS with --tls-keylog)."
_KEYLOG_HELP = "NSS key log (SSLKEYLOGFILE) for --engine tshark to decrypt SIP over TLS."


@app.callback()
def _root() -> None:
    """sipwatch analyzes SIP calls in packet captures."""


@app.command()
def analyze(
    captures: Annotated[list[str], typer.Argument(help=_CAPTURES_HELP, show_default=False)],
    output_format: Annotated[
        Format | None, typer.Option("--format", "-f", help="Output format (default: from -o's suffix, else table).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result to this file.")] = None,
    calls: Annotated[bool, typer.Option("--calls/--no-calls", help="List every call in the table output.")] = True,
    rtp_heuristic: Annotated[
        bool, typer.Option("--rtp-heuristic", help="Also follow RTP no SDP announced (listed as unattached streams).")
    ] = False,
    redact: Redact = False,
    engine: Annotated[Engine, typer.Option("--engine", help=_ENGINE_HELP)] = Engine.builtin,
    tls_keylog: Annotated[Path | None, typer.Option("--tls-keylog", help=_KEYLOG_HELP)] = None,
) -> None:
    """Analyze a capture: calls by outcome, status codes, KPIs, media, findings, problems, and a calls table."""
    from sipwatch.core.analyzer import AnalyzerConfig

    fmt = output_format or (_SUFFIX_FORMATS.get(output.suffix.lower()) if output else None) or Format.table
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        analysis = _analyze_with(engine, tls_keylog, captures, AnalyzerConfig(rtp_heuristic=rtp_heuristic), progress)
    _write(_data(analysis, redact), fmt, output, calls)
    _done(analysis, output)


def _analyze_with(engine: Engine, tls_keylog: Path | None, captures: list[str], config, progress):
    """The analysis by the chosen engine; with tshark, TLS it could not decrypt is said on stderr."""
    from sipwatch.model import UsageError

    if engine is Engine.tshark:
        from sipwatch.pipeline_tshark import analyze_file_tshark

        if len(captures) != 1:
            raise UsageError("--engine tshark reads one capture file")
        analysis = analyze_file_tshark(captures[0], config, str(tls_keylog) if tls_keylog is not None else None)
        for problem in analysis.problems.kept:
            if problem.kind == "tls_undecrypted":
                _say(f"sipwatch: warning: {analysis.capture.file}: {problem}")
        return analysis
    if tls_keylog is not None:
        raise UsageError("--tls-keylog needs --engine tshark (sipwatch's own decoder does not decrypt TLS)")
    from sipwatch.pipeline import analyze_files

    return analyze_files(captures, config, progress=progress)


def _done(analysis, output: Path | None = None) -> None:
    """What every command says at the end: the capture's damage (one line each), the file written, and exit
    code 6 when the capture was cut or corrupt."""
    for problem in analysis.problems.kept:
        if problem.kind in ("truncated_capture", "corrupt_record", "corrupt_block", "unsupported_linktype"):
            _say(f"sipwatch: warning: {analysis.capture.file}: {problem}")
    if output is not None:
        _say(f"sipwatch: wrote {output}")
    if analysis.damaged:
        raise typer.Exit(EXIT_DAMAGED)


@app.command()
def streams(
    captures: Annotated[list[str], typer.Argument(help=_CAPTURES_HELP, show_default=False)],
    rtp_heuristic: Annotated[
        bool, typer.Option("--rtp-heuristic", help="Also list RTP no SDP announced.")
    ] = False,
    output_format: Annotated[Format, typer.Option("--format", "-f", help="table, json or csv.")] = Format.table,
    redact: Redact = False,
) -> None:
    """List RTP streams like `tshark -z rtp,streams`, with the call each belongs to."""
    from sipwatch.core.analyzer import AnalyzerConfig
    from sipwatch.pipeline import analyze_files
    from sipwatch.report.data import stream_rows
    from sipwatch.report.terminal import render_streams

    analysis = analyze_files(captures, AnalyzerConfig(rtp_heuristic=rtp_heuristic))
    rows = stream_rows(_data(analysis, redact))
    if output_format is Format.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    elif output_format is Format.csv:
        import pandas as pd

        sys.stdout.write(pd.DataFrame(rows).to_csv(index=False))
    else:
        render_streams(rows, _console())
    _done(analysis)


@app.command()
def report(
    captures: Annotated[list[str], typer.Argument(help=_CAPTURES_HELP, show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="postmortem.html (for people), .md (for a ticket) or .json.")
    ],
    rtp_heuristic: Annotated[
        bool, typer.Option("--rtp-heuristic", help="Also follow RTP no SDP announced.")
    ] = False,
    redact: Redact = False,
    engine: Annotated[Engine, typer.Option("--engine", help=_ENGINE_HELP)] = Engine.builtin,
    tls_keylog: Annotated[Path | None, typer.Option("--tls-keylog", help=_KEYLOG_HELP)] = None,
) -> None:
    """Write a post-mortem: summary, KPIs, a card per failure with cause, evidence, advice and ladder."""
    from sipwatch.core.analyzer import AnalyzerConfig
    from sipwatch.model import UsageError

    kind = _REPORT_SUFFIXES.get(output.suffix.lower())
    if kind is None:
        raise UsageError(f"{output}: the post-mortem is written as HTML (.html), Markdown (.md) or JSON (.json)")
    with _progress() as progress:
        analysis = _analyze_with(engine, tls_keylog, captures, AnalyzerConfig(rtp_heuristic=rtp_heuristic), progress)
    output.parent.mkdir(parents=True, exist_ok=True)
    data = _data(analysis, redact)
    if kind == "json":
        _write(data, Format.json, output, True)
    elif kind == "html":
        from sipwatch.report.html import render_html

        output.write_text(render_html(data), encoding="utf-8")
    else:
        from sipwatch.report.markdown import render_markdown

        output.write_text(render_markdown(data), encoding="utf-8")
    _done(analysis, output)


class TableFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    json = "json"


@app.command()
def tables(
    captures: Annotated[list[str], typer.Argument(help=_CAPTURES_HELP, show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the tables into.")],
    table_format: Annotated[
        TableFormat, typer.Option("--format", "-f", help="parquet, csv or json (JSON lines).")
    ] = TableFormat.parquet,
    rtp_heuristic: Annotated[
        bool, typer.Option("--rtp-heuristic", help="Also follow RTP no SDP announced.")
    ] = False,
    redact: Redact = False,
) -> None:
    """Write the calls, messages, streams and findings tables (docs/tables.md) for pandas, Spark or a database."""
    from sipwatch.core.analyzer import AnalyzerConfig
    from sipwatch.pipeline import analyze_files
    from sipwatch.report.tables import write_tables

    with _progress() as progress:
        analysis = analyze_files(captures, AnalyzerConfig(rtp_heuristic=rtp_heuristic), progress=progress)
    for path in write_tables(_data(analysis, redact), output, str(table_format)):
        _say(f"sipwatch: wrote {path}")
    _done(analysis)


@app.command()
def batch(
    captures: Annotated[list[str], typer.Argument(help="Independent captures: files, or directories (each one timeline).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for one report per capture.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Captures analyzed in parallel.")] = os.cpu_count() or 1,
    formats: Annotated[
        str, typer.Option("--formats", help="Comma-separated report formats per capture: json, md, html.")
    ] = "json,md",
    rtp_heuristic: Annotated[
        bool, typer.Option("--rtp-heuristic", help="Also follow RTP no SDP announced.")
    ] = False,
    redact: Redact = False,
) -> None:
    """Analyze independent captures (tickets, SBCs, days) in parallel: one report per capture, one line each."""
    from sipwatch.batch import run_batch
    from sipwatch.model import UsageError

    wanted = [f.strip().lower() for f in formats.split(",") if f.strip()]
    if not wanted or set(wanted) - {"json", "md", "html"}:
        raise UsageError(f"--formats {formats!r}: choose among json, md, html")
    failed = damaged = 0
    for line in run_batch(captures, output, jobs, wanted, rtp_heuristic, redact):
        _say(f"sipwatch: {line.capture}: {line.text}")
        failed += line.failed
        damaged += line.damaged
    if failed:
        raise typer.Exit(4)
    if damaged:
        raise typer.Exit(EXIT_DAMAGED)


@app.command()
def extract(
    capture: Annotated[list[str], typer.Argument(help="Capture file, or consecutive files / a folder of them "
                       "(the ring buffer of `sipwatch live --write`), read as one capture.")],
    call: Annotated[str, typer.Option("--call", help="The call: its number in `sipwatch analyze` or its Call-ID.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The pcap file to write.")],
) -> None:
    """Write one call's SIP and RTP packets to a pcap file (for tshark, Wireshark or the ticket)."""
    from sipwatch.core.analyzer import AnalyzerConfig
    from sipwatch.pipeline import analyze_capture
    from sipwatch.report.extract import CaptureChain, call_frames, capture_paths
    from sipwatch.report.extract import extract as write_frames

    paths = capture_paths(capture)
    chain = CaptureChain(paths)
    try:
        analysis = analyze_capture(chain, AnalyzerConfig(keep_frames=True))
    finally:
        chain.close()
    found = _find_calls(analysis, call, chain.name)
    frames = set().union(*(call_frames(c) for c in found))
    output.parent.mkdir(parents=True, exist_ok=True)
    written = write_frames(paths, frames, output)
    _say(f"sipwatch: wrote {output} ({written} packets of call {', '.join(str(c.number) for c in found)})")


def _find_calls(analysis, call: str, capture: str) -> list:
    from sipwatch.model import UsageError

    found = [c for c in analysis.calls if str(c.number) == call or c.call_id == call]
    if not found:
        raise UsageError(f"no call {call!r} in {capture} ({len(analysis.calls)} calls: give a number or a Call-ID)")
    return found


@app.command()
def flow(
    capture: Annotated[str, typer.Argument(help="Capture file, or '-' for stdin.")],
    call: Annotated[str, typer.Argument(help="The call: its number in `sipwatch analyze` (1, 2, ...) or its Call-ID.")],
    redact: Redact = False,
) -> None:
    """Draw one call's SIP messages as a ladder diagram in the terminal."""
    from sipwatch.pipeline import analyze_file
    from sipwatch.report.ladder import ladder

    analysis = analyze_file(capture)
    numbers = {one.number for one in _find_calls(analysis, call, capture)}
    for one in _data(analysis, redact)["calls"]:
        if one["number"] in numbers:
            sys.stdout.write(f"call {one['number']}  {one['call_id']}  {one['outcome']}\n{ladder(one)}\n")


@app.command()
def explain(
    what: Annotated[str, typer.Argument(help="A SIP status (503), a Q.850 cause (q850:17) or a finding (one_way_audio).")],
) -> None:
    """What a status code, Q.850 cause or finding means, for an agent and for an admin."""
    from sipwatch.diagnosis.knowledge import knowledge, parse_key
    from sipwatch.model import UsageError

    try:
        entry = knowledge(parse_key(what))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    console = _console()
    console.print(f"[bold]{entry.key}  {entry.title}[/bold]   category: {entry.category}"
                  f"   retry can help: {'yes' if entry.retry_can_help else 'no'}", highlight=False)
    console.print(entry.meaning, highlight=False, markup=False)
    console.print("\n[bold]Agent:[/bold] ", entry.agent, highlight=False)
    console.print("[bold]Admin:[/bold] ", entry.admin, highlight=False)
    if entry.situations:
        console.print("\n[bold]Typical situations[/bold]", highlight=False)
        for situation in entry.situations:
            console.print(f"  - {situation}", highlight=False, markup=False)
    if entry.related:
        console.print(f"\nSee also: {', '.join(entry.related)}", highlight=False, markup=False)


def _write(data: dict, fmt: Format, output: Path | None, show_calls: bool) -> None:
    if fmt is Format.json:
        from sipwatch.report.data import write_json

        # indented for a person at a terminal; compact (and five times faster to write) for files and pipes
        indent = 2 if output is None and sys.stdout.isatty() else None
        if output is None:
            write_json(data, sys.stdout, indent)
            sys.stdout.write("\n")
        else:
            with output.open("w") as fh:
                write_json(data, fh, indent)
                fh.write("\n")
        return
    if fmt is Format.csv:
        from sipwatch.report.tables import tables

        text = tables(data)["calls"].to_csv(index=False)
    else:
        from sipwatch.report.terminal import render

        if output is None:
            render(data, _console(), show_calls)
            return
        with output.open("w") as fh:
            render(data, _console(file=fh, width=160, force_terminal=False), show_calls)
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


def _say(line: str) -> None:
    """One line on stderr (plain: rich is imported only for what a terminal shows)."""
    sys.stderr.write(line + "\n")


def _console(**kwargs) -> Console:
    from rich.console import Console

    return Console(**kwargs)


class _progress:
    """A progress bar on stderr for large files, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None

    def __enter__(self):
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self.console = _console(stderr=True)

        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=self.console, transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("reading", total=None)
        return self._update

    def _update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total or None)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- live capture (docs/live.md) ---------------------------------------------------------------------------


@app.command()
def live(
    source: Annotated[str | None, typer.Argument(help="'-' for a live pcap stream on stdin (tcpdump -U -w -).")] = None,
    interface: Annotated[list[str] | None, typer.Option("--interface", "-i", help="Interface to capture on "
                         "(several -i allowed; `any` for all).")] = None,
    capture_filter: Annotated[str | None, typer.Option("--filter", help="Kernel BPF filter, tcpdump syntax (default: "
                              "SIP on 5060/5061, UDP media, IP fragments).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder for calls.jsonl, Parquet and the final report "
                   "(default: ./sipwatch-live-<time>).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="Write one JSON line per event here (default: "
                      "stdout when it is not a terminal).")] = None,
    write: Annotated[Path | None, typer.Option("--write", help="Keep a ring buffer of pcap files here.")] = None,
    rotate_size: Annotated[float, typer.Option("--rotate-size", help="MB per ring buffer file.")] = 100.0,
    rotate_count: Annotated[int, typer.Option("--rotate-count", help="Ring buffer files kept.")] = 10,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds.")] = None,
    rtp_heuristic: Annotated[bool, typer.Option("--rtp-heuristic", help="Also follow RTP no SDP announced.")] = False,
    buffer_mb: Annotated[int, typer.Option("--buffer", help="Kernel ring size in MB (split between interfaces).")] = 64,
    report_calls: Annotated[int, typer.Option("--report-calls", help="Latest decided calls kept for the final "
                            "report (all are in calls.jsonl).")] = 200,
    dashboard: Annotated[bool | None, typer.Option("--dashboard/--no-dashboard", help="The live dashboard "
                         "(default: when stderr is a terminal).")] = None,
    hep_listen: Annotated[str | None, typer.Option("--hep-listen", help="Collect HEP (HOMER) from capture agents "
                          "on udp:ADDR:PORT or tcp:ADDR:PORT instead of capturing.")] = None,
    hep_send: Annotated[str | None, typer.Option("--hep-send", help="Forward the SIP and RTCP seen as HEPv3 to "
                        "udp:HOST:PORT (a HOMER / heplify-server).")] = None,
    hep_id: Annotated[int, typer.Option("--hep-id", help="HEP capture agent id sent with --hep-send.")] = 0,
    hep_password: Annotated[str | None, typer.Option("--hep-password", help="HEP authentication key (sent, "
                            "and required of agents with --hep-listen).")] = None,
) -> None:
    """Watch calls as they happen: events, a dashboard, calls flushed to --out; a final report at Ctrl-C."""
    from sipwatch.live import start
    from sipwatch.model import UsageError

    if source not in (None, "-"):
        raise UsageError(f"{source!r}: live reads interfaces (-i) or '-' (stdin); for a file use sipwatch analyze")
    result = start(interface or [], source == "-", capture_filter, out, events, write, rotate_size, rotate_count,
                   duration, rtp_heuristic, buffer_mb, report_calls, dashboard, hep_listen, hep_send, hep_id,
                   hep_password)
    for warning in result.warnings:
        _say(f"sipwatch: warning: {warning}")
    _say(f"sipwatch: {result.calls} calls; {result.received} frames, {result.dropped} dropped by the kernel")
    if result.forwarded is not None:
        sent = result.forwarded
        _say(f"sipwatch: HEP: {sent.get('sent', 0)} packets forwarded, {sent.get('dropped', 0)} dropped")
    report_html = result.report_json.with_suffix(".html")
    _say(f"sipwatch: wrote {result.report_json}, {result.report_md}, {report_html} and {result.calls_file}")
    if result.warnings:  # the stream was cut or corrupt: reported as every command reports capture damage
        raise typer.Exit(EXIT_DAMAGED)


def main() -> None:
    """Console entry point: a user sees one line per error, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except SipwatchError as exc:
        _say(f"sipwatch: error: {exc}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        _exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        _say(f"sipwatch: error: {exc.format_message()} (see sipwatch --help)")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("SIPWATCH_DEBUG"):
            raise
        _say(f"sipwatch: internal error: {type(exc).__name__}: {exc} (set SIPWATCH_DEBUG=1 for details; please report)")
        sys.exit(1)
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """Leave without tearing down the heap: every output is written and closed by now, and freeing a big
    analysis object by object takes a tenth of the run on large captures."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
