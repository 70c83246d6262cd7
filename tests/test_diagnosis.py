"""Every SIPp scenario's failure is attributed to the cause it was made to show, with evidence."""

from __future__ import annotations

import pytest
from conftest import CAPTURES

from sipwatch.diagnosis.attribution import (
    ALG_RESIZE_MAX,
    SHORT_CALL_PATTERN,
    SHORT_CALL_S,
    diagnose,
    diagnose_capture,
)
from sipwatch.diagnosis.knowledge import Category
from sipwatch.pipeline import analyze_file


def diagnosed(name: str):
    analysis = analyze_file(str(CAPTURES / name))
    return analysis, diagnose(analysis.calls)


# Every SIPp capture in captures/, and what each of its calls (by number) is attributed to: (cause, kind of the
# principal finding), (None, None) for a healthy call. test_every_sipp_capture_is_in_the_table keeps it complete.
EXPECTED: dict[str, dict[int, tuple[Category | None, str | None]]] = {
    "answered_rtp.pcap": {1: (None, None)},
    "any_interface.pcap": {1: (None, None)},
    "auth_invite_407.pcap": {1: (None, None)},
    "blocked_607.pcap": {1: (Category.BLOCKING, "sip_607")},
    "blocked_608.pcap": {1: (Category.BLOCKING, "sip_608")},
    "busy_486.pcap": {1: (Category.USER, "sip_486")},
    "cancel_487.pcap": {1: (Category.USER, "briefly_abandoned")},
    "capacity_burst.pcap": {1: (None, None), 8: (None, None), 9: (Category.CAPACITY, "failure_burst"),
                            14: (Category.CAPACITY, "failure_burst"), 15: (Category.CAPACITY, "sip_503"),
                            24: (Category.CAPACITY, "sip_503")},
    "declined_603.pcap": {1: (Category.USER, "sip_603")},
    "early_media_183.pcap": {1: (None, None)},
    "hold.pcap": {1: (Category.NETWORK, "poor_quality")},  # SIPp restarts the RTP sequence on resume
    "identity_absent_428.pcap": {1: (Category.BLOCKING, "sip_428")},
    "identity_c_608.pcap": {1: (Category.BLOCKING, "sip_608")},
    "ipv6_call.pcap": {1: (None, None)},
    "missing_ack.pcap": {1: (Category.NAT_ALG, "missing_ack")},
    "nat_private_sdp.pcap": {1: (Category.NAT_ALG, "nat_private_address")},
    "not_found_404.pcap": {1: (Category.DIALING, "sip_404")},
    "one_way_audio.pcap": {1: (Category.NAT_ALG, "one_way_audio")},
    "register_401_200.pcap": {},  # REGISTER only: no call
    "reinvite_port_change.pcap": {1: (None, None)},
    "route_advance_503.pcap": {1: (Category.NORMAL, "route_advance"), 2: (None, None)},
    "rtp_timeout.pcap": {1: (Category.NETWORK, "rtp_timeout")},
    "short_call.pcap": {1: (None, None)},  # a lone short call is noted, not a cause
    "shared_media_port.pcap": {n: (Category.CODEC, "unexpected_payload_type") for n in range(1, 7)},
    "tcp_call.pcap": {1: (None, None)},
    "timeout_no_answer.pcap": {1: (Category.NETWORK, "timeout_no_response")},
    "unavailable_503.pcap": {1: (Category.CAPACITY, "sip_503")},
}
CALLS = {"capacity_burst.pcap": 24, "shared_media_port.pcap": 6, "route_advance_503.pcap": 2, "register_401_200.pcap": 0}


@pytest.mark.parametrize("capture", sorted(EXPECTED))
def test_cause_of_each_scenario(capture: str) -> None:
    analysis, diagnoses = diagnosed(capture)
    assert len(analysis.calls) == CALLS.get(capture, 1)
    calls = {c.number: c for c in analysis.calls}
    for number, (cause, kind) in EXPECTED[capture].items():
        diagnosis = diagnoses[calls[number].number]
        assert diagnosis.cause is cause, number
        if cause is None:
            continue
        assert diagnosis.principal.kind == kind, number
        assert diagnosis.principal.evidence and 0.0 < diagnosis.principal.confidence <= 1.0
        assert diagnosis.principal.entry.agent and diagnosis.principal.entry.admin
        assert any(e.frame for e in diagnosis.principal.evidence)


