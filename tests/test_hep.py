"""HEP (HOMER): sipwatch against independent implementations, on loopback only.

- sngrep (`-H`) sends HEPv3 and HEPv2 to `HepListener`: every SIP message it sent must come out, with the
  addresses, ports, time, Call-ID and start line tshark reads in the original capture, and the calls must
  end as when sipwatch reads that capture directly.
- `HepSender` sends to sngrep (`-L`, decoding HEP) which writes what it understood to a pcap: tshark must
  read there what it reads in the original capture. (tshark 4.0 has no HEP dissector of its own.)
- HEP found in capture files (hep-wireshark's captures, sngrep's HEP written to a pcap) is unwrapped and
  checked against sngrep's `-E` (HEP parsing) or the original capture.
- Malformed HEP: a problem naming the byte offset, never an exception.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from conftest import CAPTURES, SHARED_CAPTURES

from sipwatch.capture.decode import LINKTYPE_RAW, FrameDecoder
from sipwatch.capture.hep import (
    HepError,
    HepPacket,
    HepUnwrapper,
    decode_hep,
    encode_hep3,
    is_hep,
    rtcp_json,
)
from sipwatch.capture.hep_net import HepListener, HepSender, parse_endpoint
from sipwatch.capture.reader import open_capture
from sipwatch.core.analyzer import Analyzer
from sipwatch.model import Datagram, ProblemLog, Transport, UsageError
from sipwatch.pipeline import analyze_file
from sipwatch.sip.framing import StreamFramer
from sipwatch.sip.message import SipMessage, SipParseError, starts_like_sip

HEP_WIRESHARK = SHARED_CAPTURES / "hep-wireshark"
SO_RXQ_OVFL_MISSING = not hasattr(socket, "SO_RXQ_OVFL") and os.uname().sysname != "Linux"
CALLS = ["answered_rtp.pcap", "tcp_call.pcap", "ipv6_call.pcap", "busy_486.pcap", "cancel_487.pcap"]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (make dev installs it)")


# --- oracles and helpers -----------------------------------------------------------------------------


def tshark_sip(path: Path) -> list[tuple]:
    """(time in µs, src, sport, dst, dport, Call-ID, start line) of every SIP message tshark reads."""
    _need("tshark")
    fields = [
        "frame.time_epoch", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "udp.srcport", "tcp.srcport",
        "udp.dstport", "tcp.dstport", "sip.Call-ID", "sip.Request-Line", "sip.Status-Line",
    ]
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "sip", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        t, s4, s6, d4, d6, us, ts_, ud, td, cid, req, st = (line.split("\t") + [""] * 12)[:12]
        rows.append((
            round(float(t) * 1e6), s4 or s6, int(us or ts_), d4 or d6, int(ud or td), cid, req or st,
        ))
    return rows


def sipwatch_sip(datagrams: list[Datagram], strict: bool = True) -> list[tuple]:
    """The same tuples from Datagrams, each SIP message parsed by sipwatch (with `strict` False, a message
    sipwatch's parser refuses still counts, by its start line and Call-ID header)."""
    rows = []
    framers: dict[tuple, StreamFramer] = {}
    for d in datagrams:
        if d.transport is Transport.TCP:
            key = (d.src, d.sport, d.dst, d.dport)
            messages = framers.setdefault(key, StreamFramer()).feed(d.payload)
        else:
            messages = [d.payload] if starts_like_sip(d.payload) else []
        for raw in messages:
            try:
                msg = SipMessage.parse(raw)
                call_id, start = msg.call_id, msg.start_line
            except SipParseError:
                if strict:
                    raise
                lines = raw.decode("utf-8", "replace").splitlines()
                start = lines[0]
                call_id = next(v.strip() for k, _, v in (x.partition(":") for x in lines) if k.lower() == "call-id")
            rows.append((round(d.ts * 1e6), d.src, d.sport, d.dst, d.dport, call_id, start))
    return rows


def decode_frames(frames: list[tuple[float, int, bytes]]) -> list[Datagram]:
    decoder = FrameDecoder()
    out = []
    for n, (ts, linktype, frame) in enumerate(frames, 1):
        d = decoder.decode(n, ts, linktype, frame)
        if d is not None:
            out.append(d)
    return out


def outcomes_from(datagrams: list[Datagram]) -> dict[str, str]:
    analyzer = Analyzer()
    calls = []
    for d in datagrams:
        calls += [e.call for e in analyzer.feed(d)]
    calls += [e.call for e in analyzer.close()]
    return {c.call_id: str(c.outcome) for c in calls}


def unwrap_capture(path: Path) -> tuple[list[Datagram], HepUnwrapper]:
    """What the file decoder does with HEP: each UDP payload that is HEP becomes a frame, decoded again.
    Once FrameDecoder unwraps HEP itself (its `hep` attribute), that is what runs here."""
    outer = FrameDecoder()
    hooked = isinstance(getattr(outer, "hep", None), HepUnwrapper)
    unwrapper = outer.hep if hooked else HepUnwrapper(outer.problems)
    inner = FrameDecoder(outer.problems)
    out = []
    for n, ts, linktype, data in open_capture(str(path)).frames():
        d = outer.decode(n, ts, linktype, data)
        if d is None:
            continue
        if hooked:
            out.append(d)
            continue
        if d.transport is not Transport.UDP or not is_hep(d.payload):
            continue
        got = unwrapper.unwrap(d.payload, n, fallback_ts=ts)
        if got is not None:
            assert got.linktype == LINKTYPE_RAW
            inner_d = inner.decode(n, got.ts, got.linktype, got.frame)
            if inner_d is not None:
                out.append(inner_d)
    return out, unwrapper


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_queue(port: int) -> int | None:
    """Bytes waiting in the receive queue of the UDP socket bound to `port`; None while none is bound."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                return int(cols[4].split(":")[1], 16)
    return None


def _wait(condition, what: str, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def sngrep_send(pcap: Path, listener: HepListener, version: int = 3, capture_id: int = 2002,
                password: str | None = None, tmp: Path | None = None) -> list[tuple[float, int, bytes]]:
    """sngrep reads `pcap` and sends its SIP as HEP to the listener; the frames the listener made."""
    _need("sngrep")
    rc = (tmp or Path("/tmp")) / f"sngrep-{os.getpid()}-{version}.rc"
    lines = [f"set eep.send.version {version}", f"set eep.send.id {capture_id}"]
    if password:
        lines.append(f"set eep.send.pass {password}")
    rc.write_text("\n".join(lines) + "\n")
    host, port = listener.address
    run = subprocess.run(
        ["sngrep", "-F", "-f", str(rc), "-I", str(pcap), "-H", f"udp:{host}:{port}", "-N", "-q"],
        capture_output=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    frames: list = []
    # sngrep has sent everything when it exits; the datagrams wait in the listener's socket
    while batch := listener.poll(0.2):
        frames += batch
    return frames


def sngrep_datagrams(pcap: Path, tmp: Path, version: int = 3, capture_id: int = 2002) -> list[bytes]:
    """The HEP datagrams sngrep sends for the SIP of `pcap`, as a plain UDP socket receives them."""
    _need("sngrep")
    rc = tmp / f"sngrep-raw-{os.getpid()}.rc"
    rc.write_text(f"set eep.send.version {version}\nset eep.send.id {capture_id}\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        run = subprocess.run(["sngrep", "-F", "-f", str(rc), "-I", str(pcap), "-H", f"udp:127.0.0.1:{port}", "-N",
                              "-q"], capture_output=True, timeout=60)
        assert run.returncode == 0, run.stderr
        sock.setblocking(False)
        raw = []
        while True:  # sngrep has exited: everything it sent is queued
            try:
                raw.append(sock.recv(65535))
            except BlockingIOError:
                return raw


class SngrepListener:
    """sngrep decoding HEP (`-L`) on a free port and writing what it decoded to a pcap (`-O`)."""

    def __init__(self, tmp: Path, password: str | None = None) -> None:
        _need("sngrep")
        self.port = _free_port()
        self.out = tmp / f"sngrep-decoded-{os.getpid()}.pcap"
        rc = tmp / f"sngrep-listen-{os.getpid()}.rc"
        rc.write_text(f"set eep.listen.pass {password}\n" if password else "")
        self.log = tmp / f"sngrep-listen-{os.getpid()}.log"
        self.proc = subprocess.Popen(
            ["sngrep", "-F", "-f", str(rc), "-L", f"udp:127.0.0.1:{self.port}", "-N", "-O", str(self.out)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )
        _wait(lambda: _udp_queue(self.port) is not None, "sngrep to listen for HEP")

    def dialogs(self) -> int:
        text = self.log.read_bytes().replace(b"\r", b"\n").decode(errors="replace")
        counts = [int(line.split(":")[1]) for line in text.splitlines() if line.startswith("Dialog count:")]
        return counts[-1] if counts else 0

    def finish(self, dialogs: int | None) -> Path:
        """Wait until sngrep has read every datagram (and counted `dialogs` dialogs), stop it, return its pcap."""
        _wait(lambda: _udp_queue(self.port) == 0, "sngrep to read its socket")
        if dialogs:
            _wait(lambda: self.dialogs() >= dialogs, f"sngrep to count {dialogs} dialogs")
        time.sleep(0.2)  # its reader thread hands the last packet to the parser
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        return self.out


# --- sngrep sends, sipwatch collects ---------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.parametrize("name", CALLS)
def test_sngrep_to_listener(name: str, version: int, tmp_path: Path) -> None:
    pcap = CAPTURES / name
    with HepListener("udp:127.0.0.1:0") as listener:
        frames = sngrep_send(pcap, listener, version=version, capture_id=77, tmp=tmp_path)
        counters = listener.counters()
    expected = tshark_sip(pcap)
    datagrams = decode_frames(frames)
    got = sipwatch_sip(datagrams)
    assert len(expected) >= 4
    assert counters["malformed"] == 0 and counters["packets"] == len(expected) == counters["frames"]
    assert sorted(got) == sorted(expected)
    # the calls end as when sipwatch reads the original capture
    direct = {c.call_id: str(c.outcome) for c in analyze_file(str(pcap)).calls}
    assert outcomes_from(datagrams) == direct


def test_sngrep_metadata_reaches_the_packet(tmp_path: Path) -> None:
    """Capture id, protocol type and time as sngrep sent them (HEPv3 and v2 datagrams themselves)."""
    pcap = CAPTURES / "answered_rtp.pcap"
    raw = sngrep_datagrams(pcap, tmp_path, capture_id=4321)
    packets = [decode_hep(r) for r in raw]
    assert packets and all(isinstance(p, HepPacket) for p in packets)
    first_tshark = tshark_sip(pcap)[0]
    p = packets[0]
    assert p.version == 3 and p.proto_name == "sip" and p.transport is Transport.UDP
    assert round(p.ts * 1e6) == first_tshark[0]
    # sngrep 1.6 writes its 16-bit id with htons into the 32-bit chunk: 4321 arrives as 4321 << 16
    assert p.capture_id == 4321 << 16


# --- sipwatch sends, sngrep decodes ----------------------------------------------------------------


def _sip_datagrams(pcap: Path) -> list[Datagram]:
    """Each SIP message of a capture as one Datagram (TCP framed into messages), the way the live runner
    would forward them."""
    decoder = FrameDecoder()
    framers: dict[tuple, StreamFramer] = {}
    out = []
    for n, ts, linktype, data in open_capture(str(pcap)).frames():
        d = decoder.decode(n, ts, linktype, data)
        if d is None:
            continue
        if d.transport is Transport.TCP:
            key = (d.src, d.sport, d.dst, d.dport)
            out += [d._replace(payload=m) for m in framers.setdefault(key, StreamFramer()).feed(d.payload)]
        elif starts_like_sip(d.payload):
            out.append(d)
    return out


@pytest.mark.parametrize("name", ["answered_rtp.pcap", "tcp_call.pcap", "ipv6_call.pcap", "cancel_487.pcap"])
def test_sender_decoded_by_sngrep(name: str, tmp_path: Path) -> None:
    pcap = CAPTURES / name
    expected = tshark_sip(pcap)
    sngrep = SngrepListener(tmp_path, password="s3cret")
    with HepSender(f"udp:127.0.0.1:{sngrep.port}", capture_id=4242, password="s3cret") as sender:
        for d in _sip_datagrams(pcap):
            assert sender.send_sip(d)
        assert sender.counters()["sent"] == len(expected)
    decoded = sngrep.finish(dialogs=len({row[5] for row in expected}))
    got = tshark_sip(decoded)
    if ":" in expected[0][1]:
        # sngrep 1.6's HEP receiver loses IPv6 addresses (it writes 0.0.0.0, from its own -H too): compare the
        # rest; test_round_trip and test_sngrep_to_listener check IPv6 addresses both ways
        got = [(t, sp, dp, cid, line) for t, _, sp, _, dp, cid, line in got]
        expected = [(t, sp, dp, cid, line) for t, _, sp, _, dp, cid, line in expected]
    assert sorted(got) == sorted(expected)


def test_sngrep_rejects_a_wrong_password(tmp_path: Path) -> None:
    """The same traffic with a key sngrep does not accept decodes to nothing: the test above can fail."""
    pcap = CAPTURES / "answered_rtp.pcap"
    sngrep = SngrepListener(tmp_path, password="expected")
    with HepSender(f"udp:127.0.0.1:{sngrep.port}", capture_id=1, password="wrong!!!") as sender:
        for d in _sip_datagrams(pcap):
            sender.send_sip(d)
    decoded = sngrep.finish(dialogs=None)
    assert tshark_sip(decoded) == []


def test_sender_never_raises_when_nobody_listens() -> None:
    port = _free_port()
    d = Datagram(1, 1700000000.5, "127.0.0.1", 5060, "127.0.0.1", 5080, Transport.UDP, b"OPTIONS sip:a SIP/2.0\r\n\r\n")
    with HepSender(f"udp:127.0.0.1:{port}") as sender:
        results = [sender.send_sip(d) for _ in range(50)]
        c = sender.counters()
    # ICMP port unreachable comes back as errors on the connected socket; nothing raises
    assert c["sent"] + c["dropped"] + c["errors"] == 50 == len(results)
    assert c["errors"] > 0


def test_sender_counts_oversize_instead_of_raising() -> None:
    with HepSender(f"udp:127.0.0.1:{_free_port()}") as sender:
        big = Datagram(1, 1.0, "127.0.0.1", 5060, "127.0.0.1", 5060, Transport.TCP, b"x" * 70000)
        assert sender.send_sip(big) is False
        assert sender.counters()["oversize"] == 1


# --- RTCP as HOMER's JSON ------------------------------------------------------------------------------


def test_rtcp_json_matches_tshark() -> None:
    pcap = SHARED_CAPTURES / "heplify" / "rtp_rtcp_sip_ipv4_udp.pcap"
    if not pcap.exists():
        pytest.skip("shared captures not present")
    _need("tshark")
    fields = ["frame.number", "rtcp.pt", "rtcp.senderssrc", "rtcp.sender.packetcount", "rtcp.sender.octetcount",
              "rtcp.ssrc.identifier", "rtcp.ssrc.fraction", "rtcp.ssrc.cum_nr", "rtcp.ssrc.jitter",
              "rtcp.ssrc.high_seq", "rtcp.ssrc.high_cycles", "rtcp.ssrc.lsr", "rtcp.ssrc.dlsr", "rtcp.rc"]
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", "rtcp", "-T", "fields", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    rows = {}
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout.splitlines():
        cols = line.split("\t")
        rows[int(cols[0])] = [c.split(",") for c in cols[1:]]
    decoder = FrameDecoder()
    checked = 0
    for n, ts, linktype, data in open_capture(str(pcap)).frames():
        if n not in rows:
            continue
        d = decoder.decode(n, ts, linktype, data)
        report = json.loads(rtcp_json(d.payload))
        pt, sender, packets, octets, ident, fraction, cum, jitter, high, cycles, lsr, dlsr, rc = rows[n]
        assert report["type"] == int(pt[0])
        assert report["ssrc"] == int(sender[0], 16)
        if report["type"] == 200:
            assert report["sender_information"]["packets"] == int(packets[0])
            assert report["sender_information"]["octets"] == int(octets[0])
        k = report["report_count"]
        assert k == int(rc[0])
        for i, block in enumerate(report["report_blocks"]):
            assert block["source_ssrc"] == int(ident[i], 16)
            assert block["fraction_lost"] == int(fraction[i])
            assert block["packets_lost"] == int(cum[i])
            assert block["ia_jitter"] == int(jitter[i])
            assert block["highest_seq_no"] == int(cycles[i]) << 16 | int(high[i])  # the extended number
            assert block["lsr"] == int(lsr[i]) and block["dlsr"] == int(dlsr[i])
        checked += 1
    assert checked == 26


def test_sender_rtcp_as_json_with_call_id() -> None:
    rr = struct.pack("!BBHI", 0x81, 201, 7, 0x11223344) + struct.pack("!IIIIII", 0x55667788, 0x0A00000C, 300, 8, 0, 0)
    with HepListener("udp:127.0.0.1:0") as listener:
        with HepSender(f"udp:127.0.0.1:{listener.address[1]}", capture_id=9) as sender:
            d = Datagram(1, 1700000000.25, "127.0.0.1", 4001, "127.0.0.1", 4003, Transport.UDP, rr)
            assert sender.send_rtcp(d, "abc@host")
            assert not sender.send_rtcp(d._replace(payload=b"\x80\x00" * 10))
            assert sender.counters()["not_rtcp"] == 1
        assert listener.poll(2.0) == []  # a JSON report is not a frame to analyze...
        assert listener.unwrapper.other == {"rtcp": 1}  # ...but it was received and decoded
    packet = decode_hep(encode_hep3(1.0, "127.0.0.1", 1, "127.0.0.1", 2, "udp", rtcp_json(rr), 9,
                                    proto_type=5, correlation_id=b"abc@host"))
    report = json.loads(packet.payload)
    assert packet.correlation_id == b"abc@host" and packet.proto_name == "rtcp"
    assert report["report_blocks"][0] == {
        "source_ssrc": 0x55667788, "highest_seq_no": 300, "fraction_lost": 10, "ia_jitter": 8,
        "packets_lost": 12, "lsr": 0, "dlsr": 0,
    }


# --- HEP in capture files -----------------------------------------------------------------------------


def _sngrep_eep(pcap: Path, tmp: Path) -> Path:
    """sngrep reading a capture with HEP parsing on (-E), writing what it decoded to a pcap."""
    _need("sngrep")
    out = tmp / "sngrep-eep.pcap"
    subprocess.run(["sngrep", "-I", str(pcap), "-E", "-N", "-q", "-O", str(out)], capture_output=True, timeout=60,
                   check=True)
    return out


def test_hep_wireshark_capture_equals_sngrep(tmp_path: Path) -> None:
    pcap = HEP_WIRESHARK / "hep.pcap"
    if not pcap.exists():
        pytest.skip("shared captures not present")
    datagrams, unwrapper = unwrap_capture(pcap)
    # its messages (generated by a HEP test tool) have no From or To: sipwatch's parser refuses them
    got = sipwatch_sip(datagrams, strict=False)
    expected = tshark_sip(_sngrep_eep(pcap, tmp_path))
    assert len(expected) == 6  # INVITE, 100, 407, OPTIONS, 200, PUBLISH
    assert sorted(got) == sorted(expected)
    assert unwrapper.packets == 8 and unwrapper.malformed == 0
    assert unwrapper.other == {"log": 1, "rtcp": 1}  # the RTCP-JSON report and the log line


def test_hep_compressed_capture() -> None:
    """zlib-compressed payload chunks (0x0010), SIP over TCP, each packet sent to three places: 7 messages
    thrice (MANIFEST: REGISTER x12, 401 x6, 200 x3; sngrep cannot inflate these)."""
    pcap = HEP_WIRESHARK / "hep3_compressed.pcap.pcapng"
    if not pcap.exists():
        pytest.skip("shared captures not present")
    datagrams, unwrapper = unwrap_capture(pcap)
    assert unwrapper.packets == unwrapper.frames == 21 and unwrapper.malformed == 0
    assert all(d.transport is Transport.TCP for d in datagrams)
    labels: dict[str, int] = {}
    for row in sipwatch_sip(datagrams):
        label = row[6].split()[0] if not row[6].startswith("SIP/2.0") else row[6].split()[1]
        labels[label] = labels.get(label, 0) + 1
    assert labels == {"REGISTER": 12, "401": 6, "200": 3}


@pytest.mark.parametrize("version", [3, 2])
def test_sngrep_hep_written_to_a_pcap(version: int, tmp_path: Path) -> None:
    """sngrep's HEP datagrams written into a pcap (Ethernet/IPv4/UDP to 9060), then unwrapped from the file."""
    pcap = CAPTURES / "tcp_call.pcap"
    raw = sngrep_datagrams(pcap, tmp_path, version=version)
    hep_pcap = tmp_path / "hep.pcap"
    _write_pcap(hep_pcap, [_eth_udp(r, 40000 + i, 9060) for i, r in enumerate(raw)])
    datagrams, unwrapper = unwrap_capture(hep_pcap)
    got = sipwatch_sip(datagrams)
    assert unwrapper.packets == len(raw) and unwrapper.malformed == 0
    assert sorted(got) == sorted(tshark_sip(pcap))
    if version == 3:  # and sngrep agrees on the file (its -O writes each TCP-carried message twice, as UDP)
        assert sorted(set(tshark_sip(_sngrep_eep(hep_pcap, tmp_path)))) == sorted(got)


def _eth_udp(payload: bytes, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton("127.0.0.1"),
                     socket.inet_aton("127.0.0.2"))
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def _write_pcap(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i, 0, len(frame), len(frame)) + frame)


