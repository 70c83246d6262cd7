"""The live runner without a network: real SIPp captures handed over frame by frame as a live source would,
quiet seconds told as ticks (sipwatch.live.replay, `paced`), and `sipwatch live -` on a pipe. No root needed.

In-call events (one-way audio N seconds into the call, RTP timeout) must be told while the call is still up,
timeouts must fire on a quiet line, the dashboard must show the figures, and every way of stopping (end of
input, --duration, SIGTERM) must write the final report and exit 0.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAPTURES, ROOT
from rich.console import Console

from sipwatch.live.dashboard import Dashboard
from sipwatch.live.output import EventWriter, PcapRing
from sipwatch.live.replay import ReplaySource
from sipwatch.live.runner import LiveOptions, LiveRunner

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]


def _run(tmp_path: Path, names: list[str], **options) -> tuple[list[dict], LiveRunner]:
    events = tmp_path / "events.jsonl"
    writer = EventWriter(events.open("w"), close=True)
    source = ReplaySource([str(CAPTURES / n) for n in names], 1, 3600.0, paced=True)
    runner = LiveRunner(source, LiveOptions(tmp_path / "out", writer, **options))
    runner.run()
    return [json.loads(line) for line in events.read_text().splitlines()], runner


def _index(events: list[dict], kind: str, call_id: str | None = None) -> int:
    return next(i for i, e in enumerate(events) if e["event"] == kind and (call_id is None or e["call_id"] == call_id))


def test_one_way_audio_is_told_seconds_into_the_call(tmp_path: Path) -> None:
    events, _ = _run(tmp_path, ["one_way_audio.pcap"])
    (alert,) = [e for e in events if e["event"] == "one_way_audio"]
    assert alert["silent_side"] == "callee"
    assert alert["packets"]["callee->caller"] == 0 and alert["packets"]["caller->callee"] >= 50
    assert 2.0 <= alert["after_s"] < 3.0  # MediaThresholds.min_answered_s: judged from 2 s of talk on
    assert _index(events, "one_way_audio") < _index(events, "call_ended")
    ended = events[_index(events, "call_ended")]
    assert ended["outcome"] == "answered" and ended["cause"] is not None


def test_rtp_timeout_is_told_while_the_call_is_up(tmp_path: Path) -> None:
    events, _ = _run(tmp_path, ["rtp_timeout.pcap"])
    alerts = [e for e in events if e["event"] == "rtp_timeout"]
    assert alerts, events
    assert {a["direction"] for a in alerts} == {"caller->callee", "callee->caller"}
    assert all(5.0 <= a["silence_s"] < 7.0 for a in alerts)  # MediaThresholds.rtp_timeout_s, checked each second
    assert max(_index(events, "rtp_timeout", a["call_id"]) for a in alerts) < _index(events, "call_ended")


def test_invite_timeout_fires_on_a_quiet_line_and_calls_leave_memory(tmp_path: Path) -> None:
    events, runner = _run(tmp_path, ["timeout_no_answer.pcap", "busy_486.pcap"])
    ended = [e for e in events if e["event"] == "call_ended"]
    assert sorted(e["outcome"] for e in ended) == ["busy", "timeout"]
    failures = {e["call_id"]: e for e in events if e["event"] == "failure"}
    assert {f["kind"] for f in failures.values()} >= {"timeout_no_response"}
    assert all(f["evidence"] for f in failures.values())
    assert runner.analyzer.memory()["calls"] == 0
    assert events[-1]["event"] == "stopped" and events[-1]["calls"] == 2
    # every decided call flushed: JSON lines and Parquet agree with the events
    import pandas as pd

    lines = [json.loads(line) for line in (tmp_path / "out" / "calls.jsonl").read_text().splitlines()]
    table = pd.read_parquet(tmp_path / "out" / "calls-00001.parquet")
    assert sorted(table["outcome"]) == sorted(c["outcome"] for c in lines) == ["busy", "timeout"]
    assert sorted(table["call_id"]) == sorted(e["call_id"] for e in ended)


def test_dashboard_shows_calls_asr_causes_and_drops(tmp_path: Path) -> None:
    out = io.StringIO()
    board = Dashboard(Console(file=out, force_terminal=True, width=200, color_system=None))
    source = ReplaySource([str(CAPTURES / n) for n in ("answered_rtp.pcap", "busy_486.pcap", "one_way_audio.pcap")],
                          1, 60.0, paced=True)
    runner = LiveRunner(source, LiveOptions(tmp_path / "out"), board)
    with board:
        runner.run()
        board.refresh(runner, force=True)
    screen = out.getvalue()
    for text in ("active calls", "CPS", "ASR 1m", "kernel drops 0", "failures by cause", "worst streams",
                 "one-way audio (callee silent)"):
        assert text in screen, text
    assert runner.stats.causes and "busy" in runner.stats.outcomes
    assert runner.stats.asr(15) is not None


def test_pcap_ring_rotates_and_tshark_reads_every_file(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is needed to read the ring files")
    ring = PcapRing(tmp_path / "ring", 0.02, 3)
    source = ReplaySource([str(CAPTURES / "answered_rtp.pcap")], 3, 60.0)
    runner = LiveRunner(source, LiveOptions(tmp_path / "out", ring=ring))
    runner.run()
    files = sorted((tmp_path / "ring").glob("sipwatch-*.pcap"))
    assert len(files) == 3  # the oldest went
    assert files[-1].name > files[0].name
    read = 0
    for path in files:
        result = subprocess.run(["tshark", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        read += len(result.stdout.splitlines())
    assert 0 < read < ring.frames == 3 * 209


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _pipe_live(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "out"
    proc = subprocess.Popen([*SIPWATCH, "live", "-", "--out", str(out), "--no-dashboard", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    proc.stdin.write((CAPTURES / "busy_486.pcap").read_bytes())
    proc.stdin.flush()  # the pipe stays open: a live stream that went quiet
    return proc, out


def test_live_stdin_stops_at_duration(tmp_path: Path) -> None:
    proc, out = _pipe_live(tmp_path, "--duration", "2")
    proc.wait(60)  # stdin still open (communicate() would close it)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.decode().splitlines()]  # stdout is not a terminal: events
    assert events[-1]["event"] == "stopped" and events[-1]["reason"] == "duration"
    report = json.loads((out / "report.json").read_text())
    assert [c["outcome"] for c in report["calls"]] == ["busy"]
    assert f"wrote {out / 'report.json'}" in stderr.decode()


def test_live_stdin_stops_on_sigterm(tmp_path: Path) -> None:
    proc, out = _pipe_live(tmp_path)
    first = json.loads(proc.stdout.readline())  # events on stdout (not a terminal)
    assert first["event"] == "started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    stderr = proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["live"]["stopped_by"] == "SIGTERM"
    assert [c["outcome"] for c in report["calls"]] == ["busy"]


def test_live_stdin_rejects_pcapng_and_garbage_cleanly(tmp_path: Path) -> None:
    for data, words in ((b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng"), (b"hello, this is not a capture", "not a pcap")):
        result = subprocess.run([*SIPWATCH, "live", "-", "--out", str(tmp_path / "out"), "--no-dashboard"],
                                input=data, capture_output=True, timeout=60, env=_env(), cwd=ROOT)
        assert result.returncode == 4
        assert words in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_live_stdin_ring_keeps_the_streams_link_type(tmp_path: Path) -> None:
    """A stream from `tcpdump -i any` is Linux cooked (SLL2): the ring files say so, and read back the same."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is needed to read the ring files")
    capture = CAPTURES / "any_interface.pcap"
    result = subprocess.run([*SIPWATCH, "live", "-", "--out", str(tmp_path / "out"), "--write", str(tmp_path / "ring"),
                             "--no-dashboard"], input=capture.read_bytes(), capture_output=True, timeout=60, env=_env(),
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    (ring,) = sorted((tmp_path / "ring").glob("sipwatch-*.pcap"))
    info = subprocess.run(["capinfos", "-E", "-c", str(ring)], capture_output=True, text=True, timeout=60)
    assert "Linux cooked-mode capture v2" in info.stdout, info.stdout
    live = json.loads((tmp_path / "out" / "report.json").read_text())
    again = subprocess.run([*SIPWATCH, "analyze", str(ring), "--format", "json"], capture_output=True, text=True,
                           timeout=60, env=_env(), cwd=ROOT)
    assert again.returncode == 0, again.stderr
    analyzed = json.loads(again.stdout)
    assert analyzed["capture"]["packets"] == live["capture"]["packets"]
    assert [c["outcome"] for c in analyzed["calls"]] == [c["outcome"] for c in live["calls"]] == ["answered"]


def test_live_stdin_quiet_before_the_first_record(tmp_path: Path) -> None:
    """A stream that sent its header and nothing else yet (a quiet line at start): no clock yet, no crash."""
    out = tmp_path / "out"
    proc = subprocess.Popen([*SIPWATCH, "live", "-", "--out", str(out), "--no-dashboard", "--duration", "1.5"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
    proc.stdin.write((CAPTURES / "busy_486.pcap").read_bytes()[:24])
    proc.stdin.flush()
    proc.wait(60)
    stderr = proc.stderr.read().decode()
    proc.stdin.close()
    assert proc.returncode == 0, stderr
    report = json.loads((out / "report.json").read_text())
    assert report["calls"] == [] and report["live"]["stopped_by"] == "duration"


def test_live_stdin_corrupt_or_cut_stream_keeps_what_came_before(tmp_path: Path) -> None:
    """A record claiming 999,999 bytes (lost sync) or a stream cut inside a record: a warning with the frame and
    byte offset, the calls before it analyzed and reported, exit 6 as for any damaged capture."""
    data = (CAPTURES / "busy_486.pcap").read_bytes()
    third = 24 + sum(16 + int.from_bytes(data[at + 8 : at + 12], "little") for at in _record_starts(data)[:2])
    corrupt = data[: third + 8] + (999_999).to_bytes(4, "little") + data[third + 12 :]
    for name, stream, words in (("corrupt", corrupt, f"frame 3, byte offset {third}: record claims 999999 bytes"),
                                ("cut", data[:-10], "stream ends inside a record")):
        out = tmp_path / name
        result = subprocess.run([*SIPWATCH, "live", "-", "--out", str(out), "--no-dashboard"], input=stream,
                                capture_output=True, timeout=60, env=_env(), cwd=ROOT)
        stderr = result.stderr.decode()
        assert result.returncode == 6, stderr
        assert words in stderr and "Traceback" not in stderr
        report = json.loads((out / "report.json").read_text())
        assert len(report["calls"]) == 1 and report["capture"]["damaged"]


def _record_starts(data: bytes) -> list[int]:
    starts, at = [], 24
    while at + 16 <= len(data):
        starts.append(at)
        at += 16 + int.from_bytes(data[at + 8 : at + 12], "little")
    return starts


def test_live_usage_errors_are_one_line_and_create_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for args, words in ((["-i", "lo", "--filter", "udp prt 5"], "does not compile"),
                        ([], "give interfaces with -i"),
                        (["capture.pcap"], "for a file use sipwatch analyze"),
                        (["-", "-i", "lo"], "give interfaces with -i")):
        result = subprocess.run([*SIPWATCH, "live", *args, "--out", str(out), "--no-dashboard"], capture_output=True,
                                text=True, timeout=60, env=_env(), cwd=ROOT, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()
