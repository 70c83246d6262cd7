"""STIR/SHAKEN: the Identity header (RFC 8224) and its PASSporT (RFC 8225/8588), read from real and crafted values."""

from __future__ import annotations

import base64
import json

import pytest
from conftest import CAPTURES

from sipwatch.pipeline import analyze_file
from sipwatch.sip.identity import (
    IAT_SKEW_S,
    IdentityHeader,
    IdentityParseError,
    canonical_tn,
    check_identity,
)
from sipwatch.sip.message import SipMessage

INFO = "<https://cert.example.org/passport.pem>"


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def token(claims: dict | None, header: dict | None = None) -> str:
    """A JWS in compact serialization; claims None gives the PASSporT compact form (empty payload)."""
    header = header or {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": "https://cert.example.org/x.pem"}
    payload = "" if claims is None else b64(json.dumps(claims).encode())
    return f"{b64(json.dumps(header).encode())}.{payload}.{b64(bytes(range(64)))}"


def claims(attest: str = "A", orig: str = "12025550123", iat: int = 1_700_000_000) -> dict:
    return {"attest": attest, "dest": {"tn": ["12025550199"]}, "iat": iat, "orig": {"tn": orig},
            "origid": "123e4567-e89b-12d3-a456-426655440000"}


def signed_invite():
    analysis = analyze_file(str(CAPTURES / "identity_c_608.pcap"))
    (call,) = analysis.calls
    return call


# --- the header -----------------------------------------------------------------------------------------


def test_full_form_from_the_capture() -> None:
    call = signed_invite()
    (line,) = call.addresses[0].identity
    header = IdentityHeader.parse(line)
    assert header.form == "full"
    assert header.info == "https://cert.example.org/sipwatch-test.pem"
    assert (header.alg, header.ppt) == ("ES256", "shaken")
    passport = header.passport
    assert passport.attest == "C"
    assert passport.orig_tn == "12025550123" and passport.dest_tn == ("12025550199",)
    assert passport.x5u == "https://cert.example.org/sipwatch-test.pem"
    assert abs(passport.iat - call.invite_ts) < 5  # made by the capture script at capture time
    assert len(passport.origid) == 36


def test_full_form_parameters_in_any_order_and_folded_token() -> None:
    value = token(claims("B"))
    folded = value[:40] + "\r\n " + value[40:]
    header = IdentityHeader.parse(f"{folded};ppt=shaken ; alg=ES256;info={INFO}")
    assert header.passport.attest == "B"
    assert header.info == "https://cert.example.org/passport.pem"


def test_compact_form_carries_no_claims() -> None:
    header = IdentityHeader.parse(f"{token(None)};info={INFO};alg=ES256;ppt=shaken")
    assert header.form == "compact" and header.passport is None
    status = check_identity([f"{token(None)};info={INFO};alg=ES256;ppt=shaken"], "12025550123", 1.0)
    assert status.state == "signed" and status.attestation is None and status.weak


@pytest.mark.parametrize(("value", "message"), [
    ("abc.def", "2 segment"),
    ("r5mwreLuyDRYBi0TiPwEsY3rEVsk", "RFC 4474"),
    (".e30.c2ln", "empty header or signature"),
    ("e30.e30.", "empty header or signature"),
    ("e30.!!!.c2ln", "payload is not base64url"),
    (f"{b64(b'not json')}.e30.c2ln", "header is not JSON"),
    (f"e30.{b64(b'[1, 2]')}.c2ln", "payload is not a JSON object"),
])
def test_unreadable_values_say_why(value: str, message: str) -> None:
    with pytest.raises(IdentityParseError, match=message):
        IdentityHeader.parse(f"{value};info={INFO}")


def test_rfc4475_identity_is_the_obsolete_rfc4474_form() -> None:
    from test_sip_message import parse

    msg = parse("rfc4475_mpart01.bin")
    status = check_identity(msg.headers["identity"], msg.from_.user, None, 1)
    assert status.state == "malformed" and "RFC 4474" in status.error
    assert status.describe().startswith("unreadable Identity header")


def test_compact_header_name_y() -> None:
    value = f"{token(claims())};info={INFO};alg=ES256;ppt=shaken"
    raw = (
        "INVITE sip:12025550199@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        "f: <sip:12025550123@example.com>;tag=1\r\nt: <sip:12025550199@example.com>\r\ni: abc\r\n"
        f"CSeq: 1 INVITE\r\ny: {value}\r\nl: 0\r\n\r\n"
    ).encode()
    msg = SipMessage.parse(raw)
    status = check_identity(msg.headers["identity"], msg.from_.user, 1_700_000_010.0, 1)
    assert status.state == "signed" and status.attestation == "A" and not status.problems
    assert not status.weak


# --- the checks ----------------------------------------------------------------------------------------


def test_absent() -> None:
    status = check_identity((), "12025550123", 5.0, 7)
    assert (status.state, status.frame, status.ts) == ("absent", 7, 5.0)
    assert status.weak and status.describe() == "no Identity header"


def test_orig_compared_with_the_from_user_after_canonicalisation() -> None:
    line = f"{token(claims(orig='12025550123'))};info={INFO}"
    assert check_identity([line], "+1-202-555-0123", 1_700_000_000.0).problems == ()
    mismatch = check_identity([line], "12025550999", 1_700_000_000.0)
    assert mismatch.problems == ("orig_mismatch",) and mismatch.weak
    assert check_identity([line], "alice", 1_700_000_000.0).problems == ("orig_mismatch",)


def test_iat_far_from_the_capture_time() -> None:
    line = f"{token(claims(iat=1_700_000_000))};info={INFO}"
    fresh = check_identity([line], "12025550123", 1_700_000_000.0 + IAT_SKEW_S)
    assert fresh.problems == () and fresh.iat_offset_s == -IAT_SKEW_S
    stale = check_identity([line], "12025550123", 1_700_000_000.0 + IAT_SKEW_S + 1)
    assert stale.problems == ("iat_skew",)
    assert stale.to_dict()["iat_offset_s"] == -(IAT_SKEW_S + 1)


def test_no_info_and_no_attestation() -> None:
    body = claims()
    del body["attest"]
    status = check_identity([f"{token(body)};ppt=shaken"], "12025550123", 1_700_000_000.0)
    assert status.problems == ("no_info", "no_attestation")


def test_the_shaken_header_is_the_one_judged() -> None:
    div = token(claims("A"), {"alg": "ES256", "ppt": "div", "typ": "passport"})
    shaken = token(claims("C"))
    status = check_identity([f"{div};info={INFO};ppt=div", f"{shaken};info={INFO};ppt=shaken"], "12025550123",
                            1_700_000_000.0)
    assert status.headers == 2 and status.attestation == "C" and status.ppt == "shaken"


def test_one_bad_header_beside_a_good_one() -> None:
    status = check_identity(["garbage;info=<https://x>", f"{token(claims('B'))};info={INFO}"], "12025550123",
                            1_700_000_000.0)
    assert status.state == "signed" and status.attestation == "B" and "segment" in status.error


@pytest.mark.parametrize(("number", "canonical"), [
    ("+1 (202) 555-0123", "12025550123"), ("12025550123;npdi", "12025550123"), ("sipp", None), (None, None),
    ("", None),
])
def test_canonical_tn(number: str | None, canonical: str | None) -> None:
    assert canonical_tn(number) == canonical


def test_the_call_records_what_its_invite_carried() -> None:
    status = signed_invite().identity
    assert status.state == "signed" and status.attestation == "C" and status.frame == 1
    assert status.problems == ()  # orig matches the From user; iat is the capture's time
    as_json = status.to_dict()
    assert as_json["attestation"] == "C" and as_json["dest_tn"] == ["12025550199"] and as_json["frame"] == 1
    unsigned = analyze_file(str(CAPTURES / "identity_absent_428.pcap")).calls[0].identity
    assert unsigned.state == "absent" and unsigned.frame == 1
