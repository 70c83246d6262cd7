"""RTCP parsing against tshark 4.0 on real and crafted compound packets, exact error messages on truncated
input, and a fuzz test: arbitrary bytes only ever raise ValueError."""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import SHARED_CAPTURES
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rtpstats import _udp_frame, write_pcap

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import open_capture
from sipwatch.media.rtcp import (
    App,
    ExtendedReport,
    Feedback,
    Goodbye,
    ReceiverReport,
    ReportBlock,
    SenderInfo,
    SenderReport,
    SourceDescription,
    VoipMetrics,
    ntp_middle32,
    parse_compound,
    round_trip_time,
)
from sipwatch.media.rtp import is_rtcp

# --- building RTCP -------------------------------------------------------------------------------------------


def rtcp(pt: int, count: int, body: bytes, padding: int = 0, version: int = 2) -> bytes:
    pad = (b"\x00" * (padding - 1) + bytes([padding])) if padding else b""
    words = (4 + len(body) + len(pad)) // 4 - 1
    return struct.pack("!BBH", version << 6 | (0x20 if padding else 0) | count, pt, words) + body + pad


def block(ssrc: int, fraction: int = 0, lost: int = 0, high: int = 0, jitter: int = 0, lsr: int = 0,
          dlsr: int = 0) -> bytes:
    return struct.pack("!IB3sIIII", ssrc, fraction, (lost & 0xFFFFFF).to_bytes(3, "big"), high, jitter, lsr, dlsr)


def sender_report(ssrc: int = 0x1111, blocks: tuple[bytes, ...] = ()) -> bytes:
    info = struct.pack("!IIIII", 3711615344, 1298222584, 123456, 50, 8000)
    return rtcp(200, len(blocks), struct.pack("!I", ssrc) + info + b"".join(blocks))


def receiver_report(ssrc: int = 0x1111, blocks: tuple[bytes, ...] = ()) -> bytes:
    return rtcp(201, len(blocks), struct.pack("!I", ssrc) + b"".join(blocks))


def sdes(ssrc: int, items: list[tuple[int, bytes]]) -> bytes:
    raw = b"".join(bytes([kind, len(value)]) + value for kind, value in items)
    raw += b"\x00" * (4 - len(raw) % 4)
    return rtcp(202, 1, struct.pack("!I", ssrc) + raw)


def bye(ssrcs: tuple[int, ...], reason: bytes | None = None) -> bytes:
    body = b"".join(struct.pack("!I", s) for s in ssrcs)
    if reason is not None:
        tail = bytes([len(reason)]) + reason
        body += tail + b"\x00" * (-len(tail) % 4)
    return rtcp(203, len(ssrcs), body)


VOIP_FIELDS = (0x2222, 12, 3, 100, 5, 120, 3000, 48, 70, -20, -65, 127, 16, 85, 127, 41, 37, 0xC0 | 0x10 | 5,
               40, 80, 120)


def voip_block(words: int = 8) -> bytes:
    return struct.pack("!BBH", 7, 0, words) + struct.pack("!IBBBBHHHHbbBBBBBBBxHHH", *VOIP_FIELDS)


def xr(ssrc: int = 0x1111, blocks: bytes = b"", padding: int = 0) -> bytes:
    return rtcp(207, 0, struct.pack("!I", ssrc) + blocks, padding)


CRAFTED = (receiver_report(0x1111, (block(0x2222, 25, -3, 0x0001FFF0, 77, 0xC1704D61, 131072),))
           + sdes(0x1111, [(1, b"user@host"), (2, b"Bob")])
           + xr(0x1111, voip_block() + struct.pack("!BBH", 4, 0, 2) + struct.pack("!II", 0x2222, 77))
           + bye((0x1111,), b"hangup"))

# --- tshark ---------------------------------------------------------------------------------------------------