# --- TCP collector ------------------------------------------------------------------------------------


def test_tcp_listener_frames_hep_across_segments(tmp_path: Path) -> None:
    """sngrep's HEP3 datagrams relayed over TCP in awkward pieces, with garbage between two of them."""
    pcap = CAPTURES / "answered_rtp.pcap"
    raw = sngrep_datagrams(pcap, tmp_path)
    stream = b"".join(raw[:3]) + b"GARBAGE!" + b"".join(raw[3:])
    with HepListener("tcp:127.0.0.1:0") as listener:
        client = socket.create_connection(listener.address)
        frames: list = []
        rng = random.Random(5)
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, 5, 7, 300, 2000))
            client.sendall(stream[pos : pos + step])
            pos += step
            frames += listener.poll(0.01)
        client.close()
        _wait_frames(listener, frames, len(raw))
        counters = listener.counters()
        problems = [str(p) for p in listener.problems.kept]
    assert counters["connections"] == 1 and counters["packets"] == len(raw)
    assert counters["malformed"] == 1
    offset = sum(len(r) for r in raw[:3])
    assert any(f"stream byte {offset}" in p and "8 bytes" in p for p in problems), problems
    assert sorted(sipwatch_sip(decode_frames(frames))) == sorted(tshark_sip(pcap))


