"""RTP stream statistics against tshark 4.0's `-z rtp,streams`, on real captures and on crafted streams.

tshark runs live in each test. It is the oracle for two separate things, kept apart on purpose:
* which frames are RTP: tshark follows SDP (and switches a port to T.38 on a re-INVITE offering it, even one
  answered 488) or its rtp_udp heuristic; that is stream classification, not what these tests measure, so the
  frames fed to RtpStreamStats are exactly those tshark dissected as RTP (each must parse with
  parse_rtp_header, with the same SSRC);
* the statistics of each stream: packets, lost (exact), max delta, max jitter and mean jitter (0.01 ms), and
  min delta, mean delta, min jitter and the Problems? flag as well.
"""

from __future__ import annotations

import csv
import random
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from rtp_reference import RtpStreamTable

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import open_capture
from sipwatch.media.mos import burst_ratio, estimate_mos
from sipwatch.media.rtp import is_rtcp, looks_like_rtp, parse_rtp_header
from sipwatch.media.rtpstats import RtpStreamStats, clock_rate_for
from sipwatch.sip.message import SipMessage, starts_like_sip

TOLERANCE_MS = 0.01

# --- tshark ----------------------------------------------------------------------------------------------

_ROW = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+(?P<dport>\d+)\s+"
    r"0x(?P<ssrc>[0-9A-F]{8})\s+(?P<payload>.*?)\s+(?P<pkts>\d+)\s+(?P<lost>-?\d+)\s+\((?P<pct>-?[\d.]+)%\)\s+"
    r"(?P<min_delta>-?[\d.]+)\s+(?P<mean_delta>-?[\d.]+)\s+(?P<max_delta>-?[\d.]+)\s+"
    r"(?P<min_jitter>-?[\d.]+)\s+(?P<mean_jitter>-?[\d.]+)\s+(?P<max_jitter>-?[\d.]+)\s*(?P<problem>X?)\s*$"
)


@dataclass
class TsharkStream:
    key: tuple[str, int, str, int, int]
    payload: str
    packets: int
    lost: int
    min_delta: float
    mean_delta: float
    max_delta: float
    min_jitter: float
    mean_jitter: float
    max_jitter: float
    problem: bool


def parse_rtp_streams(text: str) -> list[TsharkStream]:
    table = text.partition("========================= RTP Streams")[2]
    out = []
    for line in table.splitlines():
        m = _ROW.match(line)
        if m:
            g = m.groupdict()
            out.append(TsharkStream(
                (g["src"], int(g["sport"]), g["dst"], int(g["dport"]), int(g["ssrc"], 16)), g["payload"],
                int(g["pkts"]), int(g["lost"]), float(g["min_delta"]), float(g["mean_delta"]),
                float(g["max_delta"]), float(g["min_jitter"]), float(g["mean_jitter"]), float(g["max_jitter"]),
                g["problem"] == "X"))
    return out


def run_tshark(path: Path, extra: list[str]) -> tuple[list[TsharkStream], dict[int, set[int]]]:
    """The rtp,streams table, and frame number -> SSRCs of every frame tshark's rtp tap saw."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test installs it)")
    cmd = ["tshark", "-n", "-r", str(path), *extra, "-T", "fields", "-e", "frame.number", "-e", "rtp.ssrc",
           "-e", "frame.protocols", "-z", "rtp,streams"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    fields, _, _ = result.stdout.partition("========================= RTP Streams")
    frames: dict[int, set[int]] = {}
    for line in fields.splitlines():
        number, ssrcs, protocols = (line.split("\t") + ["", ""])[:3]
        # RTP quoted inside an ICMP error is dissected but never reaches the rtp tap
        if ssrcs and number.isdigit() and ":icmp" not in protocols:
            frames[int(number)] = {int(s, 16) for s in ssrcs.split(",")}
    return parse_rtp_streams(result.stdout), frames


def tshark_view(stats: RtpStreamStats) -> dict[str, float | int | bool]:
    """Our stream in tshark's printed conventions (-1 for "no min", 0 for "no jitter")."""
    return {
        "packets": stats.packets,
        "lost": stats.lost,
        "min_delta": -1.0 if stats.min_delta_ms is None else stats.min_delta_ms,
        "mean_delta": stats.mean_delta_ms,
        "max_delta": stats.max_delta_ms,
        "min_jitter": -1.0 if stats.min_jitter_ms is None else stats.min_jitter_ms,
        "mean_jitter": stats.mean_jitter_ms or 0.0,
        "max_jitter": stats.max_jitter_ms or 0.0,
        "problem": stats.problem,
    }


