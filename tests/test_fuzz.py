"""Hostile bytes into every stage: the frame decoder, TCP reassembly, and the whole pipeline on damaged files.

A bounded quick run here (hypothesis); nothing may raise, and sipwatch's own failures (recorded as
`internal_error`) must never happen: bad input is the capture's fault, reported as a problem.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from conftest import CAPTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipwatch.capture.decode import FrameDecoder
from sipwatch.core.analyzer import Analyzer
from sipwatch.model import CaptureError
from sipwatch.pipeline import analyze_file

LINKTYPES = [0, 1, 101, 108, 113, 228, 229, 276, 105]


def _ethernet_ipv4_udp(payload: bytes, proto: int = 17, frag: int = 0) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, frag, 64, proto, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0)
    return b"\x00" * 12 + b"\x08\x00" + ip + udp + payload


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(LINKTYPES), st.binary(max_size=300))
def test_decoder_and_core_take_any_frame(linktype: int, data: bytes) -> None:
    decoder = FrameDecoder()
    analyzer = Analyzer(problems=decoder.problems)
    datagram = decoder.decode(1, 1.0, linktype, data)
    if datagram is not None:
        analyzer.feed(datagram)
    analyzer.close()


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 0x3FFF), st.sampled_from([6, 17, 4, 41, 47, 132]))
def test_decoder_takes_any_ipv4_payload(payload: bytes, frag: int, proto: int) -> None:
    decoder = FrameDecoder()
    analyzer = Analyzer(problems=decoder.problems)
    for frame in range(1, 4):  # repeated: fragments and TCP segments meet their twins
        datagram = decoder.decode(frame, float(frame), 1, _ethernet_ipv4_udp(payload, proto, frag))
        if datagram is not None:
            analyzer.feed(datagram)
    analyzer.close()
    decoder.fragments.close()
    decoder.tcp.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=120), st.integers(0, 0x3F)), max_size=30))
def test_tcp_reassembly_takes_any_segments(segments: list) -> None:
    decoder = FrameDecoder()
    for seq, payload, flags in segments:
        decoder.tcp.segment(("a", 1, "b", 2), seq, flags, payload, 1, 1.0)
    decoder.tcp.close()
    assert sum(len(s.pending) for s in decoder.tcp.streams.values()) == 0


def _mutations(path: Path, count: int, seed: int):
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for _ in range(count):
        copy = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(24, len(copy))  # keep the file header, damage records and frames
            copy[at] = rng.randrange(256)
        if rng.random() < 0.3:
            copy = copy[: rng.randrange(24, len(copy))]
        yield bytes(copy)


@pytest.mark.parametrize("name", ["answered_rtp.pcap", "tcp_call.pcap", "ipv6_call.pcap", "any_interface.pcap"])
def test_damaged_real_captures_never_break_sipwatch(name: str, tmp_path: Path) -> None:
    for n, blob in enumerate(_mutations(CAPTURES / name, 40, seed=n_seed(name))):
        path = tmp_path / f"{n}.pcap"
        path.write_bytes(blob)
        try:
            analysis = analyze_file(str(path))
        except CaptureError:
            continue  # a damaged file header: one clear error, tested in test_cli
        assert "internal_error" not in analysis.problems.counts, (name, n, analysis.problems.kept)


def n_seed(name: str) -> int:
    return sum(name.encode())


def test_record_claiming_4gb_is_a_bounded_clear_problem(tmp_path: Path) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"\x00" * 64
    path = tmp_path / "huge.pcap"
    path.write_bytes(header + record)
    analysis = analyze_file(str(path))
    (problem,) = [p for p in analysis.problems.kept if p.kind == "corrupt_record"]
    assert problem.frame == 1 and problem.offset == 24
    assert analysis.capture.packets == 0


# --- every stage, structure-aware: real frames and messages from captures/, mutated by hypothesis -------------

from fuzz import corpus, targets  # noqa: E402  (tests/fuzz: the targets the long run uses too)

_INTERESTING = (b"\r\n", b"\r\n\r\n", b"\n", b":", b";", b",", b'"', b"<", b">", b"[", b"]", b"\x00", b"\xff",
                b"%00", b"Content-Length: 99999\r\n", b"Content-Length: -1\r\n", b"l:", b"9" * 12, b"SIP/2.0 ",
                b"\x80", b"\x8f", b"\xff\xff\xff\xff", targets.FRAME_SEPARATOR)


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A real input with a few edits: overwrite, insert, delete, cut, and tokens that matter to the parsers."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 64))]
        elif op == 3:
            data[at:at] = draw(st.sampled_from(_INTERESTING))
        else:
            del data[at:]
    return bytes(data)


_QUICK = {"frame": 400, "frames": 150, "tcp": 300, "framer": 300, "sip": 400, "sdp": 300, "rtp": 400, "rtcp": 400,
          "media": 150, "capture": 40}


@pytest.mark.parametrize("target", sorted(_QUICK))
def test_target_takes_mutated_real_input(target: str) -> None:
    seeds = corpus.seeds(target)
    assert seeds and any(seeds), target
    run = targets.TARGETS[target]

    @settings(max_examples=_QUICK[target], deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(seeds))
    def check(data: bytes) -> None:
        run(data)

    check()


def test_long_lived_session_stays_bounded() -> None:
    """The long run's `session` target in small: one decoder and core fed thousands of mutated real frames."""
    import random

    from fuzz.worker import mutate

    seeds = corpus.seeds("session")
    rng = random.Random(6)
    session = targets.Session()
    for n in range(6000):
        data = mutate(rng, rng.choice(seeds), seeds) if n >= len(seeds) else seeds[n]
        session.feed(targets.LINKTYPES[data[0] % len(targets.LINKTYPES)] if data else 1, data[1:])
    session.analyzer.close()
    session.check()
    # 60 s of capture time: the calls it opened were retired, nothing piles up
    assert len(session.analyzer.calls) < 200


# --- the crashes the long run found, kept as regression cases ----------------------------------------------------

CRASHES = sorted((Path(__file__).parent / "fuzz" / "crashes").glob("*/crash-*"))
# every one found so far was the same bug: the core counted a refused message by its start line with
# str.isdigit(), which takes '²' (latin-1 0xB2), and int('²00') raised; kept as regression cases


@pytest.mark.parametrize("path", [pytest.param(p, id=f"{p.parent.name}/{p.name[:14]}")
                                  for p in CRASHES])
def test_fuzz_crash_regression(path: Path) -> None:
    targets.TARGETS[path.parent.name](path.read_bytes())
