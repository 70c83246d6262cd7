"""Calls kept on disk (sipwatch.spill) make the same report as calls kept in memory, byte for byte.

A large capture keeps only its first KEEP decided calls whole in memory; later ones are pickled to a
temporary file and read back by the report. Here KEEP is set to 2 so that SIPp captures spill, and every
output is compared with the all-in-memory analysis of the same captures.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from conftest import CAPTURES

import sipwatch.spill as spill
from sipwatch.pipeline import analyze_files
from sipwatch.report.data import CallRows, analysis_to_dict, write_json
from sipwatch.report.html import render_html
from sipwatch.report.markdown import render_markdown
from sipwatch.report.redact import redact
from sipwatch.report.tables import tables

# answered calls with media, NAT, a missing ACK, capacity burst, route advance, short calls, STIR/SHAKEN
MIX = ["capacity_burst", "missing_ack", "one_way_audio", "identity_c_608", "answered_rtp", "short_call",
       "route_advance_503", "nat_private_sdp", "shared_media_port", "rtp_timeout", "busy_486"]


def analyzed(paths: list[Path], keep: int, monkeypatch):
    monkeypatch.setattr(spill, "KEEP", keep)
    return analyze_files([str(p) for p in paths])


def terminal_text(data: dict) -> str:
    """What `sipwatch analyze` prints, with the calls table cut at 3 rows (as a long capture's is)."""
    from rich.console import Console

    from sipwatch.report.terminal import render

    out = io.StringIO()
    render(data, Console(file=out, width=160, force_terminal=False), True, max_calls=3)
    return out.getvalue()


def as_json(data: dict) -> str:
    out = io.StringIO()
    write_json(data, out)
    return out.getvalue()


@pytest.fixture(scope="module")
def cut_capture(tmp_path_factory) -> Path:
    """shared_media_port.pcap (6 concurrent SIPp calls, 12 streams) with 41 frames cut out in the middle:
    every stream loses packets at the same instant, which is capture loss, not network loss."""
    path = tmp_path_factory.mktemp("spill") / "cut.pcap"
    subprocess.run(["editcap", str(CAPTURES / "shared_media_port.pcap"), str(path), "600-640"], check=True)
    return path


def test_spilled_calls_give_the_same_report(monkeypatch) -> None:
    paths = [CAPTURES / f"{name}.pcap" for name in MIX]
    whole = analyzed(paths, 10**9, monkeypatch)
    spilled = analyzed(paths, 2, monkeypatch)
    assert isinstance(whole.calls, list) and not isinstance(spilled.calls, list)
    assert len(spilled.calls.kept()) == 2 and len(spilled.calls) == len(whole.calls) > 20
    # summaries are columns, read through views that carry no messages, SDP or findings: that is where the
    # memory goes
    light = [c for c in spilled.summaries if c not in spilled.calls.kept()]
    assert len(light) == len(whole.calls) - 2 and all(isinstance(c, spill.CallSummary) for c in light)
    for name in ("records", "sdp", "findings"):
        with pytest.raises(AttributeError, match=name):
            getattr(light[0], name)
    a, b = analysis_to_dict(whole), analysis_to_dict(spilled)
    assert isinstance(b["calls"], CallRows)
    assert as_json(b) == as_json(a) == json.dumps(a)
    assert render_markdown(b) == render_markdown(a)
    assert render_html(b) == render_html(a)
    assert terminal_text(b) == terminal_text(a)
    assert b["calls"][-1] == a["calls"][-1] and b["calls"][3:5] == a["calls"][3:5]
    for name, table in tables(b).items():
        assert table.equals(tables(a)[name]), name
    causes = a["summary"]["causes"]
    assert causes.get("capacity") and causes.get("nat_alg") and causes.get("user")  # the mix is diagnosed


def test_capture_loss_reaches_spilled_calls(cut_capture: Path, monkeypatch) -> None:
    whole = analysis_to_dict(analyzed([cut_capture], 10**9, monkeypatch))
    spilled = analysis_to_dict(analyzed([cut_capture], 1, monkeypatch))
    (finding,) = [f for f in whole["findings"] if f["kind"] == "capture_loss"]
    assert finding["data"]["streams"] == 12
    lost = [s["capture_lost"] for c in spilled["calls"] for s in c["streams"]]
    assert sum(lost) == finding["data"]["missing_packets"] and sum(1 for n in lost if n) == 12
    assert as_json(spilled) == as_json(whole)


def test_redaction_covers_rows_read_back(monkeypatch) -> None:
    paths = [CAPTURES / f"{name}.pcap" for name in MIX]
    data = analysis_to_dict(analyzed(paths, 2, monkeypatch))
    users = {c[k] for c in data["calls"] for k in ("from_user", "to_user") if c[k]}
    assert users
    text = as_json(redact(data))
    rows = json.loads(text)["calls"]
    assert len(rows) == len(data["calls"])
    assert not [u for u in users if f'"{u}"' in text or f"sip:{u}@" in text]
    assert {r["from_user"] for r in rows} <= {f"user-{n}" for n in range(1, 1000)}


def test_cli_writes_the_same_json_file_from_spilled_calls(tmp_path: Path, monkeypatch) -> None:
    """`sipwatch analyze -o x.json` streams the rows of spilled calls into the file."""
    from typer.testing import CliRunner

    from sipwatch.cli import app

    paths = [str(CAPTURES / f"{name}.pcap") for name in MIX]
    written = {}
    for keep in (10**9, 2):
        monkeypatch.setattr(spill, "KEEP", keep)
        out = tmp_path / f"keep{keep}.json"
        result = CliRunner().invoke(app, ["analyze", *paths, "-o", str(out)])
        assert result.exit_code == 0, result.output
        written[keep] = out.read_bytes()
    assert written[2] == written[10**9]
    assert len(json.loads(written[2])["calls"]) > 20


def test_batch_writes_the_same_files_from_spilled_calls(tmp_path: Path, monkeypatch) -> None:
    """`sipwatch batch` writes JSON, Markdown and HTML per capture; spilled calls give the same files."""
    from sipwatch.batch import _one

    capture = str(CAPTURES / "capacity_burst.pcap")
    written = {}
    for keep in (10**9, 2):
        monkeypatch.setattr(spill, "KEEP", keep)
        stem = tmp_path / f"keep{keep}"
        line = _one(capture, str(stem), ["json", "md", "html"], False, False)
        assert not line.failed, line
        written[keep] = [Path(f"{stem}.{fmt}").read_bytes() for fmt in ("json", "md", "html")]
    assert written[2] == written[10**9]
    assert len(json.loads(written[2][0])["calls"]) > 10


@pytest.mark.parametrize("command", [
    ["analyze", "{mix}"],
    ["analyze", "{mix}", "-f", "csv"],
    ["analyze", "{mix}", "--redact", "-f", "json"],
    ["report", "{mix}", "-o", "{out}/p.html"],
    ["report", "{mix}", "-o", "{out}/p.md"],
    ["streams", "{mix}"],
    ["tables", "{mix}", "-o", "{out}/tables"],
    ["flow", "{one}", "12"],
    ["extract", "{mix}", "--call", "20", "-o", "{out}/call.pcap"],
])
def test_every_command_on_spilled_calls(command: list[str], tmp_path: Path, monkeypatch) -> None:
    """Each command reads the calls of a capture that spills as it reads those of one that does not."""
    from typer.testing import CliRunner

    from sipwatch.cli import app

    mix = [str(CAPTURES / f"{name}.pcap") for name in MIX]
    results = {}
    for keep in (10**9, 2):
        monkeypatch.setattr(spill, "KEEP", keep)
        out = tmp_path / str(keep)
        out.mkdir()
        one = str(CAPTURES / "capacity_burst.pcap")  # `flow` reads one capture
        args = [a.format(out=out, one=one) for arg in command for a in (mix if arg == "{mix}" else [arg])]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        files = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        results[keep] = (result.stdout.replace(str(out), "OUT"), files)
    assert results[2] == results[10**9]
    assert results[2][0] or results[2][1]


def test_no_room_for_the_temporary_file_keeps_calls_in_memory(monkeypatch) -> None:
    """A full disk (or a read-only TMPDIR) costs memory, not calls: the analysis is the same."""
    import errno

    paths = [CAPTURES / f"{name}.pcap" for name in MIX]
    whole = as_json(analysis_to_dict(analyzed(paths, 10**9, monkeypatch)))

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spill.tempfile, "TemporaryFile", no_room)
    analysis = analyzed(paths, 2, monkeypatch)
    assert isinstance(analysis.calls, list) and len(analysis.calls) > 20  # all of them whole, in memory
    assert as_json(analysis_to_dict(analysis)) == whole


