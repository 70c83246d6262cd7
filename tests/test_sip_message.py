"""SipMessage and its header types, on real messages (tests/fixtures/sip/README.md says where each comes from)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.sip.message import (
    COMPACT_HEADERS,
    MAX_HEAD_BYTES,
    MAX_HEADER_LINES,
    NameAddr,
    ReasonValue,
    SipMessage,
    SipParseError,
    SipUri,
    TruncatedMessage,
    Via,
    split_header_values,
    starts_like_sip,
)
from sipwatch.sip.sdp import SdpParseError

FIXTURES = Path(__file__).parent / "fixtures" / "sip"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str) -> SipMessage:
    return SipMessage.parse(load(name))


def exact(message: str) -> str:
    """A `match=` pattern that accepts exactly this error message."""
    return f"^{re.escape(message)}$"


def replace_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """The message with one header line replaced (new=b'' removes it)."""
    assert data.count(old + b"\r\n") == 1
    return data.replace(old + b"\r\n", new + b"\r\n" if new else b"")


# --- start line -------------------------------------------------------------------------------------


def test_request_line():
    msg = parse("invite_auth_sdp.txt")
    assert msg.is_request
    assert msg.method == "INVITE"
    assert msg.uri == "sip:0097239287044@sip.cybercity.dk"
    assert msg.status is None
    assert msg.reason_phrase is None
    assert msg.start_line == "INVITE sip:0097239287044@sip.cybercity.dk SIP/2.0"
    assert msg.label == "INVITE"


def test_status_line():
    msg = parse("register_401.txt")
    assert not msg.is_request
    assert msg.method is None
    assert msg.uri is None
    assert msg.status == 401
    assert msg.reason_phrase == "Unauthorized"
    assert msg.start_line == "SIP/2.0 401 Unauthorized"
    assert msg.label == "401 Unauthorized"


@pytest.mark.parametrize(
    ("fixture", "status", "phrase"),
    [
        ("register_403.txt", 403, "Wrong password"),
        ("invite_407.txt", 407, "authentication required"),
        ("invite_100_warning.txt", 100, "trying -- your call is important to us"),
        ("invite_480_reason_q850.txt", 480, "Error"),
        ("sctp_403_reason.txt", 403, "The reason is nocallee"),
        ("register_503_retry_after.txt", 503, "Service Unavailable"),
        # RFC 4475 3.1.1.12: UTF-8 in the reason phrase
        ("rfc4475_unreason.txt", 200, "= 2**3 * 5**2 но сто девяносто девять - простое"),
    ],
)
def test_reason_phrases(fixture, status, phrase):
    msg = parse(fixture)
    assert (msg.status, msg.reason_phrase) == (status, phrase)
    assert msg.label == f"{status} {phrase}"


def test_empty_reason_phrase():
    msg = parse("rfc4475_noreason.txt")  # RFC 4475 3.1.1.13: "SIP/2.0 100 " and nothing more
    assert msg.status == 100
    assert msg.reason_phrase == ""
    assert msg.label == "100"


def test_method_with_unusual_token_characters():
    msg = parse("rfc4475_intmeth.txt")  # RFC 4475 3.1.1.2
    # methods are stored uppercased, the CSeq method too, so both still match
    assert msg.method == "!INTERESTING-METHOD0123456789_*+`.%INDEED'~"
    assert msg.cseq_method == msg.method
    assert msg.cseq == 139122385
    assert msg.uri == (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
    )
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"  # UTF-8 with a byte order mark


def test_bare_lf_line_ends():
    crlf = parse("invite_auth_sdp.txt")
    msg = SipMessage.parse(load("invite_auth_sdp.txt").replace(b"\r\n", b"\n"))
    assert (msg.method, msg.call_id, msg.cseq, msg.cseq_method) == ("INVITE", crlf.call_id, 2, "INVITE")
    assert msg.headers == crlf.headers
    assert msg.body == crlf.body.replace(b"\r\n", b"\n")
    assert msg.sdp.media[0].port == 30000


# --- header names -----------------------------------------------------------------------------------


def test_header_names_are_case_insensitive():
    msg = parse("erspan_invite_hold.txt")  # sent as "user-Agent:"
    assert msg.header("User-Agent") == "Alcatel-Lucent 8001 DeskPhone V4.2.0.0 11273"
    assert msg.header("USER-AGENT") == msg.header("user-agent") == msg.header("User-Agent")
    assert "user-agent" in msg.headers
    wsinv = parse("rfc4475_wsinv.txt")  # "TO :", "MaX-fOrWaRdS: 0068", "cseq:", "from   :"
    assert wsinv.header("Max-Forwards") == "0068"
    assert wsinv.max_forwards == 68
    assert wsinv.header("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    assert wsinv.to.tag == "1918181833n"
    assert list(wsinv.headers) == [
        "to", "from", "max-forwards", "call-id", "content-length", "cseq", "via", "subject",
        "newfangledheader", "unknownheaderwithunusualvalue", "content-type", "route", "contact",
    ]


def test_compact_headers_from_a_real_phone():
    msg = parse("compact_form_invite.txt")  # v: f: t: c: l: from a Nero SIPPS phone
    for compact, name in [("v", "via"), ("f", "from"), ("t", "to"), ("c", "content-type"), ("l", "content-length")]:
        assert compact not in msg.headers
        assert msg.header(compact) == msg.header(name) == msg.headers[name][0]
        assert msg.header(compact.upper()) == msg.header(name)
    assert msg.header("v") == "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKnp104984053-44ce4a41192.168.1.2;rport"
    assert msg.header("t") == "<sip:97239287044@voip.brujula.net>"
    assert msg.content_type == "application/sdp"
    assert msg.content_length == 272


# Every compact form of RFC 3261 §7.3.3 and RFC 3265/3903/4028 (k s e o are not in any public capture).
COMPACT_MESSAGE = (
    b"SUBSCRIBE sip:35104724@sip.cybercity.dk SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKnp10144775;rport\r\n"
    b'f: "arik" <sip:35104723@sip.cybercity.dk>;tag=b56e6e\r\n'
    b"t: <sip:35104724@sip.cybercity.dk>\r\n"
    b"i: 11894297-4432a9f9@192.168.1.2\r\n"
    b"CSeq: 3 SUBSCRIBE\r\n"
    b"m: <sip:35104723@192.168.1.2:5060>\r\n"
    b"k: timer, 100rel\r\n"
    b"s: presence of 35104724\r\n"
    b"e: gzip\r\n"
    b"o: presence\r\n"
    b"c: application/pidf+xml\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


@pytest.mark.parametrize(
    ("compact", "name", "value"),
    [
        ("i", "Call-ID", "11894297-4432a9f9@192.168.1.2"),
        ("f", "From", '"arik" <sip:35104723@sip.cybercity.dk>;tag=b56e6e'),
        ("t", "To", "<sip:35104724@sip.cybercity.dk>"),
        ("v", "Via", "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKnp10144775;rport"),
        ("m", "Contact", "<sip:35104723@192.168.1.2:5060>"),
        ("l", "Content-Length", "0"),
        ("c", "Content-Type", "application/pidf+xml"),
        ("k", "Supported", "timer, 100rel"),
        ("s", "Subject", "presence of 35104724"),
        ("e", "Content-Encoding", "gzip"),
        ("o", "Event", "presence"),
    ],
)
def test_every_compact_form(compact, name, value):
    msg = SipMessage.parse(COMPACT_MESSAGE)
    assert COMPACT_HEADERS[compact] == name.lower()
    assert msg.headers[name.lower()] == [value]
    assert msg.header(compact) == msg.header(compact.upper()) == msg.header(name) == value
    assert compact not in msg.headers


def test_compact_form_fields():
    msg = SipMessage.parse(COMPACT_MESSAGE)
    assert msg.call_id == "11894297-4432a9f9@192.168.1.2"
    assert (msg.cseq, msg.cseq_method) == (3, "SUBSCRIBE")
    assert msg.from_.display == "arik"
    assert msg.to.user == "35104724"
    assert msg.top_via.port == 5060
    assert [c.uri.port for c in msg.contacts] == [5060]
    assert msg.content_length == 0
    assert msg.content_type == "application/pidf+xml"
    assert msg.header_values("k") == ["timer", "100rel"]


def test_uppercase_compact_call_id():
    msg = parse("rfc4475_dblreq.txt")  # "I: dblreq..." and "t: ..." in the second request
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert msg.header("I") == msg.header("i") == msg.call_id


def test_identity_header_and_its_compact_form():
    msg = parse("rfc4475_mpart01.bin")
    identity = msg.header("Identity")
    assert identity.startswith("r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hH")
    assert identity.endswith("ivUhkMWYUA=")
    assert len(identity) == 172
    assert msg.header("y") == msg.header("Y") == identity
    compact = SipMessage.parse(load("rfc4475_mpart01.bin").replace(b"\r\nIdentity: ", b"\r\ny: "))
    assert compact.header("identity") == identity
    assert "y" not in compact.headers


# --- several values -----------------------------------------------------------------------------------


def test_two_to_headers_in_one_message():
    msg = parse("multi_value_to_invite.txt")  # "t: <...97239287044...>" then "To: <...12345...>"
    assert msg.headers["to"] == ["<sip:97239287044@voip.brujula.net>", "<sip:12345@voip.brujula.net>"]
    assert msg.header("To") == "<sip:97239287044@voip.brujula.net>"
    assert msg.header_values("to") == msg.header_values("t") == msg.headers["to"]
    assert msg.to.user == "97239287044"  # the first one counts


def test_via_values_in_one_line_and_across_lines():
    msg = parse("rfc4475_wsinv.txt")  # "Via  : SIP  /   2.0 /UDP ..." then two values in one folded "v:" line
    assert msg.header_values("Via") == msg.header_values("v") == [
        "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw",
        "SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8",
        "SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
    ]
    assert [(v.transport, v.host, v.port, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert msg.top_via == msg.vias[0]


def test_via_lines():
    msg = parse("rfc4475_transports.txt")  # RFC 4475 3.1.1.10: five Via lines, one unknown transport
    assert len(msg.headers["via"]) == 5
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "t1.example.com", "z9hG4bKkdjuw"),
        ("SCTP", "t2.example.com", "z9hG4bKklasjdhf"),
        ("TLS", "t3.example.com", "z9hG4bK2980unddj"),
        ("UNKNOWN", "t4.example.com", "z9hG4bKasd0f3en"),
        ("TCP", "t5.example.com", "z9hG4bK0a9idfnee"),
    ]


def test_contact_values_in_one_line():
    # RFC 3261 §20.10's example, in place of the 200 OK's own Contact
    data = replace_header(
        load("register_200.txt"),
        b"Contact: <sip:voi18062@192.168.1.2:5060;line=aca6b97ca3f5e51a>;q=0.500;expires=1200",
        b'Contact: "Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
        b'"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1',
    )
    msg = SipMessage.parse(data)
    assert msg.header_values("m") == [
        '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600',
        '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1',
    ]
    first, second = msg.contacts
    assert (first.display, first.uri.scheme, first.user, first.uri.host) == (
        "Mr. Watson", "sip", "watson", "worcester.bell-telephone.com",
    )
    assert first.params == {"q": "0.7", "expires": "3600"}
    assert (second.uri.scheme, second.user, second.uri.host, second.params) == (
        "mailto", "watson", "bell-telephone.com", {"q": "0.1"},
    )


def test_contact_lines():
    msg = parse("rfc4475_escnull.txt")  # RFC 4475 3.1.1.4: two Contact lines
    assert msg.header_values("contact") == ["<sip:%00@host5.example.com>", "<sip:%00%00@host5.example.com>"]
    assert [c.user for c in msg.contacts] == ["%00", "%00%00"]
    assert msg.header("contact") == "<sip:%00@host5.example.com>"


def test_contact_params_and_quoted_display():
    msg = parse("register_200.txt")
    (contact,) = msg.contacts
    assert contact.uri.raw == "sip:voi18062@192.168.1.2:5060;line=aca6b97ca3f5e51a"
    assert (contact.user, contact.uri.host, contact.uri.port) == ("voi18062", "192.168.1.2", 5060)
    assert contact.uri.params == {"line": "aca6b97ca3f5e51a"}
    assert contact.params == {"q": "0.500", "expires": "1200"}
    wsinv = parse("rfc4475_wsinv.txt")  # m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam = ...
    (contact,) = wsinv.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": "", "q": "0.33"}


def test_star_contact_is_not_an_address():
    data = replace_header(
        load("register_200.txt"),
        b"Contact: <sip:voi18062@192.168.1.2:5060;line=aca6b97ca3f5e51a>;q=0.500;expires=1200",
        b"Contact: *",
    )
    assert SipMessage.parse(data).contacts == []


def test_split_header_values_keeps_quoted_and_bracketed_commas():
    assert split_header_values('"Doe, John" <sip:a@b;x=1,2>, <sip:c@d>') == [
        '"Doe, John" <sip:a@b;x=1,2>', "<sip:c@d>",
    ]
    assert split_header_values('"a \\" , b" <sip:a@b>') == ['"a \\" , b" <sip:a@b>']
    assert split_header_values(" ,, INVITE ,ACK, ") == ["INVITE", "ACK"]
    assert split_header_values(" single ") == ["single"]


# --- folded lines -------------------------------------------------------------------------------------


def test_folded_lines():
    msg = parse("rfc4475_wsinv.txt")  # RFC 4475 3.1.1.1
    assert (msg.cseq, msg.cseq_method) == (9, "INVITE")  # "cseq: 0009\r\n  INVITE"
    assert msg.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.header("Route") == "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"
    assert msg.header("s") == ""  # "s :" is an empty Subject
    assert msg.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.from_.tag == "98asjd8"  # the tag is two folded lines below the From line


def test_folded_accept_header():
    msg = parse("rfc4475_semiuri.txt")
    assert msg.header("Accept") == (
        "application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag"
    )
    assert msg.header_values("Accept")[-1] == "message/sipfrag"


# --- Via ----------------------------------------------------------------------------------------------


def test_via_received_rport_branch():
    msg = parse("register_401.txt")
    (via,) = msg.vias
    assert via.transport == "UDP"
    assert (via.host, via.port) == ("192.168.1.2", None)
    assert via.received == "80.230.219.70"
    assert via.rport == 5060
    assert via.branch == "z9hG4bKnp151248737-46ea715e192.168.1.2"
    assert via.sent_by == "192.168.1.2"


def test_via_rport_flag_without_value():
    via = parse("compact_form_invite.txt").top_via
    assert via.params == {"branch": "z9hG4bKnp104984053-44ce4a41192.168.1.2", "rport": ""}
    assert via.rport is None
    assert via.received is None
    assert via.sent_by == "192.168.1.2:5060"


def test_via_tcp_with_flag_param():
    via = parse("tcp_invite.txt").top_via
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "10.33.6.100", None, "z9hG4bKac1589375893")
    assert via.params == {"branch": "z9hG4bKac1589375893", "alias": ""}


def test_via_websocket_hop():
    msg = parse("webrtc_invite.txt")
    assert [(v.transport, v.sent_by, v.received) for v in msg.vias] == [
        ("UDP", "10.243.0.157:5060", None),
        ("WSS", "1jon8lkj09s0.invalid", "10.243.17.55"),
    ]


def test_via_ipv6_hosts():
    msg = parse("rfc5118_mult-ip-in-header.txt")  # RFC 5118 4.7
    assert [(v.transport, v.host, v.port, v.sent_by, v.received) for v in msg.vias] == [
        ("UDP", "2001:db8::9:1", 6050, "[2001:db8::9:1]:6050", None),
        ("UDP", "192.0.2.1", None, "192.0.2.1", None),
        ("TCP", "2001:db8::9:255", None, "[2001:db8::9:255]", "192.0.2.200"),
    ]


def test_via_ipv6_received_with_brackets():
    via = parse("rfc5118_via-received-param-with-delim.txt").top_via  # RFC 5118 4.5
    assert (via.host, via.port, via.sent_by) == ("2001:db8::9:1", None, "[2001:db8::9:1]")
    assert via.received == "[2001:db8::9:255]"  # as sent
    assert via.branch == "z9hG4bKas3-111"


def test_via_ipv6_loopback_with_port():
    via = Via.parse("SIP/2.0/UDP [::1]:5060;branch=z9hG4bK-524287-1---3ab1d7a8;rport=5060;received=::1")
    assert (via.transport, via.host, via.port) == ("UDP", "::1", 5060)
    assert via.sent_by == "[::1]:5060"
    assert via.rport == 5060
    assert via.received == "::1"


def test_via_with_spaces_around_slashes():
    # RFC 4475 3.1.1.1: LWS may surround each '/' of the sent-protocol
    via = Via.parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw")
    assert (via.transport, via.host, via.branch) == ("UDP", "192.0.2.2", "390skdjuw")
    via = Via.parse("sip/2.0/tls proxy.example.com:5061;branch=z9hG4bK77asjd")
    assert (via.transport, via.host, via.port) == ("TLS", "proxy.example.com", 5061)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("SIP/2.0 192.0.2.1;branch=z9hG4bK1", "bad Via protocol 'SIP/2.0'"),
        ("HTTP/1.1/TCP 192.0.2.1", "bad Via protocol 'HTTP/1.1/TCP'"),
        ("SIP/2.0/UDP/X 192.0.2.1", "bad Via protocol 'SIP/2.0/UDP/X'"),
        ("192.0.2.1:5060", "bad Via protocol '192.0.2.1:5060'"),
        ("", "bad Via protocol ''"),
    ],
)
def test_bad_via(value, error):
    with pytest.raises(SipParseError, match=exact(error)):
        Via.parse(value)


def test_bad_via_fails_the_message():
    # RFC 4475 3.1.2.1: "Via: SIP/2.0/UDP 192.0.2.15;;,;,," holds empty values
    with pytest.raises(SipParseError, match=exact("bad Via protocol ';'")):
        parse("rfc4475_badinv01.txt")


# --- From, To and URIs -------------------------------------------------------------------------------


def test_from_to_display_user_tag():
    msg = parse("invite_480_reason_q850.txt")
    assert msg.from_.display == "arik"
    assert msg.from_.user == "35104723"
    assert msg.from_.uri.host == "sip.cybercity.dk"
    assert msg.from_.tag == "b56e6e"
    assert msg.to.display is None
    assert msg.to.user == "35104724"
    assert msg.to.tag == "00-04075-1701baa2-2dfdf7c21"


def test_to_without_tag():
    msg = parse("invite_auth_sdp.txt")
    assert msg.to.tag is None
    assert msg.to.params == {}
    assert msg.to.user == "0097239287044"


def test_display_names():
    assert parse("rfc4475_lwsdisp.txt").from_.display == "caller"  # RFC 4475 3.1.1.6: no LWS before '<'
    # RFC 4475 3.1.1.1: "J Rosenberg \\\"" is J Rosenberg, a backslash and a quote
    assert parse("rfc4475_wsinv.txt").from_.display == 'J Rosenberg \\"'
    intmeth = parse("rfc4475_intmeth.txt")  # RFC 4475 3.1.1.2
    assert intmeth.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert intmeth.from_.display == "token1~` token2'+_ token3*%!.-"
    assert intmeth.from_.tag == "_token~1'+`*%!-."
    assert intmeth.from_.params["fromparam''~+*_!.-%"] == "работающий"
    assert parse("erspan_200_recvonly.txt").to.display == "test"
    # a phone that sends backslashes without a quoted-string: kept as sent
    assert parse("compact_form_invite.txt").from_.display == '\\"arik\\"'


def test_utf8_display_name():
    stream = load("tcp_fragmented_stream.bin")
    msg = SipMessage.parse(stream[:316])  # the 100 Trying of the Avaya capture
    assert msg.from_.display == "Псков-5"


def test_user_part_with_reserved_characters():
    intmeth = parse("rfc4475_intmeth.txt")  # RFC 4475 3.1.1.2: ';' '?' ',' '/' in the To user part
    assert intmeth.to.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert intmeth.to.uri.host == "example.com"
    request_uri = SipUri.parse(intmeth.uri)  # the same user, then ':' and a password, which is dropped
    assert (request_uri.user, request_uri.host) == (intmeth.to.user, "example.com")
    semiuri = SipUri.parse(parse("rfc4475_semiuri.txt").uri)  # RFC 4475 3.1.1.9
    assert (semiuri.user, semiuri.host, semiuri.params) == ("user;par=u%40example.net", "example.com", {})
    ims = SipUri.parse("sip:+12125551212;phone-context=ims.example.com@gw.example.com:5060;user=phone")
    assert (ims.user, ims.host, ims.port, ims.params) == (
        "+12125551212;phone-context=ims.example.com", "gw.example.com", 5060, {"user": "phone"},
    )


def test_sip_uri_fields():
    uri = parse("sctp_invite_multipart.txt").from_.uri
    assert uri == SipUri("sip:9171969136@astrakhan.megafonvolga.ru;user=phone", "sip", "9171969136",
                         "astrakhan.megafonvolga.ru", None)
    assert uri.params == {"user": "phone"}
    assert SipUri.parse("sips:alice:secret@[2001:db8::10]:5061;transport=tls?subject=x") == SipUri(
        "sips:alice:secret@[2001:db8::10]:5061;transport=tls?subject=x", "sips", "alice", "2001:db8::10", 5061,
    )
    assert SipUri.parse("sip:212.242.33.35:5060") == SipUri("sip:212.242.33.35:5060", "sip", None,
                                                             "212.242.33.35", 5060)
    assert SipUri.parse("sip:host.example.com:99999").port is None
    assert SipUri.parse("no-scheme") == SipUri("no-scheme", "", None, "no-scheme", None)


def test_tel_uris():
    msg = parse("sctp_invite_multipart.txt")
    pai = msg.header_values("P-Asserted-Identity")
    assert pai == ["<sip:9171969136@astrakhan.megafonvolga.ru;user=phone>", "<tel:9171969136;phone-context=+7>"]
    tel = NameAddr.parse(pai[1]).uri
    assert (tel.scheme, tel.user, tel.host, tel.port) == ("tel", "9171969136", None, None)
    assert tel.params == {"phone-context": "+7"}
    assert NameAddr.parse(pai[1]).user == "9171969136"
    # RFC 3966's global number, with its visual separators
    assert SipUri.parse("TEL:+1-201-555-0123") == SipUri("TEL:+1-201-555-0123", "tel", "+1-201-555-0123", None, None)


def test_tel_uri_in_to():
    data = replace_header(
        load("invite_auth_sdp.txt"),
        b"To: <sip:0097239287044@sip.cybercity.dk>",
        b"To: <tel:+97239287044>",
    )
    to = SipMessage.parse(data).to
    assert (to.uri.scheme, to.user, to.uri.host) == ("tel", "+97239287044", None)


def test_unclosed_angle_bracket():
    data = replace_header(
        load("register_401.txt"),
        b"From: <sip:voi18063@sip.cybercity.dk>;tag=903df0a",
        b"From: <sip:voi18063@sip.cybercity.dk;tag=903df0a",
    )
    with pytest.raises(SipParseError, match=exact("unclosed '<' in address '<sip:voi18063@sip.cybercity.dk;tag=903df0a'")):
        SipMessage.parse(data)


# --- Call-ID, CSeq, Max-Forwards --------------------------------------------------------------------


def test_call_id_and_cseq():
    msg = parse("register_401.txt")
    assert msg.call_id == "578222729-4665d775@578222732-4665d772"
    assert (msg.cseq, msg.cseq_method) == (68, "REGISTER")
    esc01 = parse("rfc4475_esc01.txt")  # "i:" compact Call-ID
    assert esc01.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert (esc01.cseq, esc01.cseq_method) == (234234, "INVITE")
    transports = parse("rfc4475_transports.txt")  # "Call-ID:  transports..." with two spaces
    assert transports.call_id == "transports.kijh4akdnaqjkwendsasfdj"


@pytest.mark.parametrize(
    ("fixture", "max_forwards"),
    [
        ("invite_auth_sdp.txt", 70),
        ("rfc4475_wsinv.txt", 68),  # "0068"
        ("rfc4475_zeromf.txt", 0),  # RFC 4475 3.3.11
        ("webrtc_invite.txt", 69),
        ("register_401.txt", None),  # responses carry none
    ],
)
def test_max_forwards(fixture, max_forwards):
    assert parse(fixture).max_forwards == max_forwards


def test_max_forwards_not_a_number():
    data = replace_header(load("invite_auth_sdp.txt"), b"Max-Forwards: 70", b"Max-Forwards: seventy")
    assert SipMessage.parse(data).max_forwards is None


# --- Reason, Retry-After, Warning, User-Agent, Content-Type ------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "reasons", "text"),
    [
        ("invite_480_reason_q850.txt", [ReasonValue("Q.850", 21, None)], ["Q.850 cause=21"]),  # "q.850;cause=21"
        ("sctp_403_reason.txt", [ReasonValue("Q.850", 21, "nocallee")], ['Q.850 cause=21 "nocallee"']),
        (
            "erspan_488_reason_sip.txt",
            [ReasonValue("SIP", 488, "Transfer impossible: No call handling ressources")],
            ['SIP cause=488 "Transfer impossible: No call handling ressources"'],
        ),
        ("register_401.txt", [], []),
    ],
)
def test_reason(fixture, reasons, text):
    msg = parse(fixture)
    assert msg.reasons == reasons
    assert [str(r) for r in msg.reasons] == text


def test_reason_with_spaces_before_semicolons():
    stream = load("tcp_stream_uas.bin")
    bye = SipMessage.parse(stream[447 + 499 + 752 :])
    assert bye.method == "BYE"
    assert bye.header("Reason") == 'Q.850 ;cause=16 ;text="local"'
    assert bye.reasons == [ReasonValue("Q.850", 16, "local")]
    assert str(bye.reasons[0]) == 'Q.850 cause=16 "local"'


def test_several_reasons():
    # RFC 3326 §2: a SIP and a Q.850 reason side by side, in one line
    data = replace_header(
        load("invite_480_reason_q850.txt"),
        b"Reason: q.850;cause=21",
        b'Reason: SIP ;cause=480 ;text="Temporarily Unavailable, try later", Q.850;cause=18;text="No user responding"',
    )
    assert SipMessage.parse(data).reasons == [
        ReasonValue("SIP", 480, "Temporarily Unavailable, try later"),
        ReasonValue("Q.850", 18, "No user responding"),
    ]


def test_reason_value_parse():
    assert ReasonValue.parse("Q.850;cause=16;text=\"NORMAL_CLEARING\"") == ReasonValue("Q.850", 16, "NORMAL_CLEARING")
    assert ReasonValue.parse("Q.850;cause=abc") == ReasonValue("Q.850", None, None)
    assert ReasonValue.parse("SIP") == ReasonValue("SIP", None, None)
    assert str(ReasonValue.parse("SIP")) == "SIP cause=None"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"Retry-After: 0", 0),  # as captured
        (b"Retry-After: 18000;duration=3600", 18000),  # RFC 3261 §20.33
        (b"Retry-After: 120 (I'm in a meeting)", 120),  # RFC 3261 §20.33, with a comment
        (b"Retry-After: 300 (back at noon; maybe) ;duration=60", 300),
        (b"Retry-After: soon", None),
        (b"Retry-After:", None),
    ],
)
def test_retry_after(value, seconds):
    data = replace_header(load("register_503_retry_after.txt"), b"Retry-After: 0", value)
    assert SipMessage.parse(data).retry_after == seconds


def test_no_retry_after():
    assert parse("register_401.txt").retry_after is None


def test_warning():
    msg = parse("invite_100_warning.txt")
    warning = (
        '392 200.68.120.81:5060 "Noisy feedback tells:  pid=32642 req_src_ip=80.230.219.70 req_src_port=5060 '
        'in_uri=sip:97239287044@voip.brujula.net out_uri=sip:97239287044@voip.brujula.net via_cnt==1"'
    )
    assert msg.header("Warning") == warning
    assert msg.header_values("warning") == [warning]


@pytest.mark.parametrize(
    ("fixture", "user_agent"),
    [
        ("invite_auth_sdp.txt", "Nero SIPPS IP Phone Version 2.0.51.16"),  # User-Agent
        ("invite_100_warning.txt", "Sip EXpress router (0.8.12 (i386/linux))"),  # Server
        ("invite_480_reason_q850.txt", "Cirpack/v4.38e (gw_sip)"),  # Server
        ("webrtc_invite.txt", "SIP.js/0.11.5"),
        ("register_401.txt", None),
    ],
)
def test_user_agent_or_server(fixture, user_agent):
    assert parse(fixture).user_agent == user_agent


@pytest.mark.parametrize(
    ("fixture", "content_type"),
    [
        ("invite_auth_sdp.txt", "application/sdp"),
        ("compact_form_invite.txt", "application/sdp"),  # "c:"
        ("rfc4475_mpart01.bin", "multipart/mixed"),  # ";boundary=..." dropped
        ("sctp_invite_multipart.txt", "multipart/mixed"),
        ("register_401.txt", None),
    ],
)
def test_content_type(fixture, content_type):
    assert parse(fixture).content_type == content_type


# --- Content-Length and the body --------------------------------------------------------------------


def test_body_matches_content_length():
    data = load("invite_auth_sdp.txt")
    msg = SipMessage.parse(data)
    assert msg.content_length == 270
    assert msg.body == data[-270:]
    assert msg.body.startswith(b"v=0\r\n")
    assert msg.body_length_mismatch == 0


def test_body_longer_than_content_length_is_cut():
    data = load("compact_form_invite.txt")  # "l: 272" but 372 body bytes were sent
    body = data.split(b"\r\n\r\n", 1)[1]
    assert len(body) == 372
    msg = SipMessage.parse(data)
    assert msg.content_length == 272
    assert msg.body == body[:272]
    assert msg.body_length_mismatch == 100
    assert [w for w in msg.warnings if "Content-Length" in w] == []


def test_body_shorter_than_content_length():
    msg = parse("rfc4475_clerr.txt")  # RFC 4475 3.1.2.2: Content-Length 9999
    assert msg.content_length == 9999
    assert len(msg.body) == 154
    assert msg.body_length_mismatch == 154 - 9999


def test_second_message_in_a_datagram_is_not_body():
    msg = parse("rfc4475_dblreq.txt")  # RFC 4475 3.1.1.8: a REGISTER, then an INVITE in the same datagram
    assert msg.method == "REGISTER"
    assert msg.content_length == 0
    assert msg.body == b""
    assert msg.body_length_mismatch == 450


def test_no_content_length():
    msg = SipMessage.parse(replace_header(load("register_401.txt"), b"Content-Length: 0", b""))
    assert msg.content_length is None
    assert msg.body_length_mismatch == 0
    assert msg.warnings == []


def test_content_length_with_extra_spaces():
    assert parse("register_503_retry_after.txt").content_length == 0  # "Content-Length:  0"
    assert parse("rfc4475_wsinv.txt").content_length == 150  # "Content-Length   : 150"


@pytest.mark.parametrize(
    ("fixture", "warning", "body_length"),
    [
        ("invalid_content_length_invite.txt", "Content-Length 'bad' is not a non-negative number; ignored", 0),
        ("rfc4475_ncl.txt", "Content-Length '-999' is not a non-negative number; ignored", 152),  # RFC 4475 3.1.2.3
    ],
)
def test_non_numeric_content_length_is_a_warning(fixture, warning, body_length):
    msg = parse(fixture)
    assert msg.warnings == [warning]
    assert msg.content_length is None
    assert len(msg.body) == body_length  # the body is kept whole
    assert msg.body_length_mismatch == 0


def test_content_length_with_non_ascii_digits_is_a_warning():
    data = replace_header(load("invite_auth_sdp.txt"), b"Content-Length: 270", "Content-Length: ²७०".encode())
    msg = SipMessage.parse(data)
    assert msg.content_length is None
    assert msg.warnings == ["Content-Length '²७०' is not a non-negative number; ignored"]


def test_content_length_with_thousands_of_digits_is_a_warning():
    data = replace_header(load("invite_auth_sdp.txt"), b"Content-Length: 270", b"Content-Length: " + b"9" * 5000)
    msg = SipMessage.parse(data)
    assert msg.content_length is None
    assert msg.warnings == [f"Content-Length {'9' * 20!r} is not a non-negative number; ignored"]


def test_numbers_that_int_refuses_are_not_numbers():
    # '²' passes str.isdigit() but not int(); 5000 digits pass neither int() nor any sane limit
    data = load("invite_480_reason_q850.txt")
    data = replace_header(data, b"Reason: q.850;cause=21", "Reason: Q.850;cause=²".encode())
    data = data.replace(b"rport=5060;", "rport=５０６０;".encode())
    data = data.replace(b"\r\nContent-Length: 0\r\n", b"\r\nMax-Forwards: " + b"7" * 5000 + b"\r\nContent-Length: 0\r\n")
    data = data.replace(b"Contact: <sip:212.242.33.35:5060>", "Contact: <sip:212.242.33.35:５０６０>".encode())
    msg = SipMessage.parse(data)
    assert msg.reasons == [ReasonValue("Q.850", None, None)]
    assert msg.top_via.rport is None
    assert msg.max_forwards is None
    assert msg.contacts[0].uri.port is None


# --- what does not parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 7, 30, 100, 200, 499])
def test_message_cut_inside_its_headers(cut):
    data = load("invite_auth_sdp.txt")[:cut]
    with pytest.raises(TruncatedMessage, match=exact(f"message ends inside its header section ({cut} bytes)")):
        SipMessage.parse(data)


def test_truncated_message_is_a_parse_error():
    assert issubclass(TruncatedMessage, SipParseError)
    with pytest.raises(SipParseError, match=exact("message ends inside its header section (0 bytes)")):
        SipMessage.parse(b"")


def test_message_cut_after_a_whole_header_line_parses():
    data = load("invite_auth_sdp.txt")
    head_end = data.index(b"\r\n\r\n")
    msg = SipMessage.parse(data[: head_end + 2])  # every header, no blank line, no body
    assert msg.body == b""
    assert msg.content_length == 270
    assert msg.body_length_mismatch == -270


def test_message_without_blank_line():
    msg = parse("rfc4475_baddn.txt")  # RFC 4475 3.1.2.15 ends without the blank line
    assert msg.method == "OPTIONS"
    assert msg.body == b""
    assert msg.from_.display == "Bell, Alexander"  # unquoted, with a comma
    assert msg.from_.user == "a.g.bell"


@pytest.mark.parametrize(
    ("old", "error"),
    [
        (b"Call-ID: 578222729-4665d775@578222732-4665d772", "no Call-ID header"),
        (b"CSeq: 68 REGISTER", "bad CSeq ''"),
        (b"From: <sip:voi18063@sip.cybercity.dk>;tag=903df0a", "missing From or To header"),
        (b"To: <sip:voi18063@sip.cybercity.dk>;tag=00-04092-1701af62-120c67172", "missing From or To header"),
    ],
)
def test_missing_required_header(old, error):
    with pytest.raises(SipParseError, match=exact(error)):
        SipMessage.parse(replace_header(load("register_401.txt"), old, b""))


def test_missing_headers_of_rfc4475_insuf():
    with pytest.raises(SipParseError, match=exact("no Call-ID header")):
        parse("rfc4475_insuf.txt")  # RFC 4475 3.3.1: no Call-ID, From or To


def test_empty_call_id():
    data = replace_header(load("register_401.txt"), b"Call-ID: 578222729-4665d775@578222732-4665d772", b"Call-ID:")
    with pytest.raises(SipParseError, match=exact("no Call-ID header")):
        SipMessage.parse(data)


@pytest.mark.parametrize(
    ("cseq", "error"),
    [
        (b"CSeq: 68", "bad CSeq '68'"),
        (b"CSeq: REGISTER", "bad CSeq 'REGISTER'"),
        (b"CSeq: -1 REGISTER", "bad CSeq '-1 REGISTER'"),
        ("CSeq: ６８ REGISTER".encode(), "bad CSeq '６８ REGISTER'"),
        (b"CSeq: " + b"6" * 5000 + b" REGISTER", f"bad CSeq {'6' * 40!r}"),
    ],
)
def test_bad_cseq(cseq, error):
    with pytest.raises(SipParseError, match=exact(error)):
        SipMessage.parse(replace_header(load("register_401.txt"), b"CSeq: 68 REGISTER", cseq))


@pytest.mark.parametrize(
    ("fixture", "error"),
    [
        ("rfc4475_badvers.txt", "not a SIP start line: 'OPTIONS sip:t.watson@example.org SIP/7.0'"),  # 3.1.2.16
        ("rfc4475_bigcode.txt", "not a SIP start line: 'SIP/2.0 4294967301 better not break the receiver'"),
        ("rfc4475_lwsruri.txt", "not a SIP start line: 'INVITE sip:user@example.com; lr SIP/2.0'"),  # 3.1.2.8
        ("http_403.bin", "not a SIP start line: 'HTTP/1.1 403 Forbidden'"),
        ("ssdp_notify.bin", "not a SIP start line: 'NOTIFY * HTTP/1.1'"),
        ("mgcp_ntfy.bin", "not a SIP start line: 'NTFY 12219 aaln/1@CPG2 MGCP 1.0 NCS 1.0'"),
    ],
)
def test_not_a_sip_start_line(fixture, error):
    with pytest.raises(SipParseError, match=exact(error)):
        parse(fixture)


@pytest.mark.parametrize("code", [b"099", b"700", b"000"])
def test_status_code_out_of_range(code):
    data = load("register_401.txt").replace(b"SIP/2.0 401 Unauthorized", b"SIP/2.0 " + code + b" Unauthorized")
    with pytest.raises(SipParseError, match=exact(f"status code {int(code)} outside 100-699")):
        SipMessage.parse(data)


def test_header_line_without_colon():
    data = load("register_401.txt").replace(b"\r\nContent-Length: 0", b"\r\nContent-Length 0")
    with pytest.raises(SipParseError, match=exact("header line without ':': 'Content-Length 0'")):
        SipMessage.parse(data)


def test_too_many_header_lines():
    data = load("register_401.txt").replace(b"\r\n\r\n", b"\r\n" + b"X-Pad: 1\r\n" * MAX_HEADER_LINES + b"\r\n")
    lines = MAX_HEADER_LINES + 8
    with pytest.raises(SipParseError, match=exact(f"{lines} header lines exceed the limit of {MAX_HEADER_LINES}")):
        SipMessage.parse(data)


def test_header_section_too_large():
    pad = b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    data = load("register_401.txt").replace(b"\r\nContent-Length: 0\r\n", b"\r\n" + pad + b"Content-Length: 0\r\n")
    size = data.index(b"\r\n\r\n")
    with pytest.raises(SipParseError, match=exact(f"header section of {size} bytes exceeds {MAX_HEAD_BYTES}")):
        SipMessage.parse(data)


# --- starts_like_sip ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixture",
    [
        "invite_auth_sdp.txt",
        "register_401.txt",
        "rfc4475_noreason.txt",  # "SIP/2.0 100 "
        "rfc4475_intmeth.txt",  # "!interesting-Method0123456789_*+`.%indeed'~ sip:... SIP/2.0"
        "rfc4475_unreason.txt",
        "tcp_stream_uas.bin",
        "junk_register.txt",
    ],
)
def test_starts_like_sip(fixture):
    assert starts_like_sip(load(fixture))


@pytest.mark.parametrize(
    "payload",
    [
        b"RE%47IST%45R sip:registrar.example.com SIP/2.0\r\n",  # RFC 4475 3.1.1.5's method
        b"OPTIONS sip:user@example.com SIP/2.0\n",  # bare LF
        b"SIP/2.0 200 OK",  # a response line needs no line end
        b"INVITE  sip:user@example.com  SIP/2.0\r\n",  # RFC 4475 3.1.2.9: extra spaces
    ],
)
def test_starts_like_sip_odd_start_lines(payload):
    assert starts_like_sip(payload)


@pytest.mark.parametrize(
    "fixture",
    [
        "rtp_pcma.bin",
        "stun_binding_request.bin",
        "http_get.bin",
        "http_403.bin",
        "ssdp_notify.bin",
        "mgcp_ntfy.bin",
        "keepalive_spaces.bin",
        "junk_nul.bin",
        ],
)
def test_does_not_start_like_sip(fixture):
    assert not starts_like_sip(load(fixture))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\r\n\r\n",  # RFC 5626 keep-alive
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello record header
        b"INVITE sip:user@example.com SIP/2.0",  # the request line is not complete yet
        b"sip:user@example.com SIP/2.0\r\n",  # no method
        b"INVITE SIP/2.0\r\n",  # no Request-URI
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_does_not_start_like_sip_odd_payloads(payload):
    assert not starts_like_sip(payload)


def test_starts_like_sip_and_parse_agree_on_the_fixtures():
    for path in sorted(FIXTURES.iterdir()):
        if path.suffix not in (".txt", ".bin") or path.name.startswith("tcp_"):
            continue
        data = path.read_bytes()
        if not starts_like_sip(data):
            with pytest.raises(SipParseError):
                SipMessage.parse(data)


# --- property tests -----------------------------------------------------------------------------------

REAL_MESSAGES = [
    load(name)
    for name in (
        "invite_auth_sdp.txt", "register_401.txt", "compact_form_invite.txt", "rfc4475_wsinv.txt",
        "rfc4475_intmeth.txt", "sctp_invite_multipart.txt", "invite_480_reason_q850.txt", "rfc4475_mpart01.bin",
        "rfc5118_mult-ip-in-header.txt", "webrtc_invite.txt",
    )
]


def exercise(msg: SipMessage) -> None:
    """Touch every lazily parsed field; these may only fail with the parsers' own errors."""
    msg.from_, msg.to, msg.vias, msg.top_via, msg.label, msg.body_length_mismatch  # noqa: B018
    msg.retry_after, msg.max_forwards, msg.user_agent, msg.content_type, msg.reasons  # noqa: B018
    for via in msg.vias:
        via.branch, via.received, via.rport, via.sent_by  # noqa: B018
    for name in list(msg.headers):
        msg.header(name), msg.header_values(name)  # noqa: B018
    with contextlib.suppress(SipParseError):
        msg.contacts  # noqa: B018
    try:
        sdp = msg.sdp
    except SdpParseError:
        return
    for media in sdp.media if sdp else ():
        media.payload_types, media.on_hold  # noqa: B018
        for pt in media.payload_types:
            media.codec(pt)


