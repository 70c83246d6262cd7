"""The Markdown post-mortem: what a ticket needs, and captured text kept inert."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import CAPTURES
from crafted import write_sip_exchange

from sipwatch.pipeline import analyze_file
from sipwatch.report.data import analysis_to_dict
from sipwatch.report.markdown import render_markdown

SCRIPT = "<script>alert(1)</script>"


def test_postmortem_of_a_missing_ack() -> None:
    md = render_markdown(analysis_to_dict(analyze_file(str(CAPTURES / "missing_ack.pcap"))))
    assert md.startswith("# Post-mortem:")
    assert "## Failures and degraded calls (1)" in md
    assert "**Cause:** nat\\_alg" in md and "never acknowledged" in md
    assert "(frame 4)" in md  # the first 2xx, as evidence
    assert "**Admin:**" in md and "**Agent:**" in md
    assert md.count("200 OK (retransmission)") >= 5  # the ladder
    assert "| ASR |" in md


def test_healthy_capture_says_so() -> None:
    md = render_markdown(analysis_to_dict(analyze_file(str(CAPTURES / "answered_rtp.pcap"))))
    assert "## Failures and degraded calls (0)" in md and "healthy" in md
    assert "## Worst RTP streams" in md and "PCMA" in md


def _hostile_capture(path: Path) -> Path:
    invite = (
        "INVITE sip:bob@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "From: <sip:alice@192.0.2.1>;tag=1\r\nTo: <sip:bob@192.0.2.2>\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\n"
        f"User-Agent: {SCRIPT}\r\nContent-Length: 0\r\n\r\n"
    )
    busy = (
        "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "From: <sip:alice@192.0.2.1>;tag=1\r\nTo: <sip:bob@192.0.2.2>;tag=2\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\n"
        f'Reason: Q.850;cause=17;text="{SCRIPT} | `code` *bold*"\r\nContent-Length: 0\r\n\r\n'
    )
    return write_sip_exchange(path, [invite, busy])


def test_captured_text_stays_text(tmp_path: Path) -> None:
    md = render_markdown(analysis_to_dict(analyze_file(str(_hostile_capture(tmp_path / "x.pcap")))))
    assert "Q.850 cause=17" in md
    assert SCRIPT not in md and "<script>" not in md
    assert "\\<script\\>" in md
    assert "\\`code\\`" in md and "\\*bold\\*" in md and "\\|" in md


def test_report_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "postmortem.md"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(CAPTURES / "busy_486.pcap"),
                             "-o", str(out)], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stderr.decode()
    assert "**Cause:** user" in out.read_text()
    bad = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(CAPTURES / "busy_486.pcap"),
                          "-o", str(tmp_path / "x.pdf")], capture_output=True, timeout=120)
    assert bad.returncode == 2 and b"Markdown (.md) or JSON (.json)" in bad.stderr


def test_extract_one_call_readable_by_tshark(tmp_path: Path) -> None:
    from conftest import tshark_sip_stat

    out = tmp_path / "call.pcap"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "extract", str(CAPTURES / "answered_rtp.pcap"),
                             "--call", "1", "-o", str(out)], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    original = analyze_file(str(CAPTURES / "answered_rtp.pcap"))
    extracted = analyze_file(str(out))
    (call,) = extracted.calls
    rtp = sum(s.stats.packets for s in original.calls[0].streams)
    assert extracted.capture.packets == original.calls[0].messages + rtp
    assert [s.stats.packets for s in call.streams] == [s.stats.packets for s in original.calls[0].streams]
    assert call.start == original.calls[0].start  # timestamps kept
    oracle = tshark_sip_stat(out, extracted.stats.ports)
    assert oracle.messages == call.messages == original.calls[0].messages


def test_extract_picks_only_the_call_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "second.pcap"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "extract", str(CAPTURES / "route_advance_503.pcap"),
                             "--call", "2", "-o", str(out)], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (call,) = analyze_file(str(out)).calls
    first, second = analyze_file(str(CAPTURES / "route_advance_503.pcap")).calls
    assert call.call_id == second.call_id != first.call_id
    assert call.outcome == "answered"


def test_report_on_a_cut_capture_warns_and_exits_6(tmp_path: Path) -> None:
    data = (CAPTURES / "answered_rtp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 5])
    out = tmp_path / "pm.md"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(cut), "-o", str(out)],
                            capture_output=True, timeout=120)
    assert result.returncode == 6
    err = result.stderr.decode()
    assert "sipwatch: warning:" in err and "byte offset" in err and f"wrote {out}" in err
    assert "**The capture file is damaged**" in out.read_text()
