"""Media over the life of a call, on real SIPp traffic (captures/, recorded by captures/make_captures.sh).

Four captures where the media changes while the dialog is up: RTP that stops long before the BYE, early
media after a 183 with SDP, a re-INVITE that moves the caller's RTP port, and hold/resume. The ports and
timings below come from captures/README.md.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import CAPTURES, ROOT

from sipwatch.core.calls import Call
from sipwatch.core.result import Analysis
from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file
from sipwatch.report.data import analysis_to_dict

MEDIA_CAPTURES = ["rtp_timeout.pcap", "early_media_183.pcap", "reinvite_port_change.pcap", "hold.pcap"]


def analyze(name: str) -> Analysis:
    path = CAPTURES / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `sudo bash captures/make_captures.sh`")
    return analyze_file(str(path))


def only_call(analysis: Analysis) -> Call:
    assert len(analysis.calls) == 1, [c.call_id for c in analysis.calls]
    return analysis.calls[0]


def kinds(call: Call) -> list[str]:
    return [f.kind for f in call.findings]


def flows(call: Call) -> set[tuple[int, int, str]]:
    return {(s.sport, s.dport, s.direction) for s in call.streams}


@pytest.mark.parametrize("capture", MEDIA_CAPTURES)
def test_one_answered_call_with_all_its_rtp(capture: str) -> None:
    analysis = analyze(capture)
    call = only_call(analysis)
    assert call.outcome == Outcome.ANSWERED
    assert call.final_status == 200
    assert call.bye_by == "caller"
    assert not call.partial
    assert call.attempts == 1  # a re-INVITE is not a new attempt
    assert analysis.unattached_streams == []  # every RTP packet belongs to an SDP of the call
    assert not [p for p in analysis.problems.kept if p.severity == "error"]
    for stream in call.streams:
        assert stream.codec == "PCMA"
        assert stream.src == stream.dst == "127.0.0.1"


# --- rtp_timeout.pcap: ~7 s of RTP both ways, then ~8 s of silence before the BYE -----------------------


def test_media_stopping_long_before_bye_is_an_rtp_timeout_both_ways() -> None:
    call = only_call(analyze("rtp_timeout.pcap"))
    assert flows(call) == {(17210, 16210, "caller->callee"), (16210, 17210, "callee->caller")}
    for stream in call.streams:
        assert stream.stats.packets >= 230  # all of g711a.pcap (236 packets)
        assert call.bye_ts - stream.stats.last > 5.0
    timeouts = {f.data["direction"]: f for f in call.findings if f.kind == "rtp_timeout"}
    assert set(timeouts) == {"caller->callee", "callee->caller"}
    for finding in timeouts.values():
        assert finding.data["ended_by"] == "bye"
        assert 5.0 < finding.data["silence_s"] < 10.0
    # media flowed both ways and plenty of it: only the timeout is wrong with this call
    assert not {"one_way_audio", "no_media"} & set(kinds(call))


# --- early_media_183.pcap: 183 with SDP, the callee's RTP starts 1.5 s before its 200 OK -----------------


def test_early_media_after_183_belongs_to_the_call() -> None:
    call = only_call(analyze("early_media_183.pcap"))
    assert call.ringing_status == 183
    assert call.ringing_ts is not None and call.ringing_ts < call.answer_ts
    assert [(r.sender, r.message, r.ports) for r in call.sdp] == [
        ("caller", "INVITE", [17220]),
        ("callee", "183 Session Progress", [16220]),
        ("callee", "200 OK", [16220]),
    ]
    streams = {s.direction: s for s in call.streams}
    assert set(streams) == {"caller->callee", "callee->caller"}
    early = streams["callee->caller"]
    assert (early.sport, early.dport) == (16220, 17220)
    assert early.stats.first < call.answer_ts - 1.0  # ~50 packets of early media
    assert early.stats.first >= call.ringing_ts
    assert early.stats.packets > streams["caller->callee"].stats.packets  # it started earlier
    assert streams["caller->callee"].stats.first > call.answer_ts  # the caller plays after its ACK
    assert not {"one_way_audio", "no_media", "rtp_timeout", "media_after_bye"} & set(kinds(call))


# --- reinvite_port_change.pcap: the caller's RTP moves from 17230 to 17232 after a re-INVITE -------------


def test_reinvite_moving_the_media_port_keeps_one_call_with_all_streams() -> None:
    call = only_call(analyze("reinvite_port_change.pcap"))
    assert call.invite_frame == 1
    assert [(r.sender, r.message, r.ports) for r in call.sdp] == [
        ("caller", "INVITE", [17230]),
        ("callee", "200 OK", [16230]),
        ("caller", "INVITE", [17232]),
        ("callee", "200 OK", [16230]),
    ]
    reinvite = call.sdp[2]
    assert reinvite.ts > call.answer_ts  # the answer is still the first 200 OK, not the re-INVITE's
    assert len(call.streams) >= 3
    assert flows(call) == {
        (17230, 16230, "caller->callee"),
        (16230, 17230, "callee->caller"),
        (17232, 16230, "caller->callee"),
        (16230, 17232, "callee->caller"),
    }
    for stream in call.streams:
        moved = 17232 in (stream.sport, stream.dport)
        assert stream.stats.packets >= (95 if moved else 230)
        if moved:
            assert stream.stats.first > reinvite.ts
        else:
            assert stream.stats.last < reinvite.ts
    # the old port going quiet is not a timeout: the media moved, it did not stop
    assert not {"rtp_timeout", "one_way_audio", "no_media"} & set(kinds(call))


# --- hold.pcap: re-INVITE a=sendonly / 200 a=recvonly, 3 s without RTP, re-INVITE a=sendrecv -------------


def test_hold_and_resume_is_not_one_way_audio() -> None:
    call = only_call(analyze("hold.pcap"))
    assert [(r.sender, r.message, r.directions) for r in call.sdp] == [
        ("caller", "INVITE", ["sendrecv"]),
        ("callee", "200 OK", ["sendrecv"]),
        ("caller", "INVITE", ["sendonly"]),  # hold
        ("callee", "200 OK", ["recvonly"]),
        ("caller", "INVITE", ["sendrecv"]),  # resume
        ("callee", "200 OK", ["sendrecv"]),
    ]
    assert any(record.on_hold for record in call.sdp)
    assert [r.on_hold for r in call.sdp if r.sender == "caller"] == [False, True, False]
    assert all(record.ports == [17240 if record.sender == "caller" else 16240] for record in call.sdp)
    # before the hold and after the resume, on the same ports (SIPp starts g711a.pcap over: same SSRC)
    assert flows(call) == {(17240, 16240, "caller->callee"), (16240, 17240, "callee->caller")}
    assert all(s.stats.packets >= 320 for s in call.streams)  # 236 before the hold, ~101 after
    assert "one_way_audio" not in kinds(call)
    assert not {"no_media", "rtp_timeout"} & set(kinds(call))  # the pause on hold lasts ~3.5 s


def test_media_ports_reused_by_the_next_call(tmp_path: Path) -> None:
    """Busy systems hand a call's RTP ports to the next call seconds later: each call keeps its own streams.

    The SIPp capture is repeated 1.5 s after its own BYE with new Call-IDs, branches and SSRCs (bench/make_big.py),
    so every copy reuses the same SIP and RTP ports while the previous call is still lingering in the core.
    tshark's RTP streams (heuristic on) are the oracle for the packets of each SSRC.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_big", ROOT / "bench" / "make_big.py")
    make_big = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_big)
    capture = tmp_path / "reused.pcap"
    one = (CAPTURES / "answered_rtp.pcap").stat().st_size - 24  # its records, without the file header
    make_big.write_big(CAPTURES / "answered_rtp.pcap", capture, 24 + 3 * one, gap=1.5, sip_ports=(5061, 5161))
    calls = analysis_to_dict(analyze_file(str(capture)))["calls"]
    assert len(calls) == 3
    oracle = subprocess.run(["tshark", "-n", "-q", "-r", str(capture), "-o", "rtp.heuristic_rtp:TRUE", "-z",
                             "rtp,streams"], capture_output=True, text=True, check=True).stdout
    packets = {}  # SSRC -> packets per direction, as tshark counts them
    for line in oracle.splitlines():
        fields = line.split()
        if len(fields) > 8 and fields[6].startswith("0x"):
            packets.setdefault(int(fields[6], 16), []).append(int(fields[8]))
    for copy, call in enumerate(calls):
        assert not [f for f in call["findings"] if f["kind"] in ("media_after_bye", "no_media", "one_way_audio")]
        ssrcs = {s["ssrc"] for s in call["streams"]}
        assert len(ssrcs) == 1 and (ssrcs.pop() >> 24) == 0xDE ^ copy  # its own copy's SSRC only
        assert sorted(s["packets"] for s in call["streams"]) == sorted(packets[call["streams"][0]["ssrc"]])


