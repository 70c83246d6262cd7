"""Every SIPp scenario's failure is attributed to the cause it was made to show, with evidence."""

from __future__ import annotations

import pytest
from conftest import CAPTURES

from sipwatch.diagnosis.attribution import diagnose
from sipwatch.diagnosis.knowledge import Category
from sipwatch.pipeline import analyze_file


def diagnosed(name: str):
    analysis = analyze_file(str(CAPTURES / name))
    return analysis, diagnose(analysis.calls)


@pytest.mark.parametrize(
    ("capture", "cause", "kind"),
    [
        ("nat_private_sdp.pcap", Category.NAT_ALG, "nat_private_address"),
        ("missing_ack.pcap", Category.NAT_ALG, "missing_ack"),
        ("one_way_audio.pcap", Category.NAT_ALG, "one_way_audio"),
        ("blocked_607.pcap", Category.BLOCKING, "sip_607"),
        ("blocked_608.pcap", Category.BLOCKING, "sip_608"),
        ("busy_486.pcap", Category.USER, "sip_486"),
        ("declined_603.pcap", Category.USER, "sip_603"),
        ("not_found_404.pcap", Category.DIALING, "sip_404"),
        ("unavailable_503.pcap", Category.CAPACITY, "sip_503"),
        ("cancel_487.pcap", Category.USER, "briefly_abandoned"),
        ("timeout_no_answer.pcap", Category.NETWORK, "timeout_no_response"),
    ],
)
def test_cause_of_each_scenario(capture: str, cause: Category, kind: str) -> None:
    analysis, diagnoses = diagnosed(capture)
    (call,) = analysis.calls
    diagnosis = diagnoses[call.number]
    assert diagnosis.cause is cause
    assert diagnosis.principal.kind == kind
    assert diagnosis.principal.evidence and 0.0 < diagnosis.principal.confidence <= 1.0
    assert diagnosis.principal.entry.agent and diagnosis.principal.entry.admin


def test_nat_evidence_names_the_private_address_and_the_real_source() -> None:
    analysis, diagnoses = diagnosed("nat_private_sdp.pcap")
    nat = diagnoses[analysis.calls[0].number].principal
    values = " ".join(e.value or "" for e in nat.evidence)
    assert "192.168.1.23" in values and "127.0.0.1" in values
    assert {e.frame for e in nat.evidence} >= {1}  # the INVITE
    assert nat.data["sides"] == ["caller"]


def test_route_advance_is_not_a_failure() -> None:
    analysis, diagnoses = diagnosed("route_advance_503.pcap")
    first, second = analysis.calls
    assert diagnoses[first.number].cause is Category.NORMAL
    assert diagnoses[first.number].principal.kind == "route_advance"
    assert diagnoses[first.number].principal.data["next_call_id"] == second.call_id
    assert diagnoses[second.number].cause is None  # answered, healthy


def test_healthy_calls_have_no_cause() -> None:
    for name in ("answered_rtp.pcap", "tcp_call.pcap", "auth_invite_407.pcap", "early_media_183.pcap"):
        analysis, diagnoses = diagnosed(name)
        assert [diagnoses[c.number].cause for c in analysis.calls] == [None], name


def test_q850_cause_is_the_principal_when_given() -> None:
    from conftest import SHARED_CAPTURES

    path = SHARED_CAPTURES / "sngrep" / "aaa.pcap"
    if not path.exists():
        pytest.skip("shared captures not present")
    analysis = analyze_file(str(path))
    diagnoses = diagnose(analysis.calls)
    call = next(c for c in analysis.calls if c.final_status == 480)
    principal = diagnoses[call.number].principal
    assert principal.entry.key == "q850:21" and principal.data == {"status": 480, "q850": 21}


def test_a_reused_call_id_is_two_calls_with_their_own_causes() -> None:
    """sngrep's aaa.pcap reuses a Call-ID: a 407 never answered, then, 34 s later, a 403."""
    from conftest import SHARED_CAPTURES

    path = SHARED_CAPTURES / "sngrep" / "aaa.pcap"
    if not path.exists():
        pytest.skip("shared captures not present")
    analysis = analyze_file(str(path))
    diagnoses = diagnose(analysis.calls)
    same = [c for c in analysis.calls if c.call_id == "85216695-42dcdb1d@192.168.1.2"]
    assert [c.final_status for c in same] == [407, 403]
    assert [diagnoses[c.number].cause for c in same] == [Category.AUTH, Category.BLOCKING]
    assert len({c.number for c in analysis.calls}) == len(analysis.calls)