def assert_same(ours: RtpStreamStats, theirs: TsharkStream, where: str) -> None:
    got = tshark_view(ours)
    assert (got["packets"], got["lost"]) == (theirs.packets, theirs.lost), where
    for name in ("max_delta", "max_jitter", "mean_jitter", "min_delta", "mean_delta", "min_jitter"):
        assert abs(got[name] - getattr(theirs, name)) <= TOLERANCE_MS, (where, name, got[name], getattr(theirs, name))
    assert got["problem"] == theirs.problem, (where, "Problems?")


# --- every public capture tshark finds RTP in --------------------------------------------------------------


def _manifest() -> list[dict[str, str]]:
    manifest = SHARED_CAPTURES / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _oracle_streams(rel: str) -> list[TsharkStream]:
    folder = SHARED_CAPTURES / "oracles" / "tshark"
    for name in (rel, rel.removesuffix(".gz")):  # the gzipped torture capture's oracle is named without .gz
        oracle = folder / (name.replace("/", "__") + ".rtp_streams_sip_stat.txt")
        if oracle.is_file():
            return parse_rtp_streams(oracle.read_text())
    return []


def _rtp_captures() -> list:
    cases = []
    for row in _manifest():
        rel = row["local_path"]
        if _oracle_streams(rel):
            heuristic = "RTP heuristics" in row["description"]
            cases.append(pytest.param(rel, heuristic, id=rel))
    return cases


RTP_CAPTURES = _rtp_captures()


def _sdp_codecs(payload: bytes, into: dict[tuple[str, int], tuple[dict[int, int], dict[int, str]]]) -> None:
    try:
        sdp = SipMessage.parse(payload).sdp
    except ValueError:
        return
    if sdp is None:
        return
    for media in sdp.media:
        if media.connection and media.port and media.rtpmaps:
            rates = {pt: m.clock_rate for pt, m in media.rtpmaps.items()}
            names = {pt: m.encoding for pt, m in media.rtpmaps.items()}
            into[(media.connection, media.port)] = (rates, names)


def compute_streams(path: Path, rtp_frames: dict[int, set[int]]) -> tuple[dict, list[str]]:
    """Our statistics over exactly the frames tshark took for RTP; codecs from the latest SDP seen for either
    endpoint of the stream. Returns the streams and a list of disagreements on what those frames are."""
    capture = open_capture(str(path))
    decoder = FrameDecoder()
    codecs: dict[tuple[str, int], tuple[dict[int, int], dict[int, str]]] = {}

    def lookup(src: str, sport: int, dst: str, dport: int):
        return codecs.get((dst, dport)) or codecs.get((src, sport))

    table = RtpStreamTable(lookup)
    disagreements = []
    for frame, ts, linktype, data in capture.frames():
        dgram = decoder.decode(frame, ts, linktype, data)
        if dgram is None:
            if frame in rtp_frames:
                disagreements.append(f"frame {frame}: tshark RTP, not decoded")
            continue
        payload = dgram.payload
        if frame not in rtp_frames:
            if dgram.transport == "udp" and starts_like_sip(payload):
                _sdp_codecs(payload, codecs)
            continue
        if dgram.transport != "udp":
            disagreements.append(f"frame {frame}: tshark RTP, {dgram.transport} here")
            continue
        stats = table.add(frame, ts, dgram.src, dgram.sport, dgram.dst, dgram.dport, payload)
        if stats is None:
            disagreements.append(f"frame {frame}: tshark RTP, parse_rtp_header says no")
        elif stats.ssrc not in rtp_frames[frame]:
            disagreements.append(f"frame {frame}: SSRC {stats.ssrc:#x} not in {rtp_frames[frame]}")
    capture.close()
    return table.streams, disagreements