def _list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def tshark_rtcp(path: Path, extra: list[str]) -> dict[int, list[dict]]:
    """frame number -> tshark's RTCP packets (JSON trees) for every frame with RTCP."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test installs it)")
    cmd = ["tshark", "-n", "-r", str(path), *extra, "-Y", "rtcp", "-T", "json", "-J", "frame rtcp",
           "--no-duplicate-keys"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frames = {}
    for entry in json.loads(result.stdout or "[]"):
        layers = entry["_source"]["layers"]
        frames[int(layers["frame"]["frame.number"])] = _list(layers["rtcp"])
    return frames


def _numbered(tree: dict, prefix: str) -> list[dict]:
    keys = sorted((k for k in tree if k.startswith(prefix)), key=lambda k: int(k[len(prefix):].split(",")[0]))
    return [tree[k] for k in keys]


def _hex(value: str) -> int:
    return int(value, 16)


def assert_block_matches(ours: ReportBlock, theirs: dict) -> None:
    contents = theirs["SSRC contents"]
    assert ours.ssrc == _hex(theirs["rtcp.ssrc.identifier"])
    assert ours.fraction_lost == int(contents["rtcp.ssrc.fraction"])
    assert ours.cumulative_lost == int(contents["rtcp.ssrc.cum_nr"])
    assert ours.highest_seq == int(theirs["rtcp.ssrc.ext_high"])
    assert ours.jitter == int(theirs["rtcp.ssrc.jitter"])
    assert ours.lsr == int(theirs["rtcp.ssrc.lsr"])
    assert ours.dlsr == int(theirs["rtcp.ssrc.dlsr"])


def assert_packet_matches(ours, theirs: dict) -> None:
    pt = int(theirs["rtcp.pt"])
    assert ours.packet_type == pt
    if pt in (200, 201):
        assert ours.ssrc == _hex(theirs["rtcp.senderssrc"])
        if pt == 200:
            info = ours.sender_info
            assert info.ntp_msw == int(theirs["rtcp.timestamp.ntp.msw"])
            assert info.ntp_lsw == int(theirs["rtcp.timestamp.ntp.lsw"])
            assert info.rtp_timestamp == int(theirs["rtcp.timestamp.rtp"])
            assert info.packet_count == int(theirs["rtcp.sender.packetcount"])
            assert info.octet_count == int(theirs["rtcp.sender.octetcount"])
        sources = _numbered(theirs, "Source ")
        assert len(ours.reports) == len(sources)
        for mine, source in zip(ours.reports, sources, strict=True):
            assert_block_matches(mine, source)
    elif pt == 202:
        chunks = _numbered(theirs, "Chunk ")
        assert len(ours.chunks) == len(chunks)
        for mine, chunk in zip(ours.chunks, chunks, strict=True):
            assert mine.ssrc == _hex(chunk["rtcp.ssrc.identifier"])
            items = chunk["SDES items"]
            types = [int(t) for t in _list(items["rtcp.sdes.type"]) if t != "0"]
            assert [kind for kind, _ in mine.items] == types
            texts = _list(items.get("rtcp.sdes.text"))
            assert [value.decode() for kind, value in mine.items if kind != 8] == texts
    elif pt == 203:
        assert list(ours.ssrcs) == [_hex(s) for s in _list(theirs.get("rtcp.ssrc.identifier"))]
        assert ours.reason == theirs.get("rtcp.sdes.text")
    elif pt == 207:
        assert ours.ssrc == _hex(theirs["rtcp.senderssrc"])
        blocks = _numbered(theirs, "Block ")
        assert [b.block_type for b in ours.blocks] == [int(b["rtcp.xr.bt"]) for b in blocks]
        voip = [b["Contents"] for b in blocks if b["rtcp.xr.bt"] == "7"]
        assert len(ours.voip_metrics) == len(voip)
        for mine, contents in zip(ours.voip_metrics, voip, strict=True):
            v = "rtcp.xr.voipmetrics."
            assert mine.ssrc == _hex(contents["rtcp.ssrc.identifier"])
            assert mine.loss_rate == int(contents["rtcp.ssrc.fraction"])
            assert mine.discard_rate == int(contents["rtcp.ssrc.discarded"])
            for ours_name, theirs_name in (
                ("burst_density", "burstdensity"), ("gap_density", "gapdensity"),
                ("burst_duration", "burstduration"), ("gap_duration", "gapduration"),
                ("round_trip_delay", "rtdelay"), ("end_system_delay", "esdelay"),
                ("signal_level", "signallevel"), ("noise_level", "noiselevel"), ("rerl", "rerl"),
                ("gmin", "gmin"), ("r_factor", "rfactor"), ("ext_r_factor", "extrfactor"),
                ("jb_nominal", "jbnominal"), ("jb_maximum", "jbmax"), ("jb_abs_max", "jbabsmax"),
            ):
                assert getattr(mine, ours_name) == int(contents[v + theirs_name]), ours_name
            assert mine.mos_lq_value == float(contents[v + "moslq"])
            assert mine.mos_cq_value == float(contents[v + "moscq"])
            assert mine.rx_config >> 6 == int(contents[v + "plc"])


def rtcp_datagrams(path: Path, frames: set[int]) -> dict[int, tuple[float, bytes]]:
    capture = open_capture(str(path))
    decoder = FrameDecoder()
    out = {}
    for frame, ts, linktype, data in capture.frames():
        if frame in frames:
            dgram = decoder.decode(frame, ts, linktype, data)
            assert dgram is not None, frame
            out[frame] = (ts, dgram.payload)
    capture.close()
    return out


REAL = ["nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap", "heplify/rtp_rtcp_sip_ipv4_udp.pcap"]


@pytest.mark.parametrize("rel", REAL)
def test_real_rtcp_equals_tshark(rel: str) -> None:
    path = SHARED_CAPTURES / rel
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    expected = tshark_rtcp(path, ["--enable-heuristic", "rtcp_udp"])
    assert expected
    datagrams = rtcp_datagrams(path, set(expected))
    kinds = set()
    for frame, theirs in expected.items():
        payload = datagrams[frame][1]
        assert is_rtcp(payload), frame
        ours = parse_compound(payload)
        assert len(ours) == len(theirs), frame
        for mine, tree in zip(ours, theirs, strict=True):
            assert_packet_matches(mine, tree)
            kinds.add(mine.packet_type)
    assert {200, 202} <= kinds


def test_real_rtcp_counts() -> None:
    path = SHARED_CAPTURES / REAL[1]
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    expected = tshark_rtcp(path, [])
    assert len(expected) == 26  # MANIFEST: "RTCP 26 pkts"


def test_crafted_compound_equals_tshark(tmp_path: Path) -> None:
    path = tmp_path / "xr.pcap"
    write_pcap(path, [(1000.0, _udp_frame(CRAFTED, ("10.0.0.1", 5001), ("10.0.0.2", 5003)))])
    [theirs] = tshark_rtcp(path, ["-d", "udp.port==5003,rtcp"]).values()
    ours = parse_compound(CRAFTED)
    assert [p.packet_type for p in ours] == [201, 202, 207, 203]
    for mine, tree in zip(ours, theirs, strict=True):
        assert_packet_matches(mine, tree)


def test_crafted_compound_values() -> None:
    rr, desc, ext, goodbye = parse_compound(CRAFTED)
    [rb] = rr.reports
    assert (rb.ssrc, rb.fraction_lost, rb.cumulative_lost, rb.highest_seq, rb.seq_cycles) == (
        0x2222, 25, -3, 0x1FFF0, 1)
    assert rb.fraction_lost_pct == pytest.approx(9.765625)
    assert rb.jitter_ms(8000) == pytest.approx(9.625)
    assert rb.dlsr_seconds == 2.0
    assert desc.cnames == {0x1111: "user@host"}
    assert desc.chunks[0].item(2) == "Bob"
    [vm] = ext.voip_metrics
    assert [b.block_type for b in ext.blocks] == [7, 4]
    assert vm.loss_pct == pytest.approx(12 * 100 / 256)
    assert (vm.mos_lq_value, vm.mos_cq_value, vm.r_factor_value, vm.ext_r_factor) == (4.1, 3.7, 85, 127)
    assert vm.plc == "standard" and vm.rerl == 127
    assert (goodbye.ssrcs, goodbye.reason) == ((0x1111,), "hangup")


def test_round_trip_time_from_a_real_sr_rr_pair() -> None:
    """nDPI capture: frame 4's RR echoes frame 1's SR (LSR) after DLSR; the RTT is the RR's arrival minus the
    SR's NTP time minus DLSR (the SR sender's clock is the capture's, within tens of ms)."""
    path = SHARED_CAPTURES / REAL[0]
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    datagrams = rtcp_datagrams(path, {1, 4})
    sr = parse_compound(datagrams[1][1])[0]
    rr = parse_compound(datagrams[4][1])[0]
    [rb] = rr.reports
    assert rb.lsr == sr.sender_info.ntp_middle32
    arrival = datagrams[4][0]
    expected = arrival - sr.sender_info.ntp_time - rb.dlsr / 65536
    assert rb.rtt(arrival) == pytest.approx(expected, abs=2 / 65536)
    assert 0 < rb.rtt(arrival) < 0.1


