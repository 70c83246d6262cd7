"""RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests): every message, byte for byte.

What the RFCs call valid must parse, with the fields they discuss read right. What they call invalid must be
recorded, never raised: a parse problem when the message is unusable, or a warning naming the exact anomaly
when sipwatch can still follow the call (an analyzer reads what a strict proxy would refuse). Then the whole
corpus goes through the pipeline as UDP datagrams of a scapy-crafted capture, and through the CLI.
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_CAPTURES
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file
from sipwatch.sip.message import SipMessage, SipParseError, starts_like_sip

FIXTURES = Path(__file__).parent / "fixtures"
RFC4475 = FIXTURES / "rfc4475"
RFC5118 = FIXTURES / "rfc5118"


def _classes(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "CLASSIFICATION.tsv", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


CLASSES_4475 = _classes(RFC4475)
CLASSES_5118 = _classes(RFC5118)


def rfc4475(name: str) -> bytes:
    return (RFC4475 / f"{name}.dat").read_bytes()


def rfc5118(name: str) -> bytes:
    """The archived message as wire bytes: the archive uses bare LF (its README), SIP uses CRLF."""
    return (RFC5118 / name).read_bytes().replace(b"\n", b"\r\n")


def group(name: str) -> str:
    return CLASSES_4475[f"{name}.dat"]["rfc_group"].split()[0]


NAMES_4475 = sorted(p.stem for p in RFC4475.glob("*.dat"))
NAMES_5118 = sorted(CLASSES_5118)


# --- the fixtures are the RFCs' archives ---------------------------------------------------------------------


def test_fixtures_are_the_rfc_archive(shared_captures: Path) -> None:
    assert len(NAMES_4475) == 50 and len(NAMES_5118) == 12
    for name in NAMES_4475:
        ours = hashlib.sha256(rfc4475(name)).hexdigest()
        for copy in ("codewandler-sipx", "resiprocate"):  # two independent recoveries of the archive
            theirs = (SHARED_CAPTURES / "torture" / "rfc4475" / copy / f"{name}.dat").read_bytes()
            assert hashlib.sha256(theirs).hexdigest() == ours, (name, copy)
    for name in NAMES_5118:
        theirs = (SHARED_CAPTURES / "torture" / "rfc5118" / "codewandler-sipx" / name).read_bytes()
        assert (RFC5118 / name).read_bytes() == theirs, name


def test_fixtures_keep_the_bytes_that_matter() -> None:
    assert b"%00" in rfc4475("escnull")
    assert rfc4475("trws").split(b"\r\n", 1)[0].endswith(b"SIP/2.0  ")  # §3.1.2.10's trailing SPs
    assert "大停電".encode() in rfc4475("intmeth")
    assert b"\r\n\r\n" not in rfc4475("baddn")  # the only one without a blank line
    assert b"\r" not in (RFC5118 / "ipv6-good").read_bytes()


# --- RFC 4475 §3.1.1: valid messages parse, and their hard parts are read right ----------------------------------


@pytest.mark.parametrize("name", [n for n in NAMES_4475 if group(n) in ("VALID", "TRANSACTION-LAYER", "BACKWARD-COMPAT")])
def test_valid_messages_parse_without_warnings(name: str) -> None:
    message = SipMessage.parse(rfc4475(name))
    assert message.warnings == []
    assert message.call_id and message.from_ is not None and message.to is not None


def test_wsinv_short_tortuous_invite() -> None:
    msg = SipMessage.parse(rfc4475("wsinv"))  # §3.1.1.1
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (msg.method, msg.uri) == ("INVITE", "sip:vivekg@chair-dnrc.example.com;unknownparam")
    assert (msg.cseq, msg.cseq_method) == (9, "INVITE")  # "cseq: 0009\r\n  INVITE", folded
    assert msg.max_forwards == 68  # "MaX-fOrWaRdS: 0068"
    assert msg.content_length == 150 and len(msg.body) == 150  # "Content-Length   : 150"
    assert msg.to.tag == "1918181833n"  # "tag    = 1918181833n"
    assert msg.from_.tag == "98asjd8"  # on a continuation line
    assert msg.from_.display == 'J Rosenberg \\"'  # quoted-pairs undone: J Rosenberg \"
    # "Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2" and two more in the compact "v:" with LWS everywhere
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": "", "q": "0.33"}
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.header("subject") == ""  # "s :" with nothing after it
    assert [m.port for m in msg.sdp.media] == [49217, 3227]


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = SipMessage.parse(rfc4475("intmeth"))  # §3.1.1.2
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~".upper()
    assert msg.cseq_method == msg.method
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs of control characters, undone
    assert msg.to.uri.raw == "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"


def test_esc01_percent_escapes_stay_as_sent() -> None:
    msg = SipMessage.parse(rfc4475("esc01"))  # §3.1.1.3: escapes are compared unescaped, kept as sent
    assert msg.uri == "sip:sips%3Auser%40example.com@example.net"
    request_uri = SipMessage.parse(rfc4475("esc01")).uri
    assert request_uri.rpartition("@")[2] == "example.net"  # the host is example.net, not example.com
    assert (msg.to.uri.user, msg.from_.uri.user) == ("%75se%72", "I%20have%20spaces")
    assert msg.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i:"
    assert msg.content_type == "application/sdp"  # compact "C:"
    assert msg.contacts[0].uri.params == {"%6c%72": "", "n%61me": "v%61lue%25%34%31"}


def test_escnull_escaped_nulls() -> None:
    msg = SipMessage.parse(rfc4475("escnull"))  # §3.1.1.4
    assert msg.to.uri.user == "null-%00-null"
    assert [c.uri.user for c in msg.contacts] == ["%00", "%00%00"]
    assert msg.content_length == 0  # "L:0": compact, upper case, no space


def test_esc02_percent_that_is_not_an_escape() -> None:
    msg = SipMessage.parse(rfc4475("esc02"))  # §3.1.1.5: RE%47IST%45R is an unknown method, not REGISTER
    assert msg.method == "RE%47IST%45R" and msg.cseq_method == "RE%47IST%45R"
    assert msg.to.display == "%Z%45"
    assert msg.top_via.branch == "z9hG4bK209%fzsnel234"
    assert len(msg.contacts) == 2  # "C%6Fntact" is a different, unknown header
    assert msg.header("c%6fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_name_without_space() -> None:
    msg = SipMessage.parse(rfc4475("lwsdisp"))  # §3.1.1.6
    assert (msg.from_.display, msg.from_.uri.raw, msg.from_.tag) == ("caller", "sip:caller@example.com", "323")


def test_longreq_long_values() -> None:
    data = rfc4475("longreq")  # §3.1.1.7
    msg = SipMessage.parse(data)
    assert len(data) == 3515
    assert msg.to.display.startswith("I have a user name of extremeextreme")
    assert msg.to.uri.port == 6000
    assert len(msg.vias) == 34 and msg.top_via.host == "sip33.example.com"  # "Via", "v:", "Via :", "Via  :"
    last = msg.vias[-1]
    assert (last.received, len(last.branch)) == ("192.0.2.5", len(last.branch)) and last.branch.startswith("verylong")
    assert len(last.branch) > 200
    assert msg.from_.tag.startswith("1298298298") and len(msg.from_.tag) > 100
    assert msg.from_.uri.user.startswith("amazinglylongcallername")
    assert msg.content_length == 150 and len(msg.body) == 150


def test_dblreq_second_request_in_a_datagram_is_discarded() -> None:
    msg = SipMessage.parse(rfc4475("dblreq"))  # §3.1.1.8: Content-Length 0, then a whole INVITE
    assert (msg.method, msg.call_id, msg.content_length, msg.body) == ("REGISTER", "dblreq.0ha0isndaksdj99sdfafnl3lk233412", 0, b"")
    assert msg.body_length_mismatch == 450


def test_semiuri_semicolons_in_the_user_part() -> None:
    msg = SipMessage.parse(rfc4475("semiuri"))  # §3.1.1.9
    assert msg.uri == "sip:user;par=u%40example.net@example.com"


def test_transports_varied_and_unknown() -> None:
    msg = SipMessage.parse(rfc4475("transports"))  # §3.1.1.10
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"  # "Call-ID:  " with two spaces


def test_mpart01_multipart_body_is_kept_whole() -> None:
    msg = SipMessage.parse(rfc4475("mpart01"))  # §3.1.1.11: binary S/MIME, Content-Length 553
    assert msg.content_length == 553 and len(msg.body) == 553 and msg.body_length_mismatch == 0
    assert msg.content_type == "multipart/mixed"
    assert msg.sdp is None


def test_unreason_and_noreason() -> None:
    unusual = SipMessage.parse(rfc4475("unreason"))  # §3.1.1.12: UTF-8, '*', '=' in the reason phrase
    assert (unusual.status, unusual.reason_phrase) == (200, "= 2**3 * 5**2 но сто девяносто девять - простое")
    empty = SipMessage.parse(rfc4475("noreason"))  # §3.1.1.13: "SIP/2.0 100 " and nothing after
    assert (empty.status, empty.reason_phrase, empty.label) == (100, "", "100")


def test_inv2543_rfc2543_syntax_is_read() -> None:
    msg = SipMessage.parse(rfc4475("inv2543"))  # §3.4.1: no branch cookie, no Content-Length, no Max-Forwards
    assert msg.content_length is None and msg.top_via.branch is None and msg.max_forwards is None
    assert [m.port for m in msg.sdp.media] == [49217]
    # an addr-spec without <>: ";user=phone" belongs to the header, not the URI (RFC 3261 §20.10)
    assert (msg.to.uri.user, msg.to.params) == ("+16505552222", {"user": "phone"})


# --- RFC 4475 §3.1.2 and §3.3: invalid messages are recorded, never raised -----------------------------------

# message -> (parse error, or the warning that names its anomaly)
INVALID_4475 = {
    "badinv01": ("error", "bad Via protocol"),  # §3.1.2.1: ";;,;,," separators: no usable Via
    "clerr": ("body", None),  # §3.1.2.2: Content-Length 9999, 154 bytes: reported by the core (below)
    "ncl": ("warning", "Content-Length '-999' is not a non-negative number"),  # §3.1.2.3
    "scalar02": ("warning", "CSeq number 36893488147419103232 is not below 2**31"),  # §3.1.2.4
    "scalarlg": ("warning", "Warning code '1812' is not 3 digits"),  # §3.1.2.5
    "quotbal": ("warning", "unterminated quoted string in the display name"),  # §3.1.2.6
    "ltgtruri": ("warning", "Request-URI '<sip:user@example.com>' enclosed in <>"),  # §3.1.2.7
    "lwsruri": ("error", "not a SIP start line"),  # §3.1.2.8: "sip:user@example.com; lr"
    "lwsstart": ("warning", "Request-Line elements separated by more than one SP"),  # §3.1.2.9
    "trws": ("warning", "whitespace after SIP/2.0 at the end of the Request-Line"),  # §3.1.2.10
    "escruri": ("warning", "carries headers, which RFC 3261 §19.1.5 forbids"),  # §3.1.2.11
    "baddate": ("warning", "Date 'Fri, 01 Jan 2010 16:00:00 EST' is not in GMT"),  # §3.1.2.12
    "regbadct": ("warning", "a URI with '?' or ',' must be enclosed in <>"),  # §3.1.2.13
    "badaspec": ("warning", "spaces inside <> around the URI"),  # §3.1.2.14
    "baddn": ("warning", "unquoted display name with characters a token cannot hold"),  # §3.1.2.15
    "badvers": ("error", "not a SIP start line: 'OPTIONS sip:t.watson@example.org SIP/7.0'"),  # §3.1.2.16
    "mismatch01": ("warning", "CSeq method 'INVITE' does not match the request method 'OPTIONS'"),  # §3.1.2.17
    "mismatch02": ("warning", "CSeq method 'INVITE' does not match the request method 'NEWMETHOD'"),  # §3.1.2.18
    "bigcode": ("error", "not a SIP start line: 'SIP/2.0 4294967301"),  # §3.1.2.19
    "insuf": ("error", "no Call-ID header"),  # §3.3.1: no To, From, Call-ID, CSeq: nothing to follow
    "multi01": ("warning", "2 call-id headers ('multi01.98asdh@192.0.2.1', 'multi01.98asdh@192.0.2.2')"),  # §3.3.8
    "mcl01": ("warning", "2 content-length headers ('13', '5'): the body length is ambiguous"),  # §3.3.9
}


def test_every_invalid_message_of_the_rfc_has_an_expectation() -> None:
    invalid = {n for n in NAMES_4475 if group(n) == "INVALID"}
    assert invalid <= set(INVALID_4475)
    assert len(invalid) == 19


@pytest.mark.parametrize("name", sorted(INVALID_4475))
def test_invalid_message_is_a_parse_problem_or_a_named_anomaly(name: str) -> None:
    kind, text = INVALID_4475[name]
    if kind == "error":
        with pytest.raises(SipParseError) as info:
            SipMessage.parse(rfc4475(name))
        assert text in str(info.value)
        return
    message = SipMessage.parse(rfc4475(name))
    if kind == "body":
        assert message.content_length == 9999 and message.body_length_mismatch == 154 - 9999
        return
    assert any(text in w for w in message.warnings), message.warnings


def test_scalar_overflows_are_each_named() -> None:
    assert SipMessage.parse(rfc4475("scalar02")).warnings == [
        "CSeq number 36893488147419103232 is not below 2**31 (RFC 3261 §8.1.1.5)",
        "Max-Forwards 300 exceeds 255",
        "Expires 100000000000000000000000 exceeds 4294967295",
    ]
    assert "Retry-After 949302838503028349304023 exceeds 4294967295" in SipMessage.parse(rfc4475("scalarlg")).warnings


@pytest.mark.parametrize(
    "name", [n for n in NAMES_4475 if group(n) == "APPLICATION-LAYER" and n not in INVALID_4475]
)
def test_application_layer_messages_parse_cleanly(name: str) -> None:
    # §3.3: well-formed; what to do with them (415, 420, 416...) is the application's business
    assert SipMessage.parse(rfc4475(name)).warnings == []


def test_application_layer_details() -> None:
    assert SipMessage.parse(rfc4475("zeromf")).max_forwards == 0  # §3.3.11
    assert SipMessage.parse(rfc4475("unkscm")).uri == "nobodyKnowsThisScheme:totallyopaquecontent"  # §3.3.2
    assert SipMessage.parse(rfc4475("novelsc")).uri == "soap.beep://192.0.2.103:3002"  # §3.3.3
    assert SipMessage.parse(rfc4475("invut")).sdp is None  # §3.3.6: application/unknownformat
    bcast = SipMessage.parse(rfc4475("bcast"))  # §3.3.10
    assert bcast.status == 200 and bcast.vias[1].host == "255.255.255.255"


# --- RFC 5118 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in NAMES_5118 if n != "ipv6-bad"])
def test_rfc5118_valid_messages_parse_without_warnings(name: str) -> None:
    assert SipMessage.parse(rfc5118(name)).warnings == []


def test_rfc5118_ipv6_references() -> None:
    good = SipMessage.parse(rfc5118("ipv6-good"))  # §4.1
    assert good.uri == "sip:[2001:db8::10]" and good.top_via.host == "2001:db8::9:1"
    assert good.contacts[0].uri.host == "2001:db8::1"
    bad = SipMessage.parse(rfc5118("ipv6-bad"))  # §4.2: invalid, recorded
    assert bad.warnings == ["IPv6 address without [] in Request-URI 'sip:2001:db8::10' (RFC 5118 §4.2)"]
    # §4.3: "[2001:db8::10:5070]" is an address, with no port; §4.4: the port is outside the brackets
    ambiguous = SipMessage.parse(rfc5118("port-ambiguous"))
    assert ambiguous.uri == "sip:[2001:db8::10:5070]"
    unambiguous = SipMessage.parse(rfc5118("port-unambiguous"))
    assert unambiguous.uri == "sip:[2001:db8::10]:5070"
    # §4.5: received= with and without brackets
    assert SipMessage.parse(rfc5118("via-received-param-with-delim")).top_via.received == "[2001:db8::9:255]"
    assert SipMessage.parse(rfc5118("via-received-param-no-delim")).top_via.received == "2001:db8::9:255"
    # §4.7: IPv6 and IPv4 side by side in Vias
    mixed = SipMessage.parse(rfc5118("mult-ip-in-header"))
    assert [(v.host, v.port) for v in mixed.vias] == [("2001:db8::9:1", 6050), ("192.0.2.1", None),
                                                      ("2001:db8::9:255", None)]
    assert mixed.vias[2].received == "192.0.2.200"
    # §4.8 and §4.9: SDP with both families, IPv4-mapped addresses
    sdp = SipMessage.parse(rfc5118("mult-ip-in-sdp")).sdp
    assert [(m.port, m.connection) for m in sdp.media] == [(22334, "192.0.2.1"), (6024, "2001:db8::1")]
    mapped = SipMessage.parse(rfc5118("ipv4-mapped-ipv6"))
    assert (mapped.top_via.host, mapped.top_via.port) == ("::ffff:192.0.2.10", 19823)
    assert mapped.sdp.media[0].connection == "::ffff:192.0.2.2"
    # §4.6 as archived declares Content-Length 268 for a 251-byte body (242 with the archive's LFs): the core
    # reports that as it would on the wire (test_corpus_through_the_pipeline), the message itself parses
    in_sdp = SipMessage.parse(rfc5118("ipv6-in-sdp"))
    assert (in_sdp.content_length, len(in_sdp.body)) == (268, 251) and in_sdp.sdp.media[0].port == 6000
    # §4.10: the three-colon form RFC 3261's ABNF allowed by mistake is accepted, as the two-colon one
    for name, host in (("ipv6-bug-abnf-3-colons", "2001:db8:::192.0.2.1"),
                       ("ipv6-correct-abnf-2-colons", "2001:db8::192.0.2.1")):
        msg = SipMessage.parse(rfc5118(name))
        assert msg.to.uri.host == host and msg.uri == f"sip:user@[{host}]"


# --- the whole pipeline and the CLI -------------------------------------------------------------------------


def _corpus_capture(path: Path) -> list[tuple[str, bytes]]:
    """Every message as one UDP datagram (RFC 4475 over IPv4, RFC 5118 over IPv6), one frame each."""
    messages = [(f"rfc4475/{n}", rfc4475(n)) for n in NAMES_4475] + [(f"rfc5118/{n}", rfc5118(n)) for n in NAMES_5118]
    packets = []
    for n, (name, data) in enumerate(messages):
        if name.startswith("rfc4475"):
            ip = IP(src="192.0.2.10", dst="192.0.2.20", id=n)
        else:
            ip = IPv6(src="2001:db8::10", dst="2001:db8::20")
        packet = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / UDP(sport=5060, dport=5060) / Raw(data)
        packet.time = 1_700_000_000 + n
        packets.append(packet)
    wrpcap(str(path), packets)
    return messages


def test_corpus_through_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "torture.pcap"
    messages = _corpus_capture(path)
    analysis = analyze_file(str(path))
    problems = analysis.problems
    assert analysis.capture.packets == len(messages) == 62
    assert "internal_error" not in problems.counts
    by_frame: dict[int, set[str]] = {}
    for problem in problems.kept:
        by_frame.setdefault(problem.frame, set()).add(problem.kind)
    assert not problems.omitted()  # every problem kept, so every frame can be checked
    sip_like = 0
    for frame, (name, data) in enumerate(messages, 1):
        kinds = by_frame.get(frame, set())
        short = name.split("/")[1]
        if not starts_like_sip(data):
            assert short == "test", name  # the archive's unreferenced extra: no SIP start line at all
            continue
        sip_like += 1
        if name.startswith("rfc4475"):
            expected = INVALID_4475.get(short)
        else:
            expected = {"ipv6-bad": ("warning", ""), "ipv6-in-sdp": ("body", None)}.get(short)
        if expected is None:
            assert not kinds & {"sip_parse", "sip_warning", "content_length"}, (name, kinds)
        elif expected[0] == "error":
            assert "sip_parse" in kinds, (name, kinds)
        elif expected[0] == "body":
            assert "content_length" in kinds, (name, kinds)  # "Content-Length 9999 but only 154 body bytes"
        else:
            assert "sip_warning" in kinds, (name, kinds)
    stats = analysis.stats
    assert stats.messages == sip_like
    assert stats.parse_errors == sum(1 for kind, _ in INVALID_4475.values() if kind == "error")
    # dblreq's second request is not a message; the torture INVITEs make calls, none of them "failed"
    assert stats.requests["REGISTER"] >= 1 and "dblreq" not in str([c.call_id for c in analysis.calls if c.invite_ts])
    assert all(call.outcome in (Outcome.IN_PROGRESS, Outcome.ANSWERED, Outcome.TIMEOUT) for call in analysis.calls)


def test_corpus_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "torture.pcap"
    _corpus_capture(path)
    for args in (["analyze", str(path)], ["analyze", str(path), "-o", str(tmp_path / "out.json")],
                 ["report", str(path), "-o", str(tmp_path / "out.md")]):
        result = subprocess.run([sys.executable, "-m", "sipwatch.cli", *args], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode in (0, 6), (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    assert (tmp_path / "out.json").stat().st_size > 0 and (tmp_path / "out.md").stat().st_size > 0