def _wait_frames(listener: HepListener, frames: list, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(frames) < n and time.monotonic() < deadline:
        frames += listener.poll(0.1)
    frames += listener.poll(0.1)  # and the close


def test_listener_password_and_garbage() -> None:
    with HepListener("udp:127.0.0.1:0", password="pw") as listener:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = listener.address
        sip = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: 1@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        good = encode_hep3(1700000000.0, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", sip, 1, "pw")
        wrong = encode_hep3(1700000000.0, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", sip, 1, "nope")
        for data in (good, b"HEP3\x00\x01", wrong, good[:40], b"\x00\x01\x02", good):
            out.sendto(data, target)
        out.close()
        frames: list = []
        _wait_frames(listener, frames, 2)
        c = listener.counters()
    assert len(frames) == 2 and c["datagrams"] == 6
    assert c["auth_failed"] == 1 and c["malformed"] == 3


def test_listener_reports_kernel_drops() -> None:
    """A burst into a small receive buffer: the kernel's drop count reaches the listener's counters."""
    sip = b"OPTIONS sip:x SIP/2.0\r\n" + b"X-Pad: " + b"p" * 900 + b"\r\n\r\n"
    packet = encode_hep3(1.0, "192.0.2.1", 5060, "192.0.2.2", 5060, "udp", sip)
    with HepListener("udp:127.0.0.1:0", rcvbuf=4096) as listener, \
            HepSender(f"udp:127.0.0.1:{listener.address[1]}") as sender:
        burst = 300
        for _ in range(burst):
            sender.sock.send(packet)  # straight to the socket: the burst must not be thinned on the way
        frames = listener.poll(1.0)
        while batch := listener.poll(0.05):
            frames += batch
        assert 0 < len(frames) < burst
        # the drop count rides on the datagrams queued after the drops
        sender.sock.send(packet)
        frames += listener.poll(1.0)
        c = listener.counters()
    if c["kernel_drops"] == 0 and SO_RXQ_OVFL_MISSING:
        pytest.skip("no SO_RXQ_OVFL on this system")
    assert c["kernel_drops"] == burst + 1 - len(frames)


def test_ipv6_listener_from_sender() -> None:
    """A collector on IPv6 loopback, fed by the sender: addresses, ports, time and payload survive."""
    sip = (b"OPTIONS sip:a@[2001:db8::2] SIP/2.0\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: six@x\r\n"
           b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    d = Datagram(1, 1764000000.000001, "2001:db8::1", 5060, "2001:db8::2", 5062, Transport.UDP, sip)
    try:
        listener = HepListener("udp:[::1]:0")
    except UsageError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    with listener, HepSender(f"udp:[::1]:{listener.address[1]}", capture_id=3) as sender:
        assert sender.send_sip(d)
        frames: list = []
        _wait_frames(listener, frames, 1)
    assert sipwatch_sip(decode_frames(frames)) == sipwatch_sip([d])
    empty = encode_hep3(1.0, "192.0.2.1", 1, "192.0.2.2", 2, "udp", b"")
    unwrapper = HepUnwrapper()
    assert unwrapper.unwrap(empty) is None and unwrapper.other == {"empty": 1}


# --- round trip, framing, malformed -------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("src", "dst"), [("192.0.2.1", "198.51.100.7"), ("2001:db8::1", "2001:db8::2")])
def test_round_trip(src: str, dst: str, transport: str) -> None:
    payload = b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: rt@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ts = 1764000000.123456
    data = encode_hep3(ts, src, 5062, dst, 5060, transport, payload, capture_id=0xDEADBEEF, password="k",
                       correlation_id=b"corr", node_name="sbc-1")
    assert data[:4] == b"HEP3" and struct.unpack("!H", data[4:6])[0] == len(data) and is_hep(data)
    p = decode_hep(data)
    assert isinstance(p, HepPacket)
    assert (p.version, p.src, p.sport, p.dst, p.dport, p.payload) == (3, src, 5062, dst, 5060, payload)
    assert round(p.ts * 1e6) == round(ts * 1e6)
    assert (p.capture_id, p.auth_key, p.correlation_id, p.node_name) == (0xDEADBEEF, b"k", b"corr", "sbc-1")
    assert p.transport == Transport(transport) and p.proto_name == "sip" and not p.unknown_chunks
    got = HepUnwrapper().unwrap(data)
    d = FrameDecoder().decode(1, got.ts, got.linktype, got.frame)
    assert (d.src, d.sport, d.dst, d.dport, d.transport, d.payload) == (src, 5062, dst, 5060, Transport(transport), payload)


def test_tcp_frames_continue_one_stream() -> None:
    """Consecutive HEP messages of one TCP direction join into one stream; a message split across two HEP
    packets is framed whole."""
    msg = (b"MESSAGE sip:a@x SIP/2.0\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: s@x\r\nCSeq: 1 MESSAGE\r\n"
           b"Content-Length: 5\r\n\r\nhello")
    unwrapper = HepUnwrapper()
    frames = []
    for i, piece in enumerate((msg, msg[:30], msg[30:], msg)):
        data = encode_hep3(100.0 + i, "192.0.2.1", 5060, "192.0.2.2", 5060, "tcp", piece)
        got = unwrapper.unwrap(data)
        frames.append((got.ts, got.linktype, got.frame))
    rows = sipwatch_sip(decode_frames(frames))
    assert [r[5] for r in rows] == ["s@x", "s@x", "s@x"]


def test_hepv1_takes_the_fallback_time() -> None:
    sip = b"BYE sip:a SIP/2.0\r\nCall-ID: v1@x\r\nCSeq: 2 BYE\r\n\r\n"
    v1 = struct.pack("!BBBBHH4s4s", 1, 16, 2, 17, 5060, 5070, socket.inet_aton("192.0.2.9"),
                     socket.inet_aton("192.0.2.10")) + sip
    assert is_hep(v1)
    got = HepUnwrapper().unwrap(v1, fallback_ts=1234.5)
    assert got.ts == 1234.5 and got.hep.version == 1 and got.hep.payload == sip
    assert (got.hep.src, got.hep.sport, got.hep.dst, got.hep.dport) == ("192.0.2.9", 5060, "192.0.2.10", 5070)


def test_is_hep_leaves_other_traffic_alone() -> None:
    assert not is_hep(b"\x80\x00" + bytes(170))  # RTP
    assert not is_hep(b"INVITE sip:a SIP/2.0\r\n")
    assert not is_hep(b"\x02\x00\x02\x11" + bytes(40))  # v2-looking header, no SIP after it
    assert not is_hep(b"")


def _chunk(vendor: int, ctype: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HHH", vendor, ctype, 6 + len(body) if length is None else length) + body


def _hep3(*chunks: bytes, length: int | None = None) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body) if length is None else length) + body


_ADDR = (_chunk(0, 3, bytes(4)), _chunk(0, 4, bytes(4)), _chunk(0, 7, b"\x13\xc4"), _chunk(0, 8, b"\x13\xc4"))


@pytest.mark.parametrize(("data", "offset", "words"), [
    (b"HE", 0, "too short"),
    (b"HEP3\x00", 4, "too short for the HEP3 length"),
    (_hep3(*_ADDR, length=500), 4, "runs past the end of the packet"),
    (_hep3(length=3), 4, "shorter than the 6-byte header"),
    (_hep3(_chunk(0, 15, b"abc", length=4)), 6, "less than its 6-byte header"),
    (_hep3(*_ADDR, _chunk(0, 15, b"abc", length=60)), 42, "runs past the end"),
    (_hep3(*_ADDR, b"\x00\x00\x00"), 42, "too short for a chunk header"),
    (_hep3(_chunk(0, 3, bytes(5))), 6, "5-byte body, 4 expected"),
    (_hep3(_chunk(0, 7, b"\x13\xc4"), _chunk(0, 8, b"\x13\xc4"), _chunk(0, 15, b"x")), 29, "no source or destination address"),
    (_hep3(*_ADDR[:2], _chunk(0, 15, b"x")), 33, "no source or destination port"),
    (_hep3(*_ADDR, _chunk(0, 16, b"not zlib at all")), 63, "not zlib, gzip or deflate"),
    (_hep3(*_ADDR, _chunk(0, 15, b"x"), _chunk(0, 15, b"y")), 49, "a second payload chunk"),
    (b"\x02\x10\x02\x11\x13\xc4", 0, "too short for a HEPv2 header"),
    (b"\x02\x10\x02\x11\x13\xc4\x13\xc4" + bytes(5), 8, "too short for two IPv4 addresses"),
    (b"\x02\x10\x02\x11\x13\xc4\x13\xc4" + bytes(8) + bytes(4), 16, "too short for the HEPv2 time header"),
    (b"\x02\x10\x07\x11\x13\xc4\x13\xc4" + bytes(30), 2, "address family 7"),
    (b"GET / HTTP/1.1", 0, "not HEP"),
])
def test_malformed_names_the_offset(data: bytes, offset: int, words: str) -> None:
    err = decode_hep(data)
    assert isinstance(err, HepError), err
    assert err.offset == offset and words in err.message, err
    problems = ProblemLog()
    assert HepUnwrapper(problems).unwrap(data, frame=12) is None
    (problem,) = problems.kept
    assert problem.kind == "hep_malformed" and problem.frame == 12 and f"byte {offset}:" in problem.message


def test_unknown_chunks_are_skipped_and_reported() -> None:
    data = _hep3(*_ADDR, _chunk(0x1234, 1, b"vendor"), _chunk(0, 0x99, b"??"), _chunk(0, 0x20, b"\x00\x10"),
                 _chunk(0, 15, b"OPTIONS sip:x SIP/2.0\r\n\r\n"))
    p = decode_hep(data)
    assert isinstance(p, HepPacket)
    assert p.unknown_chunks == ((0x1234, 1, 42), (0, 0x99, 54))  # 0x0020 (MOS) is known, read past quietly
    problems = ProblemLog()
    assert HepUnwrapper(problems).unwrap(data, frame=3) is not None
    (problem,) = problems.kept
    assert problem.kind == "hep_unknown_chunk" and "byte 42" in problem.message and "2 such chunks" in problem.message


def test_compressed_payload_inflates() -> None:
    sip = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: z@x\r\n\r\n"
    for packed in (zlib.compress(sip), zlib.compress(sip, wbits=31), zlib.compress(sip, wbits=-15)):
        p = decode_hep(_hep3(*_ADDR, _chunk(0, 16, packed)))
        assert isinstance(p, HepPacket) and p.payload == sip and p.compressed
    bomb = zlib.compress(b"\0" * (4 << 20))
    err = decode_hep(_hep3(*_ADDR, _chunk(0, 16, bomb)))
    assert isinstance(err, HepError) and "inflates to more than" in err.message


def test_no_input_raises() -> None:
    """Every prefix and 5,000 random corruptions of real HEP packets decode or give a HepError."""
    samples = [
        encode_hep3(1.5, "2001:db8::1", 1, "2001:db8::2", 2, "tcp", b"SIP/2.0 200 OK\r\n\r\n", 7, "pw", 1, b"c", "n"),
        _hep3(*_ADDR, _chunk(0, 16, zlib.compress(b"REGISTER sip:x SIP/2.0\r\n\r\n"))),
        struct.pack("<BBBBHH4s4sIIH2x", 2, 28, 2, 17, 1, 2, bytes(4), bytes(4), 5, 6, 7) + b"INVITE x",
    ]
    rng = random.Random(1)
    unwrapper = HepUnwrapper()
    for sample in samples:
        for cut in range(len(sample) + 1):
            unwrapper.unwrap(sample[:cut])
        for _ in range(5000 // len(samples)):
            data = bytearray(sample)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            result = decode_hep(bytes(data))
            assert isinstance(result, HepPacket | HepError)
            unwrapper.unwrap(bytes(data))
    assert unwrapper.malformed > 0 and unwrapper.packets > 0


@pytest.mark.parametrize(("spec", "parsed"), [
    ("udp:127.0.0.1:9060", ("udp", "127.0.0.1", 9060)),
    ("tcp:0.0.0.0:9061", ("tcp", "0.0.0.0", 9061)),
    ("udp:[::1]:9062", ("udp", "::1", 9062)),
    ("UDP:homer.example", ("udp", "homer.example", 9060)),
])
def test_parse_endpoint(spec: str, parsed: tuple) -> None:
    e = parse_endpoint(spec)
    assert (e.transport, e.host, e.port) == parsed


@pytest.mark.parametrize("spec", ["127.0.0.1:9060", "sctp:1.2.3.4:1", "udp:1.2.3.4:http", "udp:[::1:9060", "udp:1.2.3.4:70000"])
def test_parse_endpoint_rejects(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_endpoint(spec)


def test_sender_refuses_tcp() -> None:
    with pytest.raises(UsageError, match="only udp"):
        HepSender("tcp:127.0.0.1:9060")
