"""Several files as one timeline (rotated captures), and independent captures analyzed in parallel."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CAPTURES, ROOT

from sipwatch.pipeline import analyze_file, analyze_files
from sipwatch.report.data import analysis_to_dict

SIPWATCH = [sys.executable, "-c", "from sipwatch.cli import main; main()"]


def _split(capture: Path, directory: Path, packets: int) -> list[Path]:
    """The capture cut into files of `packets` frames, as tcpdump -C/-W or a ring buffer would leave it."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["editcap", "-c", str(packets), str(capture), str(directory / "part.pcap")], check=True)
    parts = sorted(directory.iterdir())
    assert len(parts) > 1
    return parts


def _essence(data: dict) -> list:
    """What must not depend on how the capture was cut into files."""
    return [
        (c["call_id"], c["outcome"], c["cause"], c["final_status"], c["messages"], c["first_frame"],
         c["final_frame"], c["partial"], [(f["kind"], [e["frame"] for e in f["evidence"]]) for f in c["findings"]],
         [(s["src"], s["dst"], s["packets"], s["lost"], s["jitter_max_ms"], s["first_frame"]) for s in c["streams"]])
        for c in data["calls"]
    ]


@pytest.mark.parametrize("name,packets", [
    ("answered_rtp.pcap", 40), ("missing_ack.pcap", 3), ("one_way_audio.pcap", 25), ("rtp_timeout.pcap", 50),
    ("tcp_call.pcap", 4), ("reinvite_port_change.pcap", 30),
])
def test_rotated_files_are_the_capture(tmp_path: Path, name: str, packets: int) -> None:
    whole = analysis_to_dict(analyze_file(str(CAPTURES / name)))
    parts = _split(CAPTURES / name, tmp_path / "ring", packets)
    shuffled = parts[:]
    random.Random(7).shuffle(shuffled)  # the order given does not matter: files go by their first packet
    for given in ([str(tmp_path / "ring")], [str(p) for p in shuffled]):
        joined = analysis_to_dict(analyze_files(given))
        assert _essence(joined) == _essence(whole)
        assert joined["capture"]["packets"] == whole["capture"]["packets"]
        assert [f["first_frame"] for f in joined["capture"]["files"]] == [1 + i * packets for i in range(len(parts))]
        assert not joined["problems"]


def test_two_captures_in_a_row_are_one_timeline(tmp_path: Path) -> None:
    first, second = CAPTURES / "busy_486.pcap", CAPTURES / "answered_rtp.pcap"
    a, b = (analysis_to_dict(analyze_file(str(p))) for p in (first, second))
    later, earlier = (first, second) if a["capture"]["first"] > b["capture"]["first"] else (second, first)
    joined = analysis_to_dict(analyze_files([str(later), str(earlier)]))
    assert joined["summary"]["calls"] == a["summary"]["calls"] + b["summary"]["calls"]
    assert [f["file"] for f in joined["capture"]["files"]] == [str(earlier), str(later)]


def test_overlapping_captures_are_reported(tmp_path: Path) -> None:
    joined = analysis_to_dict(analyze_files([str(CAPTURES / "answered_rtp.pcap")] * 2))
    kinds = [p["kind"] for p in joined["problems"]]
    assert "overlapping_captures" in kinds


def test_directory_without_captures_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a capture")
    result = subprocess.run([*SIPWATCH, "analyze", str(tmp_path)], capture_output=True, timeout=60, cwd=ROOT)
    assert result.returncode == 4
    assert b"no capture files" in result.stderr and b"Traceback" not in result.stderr


def test_batch_analyzes_independent_captures_in_parallel(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    _split(CAPTURES / "one_way_audio.pcap", ring, 25)
    inputs = [str(CAPTURES / "busy_486.pcap"), str(CAPTURES / "declined_603.pcap"), str(ring),
              str(tmp_path / "missing.pcap")]
    out = tmp_path / "reports"
    result = subprocess.run([*SIPWATCH, "batch", *inputs, "-o", str(out), "--jobs", "2"],
                            capture_output=True, timeout=300, cwd=ROOT)
    assert result.returncode == 4  # one capture could not be read; the others were still analyzed
    err = result.stderr.decode()
    assert "missing.pcap: error:" in err and "Traceback" not in err
    reports = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(reports) == {"busy_486.json", "declined_603.json", "ring.json"}
    assert reports["busy_486.json"]["calls"][0]["outcome"] == "busy"
    assert reports["declined_603.json"]["calls"][0]["final_status"] == 603
    one_way = analysis_to_dict(analyze_file(str(CAPTURES / "one_way_audio.pcap")))
    assert _essence(reports["ring.json"]) == _essence(one_way)
    assert (out / "busy_486.md").read_text().startswith("# Post-mortem")