def test_a_summary_reads_as_its_call(cut_capture: Path, monkeypatch) -> None:
    """Every field the summaries keep, and what is derived from them, reads back as the whole call has it
    (None for a time or frame never seen, flags as bools, the same enum members), streams included."""
    # the mix, and apart from it (the same calls, cut) the capture whose streams have sequence gaps
    calls = [*analyzed([CAPTURES / f"{name}.pcap" for name in MIX], 10**9, monkeypatch).calls,
             *analyzed([cut_capture], 10**9, monkeypatch).calls]
    store = spill.Summaries()
    fields = (*store.FLOATS, *store.INTS, *store.FLAGS, *store.OBJECTS,
              "partial", "start", "end", "pdd_ms", "setup_ms", "duration_s")
    nones = 0
    for call in calls:
        view = spill.CallSummary(store, store.add(call))
        for name in fields:
            mine, theirs = getattr(view, name), getattr(call, name)
            assert mine == theirs and type(mine) is type(theirs), (call.call_id, name, mine, theirs)
            nones += theirs is None
        assert [(s.packets, s.first, s.last, tuple(s.gap_arrivals), s.capture_lost) for s in view.streams] == [
            (s.stats.packets, s.stats.first, s.stats.last, tuple(s.stats.gap_arrivals), s.capture_lost)
            for s in call.streams]
    assert nones and len(store) == len(calls)
    assert any(store.gap_arrivals.values())  # the streams of the cut capture have sequence gaps
    # capture-loss detection writes through the views into the columns
    view = next(spill.CallSummary(store, i) for i in range(len(store)) if store.streams(i))
    stream = view.streams[0]
    stream.capture_lost += 7
    assert view.streams[0].capture_lost == stream.capture_lost >= 7