def test_every_sipp_capture_is_in_the_table() -> None:
    assert sorted(p.name for p in CAPTURES.glob("*.pcap")) == sorted(EXPECTED)


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


# --- STIR/SHAKEN ------------------------------------------------------------------------------------------


def test_608_with_attestation_c_carries_the_identity_as_evidence() -> None:
    analysis, diagnoses = diagnosed("identity_c_608.pcap")
    diagnosis = diagnoses[analysis.calls[0].number]
    kinds = [f.kind for f in diagnosis.findings]
    assert kinds == ["sip_608", "identity_attestation"]
    identity = diagnosis.findings[1]
    assert identity.category is Category.BLOCKING and not identity.entry.retry_can_help
    assert identity.data["attestation"] == "C" and identity.data["status"] == 608
    assert 0.4 <= identity.confidence < diagnosis.principal.confidence  # a likely reason, not the stated one
    passport = next(e for e in identity.evidence if e.what == "PASSporT")
    assert "attest=C" in passport.value and "orig.tn=12025550123" in passport.value and passport.frame == 1
    assert {e.what for e in identity.evidence} <= {e.what for e in diagnosis.principal.evidence}


def test_428_points_at_the_missing_identity() -> None:
    analysis, diagnoses = diagnosed("identity_absent_428.pcap")
    diagnosis = diagnoses[analysis.calls[0].number]
    identity = next(f for f in diagnosis.findings if f.kind == "identity_absent")
    assert identity.confidence >= 0.9
    assert identity.evidence[0].value == "no Identity header" and identity.evidence[0].frame == 1
    assert identity.entry.key == "finding:identity_absent" and "sip:428" in identity.entry.related


def test_blocked_without_identity_and_answered_calls_without_it() -> None:
    # 607 without any Identity header: a possible reason, said with less confidence than a 428
    analysis, diagnoses = diagnosed("blocked_607.pcap")
    absent = next(f for f in diagnoses[analysis.calls[0].number].findings if f.kind == "identity_absent")
    assert 0.4 <= absent.confidence <= 0.7
    # an answered call, or a refusal that is not about policy, gets no identity finding
    for name in ("answered_rtp.pcap", "busy_486.pcap", "not_found_404.pcap"):
        analysis, diagnoses = diagnosed(name)
        assert not [f for f in diagnoses[analysis.calls[0].number].findings if f.kind.startswith("identity")], name


def test_identity_in_the_json_call() -> None:
    from sipwatch.report.data import analysis_to_dict

    signed = analysis_to_dict(analyze_file(str(CAPTURES / "identity_c_608.pcap")))["calls"][0]["identity"]
    assert signed["state"] == "signed" and signed["attestation"] == "C" and signed["orig_tn"] == "12025550123"
    assert signed["info"] == "https://cert.example.org/sipwatch-test.pem" and signed["problems"] == []
    unsigned = analysis_to_dict(analyze_file(str(CAPTURES / "busy_486.pcap")))["calls"][0]["identity"]
    assert unsigned["state"] == "absent" and unsigned["attestation"] is None


# --- capacity ---------------------------------------------------------------------------------------------


def test_capacity_window_in_the_busiest_seconds() -> None:
    analysis = analyze_file(str(CAPTURES / "capacity_burst.pcap"))
    (window,) = diagnose_capture(analysis.calls)
    assert window.kind == "capacity_window" and window.category is Category.CAPACITY
    data = window.data
    assert data["failures"] == data["failures_total"] == 16
    assert data["by_status"] == {"486": 6, "503": 10}
    assert data["peak_cps"] >= 10 and data["quiet_peak_cps"] == 1  # 20 INVITEs within one second vs 1 per second
    assert data["peak_concurrent"] >= 5 > data["quiet_peak_concurrent"]  # the UAS's limit of 4, plus the refused
    assert data["failure_rate_elsewhere"] == 0.0 and data["failure_rate"] >= 0.5
    assert data["seconds"] <= 3
    assert window.ts <= min(c.final_ts for c in analysis.calls if c.final_status in (486, 503))
    whats = [e.what for e in window.evidence]
    assert whats[:5] == ["window", "calls per second", "concurrent calls", "failures", "failure rate"]
    assert [e.frame for e in window.evidence[5:]] and all(e.frame for e in window.evidence[5:])


