"""`sipwatch live` as a HOMER collector (--hep-listen, fed by sngrep) and as a capture agent (--hep-send)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CAPTURES, ROOT

from sipwatch.capture.hep_net import HepListener
from sipwatch.pipeline import analyze_file
from sipwatch.report.data import analysis_to_dict
from sipwatch.sip.message import SipMessage

SIPWATCH = [sys.executable, "-c", "from sipwatch.cli import main; main()"]
CALLS = ["busy_486.pcap", "answered_rtp.pcap", "cancel_487.pcap"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_bound(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until sipwatch's collector socket is bound (a second bind fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.1)
    raise AssertionError("sipwatch never bound its HEP port")


@pytest.mark.parametrize("version", [3, 2])
def test_collector_analyzes_what_sngrep_sends(tmp_path: Path, version: int) -> None:
    if not shutil.which("sngrep"):
        pytest.fail("sngrep is not installed (make test installs it)")
    port = _free_port()
    out = tmp_path / "out"
    proc = subprocess.Popen([*SIPWATCH, "live", "--hep-listen", f"udp:127.0.0.1:{port}", "--out", str(out),
                             "--events", str(tmp_path / "events.jsonl"), "--no-dashboard"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        _wait_bound(port, proc)
        rc = tmp_path / "sngrep.rc"
        rc.write_text(f"set eep.send.version {version}\nset eep.send.id 2002\n")
        for name in CALLS:
            run = subprocess.run(["sngrep", "-F", "-f", str(rc), "-I", str(CAPTURES / name), "-H",
                                  f"udp:127.0.0.1:{port}", "-N", "-q"], capture_output=True, timeout=60)
            assert run.returncode == 0, run.stderr
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    report = json.loads((out / "report.json").read_text())
    expected = {}
    for name in CALLS:
        for call in analysis_to_dict(analyze_file(str(CAPTURES / name)))["calls"]:
            expected[call["call_id"]] = (call["outcome"], call["final_status"], call["messages"])
    got = {c["call_id"]: (c["outcome"], c["final_status"], c["messages"]) for c in report["calls"]}
    assert got == expected
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_agent_forwards_sip_as_hep(tmp_path: Path) -> None:
    """`live - --hep-send`: every SIP message of the capture arrives at a HEP collector, whole and in order."""
    capture = CAPTURES / "tcp_call.pcap"  # TCP: the forwarder must frame the stream into messages
    with HepListener("udp:127.0.0.1:0") as collector:
        host, port = collector.address
        with capture.open("rb") as stdin:
            run = subprocess.run([*SIPWATCH, "live", "-", "--hep-send", f"udp:{host}:{port}", "--hep-id", "7",
                                  "--out", str(tmp_path / "out"), "--no-dashboard", "--events", str(tmp_path / "e")],
                                 stdin=stdin, capture_output=True, timeout=120, cwd=ROOT)
        assert run.returncode == 0, run.stderr
        assert b"HEP:" in run.stderr
        frames = []
        while batch := collector.poll(0.5):
            frames += batch
        assert collector.counters()["malformed"] == 0
    messages = []
    for _, _, frame in frames:
        ihl = (frame[0] & 0x0F) * 4
        proto = frame[9]
        start = ihl + (8 if proto == 17 else (frame[ihl + 12] >> 4) * 4)
        messages.append(SipMessage.parse(frame[start:]))
    data = analysis_to_dict(analyze_file(str(capture)))
    sent = [(m.call_id, m.label) for m in messages]
    expected = [(c["call_id"], s["label"]) for c in data["calls"] for s in c["signalling"]]
    assert sent == expected and len(sent) == data["summary"]["messages"]