def test_terminal_reads_back_only_the_calls_it_shows(monkeypatch) -> None:
    """`sipwatch analyze` on a terminal shows the first calls, streams and findings of a large capture and
    counts the rest from the summary: it reads back only the calls on disk those first rows come from."""
    paths = [CAPTURES / f"{name}.pcap" for name in MIX]
    whole = analysis_to_dict(analyzed(paths, 10**9, monkeypatch))
    spilled = analyzed(paths, 2, monkeypatch)
    data = analysis_to_dict(spilled)
    read: list = []
    whole_call = spill.DecidedCalls._whole
    monkeypatch.setattr(spill.DecidedCalls, "_whole", lambda self, entry: read.append(entry) or whole_call(self, entry))
    text = terminal_text(data)  # at most 3 rows a table
    findings = sum(len(c["findings"]) for c in whole["calls"])
    streams = sum(len(c["streams"]) for c in whole["calls"]) + len(whole["unattached_streams"])
    assert findings > 3 and f"{findings - 3} more findings" in text
    assert streams > 3 and f"{streams - 3} more streams" in text
    assert 0 < len(read) < len(spilled.calls) // 2


def test_reports_go_through_the_calls_on_disk_once(monkeypatch) -> None:
    """The HTML and Markdown post-mortems of a large capture gather what they show in one pass over the calls
    (the HTML calls table reads its own first rows again), so each call on disk is read back once or twice,
    and no page holds more calls than it shows."""
    from sipwatch.report.html import MAX_CALL_ROWS

    spilled = analyzed([CAPTURES / f"{name}.pcap" for name in MIX], 2, monkeypatch)
    data = analysis_to_dict(spilled)
    on_disk = len(spilled.calls) - 2
    read: list = []
    whole_call = spill.DecidedCalls._whole
    monkeypatch.setattr(spill.DecidedCalls, "_whole",
                        lambda self, entry: (read.append(entry) if not isinstance(entry[2], spill.Call) else None)
                        or whole_call(self, entry))
    render_html(data)
    assert len(read) <= on_disk + min(on_disk, MAX_CALL_ROWS)
    read.clear()
    render_markdown(data)
    assert len(read) == on_disk