def test_no_capacity_window_without_contrast() -> None:
    for name in ("busy_486.pcap", "unavailable_503.pcap", "route_advance_503.pcap", "answered_rtp.pcap"):
        assert diagnose_capture(analyze_file(str(CAPTURES / name)).calls) == [], name
    # the burst alone, without the quiet calls before it: nothing to compare the busy seconds with
    burst = [c for c in analyze_file(str(CAPTURES / "capacity_burst.pcap")).calls if c.number > 4]
    assert diagnose_capture(burst) == []


def test_steady_failures_are_no_capacity_window() -> None:
    """The PROTOS INVITE corpus: about 3700 INVITEs one per second, nearly all timing out. Failures everywhere
    at a steady rate are not a load problem."""
    from conftest import SHARED_CAPTURES

    path = SHARED_CAPTURES / "torture" / "protos-c07-sip" / "derived_protos_c07_invites.pcap.gz"
    if not path.exists():
        pytest.skip("shared captures not present")
    calls = analyze_file(str(path)).calls
    assert sum(1 for c in calls if c.timeout_kind) > 3000
    assert diagnose_capture(calls) == []


def test_rejection_burst_is_evidence_on_each_refused_call() -> None:
    analysis, diagnoses = diagnosed("capacity_burst.pcap")
    refused = [c for c in analysis.calls if c.final_status in (486, 503)]
    assert len(refused) == 16
    for call in refused:
        diagnosis = diagnoses[call.number]
        burst = next(f for f in diagnosis.findings if f.kind == "failure_burst")
        assert burst.data["calls"] == 16 and burst.data["by_status"] == {"486": 6, "503": 10}
        status = diagnosis.findings[0]
        assert status.kind == f"sip_{call.final_status}"
        assert any(e.what == "rejection burst" and "16 calls" in e.value for e in status.evidence)
    # without the burst around it, the same 486 is one busy person
    lone = next(c for c in refused if c.final_status == 486)
    assert diagnose([lone])[lone.number].cause is Category.USER


def test_the_json_keeps_capture_loss_and_adds_the_capacity_window() -> None:
    from sipwatch.report.data import analysis_to_dict

    data = analysis_to_dict(analyze_file(str(CAPTURES / "capacity_burst.pcap")))
    (window,) = data["findings"]
    assert window["kind"] == "capacity_window" and window["category"] == "capacity"
    assert window["retry_can_help"] and window["advice"]["admin"] and window["evidence"][0]["at"]
    assert {c["cause"] for c in data["calls"]} == {None, "capacity"}


# --- short calls ------------------------------------------------------------------------------------------


def test_short_call_is_noted_not_blamed() -> None:
    analysis, diagnoses = diagnosed("short_call.pcap")
    diagnosis = diagnoses[analysis.calls[0].number]
    (short,) = diagnosis.findings
    assert short.kind == "short_call" and short.category is Category.BLOCKING
    assert short.data["bye_by"] == "callee" and short.data["duration_s"] < SHORT_CALL_S
    assert short.data["pattern"] is False and short.confidence < 0.5
    assert [e.what for e in short.evidence] == ["answered", "BYE", "RTP"]
    assert all(e.frame for e in short.evidence[:2])
    assert diagnosis.cause is None


def test_many_short_calls_from_one_caller_are_a_pattern() -> None:
    calls = [analyze_file(str(CAPTURES / "short_call.pcap")).calls[0] for _ in range(SHORT_CALL_PATTERN)]
    for number, call in enumerate(calls, 1):
        call.number = number
    diagnoses = diagnose(calls)
    for call in calls:
        diagnosis = diagnoses[call.number]
        assert diagnosis.cause is Category.BLOCKING and diagnosis.principal.kind == "short_call"
        assert diagnosis.principal.data["pattern"] and diagnosis.principal.confidence > 0.5
    assert diagnose(calls[:-1])[1].cause is None  # one fewer is no pattern
    # the same short calls among many long ones from that caller: a busy agent, not a robocaller
    long = [analyze_file(str(CAPTURES / "rtp_timeout.pcap")).calls[0] for _ in range(SHORT_CALL_PATTERN + 1)]
    for number, call in enumerate(long, len(calls) + 1):
        call.number, call.from_user = number, calls[0].from_user
    assert all(d.cause is None for n, d in diagnose(calls + long).items() if n <= len(calls))


