"""SessionDescription on the SDP bodies of real messages (tests/fixtures/sip/README.md says where each comes from)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip.message import SipMessage
from sipwatch.sip.sdp import (
    DIRECTIONS,
    STATIC_PAYLOAD_TYPES,
    MediaDescription,
    RtpMap,
    SdpParseError,
    SessionDescription,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sip"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def body(name: str) -> bytes:
    """The SDP body of a fixture, as its Content-Length frames it."""
    return SipMessage.parse(load(name)).body


def sdp(name: str) -> SessionDescription:
    return SessionDescription.parse(body(name))


def edited(name: str, old: bytes, new: bytes) -> SessionDescription:
    """The fixture's SDP with one line replaced (or removed when new is b'')."""
    data = body(name)
    assert data.count(old + b"\r\n") == 1
    return SessionDescription.parse(data.replace(old + b"\r\n", new + b"\r\n" if new else b""))


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# --- o= and c= ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "session", "version", "address"),
    [
        ("invite_auth_sdp.txt", "85214742", "85214739", "192.168.1.2"),
        ("progress_183_sdp.txt", "112047106116", "112047106116", "212.242.33.75"),
        ("webrtc_invite.txt", "5857782044904022261", "2", "10.243.17.55"),
        ("erspan_invite_hold.txt", "2890844526", "8001", "0.0.0.0"),
        ("rfc5118_ipv6-in-sdp.txt", "971731711378798081", "0", "2001:db8::20"),  # IN IP6
    ],
)
def test_origin(fixture, session, version, address):
    desc = sdp(fixture)
    assert (desc.origin_session, desc.origin_version, desc.origin_address) == (session, version, address)


def test_short_origin_line_is_ignored():
    desc = edited("invite_auth_sdp.txt", b"o=SIPPS 85214742 85214739 IN IP4 192.168.1.2", b"o=SIPPS 85214742")
    assert (desc.origin_session, desc.origin_version, desc.origin_address) == (None, None, None)
    assert desc.media[0].port == 30000


def test_session_connection_is_inherited_by_media():
    desc = sdp("progress_183_sdp.txt")  # origin 212.242.33.75, media sent to 212.242.33.36
    assert desc.connection == "212.242.33.36"
    assert [m.connection for m in desc.media] == ["212.242.33.36"]


def test_media_level_connection_only():
    desc = sdp("invite_rtcp_attr.txt")  # MicroSIP puts c= after m=
    assert desc.connection is None
    assert desc.media[0].connection == "192.168.20.68"
    webrtc = sdp("webrtc_invite.txt")
    assert webrtc.connection is None
    assert webrtc.media[0].connection == "10.243.17.55"


def test_media_connection_overrides_session_connection():
    desc = edited("progress_183_sdp.txt", b"b=AS:64", b"c=IN IP4 212.242.33.99")
    assert desc.connection == "212.242.33.36"
    assert desc.media[0].connection == "212.242.33.99"


def test_ipv6_connection():
    desc = sdp("rfc5118_ipv6-in-sdp.txt")  # RFC 5118 4.6
    assert desc.connection == "2001:db8::20"
    assert [m.connection for m in desc.media] == ["2001:db8::20", "2001:db8::20"]


def test_multicast_connection_drops_ttl_and_count():
    desc = edited("invite_auth_sdp.txt", b"c=IN IP4 192.168.1.2", b"c=IN IP4 224.2.1.1/127/3")  # RFC 8866 §5.7
    assert desc.connection == "224.2.1.1"


# --- m= lines -----------------------------------------------------------------------------------------


def test_multiple_media_lines():
    desc = sdp("rfc5118_ipv6-in-sdp.txt")
    assert [(m.media, m.port, m.protocol, m.formats) for m in desc.media] == [
        ("audio", 6000, "RTP/AVP", ["2"]),
        ("video", 6024, "RTP/AVP", ["107"]),
    ]
    assert desc.media[0].rtpmaps == {2: RtpMap(2, "G726-32", 8000)}
    assert desc.media[1].rtpmaps == {107: RtpMap(107, "H263-1998", 90000)}


