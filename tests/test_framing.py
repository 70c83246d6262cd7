"""StreamFramer on real TCP streams (tests/fixtures/sip/README.md says where each comes from)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipwatch.sip import framing
from sipwatch.sip.framing import StreamFramer
from sipwatch.sip.message import SipMessage

FIXTURES = Path(__file__).parent / "fixtures" / "sip"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        out.append(data[at : at + size])
        at += size
    assert at == len(data)
    return out


# heplify sip_ipv4_tcp.pcap, 10.33.6.101:5060 -> 10.33.6.100:64802: one message per segment
UAS_STREAM = load("tcp_stream_uas.bin")
UAS_MESSAGES = split(UAS_STREAM, [447, 499, 752, 536])
# heplify sip_ipv4_tcp_fragmented.pcap, 10.186.205.131:6060 -> 10.186.207.1:37398: messages cut across segments
AVAYA_STREAM = load("tcp_fragmented_stream.bin")
AVAYA_SEGMENTS = split(AVAYA_STREAM, [248, 68, 248, 248, 94, 248, 248, 248, 110])
AVAYA_MESSAGES = split(AVAYA_STREAM, [316, 590, 854])


def feed_all(framer: StreamFramer, chunks) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


# --- whole messages -------------------------------------------------------------------------------


def test_one_message():
    framer = StreamFramer()
    assert framer.feed(UAS_MESSAGES[0]) == [UAS_MESSAGES[0]]
    assert framer.buffer == bytearray()
    assert framer.skipped == 0


def test_messages_in_one_feed():
    framer = StreamFramer()
    assert framer.feed(UAS_STREAM) == UAS_MESSAGES
    assert framer.buffer == bytearray()
    assert framer.skipped == 0
    labels = [SipMessage.parse(m).label for m in UAS_MESSAGES]
    assert labels == ["100 Trying", "180 Ringing", "200 OK", "BYE"]


def test_two_messages_in_one_feed():
    framer = StreamFramer()
    invite, next_message = load("tcp_invite.txt"), UAS_MESSAGES[0]
    assert framer.feed(invite + next_message) == [invite, next_message]


def test_messages_are_bytes():
    (message,) = StreamFramer().feed(bytearray(UAS_MESSAGES[0]))
    assert type(message) is bytes


# --- messages split across feeds ------------------------------------------------------------------


def test_real_segments():
    framer = StreamFramer()
    out = [framer.feed(segment) for segment in AVAYA_SEGMENTS]
    # the messages come out with the segment that completes them
    assert out == [[], [AVAYA_MESSAGES[0]], [], [], [AVAYA_MESSAGES[1]], [], [], [], [AVAYA_MESSAGES[2]]]
    assert framer.buffer == bytearray()
    ok = SipMessage.parse(AVAYA_MESSAGES[2])
    assert ok.label == "200 OK"
    assert ok.content_length == 208
    assert ok.body_length_mismatch == 0
    assert (ok.sdp.connection, ok.sdp.media[0].port, ok.sdp.media[0].payload_types) == ("10.9.28.194", 2876, [18, 101])


def test_byte_by_byte():
    framer = StreamFramer()
    out = []
    for i in range(len(UAS_STREAM)):
        got = framer.feed(UAS_STREAM[i : i + 1])
        out.extend(got)
        assert len(framer.buffer) <= max(len(m) for m in UAS_MESSAGES)
    assert out == UAS_MESSAGES
    assert framer.buffer == bytearray()
    assert framer.skipped == 0


def test_every_split_point():
    data = UAS_MESSAGES[2] + UAS_MESSAGES[3]  # a 200 with a body, then a BYE
    for at in range(len(data) + 1):
        framer = StreamFramer()
        assert feed_all(framer, [data[:at], data[at:]]) == UAS_MESSAGES[2:], at
        assert framer.skipped == 0


def test_message_waits_for_its_whole_body():
    message = load("tcp_invite.txt")  # Content-Length: 228
    framer = StreamFramer()
    assert framer.feed(message[:-1]) == []
    assert bytes(framer.buffer) == message[:-1]
    assert framer.feed(message[-1:]) == [message]


def test_empty_feed():
    framer = StreamFramer()
    assert framer.feed(b"") == []
    assert framer.feed(UAS_MESSAGES[0][:10]) == []
    assert framer.feed(b"") == []
    assert framer.feed(UAS_MESSAGES[0][10:]) == [UAS_MESSAGES[0]]


# --- keep-alives ----------------------------------------------------------------------------------


def test_crlf_keepalives():
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []  # RFC 5626 §3.5.1 ping
    assert framer.buffer == bytearray()
    assert framer.feed(b"\r\n") == []  # pong
    stream = b"\r\n\r\n" + UAS_MESSAGES[0] + b"\r\n" + UAS_MESSAGES[1] + b"\r\n\r\n\r\n"
    assert framer.feed(stream) == UAS_MESSAGES[:2]
    assert framer.buffer == bytearray()
    assert framer.skipped == 0


def test_keepalive_between_the_halves_of_a_ping():
    framer = StreamFramer()
    assert feed_all(framer, [b"\r", b"\n\r", b"\n", UAS_MESSAGES[0], b"\r\n"]) == [UAS_MESSAGES[0]]
    assert framer.skipped == 0


# --- Content-Length ---------------------------------------------------------------------------------


def test_body_framed_by_content_length():
    invite = load("tcp_invite.txt")
    assert invite.endswith(b"a=sendrecv\r\n")
    (first, second) = StreamFramer().feed(invite + UAS_MESSAGES[1])
    assert first == invite
    assert SipMessage.parse(first).body_length_mismatch == 0


@pytest.mark.parametrize(
    "header",
    [b"l: 228", b"L:228", b"content-length: 228", b"CONTENT-LENGTH :\t228", b"Content-Length: 000228"],
)
def test_content_length_spellings(header):
    invite = load("tcp_invite.txt").replace(b"Content-Length: 228", header)
    framer = StreamFramer()
    assert framer.feed(invite + UAS_MESSAGES[1]) == [invite, UAS_MESSAGES[1]]
    assert framer.skipped == 0


def test_compact_content_length_from_a_real_phone():
    # the compact-form INVITE declares "l: 272" and sends 372 body bytes: over a stream the last 100 are junk
    data = load("compact_form_invite.txt")
    framer = StreamFramer()
    out = framer.feed(data + UAS_MESSAGES[0])
    assert out == [data[: len(data) - 100], UAS_MESSAGES[0]]
    assert framer.skipped == 100


def test_message_without_content_length_has_no_body():
    register = load("junk_register.txt")  # zeek's REGISTER has no Content-Length
    assert b"content-length" not in register.lower()
    assert StreamFramer().feed(register + UAS_MESSAGES[0]) == [register, UAS_MESSAGES[0]]


def test_non_numeric_content_length_frames_the_head():
    invite = load("invalid_content_length_invite.txt")  # "Content-Length: bad"
    assert StreamFramer().feed(invite + UAS_MESSAGES[0]) == [invite, UAS_MESSAGES[0]]


def test_content_length_in_the_body_does_not_count():
    body = b"Content-Length: 9999\r\n"
    message = UAS_MESSAGES[0].replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: %d\r\n\r\n" % len(body)) + body
    assert StreamFramer().feed(message + UAS_MESSAGES[1]) == [message, UAS_MESSAGES[1]]


def test_absurd_content_length_delivers_the_head_alone():
    head = UAS_MESSAGES[0].replace(b"Content-Length: 0", b"Content-Length: %d" % (framing.MAX_BUFFER + 1))
    framer = StreamFramer()
    assert framer.feed(head + b"v=0\r\n") == [head]
    assert framer.skipped == 0  # "v=0\r\n" waits, it may start a message for all the framer knows
    assert framer.feed(UAS_MESSAGES[1]) == [UAS_MESSAGES[1]]
    assert framer.skipped == 5


def test_content_length_with_thousands_of_digits():
    head = UAS_MESSAGES[0].replace(b"Content-Length: 0", b"Content-Length: " + b"9" * 5000)
    framer = StreamFramer()
    assert framer.feed(head + UAS_MESSAGES[1]) == [head, UAS_MESSAGES[1]]


def test_bare_lf_messages():
    messages = [m.replace(b"\r\n", b"\n") for m in UAS_MESSAGES[:2]]
    assert StreamFramer().feed(b"".join(messages)) == messages
    head, body = load("tcp_invite.txt").split(b"\r\n\r\n")
    invite = head.replace(b"\r\n", b"\n") + b"\n\n" + body  # LF head, CRLF body of 228 bytes
    assert StreamFramer().feed(invite + messages[0]) == [invite, messages[0]]


def test_unusual_method():
    message = load("rfc4475_intmeth.txt")  # "!interesting-Method0123456789_*+`.%indeed'~ sip:... SIP/2.0"
    framer = StreamFramer()
    assert feed_all(framer, [message[:5], message[5:], UAS_MESSAGES[0]]) == [message, UAS_MESSAGES[0]]
    assert framer.skipped == 0


# --- resynchronizing ------------------------------------------------------------------------------


def test_junk_before_a_message():
    framer = StreamFramer()
    assert framer.feed(load("junk_nul.bin")) == []  # zeek sip-junk-before-request: four NUL bytes
    assert framer.skipped == 0  # kept: a start line may follow
    assert framer.feed(load("junk_register.txt")) == [load("junk_register.txt")]
    assert framer.skipped == 4
    assert framer.buffer == bytearray()


@pytest.mark.parametrize("junk", ["rtp_pcma.bin", "stun_binding_request.bin", "http_403.bin", "keepalive_spaces.bin"])
def test_other_protocols_before_a_message(junk):
    data = load(junk)
    framer = StreamFramer()
    assert framer.feed(data + UAS_STREAM) == UAS_MESSAGES
    assert framer.skipped == len(data)


def test_resync_after_a_lost_segment():
    stream = b"".join(AVAYA_SEGMENTS[:2] + AVAYA_SEGMENTS[3:])  # the 180's first segment was not captured
    framer = StreamFramer()
    out = framer.feed(stream)
    assert out == [AVAYA_MESSAGES[0], AVAYA_MESSAGES[2]]
    assert framer.skipped == 590 - 248


def test_resync_start_line_split_across_feeds():
    junk = random.Random(7).randbytes(3000).replace(b"\n", b"").replace(b"\r", b"")
    message = UAS_MESSAGES[1]
    framer = StreamFramer()
    assert feed_all(framer, [junk + message[:6], message[6:12], message[12:]]) == [message]
    assert framer.skipped == len(junk)


def never_frames(kind: str):
    """Chunks of 64 KB that add up to 3 MB and never make a SIP message."""
    rng = random.Random(kind)
    if kind == "random":
        return [rng.randbytes(65536) for _ in range(48)]
    if kind == "uppercase-no-newline":
        return [b"A" * 65536] * 48
    if kind == "headers-never-end":
        start = b"INVITE sip:bob@10.33.6.101 SIP/2.0\r\n"
        return [start + b"X-Pad: 0123456789\r\n" * 3640] + [b"X-Pad: 0123456789\r\n" * 3449] * 47
    if kind == "body-never-ends":
        # the biggest body the framer waits for: once the buffer outgrows MAX_BUFFER before the body's end
        # (200 bytes short here) the framer gives up on the message and resynchronizes on what follows
        head = UAS_MESSAGES[0].replace(b"Content-Length: 0", b"Content-Length: %d" % framing.MAX_BUFFER)
        body = [b"x" * 65536] * 15 + [b"x" * (65536 - 200)]
        return [head, *body] + [rng.randbytes(65536) for _ in range(32)]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["random", "uppercase-no-newline", "headers-never-end", "body-never-ends"])
def test_buffer_stays_bounded(kind):
    framer = StreamFramer()
    fed = 0
    skipped = []
    for chunk in never_frames(kind):
        assert framer.feed(chunk) == []
        fed += len(chunk)
        assert len(framer.buffer) <= framing.MAX_BUFFER
        skipped.append(framer.skipped)
    assert fed >= 3 * 1024 * 1024
    assert skipped == sorted(skipped)
    assert framer.skipped >= fed - framing.MAX_BUFFER - 65536 * 2
    # and the stream recovers
    assert framer.feed(b"\r\n" + UAS_STREAM) == UAS_MESSAGES


# --- property tests -----------------------------------------------------------------------------------


@given(st.lists(st.binary(max_size=3000), max_size=30))
@settings(max_examples=300)
def test_arbitrary_chunks_never_raise(chunks):
    framer = StreamFramer()
    skipped = 0
    for chunk in chunks:
        for message in framer.feed(chunk):
            assert type(message) is bytes and message
        assert len(framer.buffer) <= framing.MAX_BUFFER
        assert framer.skipped >= skipped
        skipped = framer.skipped


SIPPY = st.sampled_from(
    [b"\r\n", b"\n", b"\r\n\r\n", b"SIP/2.0 200 OK\r\n", b"INVITE sip:a@b SIP/2.0\r\n", b"l: 5\r\n", b"Content-Length: ",
     b"99999999999", b"\x00", b"A", b"v=0\r\n", UAS_MESSAGES[0][:100]]
)


@given(st.lists(st.one_of(SIPPY, st.binary(max_size=40)), max_size=40))
@settings(max_examples=300)
def test_sip_like_chunks_never_raise(chunks):
    framer = StreamFramer()
    for chunk in chunks:
        framer.feed(chunk)
        assert len(framer.buffer) <= framing.MAX_BUFFER
    framer.feed(b"\r\n" + UAS_STREAM)  # still working afterwards


@given(st.lists(st.integers(0, len(AVAYA_STREAM) + len(UAS_STREAM)), max_size=20))
@settings(max_examples=200)
def test_any_segmentation_frames_the_same_messages(cuts):
    stream = AVAYA_STREAM + UAS_STREAM
    points = [0, *sorted(set(cuts)), len(stream)]
    framer = StreamFramer()
    out = feed_all(framer, [stream[a:b] for a, b in zip(points, points[1:], strict=False)])
    assert out == AVAYA_MESSAGES + UAS_MESSAGES
    assert framer.skipped == 0
    assert framer.buffer == bytearray()