def test_long_calls_are_not_short() -> None:
    analysis, diagnoses = diagnosed("rtp_timeout.pcap")
    assert analysis.calls[0].duration_s > SHORT_CALL_S
    assert not [f for f in diagnoses[analysis.calls[0].number].findings if f.kind == "short_call"]


# --- NAT / ALG --------------------------------------------------------------------------------------------


def test_missing_ack_names_retransmissions_and_the_bye() -> None:
    analysis, diagnoses = diagnosed("missing_ack.pcap")
    call = analysis.calls[0]
    finding = diagnoses[call.number].principal
    assert finding.kind == "missing_ack" and finding.data["retransmissions"] == 10
    assert 32.0 <= finding.data["bye_after_s"] <= 40.0
    bye = next(e for e in finding.evidence if e.what == "BYE")
    assert bye.frame == call.bye_frame and bye.ts == call.bye_ts and "from the callee" in bye.value
    assert any("10 retransmissions" in (e.value or "") for e in finding.evidence)
    assert "10 retransmissions" in finding.detail and "tore the call down" in finding.detail


def alg_capture(tmp_path):
    """A call through a SIP ALG, crafted: the phone (10.0.0.5) sits behind NAT (203.0.113.7). The ALG rewrote
    the Contact but not the Via, and the SDP c= (3 bytes longer) but neither o= nor Content-Length; the callee's
    200 OK is retransmitted with another Contact, and its Via says the INVITE arrived from 203.0.113.7:40000."""
    from crafted import CRLF, eth, udp_packet, write_pcap

    phone, public, callee = "10.0.0.5", "203.0.113.7", "198.51.100.9"
    original = sdp_lines(phone)
    rewritten = original.replace(f"c=IN IP4 {phone}", f"c=IN IP4 {public}")
    via = f"Via: SIP/2.0/UDP {phone}:5060;branch=z9hG4bKalg1;rport"
    common = [
        f"From: <sip:12025550123@{public}>;tag=a1", "To: <sip:12025550199@example.com>",
        "Call-ID: alg-1@example.com", "CSeq: 1 INVITE",
    ]
    invite = CRLF.join(["INVITE sip:12025550199@example.com SIP/2.0", via, *common,
                        f"Contact: <sip:12025550123@{public}:40000>", "Content-Type: application/sdp",
                        f"Content-Length: {len(original)}", "", rewritten])
    answered = [f"Via: SIP/2.0/UDP {phone}:5060;branch=z9hG4bKalg1;received={public};rport=40000",
                *common[:1], common[1] + ";tag=b2", *common[2:]]
    answer = sdp_lines(callee)

    def ok(contact: str) -> str:
        return CRLF.join(["SIP/2.0 200 OK", *answered, f"Contact: <sip:bob@{contact}:5060>",
                          "Content-Type: application/sdp", f"Content-Length: {len(answer)}", "", answer])

    ack = CRLF.join([f"ACK sip:bob@{callee}:5060 SIP/2.0", via.replace("alg1", "alg2"), common[0],
                     common[1] + ";tag=b2", common[2], "CSeq: 1 ACK", "Content-Length: 0", "", ""])
    frames = [
        (public, 40000, callee, 5060, invite),
        (callee, 5060, public, 40000, ok(callee)),
        (callee, 5060, public, 40000, ok("10.1.1.9")),  # the retransmission, rewritten differently
        (public, 40000, callee, 5060, ack),
    ]
    path = tmp_path / "alg.pcap"
    write_pcap(path, [eth(udp_packet(s, sp, d, dp, text.encode(), ident=n)) for n, (s, sp, d, dp, text) in
                      enumerate(frames, 1)])
    return path


def sdp_lines(ip: str) -> str:
    from crafted import CRLF

    return CRLF.join(["v=0", f"o=- 1 1 IN IP4 {ip}", "s=-", f"c=IN IP4 {ip}", "t=0 0", "m=audio 4000 RTP/AVP 0",
                      "a=sendrecv", ""])


