"""Bounded memory over a long live run, by object counts (never by time): real SIPp captures replayed through
the live runner 36 times, each pass 10 minutes of capture time after the one before (6 hours in all), with the
RTP heuristic on and RTP nobody signalled in every pass (unattached streams, which must expire too).

The number of live Python objects and every structure of the core must be the same after the first hour as
at the end; every call of every pass must still be written out. bench/live.py runs the 24-hour version on the
benchmark load and prints resident memory.
"""

from __future__ import annotations

import gc
import json
import subprocess
from pathlib import Path

from conftest import CAPTURES

from sipwatch.core.analyzer import AnalyzerConfig
from sipwatch.live.replay import ReplaySource
from sipwatch.live.runner import LiveOptions, LiveRunner

PASSES = 36
SHIFT_S = 600.0
FIRST_HOUR = 6  # passes


def test_live_memory_is_flat_over_six_hours_of_capture_time(tmp_path: Path) -> None:
    rtp_only = tmp_path / "rtp_only.pcap"  # RTP of a call whose SIP is left out: unattached streams
    subprocess.run(["tcpdump", "-r", str(CAPTURES / "reinvite_port_change.pcap"), "-w", str(rtp_only),
                    "udp and not portrange 5000-5999"], check=True, capture_output=True, timeout=30)
    paths = [str(CAPTURES / name) for name in
             ("answered_rtp.pcap", "busy_486.pcap", "cancel_487.pcap", "tcp_call.pcap", "one_way_audio.pcap")]
    paths.append(str(rtp_only))
    snapshots: dict[int, tuple[int, dict, int]] = {}

    def measure(n: int) -> None:
        if n in (FIRST_HOUR, PASSES):
            gc.collect()
            snapshots[n] = (len(gc.get_objects()), runner.analyzer.memory(), len(runner.kept))

    source = ReplaySource(paths, PASSES, SHIFT_S, measure)
    options = LiveOptions(tmp_path / "out", report_calls=20,
                          config=AnalyzerConfig(rtp_heuristic=True, unattached_idle_timeout=60.0))
    runner = LiveRunner(source, options)
    result = runner.run()

    first, last = snapshots[FIRST_HOUR], snapshots[PASSES]
    assert last[1] == first[1], f"the core's structures grew: {first[1]} -> {last[1]}"
    assert last[1]["calls"] == 0 and last[1]["flows"] == 0 and last[1]["unattached"] == 0
    assert first[2] == last[2] == 20  # the report keeps the latest 20 calls, no more
    # a handful of objects of slack (interned strings, caches of the standard library), nothing per call or pass
    assert last[0] - first[0] < 200, f"live objects grew from {first[0]} to {last[0]}"

    calls = [json.loads(line) for line in result.calls_file.read_text().splitlines()]
    assert result.calls == len(calls) == 5 * PASSES
    outcomes = sorted({c["outcome"] for c in calls})
    assert outcomes == ["answered", "busy", "cancelled"]
    report = json.loads(result.report_json.read_text())
    assert report["live"]["calls_decided"] == 5 * PASSES
    assert len(report["calls"]) == 20
    assert len(report["unattached_streams"]) == 20  # expired unattached streams: the latest kept for the report
    streams = (tmp_path / "out" / "unattached_streams.jsonl").read_text().splitlines()
    assert len(streams) == 4 * PASSES  # the call's 4 streams (2 before its re-INVITE), every pass, written out
    assert all(json.loads(line)["call_id"] is None for line in streams)


def test_transactions_expire_by_capture_time(tmp_path: Path) -> None:
    """A capture replayed 10 minutes later (same Call-ID, same Via branches): the old transactions have expired,
    so the second INVITE is a new transaction, not a retransmission, and its SDP gives the second call its
    media. (They used to expire only past 1,024 transactions: the second call had no streams.)"""
    shifted, twice = tmp_path / "shifted.pcap", tmp_path / "twice.pcap"
    subprocess.run(["editcap", "-t", "600", str(CAPTURES / "answered_rtp.pcap"), str(shifted)], check=True,
                   capture_output=True, timeout=30)
    subprocess.run(["mergecap", "-a", "-w", str(twice), str(CAPTURES / "answered_rtp.pcap"), str(shifted)],
                   check=True, capture_output=True, timeout=30)
    from sipwatch.pipeline import analyze_file

    analysis = analyze_file(str(twice))
    assert [c.number for c in analysis.calls] == [1, 2]
    assert [sorted(s.stats.packets for s in c.streams) for c in analysis.calls] == [[101, 101], [101, 101]]
    assert analysis.stats.retransmissions == 0