def test_audio_and_video_from_rfc4475():
    desc = sdp("rfc4475_esc01.txt")
    assert [(m.media, m.port, m.payload_types) for m in desc.media] == [("audio", 49217, [0, 12]), ("video", 3227, [31])]
    assert desc.origin_address == "192.0.2.1"
    assert desc.direction == "sendrecv"


def test_payload_lists():
    media = sdp("invite_auth_sdp.txt").media[0]
    assert media.formats == ["0", "8", "97", "2", "3"]
    assert media.payload_types == [0, 8, 97, 2, 3]
    webrtc = sdp("webrtc_invite.txt").media[0]
    assert (webrtc.media, webrtc.port, webrtc.protocol) == ("audio", 55695, "UDP/TLS/RTP/SAVPF")
    assert webrtc.payload_types == [111, 103, 104, 9, 0, 8, 106, 105, 13, 110, 112, 113, 126]


def test_non_rtp_formats():
    desc = SessionDescription.parse(b"v=0\r\nc=IN IP4 192.0.2.10\r\nm=image 49170 udptl t38\r\n")  # T.38 fax
    (media,) = desc.media
    assert (media.media, media.port, media.protocol, media.formats) == ("image", 49170, "udptl", ["t38"])
    assert media.payload_types == []


def test_media_port_with_count():
    desc = edited("invite_auth_sdp.txt", b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio 30000/2 RTP/AVP 0 8")
    assert (desc.media[0].port, desc.media[0].formats) == (30000, ["0", "8"])


def test_media_line_without_formats():
    desc = edited("invite_auth_sdp.txt", b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio 0 RTP/AVP")
    assert (desc.media[0].port, desc.media[0].formats, desc.media[0].payload_types) == (0, [], [])


# --- a= attributes ------------------------------------------------------------------------------------


def test_rtpmap():
    media = sdp("invite_auth_sdp.txt").media[0]
    assert media.rtpmaps == {
        0: RtpMap(0, "pcmu", 8000),  # the case the phone sent
        8: RtpMap(8, "pcma", 8000),
        97: RtpMap(97, "iLBC", 8000),
        2: RtpMap(2, "G726-32", 8000),
        3: RtpMap(3, "GSM", 8000),
    }


def test_rtpmap_with_channels():
    assert sdp("progress_183_sdp.txt").media[0].rtpmaps == {  # "PCMA/8000/1"
        8: RtpMap(8, "PCMA", 8000, 1),
        0: RtpMap(0, "PCMU", 8000, 1),
    }
    webrtc = sdp("webrtc_invite.txt").media[0]
    assert webrtc.rtpmaps[111] == RtpMap(111, "opus", 48000, 2)
    assert webrtc.rtpmaps[110] == RtpMap(110, "telephone-event", 48000, 1)
    assert len(webrtc.rtpmaps) == 13


def test_rtpmap_without_clock_rate_is_ignored():
    desc = sdp("rfc4475_wsinv.txt")  # "a=rtpmap:31 LPC"
    assert desc.media[1].rtpmaps == {}


def test_fmtp():
    assert sdp("invite_auth_sdp.txt").media[0].fmtp == {97: "mode=20"}
    assert sdp("erspan_invite_hold.txt").media[0].fmtp == {18: "annexb=no", 101: "0-15"}
    assert sdp("tcp_invite.txt").media[0].fmtp == {101: "0-15,16"}
    assert sdp("webrtc_invite.txt").media[0].fmtp == {111: "minptime=10;useinbandfec=1"}


def test_rtcp_port_and_address():
    media = sdp("invite_rtcp_attr.txt").media[0]  # a=rtcp:4005 IN IP4 192.168.20.68
    assert (media.rtcp_port, media.rtcp_address, media.rtcp_mux) == (4005, "192.168.20.68", False)
    webrtc = sdp("webrtc_invite.txt").media[0]  # a=rtcp:9 IN IP4 0.0.0.0 and a=rtcp-mux
    assert (webrtc.rtcp_port, webrtc.rtcp_address, webrtc.rtcp_mux) == (9, "0.0.0.0", True)


def test_rtcp_port_only():
    media = edited("invite_rtcp_attr.txt", b"a=rtcp:4005 IN IP4 192.168.20.68", b"a=rtcp:53020").media[0]  # RFC 3605
    assert (media.rtcp_port, media.rtcp_address) == (53020, None)


def test_rtcp_not_a_port_is_ignored():
    media = edited("invite_rtcp_attr.txt", b"a=rtcp:4005 IN IP4 192.168.20.68", b"a=rtcp:auto").media[0]
    assert (media.rtcp_port, media.rtcp_address) == (None, None)


def test_no_rtcp_attribute():
    media = sdp("invite_auth_sdp.txt").media[0]
    assert (media.rtcp_port, media.rtcp_address, media.rtcp_mux) == (None, None, False)


def test_session_level_media_attributes_are_ignored():
    desc = SessionDescription.parse(
        b"v=0\r\na=rtpmap:96 opus/48000/2\r\na=rtcp:9\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 96\r\n"
    )
    assert (desc.media[0].rtpmaps, desc.media[0].rtcp_port) == ({}, None)


# --- direction and hold -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "direction"),
    [
        ("invite_auth_sdp.txt", "sendrecv"),  # a=sendrecv at media level
        ("erspan_invite_hold.txt", "sendonly"),
        ("erspan_200_recvonly.txt", "recvonly"),
        ("progress_183_sdp.txt", "sendrecv"),  # none given
    ],
)
def test_media_direction(fixture, direction):
    desc = sdp(fixture)
    assert desc.direction == "sendrecv"
    assert [m.direction for m in desc.media] == [direction]


def test_session_direction():
    # the compact-form phone puts a=sendrecv at session level; its whole body is used here, not the 272 bytes
    full = load("compact_form_invite.txt").split(b"\r\n\r\n", 1)[1]
    desc = SessionDescription.parse(full)
    assert desc.direction == "sendrecv"
    assert [m.direction for m in desc.media] == ["sendrecv"]


def test_session_direction_is_inherited_by_media():
    data = body("invite_auth_sdp.txt").replace(b"a=sendrecv\r\n", b"").replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n")
    desc = SessionDescription.parse(data)
    assert desc.direction == "inactive"
    assert desc.media[0].direction == "inactive"
    assert desc.media[0].on_hold


def test_media_direction_overrides_session_direction():
    data = body("invite_auth_sdp.txt").replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")  # media keeps a=sendrecv
    desc = SessionDescription.parse(data)
    assert desc.direction == "sendonly"
    assert desc.media[0].direction == "sendrecv"
    assert not desc.media[0].on_hold


def test_directions():
    assert DIRECTIONS == ("sendrecv", "sendonly", "recvonly", "inactive")


def test_hold_with_sendonly_and_zero_address():
    media = sdp("erspan_invite_hold.txt").media[0]  # c=IN IP4 0.0.0.0 and a=sendonly
    assert (media.connection, media.direction) == ("0.0.0.0", "sendonly")
    assert media.on_hold


def test_hold_with_inactive():
    media = edited("erspan_invite_hold.txt", b"a=sendonly", b"a=inactive").media[0]
    assert media.direction == "inactive"
    assert media.on_hold


def test_hold_with_zero_address_only():
    media = edited("erspan_invite_hold.txt", b"a=sendonly", b"").media[0]  # RFC 2543 hold: c=0.0.0.0
    assert (media.connection, media.direction) == ("0.0.0.0", "sendrecv")
    assert media.on_hold


def test_hold_with_ipv6_unspecified_address():
    media = edited("rfc5118_ipv6-in-sdp.txt", b"c=IN IP6 2001:db8::20", b"c=IN IP6 ::").media[0]
    assert media.on_hold


def test_not_on_hold():
    assert not sdp("erspan_200_recvonly.txt").media[0].on_hold  # the answer to a hold receives
    assert not sdp("invite_auth_sdp.txt").media[0].on_hold
    assert not sdp("webrtc_invite.txt").media[0].on_hold  # a=rtcp:9 IN IP4 0.0.0.0 is not c=


# --- codecs -------------------------------------------------------------------------------------------


def test_static_payload_types_without_rtpmap():
    audio, video = sdp("rfc4475_wsinv.txt").media  # m=audio ... 0 12, m=video ... 31, no usable rtpmap
    assert audio.codec(0) == RtpMap(0, "PCMU", 8000)
    assert audio.codec(12) == RtpMap(12, "QCELP", 8000)
    assert video.codec(31) == RtpMap(31, "H261", 90000)


def test_rtpmap_overrides_the_static_table():
    media = sdp("invite_auth_sdp.txt").media[0]
    assert media.codec(0) == RtpMap(0, "pcmu", 8000)
    assert media.codec(97) == RtpMap(97, "iLBC", 8000)


def test_unknown_dynamic_payload_type():
    media = sdp("rfc4475_wsinv.txt").media[0]
    assert media.codec(96) is None
    assert media.codec(19) is None  # reserved in RFC 3551


@pytest.mark.parametrize(("payload_type", "expected"), sorted(STATIC_PAYLOAD_TYPES.items()))
def test_static_table(payload_type, expected):
    media = MediaDescription("audio", 4000, "RTP/AVP", [str(payload_type)])
    assert media.codec(payload_type) == RtpMap(payload_type, *expected)


def test_codecs_of_a_hold_offer():
    media = sdp("erspan_invite_hold.txt").media[0]
    assert [media.codec(pt).encoding for pt in media.payload_types] == [
        "PCMA", "PCMU", "G729", "G723", "telephone-event",
    ]


# --- SDP inside SIP -----------------------------------------------------------------------------------


def test_sip_message_sdp():
    msg = SipMessage.parse(load("invite_auth_sdp.txt"))
    assert msg.sdp == SessionDescription.parse(msg.body)
    assert msg.sdp is msg.sdp  # parsed once


def test_multipart_mixed_sdp():
    msg = SipMessage.parse(load("sctp_invite_multipart.txt"))  # "Content-Type:application/sdp" inside
    assert msg.content_type == "multipart/mixed"
    desc = msg.sdp
    assert (desc.origin_session, desc.origin_address, desc.connection) == ("0", "10.249.30.2", "10.249.30.145")
    (media,) = desc.media
    assert (media.media, media.port, media.protocol, media.payload_types) == ("audio", 38060, "RTP/AVP", [8, 13, 96])
    assert media.rtpmaps == {
        8: RtpMap(8, "PCMA", 8000), 13: RtpMap(13, "CN", 8000), 96: RtpMap(96, "telephone-event", 8000),
    }
    assert media.connection == "10.249.30.145"


@pytest.mark.parametrize(
    "part_header", [b"Content-Type: application/sdp", b"CONTENT-TYPE:  Application/SDP", b"content-type:\tapplication/sdp"]
)
def test_multipart_part_content_type_spelling(part_header):
    data = load("sctp_invite_multipart.txt").replace(b"Content-Type:application/sdp", part_header)
    data = data.replace(b"Content-Length:657", b"Content-Length:%d" % (657 + len(part_header) - 28))
    msg = SipMessage.parse(data)
    assert msg.body_length_mismatch == 0
    assert msg.sdp.media[0].port == 38060


def test_multipart_sdp_ends_at_the_boundary():
    data = load("sctp_invite_multipart.txt")
    ending = b"\r\n--8AF759A68474B6758999EB624E30C5271AF8251E--\r\n"
    data = data.replace(b"Content-Length:657", b"Content-Length:%d" % (657 + len(ending))) + ending
    desc = SipMessage.parse(data).sdp
    assert desc.media[0].port == 38060
    assert desc.media[0].rtpmaps[96] == RtpMap(96, "telephone-event", 8000)


def test_multipart_without_sdp():
    assert SipMessage.parse(load("rfc4475_mpart01.bin")).sdp is None  # text/plain and a signature


@pytest.mark.parametrize(
    "fixture",
    [
        "register_401.txt",  # no body
        "rfc4475_mcl01.txt",  # text/plain
        "rfc4475_noreason.txt",
    ],
)
def test_no_sdp(fixture):
    assert SipMessage.parse(load(fixture)).sdp is None


def test_sdp_cut_by_content_length():
    msg = SipMessage.parse(load("compact_form_invite.txt"))  # l: 272 cuts the SDP before its m= line
    desc = msg.sdp
    assert (desc.origin_address, desc.connection, desc.direction) == ("192.168.1.2", "192.168.1.2", "sendrecv")
    assert desc.media == []


def test_bare_lf_sdp():
    desc = SessionDescription.parse(body("invite_auth_sdp.txt").replace(b"\r\n", b"\n"))
    assert desc == sdp("invite_auth_sdp.txt")


def test_unknown_and_odd_lines_are_ignored():
    data = body("invite_auth_sdp.txt").replace(
        b"s=SIP call\r\n", b"s=SIP call\r\nx\r\n\r\nm =video 3227 RTP/AVP 31\r\nzz=1\r\nq=unknown type\r\n",
    )
    assert SessionDescription.parse(data) == sdp("invite_auth_sdp.txt")


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (b"c=IN IP4 192.168.1.2", b"c=IN IP4", "bad c= line 'c=IN IP4'"),
        (b"c=IN IP4 192.168.1.2", b"c=", "bad c= line 'c='"),
        (b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio 30000", "bad m= line 'm=audio 30000'"),
        (b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio 65536 RTP/AVP 0", "bad media port in 'm=audio 65536 RTP/AVP 0'"),
        (b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio port RTP/AVP 0", "bad media port in 'm=audio port RTP/AVP 0'"),
        (b"m=audio 30000 RTP/AVP 0 8 97 2 3", b"m=audio -1 RTP/AVP 0", "bad media port in 'm=audio -1 RTP/AVP 0'"),
        (
            b"m=audio 30000 RTP/AVP 0 8 97 2 3",
            "m=audio ３００００ RTP/AVP 0".encode(),  # passes str.isdigit(), not int()
            "bad media port in 'm=audio ３００００ RTP/AVP 0'",
        ),
        (
            b"m=audio 30000 RTP/AVP 0 8 97 2 3",
            b"m=audio " + b"3" * 5000 + b" RTP/AVP 0",  # more digits than int() converts
            f"bad media port in {'m=audio ' + '3' * 52!r}",
        ),
    ],
)
def test_parse_errors(old, new, error):
    with pytest.raises(SdpParseError, match=exact(error)):
        edited("invite_auth_sdp.txt", old, new)


def test_parse_error_through_sip_message():
    data = load("progress_183_sdp.txt").replace(b"m=audio 40392 RTP/AVP 8 0\r\n", b"m=audio\r\n")
    data = data.replace(b"Content-Length: 199", b"Content-Length: 181")
    msg = SipMessage.parse(data)  # the SIP part is fine; the body fails only when asked for
    assert (msg.status, msg.body_length_mismatch) == (183, 0)
    with pytest.raises(SdpParseError, match=exact("bad m= line 'm=audio'")):
        msg.sdp  # noqa: B018


def test_odd_numbers_in_attributes_are_ignored():
    data = body("invite_auth_sdp.txt").replace(
        b"a=fmtp:97 mode=20\r\n",
        "a=fmtp:９７ mode=20\r\na=rtpmap:98 speex/１６０００\r\na=rtpmap:99 L16/8000/²\r\na=rtcp:²\r\n".encode()
        + b"a=rtpmap:" + b"9" * 5000 + b" X/8000\r\n",
    )
    media = SessionDescription.parse(data).media[0]
    assert media.fmtp == {}
    assert 98 not in media.rtpmaps
    assert media.rtpmaps[99] == RtpMap(99, "L16", 8000, 1)
    assert media.rtcp_port is None
    assert MediaDescription("audio", 1, "RTP/AVP", ["0", "²", "8", "9" * 5000]).payload_types == [0, 8]


# --- property tests -----------------------------------------------------------------------------------

REAL_BODIES = [
    body(name)
    for name in (
        "invite_auth_sdp.txt", "progress_183_sdp.txt", "webrtc_invite.txt", "erspan_invite_hold.txt",
        "invite_rtcp_attr.txt", "rfc5118_ipv6-in-sdp.txt", "rfc4475_wsinv.txt",
    )
]


def exercise(desc: SessionDescription) -> None:
    for media in desc.media:
        media.on_hold  # noqa: B018
        for pt in media.payload_types:
            media.codec(pt)


NUMBER = st.one_of(st.integers(0, 70000).map(str), st.from_regex(r"[0-9²３]{1,6}", fullmatch=True))
STRUCTURED_LINE = st.one_of(
    st.builds("m=audio {} RTP/AVP {}".format, NUMBER, st.lists(NUMBER, max_size=4).map(" ".join)),
    st.builds("a=rtpmap:{} PCMU/{}/{}".format, NUMBER, NUMBER, NUMBER),
    st.builds("a=fmtp:{} x".format, NUMBER),
    st.builds("a=rtcp:{} IN IP4 192.0.2.1".format, NUMBER),
)
SDP_LINE = st.builds(
    lambda kind, value: f"{kind}={value}",
    st.sampled_from(list("vosctmab") + ["a", "a", "m", "c"]),
    st.one_of(
        st.text(st.sampled_from(list("0123456789 /:.INP46audiortpmaRTP/AVPsendonly²３")), max_size=40),
        st.sampled_from([
            "audio 4000 RTP/AVP 0 8", "IN IP4 192.0.2.1", "IN IP6 ::", "rtpmap:0 PCMU/8000", "rtcp:4001 IN IP4 x",
            "rtpmap:x", "fmtp:", "rtcp:", "rtcp-mux", "sendonly", "inactive", "- 1 1 IN IP4 h",
        ]),
    ),
)


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_only_sdp_parse_error(data):
    try:
        desc = SessionDescription.parse(data)
    except SdpParseError:
        return
    exercise(desc)


@given(st.lists(st.one_of(SDP_LINE, STRUCTURED_LINE), max_size=30), st.sampled_from(["\r\n", "\n", "\r"]))
@settings(max_examples=300)
def test_sdp_like_lines_raise_only_sdp_parse_error(lines, eol):
    try:
        desc = SessionDescription.parse(eol.join(lines).encode())
    except SdpParseError:
        return
    exercise(desc)


@given(st.sampled_from(REAL_BODIES), st.lists(st.tuples(st.integers(0, 2000), st.binary(max_size=4)), max_size=6))
@settings(max_examples=300)
def test_damaged_real_bodies_raise_only_sdp_parse_error(data, edits):
    damaged = bytearray(data)
    for at, insert in edits:
        damaged[at % (len(damaged) + 1) : at % (len(damaged) + 1) + 1] = insert
    try:
        desc = SessionDescription.parse(bytes(damaged))
    except SdpParseError:
        return
    exercise(desc)