def test_alg_fingerprints(tmp_path) -> None:
    analysis = analyze_file(str(alg_capture(tmp_path)))
    (call,) = analysis.calls
    diagnosis = diagnose(analysis.calls)[call.number]
    alg = next(f for f in diagnosis.findings if f.kind == "sip_alg_rewrite")
    assert alg.category is Category.NAT_ALG
    assert alg.data["fingerprints"] == ["body_length", "contact_changed", "contact_rewritten", "sdp_origin"]
    values = {e.what: e.value for e in alg.evidence}
    assert values["Content-Length of the caller (INVITE)"] == "body 3 bytes longer than Content-Length"
    assert values["Contact and Via of the caller (INVITE)"] == "Contact 203.0.113.7 but Via sent-by 10.0.0.5"
    assert values["Contact of the callee (200 OK) retransmission"] == "10.1.1.9, first copy said 198.51.100.9"
    assert values["SDP o= and c= of the caller (INVITE)"].startswith("o=10.0.0.5 c=203.0.113.7")
    assert {e.frame for e in alg.evidence} == {1, 3}
    assert alg.confidence == 0.9
    nat = next(f for f in diagnosis.findings if f.kind == "nat_private_address")
    nat_values = {e.what: e.value for e in nat.evidence}
    assert nat_values["Via sent-by of the caller (INVITE)"] == "10.0.0.5, packets from 203.0.113.7"
    assert nat_values["Via received (200 OK)"] == "203.0.113.7 (sent-by 10.0.0.5)"
    assert nat_values["Via rport (200 OK)"] == "40000 (sent-by port 5060)"
    assert diagnosis.cause is Category.NAT_ALG


def test_no_alg_fingerprints_on_clean_calls() -> None:
    for name in ("answered_rtp.pcap", "nat_private_sdp.pcap", "missing_ack.pcap", "tcp_call.pcap"):
        analysis, diagnoses = diagnosed(name)
        assert not [f for f in diagnoses[analysis.calls[0].number].findings if f.kind == "sip_alg_rewrite"], name


def refused_capture(tmp_path, code: int, phrase: str, identity: str | None, from_user: str = "12025550123"):
    """A crafted refused call (INVITE, 100, CODE, ACK) whose INVITE carries `identity` (a whole header value)."""
    from crafted import CRLF, T0_NS, eth, udp_packet, write_pcap

    caller, callee = "192.0.2.10", "198.51.100.20"
    common = [f"From: <sip:{from_user}@{caller}>;tag=c1", "To: <sip:12025550199@example.com>",
              "Call-ID: signed-1@example.com"]
    via = f"Via: SIP/2.0/UDP {caller}:5060;branch=z9hG4bKsig1"
    invite = CRLF.join(["INVITE sip:12025550199@example.com SIP/2.0", via, *common, "CSeq: 1 INVITE",
                        f"Contact: <sip:{from_user}@{caller}:5060>",
                        *([f"Identity: {identity}"] if identity else []), "Content-Length: 0", "", ""])
    trying = CRLF.join(["SIP/2.0 100 Trying", via, *common, "CSeq: 1 INVITE", "Content-Length: 0", "", ""])
    final = CRLF.join([f"SIP/2.0 {code} {phrase}", via, common[0], common[1] + ";tag=u1", common[2],
                       "CSeq: 1 INVITE", "Content-Length: 0", "", ""])
    ack = CRLF.join(["ACK sip:12025550199@example.com SIP/2.0", via, common[0], common[1] + ";tag=u1", common[2],
                     "CSeq: 1 ACK", "Content-Length: 0", "", ""])
    frames = [(caller, callee, invite), (callee, caller, trying), (callee, caller, final), (caller, callee, ack)]
    path = tmp_path / f"refused_{code}.pcap"
    write_pcap(path, [eth(udp_packet(s, 5060, d, 5060, text.encode(), ident=n)) for n, (s, d, text) in
                      enumerate(frames, 1)])
    return path, T0_NS / 1e9  # the INVITE's capture time


def identity_finding(path):
    analysis = analyze_file(str(path))
    (call,) = analysis.calls
    diagnosis = diagnose(analysis.calls)[call.number]
    return diagnosis, [f for f in diagnosis.findings if f.kind.startswith("identity")]


