"""The command as a user meets it: real subprocesses, exit codes, one clear line for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_CAPTURES

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]
SAMPLE = SHARED_CAPTURES / "sngrep" / "aaa.pcap"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SIPWATCH_DEBUG"}
    env["COLUMNS"] = "200"
    return subprocess.run([*SIPWATCH, *args], input=stdin, capture_output=True, env=env, timeout=120)


def one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err and "Traceback" not in result.stdout.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.exists():
        pytest.skip("shared captures not present")
    return SAMPLE


def test_missing_path_exits_3(tmp_path: Path) -> None:
    result = run("analyze", str(tmp_path / "nope.pcap"))
    assert result.returncode == 3
    one_clear_line(result, "sipwatch: error:", "nope.pcap", "no such file")


def test_empty_file_exits_4(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run("analyze", str(empty))
    assert result.returncode == 4
    one_clear_line(result, "empty file")


def test_text_file_exits_4(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("INVITE sip:bob@example.com SIP/2.0\r\nthis is not a capture\n")
    result = run("analyze", str(text))
    assert result.returncode == 4
    one_clear_line(result, "not a pcap or pcapng capture")


def test_directory_exits_4(tmp_path: Path) -> None:
    result = run("analyze", str(tmp_path))
    assert result.returncode == 4
    one_clear_line(result, "no capture files")


def test_damaged_header_exits_4(tmp_path: Path, sample: Path) -> None:
    short = tmp_path / "short.pcap"
    short.write_bytes(sample.read_bytes()[:10])
    result = run("analyze", str(short))
    assert result.returncode == 4
    one_clear_line(result, "sipwatch: error:")


def test_truncated_capture_is_analyzed_with_offset_warning(tmp_path: Path, sample: Path) -> None:
    data = sample.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])  # inside a record
    result = run("analyze", str(cut), "--format", "json")
    assert result.returncode == 6
    warning = one_clear_line(result, "sipwatch: warning:", "byte offset")
    report = json.loads(result.stdout)
    assert report["capture"]["damaged"] is True
    problem = next(p for p in report["problems"] if p["kind"] == "truncated_capture")
    # the offset names the start of the damaged record, inside the file and after the last good one
    assert 24 < problem["offset"] < len(data) // 2 + 7
    assert str(problem["offset"]) in warning
    assert report["capture"]["packets"] == problem["frame"] - 1
    # everything before the damage was analyzed
    full = json.loads(run("analyze", str(sample), "--format", "json").stdout)
    assert 0 < report["summary"]["messages"] < full["summary"]["messages"]


def test_truncated_in_record_header(tmp_path: Path, sample: Path) -> None:
    data = sample.read_bytes()
    first_record_len = int.from_bytes(data[24 + 8 : 24 + 12], "little")
    cut = tmp_path / "cut_header.pcap"
    end_of_first = 24 + 16 + first_record_len
    cut.write_bytes(data[: end_of_first + 5])  # 5 bytes of the second record header
    result = run("analyze", str(cut), "--format", "json")
    assert result.returncode == 6
    one_clear_line(result, f"byte offset {end_of_first}", "frame 2")
    assert json.loads(result.stdout)["capture"]["packets"] == 1


def test_unsupported_link_type_exits_5(tmp_path: Path) -> None:
    # a pcap header with link type 105 (IEEE 802.11) and one record
    header = bytes.fromhex("d4c3b2a1020004000000000000000000ffff0000") + (105).to_bytes(4, "little")
    record = (1).to_bytes(4, "little") + bytes(4) + (4).to_bytes(4, "little") * 2 + b"\x08\x00\x00\x00"
    path = tmp_path / "wifi.pcap"
    path.write_bytes(header + record)
    result = run("analyze", str(path))
    assert result.returncode == 5
    one_clear_line(result, "link type 105", "IEEE 802.11")


def test_usage_error_exits_2() -> None:
    result = run("analyze", "--format", "xml", "x.pcap")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr.decode()


def test_table_output(sample: Path) -> None:
    result = run("analyze", str(sample))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for needle in ("Calls by outcome", "auth_failed", "403 Forbidden", "KPIs", "ASR", "Calls", "Q.850 cause=21"):
        assert needle in out, needle


def test_json_contract(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "analysis.json"
    result = run("analyze", str(sample), "-o", str(out))
    assert result.returncode == 0
    assert f"wrote {out}" in result.stderr.decode()
    report = json.loads(out.read_text())
    assert set(report) >= {"capture", "summary", "calls", "problems"}
    assert report["capture"]["packets"] == 691
    assert report["capture"]["link_types"] == [1]
    assert report["summary"]["messages"] == 81
    required = {
        "call_id", "from", "to", "start", "end", "final_status", "reason", "outcome", "pdd_ms", "setup_ms",
        "duration_s", "messages", "partial",
    }
    for call in report["calls"]:
        assert required <= set(call)
    assert sum(report["summary"]["outcomes"].values()) == len(report["calls"]) == report["summary"]["calls"]
    assert report["summary"]["transactions"]["REGISTER"]["200"] == 3


def test_csv_output(sample: Path) -> None:
    result = run("analyze", str(sample), "--format", "csv")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("number,call_id,start,end,start_ts,end_ts,from,to")
    assert len(lines) == 1 + 6


def test_stdin_stream(sample: Path) -> None:
    result = run("analyze", "-", "--format", "json", stdin=sample.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["capture"]["file"] == "<stdin>"
    assert report["summary"]["messages"] == 81


def test_gzip_stdin(sample: Path) -> None:
    import gzip

    result = run("analyze", "-", "--format", "json", stdin=gzip.compress(sample.read_bytes()))
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["summary"]["messages"] == 81


def test_explain_status_cause_and_finding() -> None:
    result = run("explain", "503")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert "503 Service Unavailable" in out and "capacity" in out and "Admin:" in out and "Agent:" in out
    assert "Q.850 17 User busy" in run("explain", "q850:17").stdout.decode()
    assert "one_way_audio" in run("explain", "one-way audio").stdout.decode()


def test_explain_unknown_exits_2() -> None:
    result = run("explain", "bogus")
    assert result.returncode == 2
    one_clear_line(result, "sipwatch: error:", "unknown finding")


def test_flow_draws_the_ladder() -> None:
    result = run("flow", str(ROOT / "captures" / "cancel_487.pcap"), "1")
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("call 1 ") and "cancelled" in lines[0]
    arrows = [line for line in lines if "frame" in line]
    assert len(arrows) == 7
    assert "INVITE" in arrows[0] and arrows[0].rstrip().split("   frame")[0].endswith(">|")
    assert "487 Request Terminated" in arrows[5] and "|<-" in arrows[5]


def test_flow_unknown_call_exits_2() -> None:
    result = run("flow", str(ROOT / "captures" / "cancel_487.pcap"), "9")
    assert result.returncode == 2
    one_clear_line(result, "no call '9'")