@st.composite
def mutated_messages(draw) -> bytes:
    """A real message with bytes flipped, inserted, deleted and the end cut off."""
    data = bytearray(draw(st.sampled_from(REAL_MESSAGES)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b":", b";", b",", b"<", b">", b'"', b"\\", b" ", b"\r\n", b"\n",
                                                b"\r\n ", b"@", b"[", b"]", b"/", b"=", b"\x00", "²".encode()]))
        elif at < len(data):
            del data[at : at + draw(st.integers(1, 40))]
    return bytes(data[: draw(st.integers(0, len(data)))])


HEADER_NAMES = ["Via", "v", "From", "f", "To", "t", "Contact", "m", "Content-Length", "l", "Content-Type", "c",
                "Reason", "Retry-After", "Max-Forwards", "Server", "User-Agent", "X-Odd"]
REQUIRED = [
    ("Via", "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKnp1;rport"),
    ("From", '"arik" <sip:35104723@sip.cybercity.dk>;tag=b56e6e'),
    ("To", "<sip:35104724@sip.cybercity.dk>"),
    ("Call-ID", "11894297-4432a9f8@192.168.1.2"),
    ("CSeq", "2 INVITE"),
]


@st.composite
def sip_like_messages(draw) -> bytes:
    """A message with the required headers (some damaged) and random values in the others."""
    start = draw(st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 486 Busy Here", "BYE x SIP/2.0", "SIP/2.0 200"]))
    value = st.one_of(
        st.text(st.sampled_from(list("0123456789 ;,:<>\"\\@[]/=.()aZ²３\t\x00é")), max_size=30),
        st.from_regex(r"[0-9²３]{1,5}( ?[;(].{0,10})?", fullmatch=True),  # numbers, for the numeric headers
    )
    damaged = st.sampled_from([False] * 7 + [True])
    headers = [(name, draw(value) if draw(damaged) else good) for name, good in REQUIRED]
    headers += draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), value), max_size=12))
    headers = draw(st.permutations(headers))
    lines = [start] + [f"{name}:{text}" for name, text in headers]
    body = draw(st.binary(max_size=60))
    sep = draw(st.sampled_from(["\r\n", "\n"]))
    return (sep.join(lines) + sep + sep).encode("utf-8", "surrogatepass") + body


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_sip_parse_error(data):
    try:
        msg = SipMessage.parse(data)
    except SipParseError:
        return
    exercise(msg)


@given(st.one_of(mutated_messages(), sip_like_messages()))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_messages_raise_only_sip_parse_error(data):
    try:
        msg = SipMessage.parse(data)
    except SipParseError:
        return
    exercise(msg)