def test_calls_sharing_the_callee_media_port_keep_their_streams() -> None:
    """Six overlapping SIPp calls whose UAS receives every call's RTP on port 16000 (each caller on its own
    port): each call has exactly its own four streams (PCMA and telephone-event, both ways), matched by the
    caller's port its SDP announced, and tshark counts the same packets."""
    capture = CAPTURES / "shared_media_port.pcap"
    calls = analysis_to_dict(analyze_file(str(capture)))["calls"]
    assert len(calls) == 6
    oracle = subprocess.run(["tshark", "-n", "-q", "-r", str(capture), "-o", "rtp.heuristic_rtp:TRUE", "-z",
                             "rtp,streams"], capture_output=True, text=True, check=True).stdout
    tshark = {}
    for line in oracle.splitlines():
        f = line.split()
        if len(f) > 8 and f[6].startswith("0x"):
            tshark[(f"{f[2]}:{f[3]}", f"{f[4]}:{f[5]}", int(f[6], 16))] = int(f[8])
    seen = {}
    for call in calls:
        announced = {s["src"] for s in call["streams"] if s["src"] != "127.0.0.1:16000"}
        assert len(announced) == 1  # one caller port per call
        assert len(call["streams"]) == 4
        for s in call["streams"]:
            assert {s["src"], s["dst"]} == announced | {"127.0.0.1:16000"}
            seen[(s["src"], s["dst"], s["ssrc"])] = s["packets"]
    assert seen == tshark