@pytest.mark.parametrize(("rel", "heuristic"), RTP_CAPTURES)
def test_capture_streams_equal_tshark(rel: str, heuristic: bool) -> None:
    path = SHARED_CAPTURES / rel
    extra = ["--enable-heuristic", "rtp_udp"] if heuristic else []
    expected, rtp_frames = run_tshark(path, extra)
    # the live run is the same tshark run as the stored oracle
    assert [s.key for s in expected] == [s.key for s in _oracle_streams(rel)]
    streams, disagreements = compute_streams(path, rtp_frames)
    assert not disagreements, disagreements[:10]
    assert sorted(streams) == sorted(s.key for s in expected)
    for theirs in expected:
        assert_same(streams[theirs.key], theirs, f"{rel} {theirs.key}")


def test_every_rtp_capture_is_covered() -> None:
    """Every capture MANIFEST.tsv says has RTP streams is compared (30 of them), none silently dropped."""
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"{SHARED_CAPTURES} is not present")
    with_rtp = {row["local_path"] for row in _manifest() if re.search(r"RTP \d+ stream", row["description"])}
    covered = {param.values[0] for param in RTP_CAPTURES}
    assert with_rtp <= covered
    assert len(covered) >= 30


# --- crafted streams, each checked against tshark and against hand-computed values ---------------------------

SRC, DST = ("10.0.0.1", 4000), ("10.0.0.2", 5000)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload: bytes, src=SRC, dst=DST, ident: int = 0) -> bytes:
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0, 64, 17, 0,
                     bytes(map(int, src[0].split("."))), bytes(map(int, dst[0].split("."))))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + udp