def test_ntp_helpers() -> None:
    info = SenderInfo(3711615344, 1298222584, 0, 0, 0)
    assert ntp_middle32(info.ntp_time) == info.ntp_middle32
    assert round_trip_time(1.0e9, 0, 5) is None
    lsr = ntp_middle32(1_500_000_000.0)
    assert round_trip_time(1_500_000_000.25, lsr, 65536 // 8) == pytest.approx(0.125, abs=1 / 65536)
    assert round_trip_time(1_500_000_000.0, lsr, 65536) == pytest.approx(-1.0, abs=1 / 65536)


# --- exact error messages ---------------------------------------------------------------------------------------

RR_ONE = receiver_report(0x1111, (block(0x2222),))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "RTCP compound packet is empty"),
    (b"\x80", "RTCP packet is shorter than its 4-byte header"),
    (RR_ONE + b"\x80\xc9", "RTCP packet is shorter than its 4-byte header"),
    (RR_ONE + b"\x00\x01", "RTCP packet is shorter than its 4-byte header"),
    (b"\x41" + RR_ONE[1:], "RTCP version is 1, not 2"),
    (rtcp(199, 0, b"\x00" * 4), "RTCP packet type 199 is not 200-207"),
    (RR_ONE[:-4], "RTCP packet length 32 exceeds the 28 bytes available"),
    (rtcp(201, 2, struct.pack("!I", 1) + block(2)), "RTCP packet has truncated report block"),
    (rtcp(200, 1, struct.pack("!I", 1) + b"\x00" * 20 + block(2)[:20]), "RTCP packet has truncated report block"),
    (rtcp(200, 0, struct.pack("!I", 1) + b"\x00" * 16), "RTCP packet has truncated sender info"),
    (rtcp(201, 0, b""), "RTCP packet has truncated SSRC"),
    (rtcp(201, 0, struct.pack("!I", 1) + b"\x00\x00\x00", padding=1)[:-1] + b"\x00",
     "RTCP padding count 0 does not fit the packet"),
    (rtcp(201, 0, struct.pack("!I", 1), padding=4)[:-1] + b"\x09", "RTCP padding count 9 does not fit the packet"),
    (rtcp(202, 1, struct.pack("!I", 1) + bytes([1, 9]) + b"ab"), "RTCP SDES item is truncated"),
    (rtcp(202, 1, struct.pack("!I", 1) + bytes([1, 2]) + b"ab"), "RTCP SDES chunk is truncated"),
    (rtcp(202, 2, struct.pack("!I", 1) + b"\x00" * 4), "RTCP SDES chunk is truncated"),
    (rtcp(203, 3, struct.pack("!II", 1, 2)), "RTCP BYE has truncated SSRC list"),
    (rtcp(203, 1, struct.pack("!I", 1) + bytes([9]) + b"abc"), "RTCP BYE reason is truncated"),
    (rtcp(204, 0, struct.pack("!I", 1)), "RTCP APP packet is truncated"),
    (rtcp(206, 1, struct.pack("!I", 1)), "RTCP feedback packet is truncated"),
    (xr(1, voip_block()[:32]), "RTCP XR report block is truncated"),
    (xr(1, voip_block(7)[:32]), "RTCP XR VoIP metrics block has length 7, not 8"),
    (xr(1, b"\x00\x00", padding=2), "RTCP XR report block header is truncated"),
    (rtcp(207, 0, b""), "RTCP packet has truncated SSRC"),
])
def test_truncated_inputs_raise_exact_messages(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_compound(data)
    assert str(excinfo.value) == message


def test_parse_rejects_other_packet_types() -> None:
    with pytest.raises(ValueError, match=r"^RTCP packet type 201 is not SR \(200\)$"):
        SenderReport.parse(RR_ONE)
    with pytest.raises(ValueError, match=r"^RTCP packet type 201 is not RTPFB \(205\) or PSFB \(206\)$"):
        Feedback.parse(RR_ONE)
    with pytest.raises(ValueError, match="^RTCP packet has truncated report block$"):
        ReportBlock.parse(block(1)[:23])
    with pytest.raises(ValueError, match="^RTCP packet has truncated sender info$"):
        SenderInfo.parse(b"\x00" * 19)
    with pytest.raises(ValueError, match="^RTCP XR report block header is truncated$"):
        VoipMetrics.parse(b"\x07\x00")


def test_single_packet_parsers() -> None:
    sr = SenderReport.parse(sender_report(0xFFFFFFFF, (block(7, lost=0x7FFFFF), block(8, lost=-0x800000))))
    assert sr.ssrc == 0xFFFFFFFF
    assert [b.cumulative_lost for b in sr.reports] == [0x7FFFFF, -0x800000]
    assert sr.sender_info.packet_count == 50
    assert ReceiverReport.parse(RR_ONE + b"trailing bytes are ignored").reports[0].ssrc == 0x2222
    assert len(parse_compound(RR_ONE + b"\x00\x00")) == 1  # zero bytes after the last packet (heplify capture)
    assert Goodbye.parse(bye((1, 2))) == Goodbye((1, 2), None)
    app = App.parse(rtcp(204, 3, struct.pack("!I", 9) + b"TEST" + b"data"))
    assert (app.ssrc, app.subtype, app.name, app.data) == (9, 3, "TEST", b"data")
    fb = Feedback.parse(rtcp(206, 1, struct.pack("!II", 1, 2)))
    assert (fb.packet_type, fb.fmt, fb.sender_ssrc, fb.media_ssrc, fb.fci) == (206, 1, 1, 2, b"")
    padded = rtcp(201, 0, struct.pack("!I", 5), padding=4)
    assert ReceiverReport.parse(padded) == ReceiverReport(5, (), b"")
    assert SourceDescription.parse(sdes(3, [])).chunks[0].cname is None
    assert ExtendedReport.parse(xr(4)).blocks == ()


# --- fuzz ---------------------------------------------------------------------------------------------------------

PARSERS = (parse_compound, SenderReport.parse, ReceiverReport.parse, SourceDescription.parse, Goodbye.parse,
           App.parse, Feedback.parse, ExtendedReport.parse, ReportBlock.parse, SenderInfo.parse, VoipMetrics.parse)


def _only_value_errors(data: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(ValueError):
            parse(data)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_value_error(data: bytes) -> None:
    _only_value_errors(data)


@settings(max_examples=1500, deadline=None)
@given(st.integers(0, 31), st.integers(200, 207), st.integers(0, 0xFFFF), st.booleans(), st.binary(max_size=160))
def test_plausible_headers_only_raise_value_error(count: int, pt: int, words: int, padding: bool,
                                                  body: bytes) -> None:
    data = struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | count, pt, words) + body
    _only_value_errors(data)
    # and a well-formed length, so the per-type parsers run on the body
    words = (len(body) + 3) // 4
    fitted = struct.pack("!BBH", 0x80 | (0x20 if padding else 0) | count, pt, words) + body.ljust(words * 4, b"\0")
    _only_value_errors(fitted)
    _only_value_errors(fitted + CRAFTED)
