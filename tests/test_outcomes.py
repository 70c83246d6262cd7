"""Call outcomes on real SIPp traffic (captures/, recorded by captures/make_captures.sh).

Each capture is one scenario with a known answer: what the call's outcome must be, its final status, and the
figures that describe it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CAPTURES

from sipwatch.core.result import Analysis
from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file


def analyze(name: str) -> Analysis:
    path = CAPTURES / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `make captures`")
    return analyze_file(str(path))


def only_call(analysis: Analysis):
    assert len(analysis.calls) == 1, [c.call_id for c in analysis.calls]
    return analysis.calls[0]


@pytest.mark.parametrize(
    ("capture", "outcome", "final_status"),
    [
        ("answered_rtp.pcap", Outcome.ANSWERED, 200),
        ("busy_486.pcap", Outcome.BUSY, 486),
        ("declined_603.pcap", Outcome.DECLINED, 603),
        ("unavailable_503.pcap", Outcome.CAPACITY, 503),
        ("not_found_404.pcap", Outcome.NOT_FOUND, 404),
        ("cancel_487.pcap", Outcome.CANCELLED, 487),
        ("blocked_607.pcap", Outcome.BLOCKED, 607),
        ("blocked_608.pcap", Outcome.BLOCKED, 608),
        ("tcp_call.pcap", Outcome.ANSWERED, 200),
        ("ipv6_call.pcap", Outcome.ANSWERED, 200),
        ("any_interface.pcap", Outcome.ANSWERED, 200),
        ("auth_invite_407.pcap", Outcome.ANSWERED, 200),
        ("short_call.pcap", Outcome.ANSWERED, 200),
        ("one_way_audio.pcap", Outcome.ANSWERED, 200),
    ],
)
def test_single_call_outcome(capture: str, outcome: Outcome, final_status: int) -> None:
    analysis = analyze(capture)
    call = only_call(analysis)
    assert call.outcome == outcome
    assert call.final_status == final_status
    assert not call.partial
    assert call.invite_ts is not None and call.caller and call.callee
    assert not [p for p in analysis.problems.kept if p.severity == "error"]


def test_answered_call_timeline() -> None:
    call = only_call(analyze("answered_rtp.pcap"))
    assert call.ringing_status == 180
    assert 0 <= call.pdd_ms <= call.setup_ms
    assert call.ack_ts is not None and call.bye_ts is not None
    assert call.bye_by in ("caller", "callee")
    assert call.duration_s > 1.0
    assert call.messages >= 7


def test_503_carries_retry_after() -> None:
    call = only_call(analyze("unavailable_503.pcap"))
    assert call.retry_after == 30


def test_cancel_is_the_callers() -> None:
    call = only_call(analyze("cancel_487.pcap"))
    assert call.cancel_ts is not None
    assert call.ringing_ts is not None and call.ringing_ts < call.cancel_ts
    assert call.answer_ts is None


def test_invite_without_any_answer_times_out() -> None:
    analysis = analyze("timeout_no_answer.pcap")
    call = only_call(analysis)
    assert call.outcome == Outcome.TIMEOUT
    assert call.timeout_kind == "no_response"
    assert call.final_status is None
    assert call.retransmissions >= 5  # Timer A doubled the INVITE
    assert analysis.stats.retransmissions >= 5


def test_auth_challenge_then_success_is_not_a_failure() -> None:
    call = only_call(analyze("auth_invite_407.pcap"))
    assert call.auth_challenges == 1
    assert call.attempts == 2
    assert call.outcome == Outcome.ANSWERED


def test_register_challenge_then_ok_is_counted_as_transactions() -> None:
    analysis = analyze("register_401_200.pcap")
    assert analysis.calls == []
    register = analysis.stats.transactions["REGISTER"]
    assert register[401] == 1 and register[200] == 1
    assert analysis.stats.requests["REGISTER"] == 2


def test_tcp_and_ipv6_transport() -> None:
    assert only_call(analyze("tcp_call.pcap")).transport == "tcp"
    call = only_call(analyze("ipv6_call.pcap"))
    assert call.caller.startswith("[::1]:")


def test_any_interface_capture_is_linux_cooked() -> None:
    analysis = analyze("any_interface.pcap")
    assert analysis.capture.linktypes[0] in (113, 276)


def test_route_advance_two_calls() -> None:
    analysis = analyze("route_advance_503.pcap")
    assert [c.outcome for c in analysis.calls] == [Outcome.CAPACITY, Outcome.ANSWERED]
    first, second = analysis.calls
    assert first.to_user == second.to_user and first.from_user == second.from_user
    assert 0 <= second.invite_ts - first.final_ts < 1.0


def test_missing_ack_is_seen() -> None:
    call = only_call(analyze("missing_ack.pcap"))
    assert call.answer_ts is not None
    assert call.ack_ts is None
    assert call.retransmissions >= 5  # the 2xx retransmitted by the UAS


def test_every_bundled_capture_is_documented() -> None:
    readme = (CAPTURES / "README.md").read_text()
    for path in sorted(Path(CAPTURES).glob("*.pcap")):
        assert path.name in readme, f"{path.name} is not described in captures/README.md"


def test_answered_call_has_both_streams_and_no_findings() -> None:
    call = only_call(analyze("answered_rtp.pcap"))
    assert sorted(s.direction for s in call.streams) == ["callee->caller", "caller->callee"]
    for stream in call.streams:
        assert stream.stats.packets > 90 and stream.stats.lost == 0
        assert stream.codec == "PCMA"
    assert call.findings == []


def test_one_way_audio_names_the_silent_side() -> None:
    call = only_call(analyze("one_way_audio.pcap"))
    assert [s.direction for s in call.streams] == ["caller->callee"]
    (finding,) = [f for f in call.findings if f.kind == "one_way_audio"]
    assert finding.data["silent_side"] == "callee"
    assert finding.data["packets"]["callee->caller"] == 0


def test_rtp_under_linux_cooked_header() -> None:
    call = only_call(analyze("any_interface.pcap"))
    assert len(call.streams) == 2 and all(s.stats.packets > 50 for s in call.streams)


def test_missing_ack_finding_has_the_evidence() -> None:
    call = only_call(analyze("missing_ack.pcap"))
    (finding,) = [f for f in call.findings if f.kind == "missing_ack"]
    assert finding.data["retransmissions"] >= 5
    assert 30 <= finding.data["bye_after_s"] <= 40  # the UAS gave up after 64*T1
    assert finding.evidence[0].frame == call.answer_frame


def test_timeout_finding_names_its_variant() -> None:
    call = only_call(analyze("timeout_no_answer.pcap"))
    (finding,) = [f for f in call.findings if f.kind.startswith("timeout_")]
    assert finding.kind == "timeout_no_response"
    assert finding.data["invites"] == call.retransmissions + 1