def write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    """Ethernet pcap with microsecond timestamps from (time, frame bytes)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for t, frame in frames:
        usec = round(t * 1e6)
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def rtp_packet(seq: int, ts: int, pt: int = 8, marker: bool = False, ssrc: int = 0x11223344,
               payload: bytes = b"\xd5" * 160, csrcs: tuple[int, ...] = (), extension: bytes | None = None,
               padding: int = 0) -> bytes:
    b0 = 0x80 | len(csrcs) | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    pad = (b"\x00" * (padding - 1) + bytes([padding])) if padding else b""
    return head + payload + pad


Packet = tuple[float, bytes]  # (arrival, RTP packet)


def _voice(n: int, seq0: int = 1000, ts0: int = 50000, pt: int = 8, step: int = 160, period: float = 0.02,
           noise: float = 0.002, seed: int = 7, ssrc: int = 0x11223344, t0: float = 1_700_000_000.0) -> list[Packet]:
    rnd = random.Random(seed)
    return [(t0 + i * period + rnd.uniform(0, noise), rtp_packet(seq0 + i, ts0 + step * i, pt, ssrc=ssrc))
            for i in range(n)]


def _with(packets: list[Packet], index: int, **fields) -> list[Packet]:
    """A copy of the stream with packet `index` rebuilt from new header fields (others kept)."""
    pt, marker, seq, ts, ssrc, _, _ = parse_rtp_header(packets[index][1])
    values = {"pt": pt, "marker": marker, "seq": seq, "ts": ts, "ssrc": ssrc} | fields
    out = list(packets)
    out[index] = (packets[index][0], rtp_packet(values["seq"], values["ts"], values["pt"], values["marker"],
                                                values["ssrc"]))
    return out


def _scenario_seq_wrap() -> list[Packet]:
    return _voice(60, seq0=65510)


def _scenario_double_wrap_from_zero() -> list[Packet]:
    # starting at 0, tshark only sees a new cycle on exactly 65535 -> 0; two full cycles here
    return [(1_700_000_000.0 + i * 0.0001, rtp_packet(i, 160 * i, 0, payload=b"\xff" * 4)) for i in range(140_000)]


def _scenario_duplicates() -> list[Packet]:
    p = _voice(40)
    return p[:10] + [(p[9][0] + 0.0001, p[9][1])] + p[10:30] + [(p[29][0] + 0.0001, p[29][1])] * 2 + p[30:]


def _scenario_reordered() -> list[Packet]:
    p = _voice(40)
    p[10], p[11] = (p[10][0], p[11][1]), (p[11][0], p[10][1])  # swapped
    late = p.pop(20)
    p.insert(23, (p[22][0] + 0.001, late[1]))  # 3 packets late
    return p


def _scenario_loss_bursts() -> list[Packet]:
    p = _voice(100)
    drop = {20, 21, 22, 23, 24, 50, 70}
    return [pkt for i, pkt in enumerate(p) if i not in drop]


def _scenario_marker_talkspurts() -> list[Packet]:
    first = _voice(30)
    # 1 s of silence, then a talkspurt with the marker bit: timestamp and arrival both jump
    second = _voice(30, seq0=1030, ts0=50000 + 160 * 30 + 8000, t0=1_700_000_000.0 + 0.6 + 1.0, seed=8)
    second = _with(second, 0, marker=True)
    return first + second


def _scenario_comfort_noise() -> list[Packet]:
    p = _voice(60)
    for i in (20, 21, 40):
        p = _with(p, i, pt=13)
    return p


def _scenario_ssrc_ffffffff() -> list[Packet]:
    return _voice(30, ssrc=0xFFFFFFFF, seq0=0, ts0=0)


def _scenario_timestamps() -> list[Packet]:
    p = _voice(60, ts0=0xFFFFF000)  # RTP timestamp wraps after ~26 packets
    p = _with(p, 40, ts=0xFFFFF000 - 16000)  # a timestamp before the first packet's: wrong timestamp
    return _with(p, 50, ts=0xFFFFF000 + 160 * 48)  # an old (but later than first) timestamp


def _scenario_sequence_jumps() -> list[Packet]:
    p = _voice(40, seq0=65400)
    p = _with(p, 10, seq=100)  # far backwards: late (tshark)
    return [pkt for i, pkt in enumerate(p) if i not in range(30, 36)] + _voice(10, seq0=40, t0=1_700_000_001.0)


def _scenario_telephone_event_inside() -> list[Packet]:
    p = _voice(60, pt=0)
    # an RFC 4733 digit '5' in the middle: PT 101, same timestamp, growing duration, 3 end packets
    ev_ts = 50000 + 160 * 20
    out = p[:20]
    for k in range(6):
        end = k >= 3
        body = struct.pack("!BBH", 5, (0x80 if end else 0) | 10, 160 * (k + 1) if not end else 640)
        out.append((p[20 + k][0], rtp_packet(1020 + k, ev_ts, 101, marker=k == 0, payload=body)))
    for i in range(26, 60):
        out.append(p[i])
    return out


def _scenario_l16_44100() -> list[Packet]:
    # tshark divides by clock_rate / 1000 in integer arithmetic: 44 samples per ms, not 44.1, so 4410 samples
    # are 100.23 ms to it and its jitter settles near 0.23 ms (0.0x ms with a true 44.1 kHz clock)
    return _voice(50, pt=11, step=4410, period=0.1, noise=0.0002)


def _scenario_first_seq_65535() -> list[Packet]:
    return _voice(20, seq0=65535)


SCENARIOS = {
    "seq_wrap": _scenario_seq_wrap,
    "double_wrap_from_zero": _scenario_double_wrap_from_zero,
    "duplicates": _scenario_duplicates,
    "reordered": _scenario_reordered,
    "loss_bursts": _scenario_loss_bursts,
    "marker_talkspurts": _scenario_marker_talkspurts,
    "comfort_noise": _scenario_comfort_noise,
    "ssrc_ffffffff": _scenario_ssrc_ffffffff,
    "timestamps": _scenario_timestamps,
    "sequence_jumps": _scenario_sequence_jumps,
    "telephone_event_inside": _scenario_telephone_event_inside,
    "l16_44100": _scenario_l16_44100,
    "first_seq_65535": _scenario_first_seq_65535,
}


def feed(packets: list[Packet], **kwargs) -> RtpStreamStats:
    stats = None
    for frame, (arrival, packet) in enumerate(packets, 1):
        pt, marker, seq, ts, ssrc, hlen, plen = parse_rtp_header(packet)
        if stats is None:
            stats = RtpStreamStats(ssrc, **kwargs)
        stats.update(arrival, frame, pt, marker, seq, ts, plen, packet, hlen)
    return stats


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_crafted_stream_equals_tshark(name: str, tmp_path: Path) -> None:
    packets = SCENARIOS[name]()
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, [(t, _udp_frame(p, ident=i)) for i, (t, p) in enumerate(packets)])
    expected, _ = run_tshark(path, ["-d", f"udp.port=={DST[1]},rtp"])
    assert len(expected) == 1
    assert_same(feed(packets), expected[0], name)


def test_crafted_sdp_dynamic_payload_types(tmp_path: Path) -> None:
    """Dynamic PTs negotiated in SDP: opus/48000 gets jitter at 48 samples/ms, telephone-event gets none."""
    sdp = ("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
           "m=audio 5000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\n")
    invite = ("INVITE sip:b@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
              "From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:b@10.0.0.2>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
              "Contact: <sip:a@10.0.0.1>\r\nContent-Type: application/sdp\r\n"
              f"Content-Length: {len(sdp)}\r\n\r\n{sdp}").encode()
    rnd = random.Random(3)
    t0 = 1_700_000_000.0
    packets = [(t0 + 0.5 + i * 0.02 + rnd.uniform(0, 0.004), rtp_packet(i, 960 * i, 96, payload=b"\x01" * 60))
               for i in range(40)]
    body = struct.pack("!BBH", 11, 0x80 | 10, 800)
    packets[30] = (packets[30][0], rtp_packet(30, 960 * 30, 101, payload=body))
    frames = [(t0, _udp_frame(invite, ("10.0.0.1", 5060), ("10.0.0.2", 5060)))]
    frames += [(t, _udp_frame(p, ident=i)) for i, (t, p) in enumerate(packets)]
    path = tmp_path / "sdp.pcap"
    write_pcap(path, frames)
    expected, _ = run_tshark(path, [])
    assert len(expected) == 1
    stats = feed(packets, clock_rates={96: 48000, 101: 8000}, encodings={96: "opus", 101: "telephone-event"})
    assert_same(stats, expected[0], "sdp")
    assert stats.jitter_samples > 0
    assert [e.digit for e in stats.dtmf_events] == ["#"]
    # without the SDP, tshark (and we) know no clock for PT 96: no jitter at all
    bare = feed(packets)
    assert bare.max_jitter_ms is None and bare.mean_jitter_ms is None


# --- hand-computed expectations on the same streams ----------------------------------------------------------


def test_seq_wrap_counts() -> None:
    stats = feed(_scenario_seq_wrap())
    assert (stats.packets, stats.expected, stats.lost) == (60, 60, 0)
    assert stats.highest_seq == 65510 + 59
    assert stats.sequence_errors == 0 and not stats.problem


def test_double_wrap_from_zero() -> None:
    stats = feed(_scenario_double_wrap_from_zero())
    assert (stats.packets, stats.expected, stats.lost) == (140_000, 140_000, 0)


def test_first_seq_65535() -> None:
    stats = feed(_scenario_first_seq_65535())
    assert (stats.expected, stats.lost, stats.sequence_errors) == (20, 0, 0)


def test_duplicates_make_lost_negative() -> None:
    stats = feed(_scenario_duplicates())
    assert (stats.packets, stats.expected, stats.lost) == (43, 40, -3)
    assert stats.duplicates == 3 and stats.out_of_order == 0
    assert stats.lost_pct == pytest.approx(-7.5)
    assert stats.missing == 0 and stats.loss_bursts == []
    assert stats.problem


def test_reordering_is_not_loss() -> None:
    stats = feed(_scenario_reordered())
    assert (stats.packets, stats.duplicates, stats.out_of_order) == (40, 0, 2)
    assert stats.missing == 0 and stats.loss_bursts == []
    # tshark: the last packet carries the highest sequence number, so nothing is lost
    assert stats.lost == 0


def test_loss_bursts() -> None:
    stats = feed(_scenario_loss_bursts())
    assert (stats.packets, stats.expected, stats.lost) == (93, 100, 7)
    assert stats.loss_bursts == [5, 1, 1]
    assert stats.longest_loss_burst == 5 and stats.seq_jumps == 3 and stats.missing == 7
    assert stats.lost_pct == pytest.approx(7.0)
    # Gilbert fit: mean run 7/3, loss ratio 7/100 -> 7/3 * 0.93
    assert stats.burst_ratio == pytest.approx(7 / 3 * 0.93)
    assert stats.sequence_errors == 3  # every jump is a tshark sequence error


def test_marker_packet_is_excluded_from_delta() -> None:
    packets = _scenario_marker_talkspurts()
    stats = feed(packets)
    assert stats.marker_packets == 1
    assert stats.max_delta_ms < 30  # the 1.02 s gap before the marker packet does not count
    assert stats.lost == 0 and not stats.problem


def test_comfort_noise_and_the_packet_after_are_excluded() -> None:
    stats = feed(_scenario_comfort_noise())
    assert stats.payload_types == {8: 57, 13: 3}
    assert stats.lost == 0


def test_ssrc_ffffffff() -> None:
    stats = feed(_scenario_ssrc_ffffffff())
    assert stats.ssrc == 0xFFFFFFFF and stats.to_dict()["ssrc"] == "0xFFFFFFFF"


def test_wrong_timestamps() -> None:
    stats = feed(_scenario_timestamps())
    assert stats.wrong_timestamps == 1 and stats.problem  # only the one before the first packet


def test_telephone_event_extraction_and_no_jitter() -> None:
    stats = feed(_scenario_telephone_event_inside())
    assert stats.payload_types == {0: 54, 101: 6}
    [event] = stats.dtmf_events
    assert (event.digit, event.ended, event.packets, event.duration, event.volume) == ("5", True, 6, 640, 10)
    assert event.duration_ms == pytest.approx(80.0)
    assert event.frame == 21


def test_dtmf_capture_events() -> None:
    path = SHARED_CAPTURES / "sipp" / "dtmf_2833_star.pcap"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    capture = open_capture(str(path))
    decoder = FrameDecoder()
    table = RtpStreamTable()
    for frame, ts, linktype, data in capture.frames():
        dgram = decoder.decode(frame, ts, linktype, data)
        if dgram is not None:
            table.add(frame, ts, dgram.src, dgram.sport, dgram.dst, dgram.dport, dgram.payload)
    [stats] = table.streams.values()
    [event] = stats.dtmf_events
    assert (event.digit, event.ended, event.packets, event.duration_ms) == ("*", True, 10, 280.0)


def test_clock_rate_rules() -> None:
    assert clock_rate_for(0) == 8000 and clock_rate_for(9) == 8000 and clock_rate_for(11) == 44100
    assert clock_rate_for(20) == 0  # unassigned static PT
    assert clock_rate_for(35, {35: 8000}) == 0  # tshark never reads SDP below 96
    assert clock_rate_for(96) == 0  # dynamic without SDP
    assert clock_rate_for(96, {96: 48000}, {96: "opus"}) == 48000
    assert clock_rate_for(97, {}, {97: "AMR-WB"}) == 16000  # by name when the rate is missing
    assert clock_rate_for(97, {}, {97: "AMR"}) == 8000
    assert clock_rate_for(101, {101: 8000}, {101: "telephone-event"}) == 0


def test_first_packet_only() -> None:
    stats = feed(_voice(1))
    assert (stats.packets, stats.expected, stats.lost) == (1, 1, 0)
    assert stats.min_delta_ms is None and stats.max_delta_ms == 0.0
    assert stats.max_jitter_ms is None and stats.last_jitter_ms is None
    assert stats.to_dict()["packets"] == 1


def test_to_dict_is_complete() -> None:
    d = feed(_scenario_loss_bursts()).to_dict()
    for key in ("packets", "bytes", "first", "last", "first_frame", "last_frame", "payload_types", "expected",
                "lost", "lost_pct", "duplicates", "out_of_order", "seq_jumps", "longest_loss_burst", "loss_bursts",
                "max_delta_ms", "mean_delta_ms", "min_delta_ms", "max_jitter_ms", "mean_jitter_ms",
                "last_jitter_ms", "dtmf_events", "burst_ratio"):
        assert key in d
    assert d["bytes"] == 93 * 160


# --- the RTP header parser -----------------------------------------------------------------------------------


def test_parse_plain_header() -> None:
    packet = rtp_packet(0xABCD, 0x01020304, 0, marker=True, ssrc=0xDEADBEEF, payload=b"x" * 20)
    assert parse_rtp_header(packet) == (0, True, 0xABCD, 0x01020304, 0xDEADBEEF, 12, 20)


def test_parse_csrc_extension_padding() -> None:
    packet = rtp_packet(1, 2, 96, csrcs=(1, 2, 3), extension=b"\x10\xaa\x00\x00" * 2, padding=4,
                        payload=b"y" * 30)
    assert parse_rtp_header(packet) == (96, False, 1, 2, 0x11223344, 12 + 12 + 4 + 8, 30)


def test_parse_empty_payload_is_fine() -> None:
    assert parse_rtp_header(rtp_packet(1, 2, payload=b""))[5:] == (12, 0)


@pytest.mark.parametrize("packet", [
    b"",
    b"\x80\x08\x00\x01",  # shorter than the fixed header
    b"\x40" + rtp_packet(1, 2)[1:],  # version 1
    b"\xc0" + rtp_packet(1, 2)[1:],  # version 3
    rtp_packet(1, 2, payload=b"")[:12] .replace(b"\x80", b"\x8f", 1),  # 15 CSRCs announced, none there
    rtp_packet(1, 2, payload=b"", extension=b"")[:14],  # extension header cut short
    rtp_packet(1, 2, payload=b"", extension=b"\x00" * 8)[:-4],  # extension length past the end
    rtp_packet(1, 2, payload=b"ab", padding=1)[:-1] + b"\x00",  # padding count 0
    rtp_packet(1, 2, payload=b"ab", padding=1)[:-1] + b"\x09",  # padding count past the payload
    b"\xa0" + b"\x00" * 11,  # padding bit, no payload at all
])
def test_malformed_headers_give_none(packet: bytes) -> None:
    assert parse_rtp_header(packet) is None


def test_looks_like_rtp_and_is_rtcp() -> None:
    assert looks_like_rtp(rtp_packet(1, 2, 0))
    assert not looks_like_rtp(rtp_packet(1, 2, 72, marker=True))  # RTCP SR in RTP clothes
    assert not looks_like_rtp(b"\x80\x08\x00")
    assert not looks_like_rtp(b"INVITE sip:x SIP/2.0\r\n")
    assert is_rtcp(b"\x80\xc8\x00\x06" + b"\x00" * 24)
    assert is_rtcp(b"\x81\xcf\x00\x00")
    assert not is_rtcp(b"\x80\xc7\x00\x00")  # 199
    assert not is_rtcp(b"\x80\xd0\x00\x00")  # 208
    assert not is_rtcp(rtp_packet(1, 2, 8))


# --- E-model ---------------------------------------------------------------------------------------------------


def test_mos_reference_points() -> None:
    # G.711 with no loss: R = 93.2 -> MOS 4.41 (G.107 Annex B)
    assert estimate_mos("PCMA", 0.0) == 4.41
    assert estimate_mos("g711U", 0.0) == 4.41
    # G.729: Ie = 11 -> R = 82.2 -> 4.10 (the 3.92 often quoted includes Id for ~150 ms)
    assert estimate_mos("G729", 0.0) == 4.10
    # G.711 PLC at 1 % random loss: Ie_eff = 95 * 1 / (1 + 25.1) = 3.64 -> R = 89.56 -> 4.33
    assert estimate_mos("PCMU", 1.0) == 4.33
    assert estimate_mos("PCMU", 5.0, burst_ratio=2.0) < estimate_mos("PCMU", 5.0)
    assert estimate_mos("PCMU", 0.0, delay_ms=300) < estimate_mos("PCMU", 0.0)
    assert estimate_mos("PCMU", 100.0) == 1.18  # Ie_eff = 95 * 100 / (100 + 25.1) = 75.9: R = 17.3
    assert estimate_mos("nonsense", 1.0) is None and estimate_mos(None, 1.0) is None
    assert estimate_mos("PCMU", -5.0) == 4.41  # tshark's negative loss (duplicates) is no loss


def test_burst_ratio() -> None:
    assert burst_ratio([], 100) == 1.0
    assert burst_ratio([1, 1, 1], 1000) == pytest.approx(0.997)
    assert burst_ratio([10], 100) == pytest.approx(9.0)
    assert burst_ratio([5], 5) == 1.0  # nothing received: undefined, neutral


def test_stream_mos() -> None:
    stats = feed(_scenario_loss_bursts())
    assert stats.mos("PCMA") == estimate_mos("PCMA", 7.0, 7 / 3 * 0.93)
    assert feed(_voice(50)).mos("PCMA") == 4.41


def test_stream_table_keys_and_rtcp_mux() -> None:
    table = RtpStreamTable()
    a = rtp_packet(1, 160, 0, ssrc=1)
    assert table.add(1, 1.0, "10.0.0.1", 4000, "10.0.0.2", 5000, a) is not None
    assert table.add(2, 1.02, "10.0.0.1", 4000, "10.0.0.2", 5000, rtp_packet(2, 320, 0, ssrc=1)).packets == 2
    assert table.add(3, 1.02, "10.0.0.1", 4000, "10.0.0.2", 5001, a).packets == 1  # other port: other stream
    assert table.add(4, 1.03, "10.0.0.1", 4000, "10.0.0.2", 5000, b"\x80\xc8\x00\x06" + b"\x00" * 24) is None
    assert table.add(5, 1.04, "10.0.0.1", 4000, "10.0.0.2", 5000, b"hello") is None
    assert (len(table.streams), table.rtcp, table.not_rtp) == (2, 1, 1)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=80))
def test_parse_rtp_header_never_raises(data: bytes) -> None:
    header = parse_rtp_header(data)
    if header is not None:
        pt, marker, seq, ts, ssrc, hlen, plen = header
        assert 0 <= pt < 128 and 12 <= hlen <= len(data) and 0 <= plen <= len(data) - hlen


_packet_fields = st.tuples(st.floats(0, 0.2), st.integers(0, 127), st.booleans(), st.integers(-3, 40),
                           st.integers(0, 0xFFFFFFFF))


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 0xFFFF), st.lists(_packet_fields, min_size=1, max_size=60))
def test_update_invariants(seq0: int, fields: list) -> None:
    stats = RtpStreamStats(7)
    t, seq = 1000.0, seq0
    for frame, (gap, pt, marker, step, ts) in enumerate(fields, 1):
        t += gap
        seq = (seq + step) & 0xFFFF
        stats.update(t, frame, pt, marker, seq, ts, 10, b"\x80" * 16, 12)
    assert stats.packets == len(fields) == sum(stats.payload_types.values())
    assert stats.lost == stats.expected - stats.packets
    assert stats.missing == sum(stats.loss_bursts) >= 0
    assert stats.longest_loss_burst == max(stats.loss_bursts, default=0)
    assert stats.jitter_samples == 0 or stats.max_jitter_ms >= stats.min_jitter_ms >= 0
    assert stats.to_dict()["packets"] == len(fields)


def test_from_recording_equals_update() -> None:
    """RtpStreamStats.from_recording (the layout of sipwatch.media.recorder) gives what update() gives."""
    from array import array
    from types import SimpleNamespace

    packets = _scenario_telephone_event_inside() + [
        (1_700_000_002.0, rtp_packet(1060, 50000 + 160 * 60, 0, csrcs=(5,), padding=3)),
        (1_700_000_002.1, rtp_packet(1061, 50000 + 160 * 61, 0)[:-1] + b"\x00"),
    ]
    packets[-1] = (packets[-1][0], bytes([0xA0]) + packets[-1][1][1:])  # padding bit, count 0: refused
    recording = SimpleNamespace(ssrc=0x11223344, headers=bytearray(), arrivals=array("d"), frames=array("q"),
                                lengths=array("l"), odd={})
    for frame, (arrival, packet) in enumerate(packets, 1):
        if packet[0] != 0x80:
            recording.odd[len(recording.arrivals)] = packet
        recording.headers += packet[:16].ljust(16, b"\0")
        recording.arrivals.append(arrival)
        recording.frames.append(frame)
        recording.lengths.append(len(packet))
    replayed = RtpStreamStats.from_recording(recording)
    direct = feed(packets[:-1])
    assert replayed.to_dict() == direct.to_dict()
    assert replayed.dtmf_events[0].digit == "5"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=1200))
def test_jitter_recurrence_equals_the_scalar_loop(transits: list[float]) -> None:
    """The chunked closed form of RFC 3550 A.8 gives the loop's values (across chunk boundaries too)."""
    import numpy as np

    from sipwatch.media.rtpstats import jitter_recurrence

    expected, j = [], 0.0
    for d in transits:
        j = (15.0 * j + d) / 16.0
        expected.append(j)
    assert jitter_recurrence(np.array(transits)).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)