def test_438_with_a_number_and_date_that_do_not_match(tmp_path) -> None:
    from test_identity import INFO, claims, token

    stale = 1_700_000_000 - 3600
    path, _ = refused_capture(tmp_path, 438, "Invalid Identity Header",
                              f"{token(claims('A', orig='12025550999', iat=stale))};info={INFO};ppt=shaken")
    diagnosis, (finding,) = identity_finding(path)
    assert diagnosis.principal.kind == "sip_438" and diagnosis.cause is Category.BLOCKING
    assert finding.kind == "identity_invalid" and finding.confidence == 0.9
    values = {e.what: e.value for e in finding.evidence}
    assert values["signed number vs From"] == "orig.tn 12025550999, From user 12025550123"
    assert values["iat vs capture time"] == "-3600 s"
    assert finding.data["problems"] == ["orig_mismatch", "iat_skew"]


def test_436_with_a_clean_full_attestation_names_what_sipwatch_cannot_check(tmp_path) -> None:
    from test_identity import INFO, claims, token

    path, _ = refused_capture(tmp_path, 436, "Bad Identity Info",
                               f"{token(claims('A', iat=1_700_000_000))};info={INFO};ppt=shaken")
    diagnosis, (finding,) = identity_finding(path)
    assert finding.kind == "identity_invalid" and "does not verify signatures" in finding.detail
    assert any(e.what == "certificate (info)" and e.value == "https://cert.example.org/passport.pem"
               for e in diagnosis.principal.evidence)


def test_full_attestation_is_not_blamed_for_a_608(tmp_path) -> None:
    from test_identity import INFO, claims, token

    path, _ = refused_capture(tmp_path, 608, "Rejected", f"{token(claims('A'))};info={INFO};ppt=shaken")
    diagnosis, found = identity_finding(path)
    assert found == [] and diagnosis.principal.kind == "sip_608"


def test_603_with_attestation_b_is_a_weak_hint(tmp_path) -> None:
    from test_identity import INFO, claims, token

    path, _ = refused_capture(tmp_path, 603, "Decline", f"{token(claims('B'))};info={INFO};ppt=shaken")
    diagnosis, (finding,) = identity_finding(path)
    assert finding.kind == "identity_attestation" and finding.confidence < 0.5
    assert "partial (B)" in finding.detail and diagnosis.cause is Category.USER  # 603 stays a decline


def test_unreadable_identity_on_a_403(tmp_path) -> None:
    path, _ = refused_capture(tmp_path, 403, "Forbidden", "not-a-passport;info=<https://x.example/c.pem>")
    diagnosis, (finding,) = identity_finding(path)
    assert finding.kind == "identity_invalid" and finding.data["state"] == "malformed"
    assert finding.evidence[0].value.startswith("unreadable Identity header")


@pytest.mark.parametrize("name", ["heplify/erspan_sip_ipv4_udp.pcapng", "sngrep/ipv6frag.pcap"])
def test_hold_and_bracketed_ipv6_origins_are_not_alg_fingerprints(name: str) -> None:
    """c=0.0.0.0 is a hold, not a rewrite; o= with [v6] brackets names the same address as c= without them."""
    from conftest import SHARED_CAPTURES

    path = SHARED_CAPTURES / name
    if not path.exists():
        pytest.skip("shared captures not present")
    calls = analyze_file(str(path)).calls
    assert calls
    assert any(r.connections[0] == "0.0.0.0" or (r.origin_address or "").startswith("[")
               for c in calls for r in c.sdp)
    diagnoses = diagnose(calls)
    assert not [f for d in diagnoses.values() for f in d.findings if f.kind == "sip_alg_rewrite"]


def test_a_body_far_longer_than_its_content_length_is_not_an_alg() -> None:
    """suricata-verify's sdp.pcap declares Content-Lengths 146 and 202 bytes short of the bodies: no ALG resizes so much."""
    from conftest import SHARED_CAPTURES

    path = SHARED_CAPTURES / "suricata-verify" / "sip-sdp__sdp.pcap"
    if not path.exists():
        pytest.skip("shared captures not present")
    calls = analyze_file(str(path)).calls
    assert sorted(r.body_excess for c in calls for r in c.addresses if r.body_excess) == [146, 202]
    assert ALG_RESIZE_MAX < 146
    assert not [f for d in diagnose(calls).values() for f in d.findings if f.kind == "sip_alg_rewrite"]
