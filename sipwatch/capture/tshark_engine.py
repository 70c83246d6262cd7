"""The deep engine: tshark (through pyshark) dissects the capture, sipwatch's core analyzes what it finds.

Its reason to exist is SIP over TLS: with an NSS key log (`SSLKEYLOGFILE`, `SSLContext.keylog_filename`)
tshark decrypts TLS and hands over the SIP inside. The engine yields model `Datagram`s with the capture's
timestamps and frame numbers: one per SIP message tshark found (as it framed them: several per frame when
a TLS record or TCP segment carries several), and the payload of every other UDP packet (RTP, RTCP), so
the core sees the same traffic as from the file pipeline.

Two tshark runs. The first surveys TLS: which connections carry application data, which of them the key
log decrypts, and which decrypted connections start like SIP (tshark has no SIP heuristic over TLS, so
their ports are then decoded as SIP in the second run). Connections it cannot decrypt are reported as
problems, never guessed at. The second run dissects everything and is read through pyshark.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyshark
from pyshark.capture.capture import TSharkCrashException
from pyshark.tshark.tshark import get_process_path

from sipwatch.model import CaptureError, Datagram, ProblemLog, Severity, Transport, UsageError

_SIP_START = re.compile(rb"^(?:SIP/2\.0 \d{3} |[!-~]{1,32} \S+ SIP/2\.0\r?\n)")
_TIMEOUT = 3600
_DAMAGED = re.compile(r"cut short|appears to be damaged|corrupt", re.IGNORECASE)


@dataclass
class TlsConnection:
    """One TCP connection that carried TLS application data."""

    client: tuple[str, int]
    server: tuple[str, int]
    data: bool = False  # application data seen
    decrypted: bool = False
    sip: bool = False


@dataclass
class TlsSurvey:
    connections: dict[str, TlsConnection] = field(default_factory=dict)  # by tshark's tcp.stream index

    @property
    def sip_ports(self) -> set[int]:
        return {port for c in self.connections.values() if c.sip for port in (c.server[1], c.client[1])}

    @property
    def undecrypted(self) -> list[TlsConnection]:
        return [c for c in self.connections.values() if c.data and not c.decrypted]


def tshark_path() -> str:
    try:
        return get_process_path()
    except Exception as exc:  # pyshark's TSharkNotFoundException
        raise UsageError("--engine tshark needs tshark (Debian: apt-get install tshark)") from exc


def _tshark(args: list[str]) -> str:
    cmd = [tshark_path(), "-n", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    except OSError as exc:
        raise CaptureError(f"tshark cannot run: {exc}") from exc
    lines = [line for line in done.stderr.splitlines() if "Running as user" not in line]
    # a capture cut short or damaged: tshark read what it could (exit 2); sipwatch's reader reports the damage
    if done.returncode != 0 and not (done.returncode == 2 and _DAMAGED.search(" ".join(lines))):
        raise CaptureError(f"tshark failed ({done.returncode}): {' '.join(lines)[:300]}")
    return done.stdout


def _prefs(keylog: Path | None) -> list[str]:
    return ["-o", f"tls.keylog_file:{keylog}"] if keylog is not None else []


def survey_tls(path: Path, keylog: Path | None = None) -> TlsSurvey:
    """Which TLS connections carry application data, which decrypt, and which carry SIP."""
    out = _tshark(["-r", str(path), *_prefs(keylog), "-Y", "tls.app_data || tls.handshake.type == 1", "-T", "fields",
                   "-E", "separator=\t", "-E", "occurrence=f", "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src",
                   "-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "frame.protocols",
                   "-e", "data.data", "-e", "tls.app_data", "-e", "tls.handshake.type"])
    result = TlsSurvey()
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < 11 or not cols[0]:
            continue
        stream, src4, src6, sport, dst4, dst6, dport, protocols, data, app_data, handshake = cols[:11]
        conn = result.connections.get(stream)
        if conn is None or (handshake == "1" and not conn.data):  # the ClientHello names the client
            conn = result.connections[stream] = TlsConnection((src4 or src6, int(sport)), (dst4 or dst6, int(dport)))
        if not app_data:
            continue
        conn.data = True
        layers = protocols.split(":")
        after_tls = layers[layers.index("tls") + 1 :] if "tls" in layers else []
        if after_tls:
            conn.decrypted = True
        if data and not conn.sip and _SIP_START.match(bytes.fromhex(data[:512])):
            conn.sip = True
    return result


def _innermost(layer):
    return layer.duplicate_layers[-1] if layer.duplicate_layers else layer


def _hex_values(layer) -> list[str]:
    """The hex strings of a `*_raw` layer: one per occurrence (pyshark splits a lone [hex, offset, ...])."""
    first = getattr(layer, "value", None)
    if isinstance(first, str):  # one occurrence: [hex, offset, length, bitmask, type] split by pyshark
        return [first]
    if not (isinstance(first, list) and first and isinstance(first[0], str)):
        return []
    return [first[0], *(d.value for d in layer.duplicate_layers if isinstance(getattr(d, "value", None), str))]


def _field(layer, name: str) -> str | None:
    try:
        value = layer.get_field(name)
    except AttributeError:
        return None
    return None if value is None else str(value)


def datagrams(path: Path, keylog: Path | None = None, sip_ports: set[int] = frozenset(),
              problems: ProblemLog | None = None) -> Iterator[Datagram]:
    """The SIP messages (and other UDP payloads) tshark finds, in frame order."""
    problems = problems if problems is not None else ProblemLog()
    decode_as = {f"tls.port=={port}": "sip" for port in sorted(sip_ports)}
    prefs = {"tls.keylog_file": str(keylog)} if keylog is not None else {}
    prefs["tcp.reassemble_out_of_order"] = "TRUE"
    capture = pyshark.FileCapture(
        str(path), display_filter="sip || (udp && !icmp && !icmpv6)", use_json=True, include_raw=True,
        keep_packets=False, decode_as=decode_as or None, override_prefs=prefs,
    )
    try:
        for packet in capture:
            yield from _packet_datagrams(packet, problems)
    except TSharkCrashException as exc:
        _tshark_ended(exc)
    finally:
        try:
            capture.close()
        except TSharkCrashException as exc:
            capture._running_processes.clear()  # or pyshark's __del__ raises it again
            _tshark_ended(exc)


def _tshark_ended(exc: Exception) -> None:
    """tshark exits with 2 on a capture cut short, after dissecting what it could: that is no failure here
    (sipwatch's reader reports the damage). Anything else is."""
    if not _DAMAGED.search(str(exc)):
        raise CaptureError(f"tshark failed: {str(exc).splitlines()[0]}") from exc


def _packet_datagrams(packet, problems: ProblemLog) -> Iterator[Datagram]:
    frame = int(packet.number)
    ts = float(packet.sniff_timestamp)
    names = {layer.layer_name for layer in packet.layers}
    ip = packet.ipv6 if "ipv6" in names and "ip" not in names else (packet.ip if "ip" in names else None)
    if ip is None:
        return
    ip = _innermost(ip)
    src, dst = _field(ip, "src"), _field(ip, "dst")
    if "sctp" in names:
        l4, transport = packet.sctp, Transport.SCTP
    elif "tcp" in names:
        l4 = packet.tcp
        transport = Transport.TCP
        if "websocket" in names:
            transport = Transport.WS
        elif "tls" in names:
            transport = Transport.TLS
    elif "udp" in names:
        l4, transport = packet.udp, Transport.UDP
    else:
        return
    l4 = _innermost(l4)
    sport, dport = int(_field(l4, "srcport") or 0), int(_field(l4, "dstport") or 0)
    if "sip_raw" in names:
        for hexed in _hex_values(packet.sip_raw):
            try:
                payload = bytes.fromhex(hexed)
            except ValueError:
                problems.report("tshark", "tshark gave a SIP message sipwatch cannot read", frame, severity=Severity.ERROR)
                continue
            yield Datagram(frame, ts, src, sport, dst, dport, transport, payload)
    elif transport is Transport.UDP:
        payload = _field(l4, "payload")
        if payload:
            yield Datagram(frame, ts, src, sport, dst, dport, transport, bytes.fromhex(payload.replace(":", "")))
