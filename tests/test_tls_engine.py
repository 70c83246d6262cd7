"""SIP over TLS through the tshark engine, on real TLS recorded on loopback.

Debian's SIPp is built without TLS, so a small SIP-over-TLS caller and callee are written here with
Python's `ssl`: the callee serves a self-signed certificate made with the openssl CLI, the caller's
`SSLContext.keylog_filename` writes the NSS key log, and tcpdump on `lo` records the connection. sipwatch
with the key log must find the calls and their outcomes; without it, it must say it cannot decrypt and
report no calls.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import settle_capture, start_loopback_capture
from crafted import Dialog, tshark_available, tshark_sip_stat

from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file
from sipwatch.pipeline_tshark import analyze_file_tshark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (openssl CLI)."""
    cert, key = folder / "uas.crt", folder / "uas.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=uas.sipwatch.test",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def _read_message(stream: ssl.SSLSocket, buffer: bytearray) -> bytes:
    """One SIP message off a stream (RFC 3261 §18.3: the head, then Content-Length bytes)."""
    while b"\r\n\r\n" not in buffer:
        chunk = stream.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed the TLS connection")
        buffer += chunk
    head_end = buffer.index(b"\r\n\r\n") + 4
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", bytes(buffer[:head_end]), re.IGNORECASE)
    end = head_end + (int(match.group(1)) if match else 0)
    while len(buffer) < end:
        chunk = stream.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed the TLS connection")
        buffer += chunk
    message = bytes(buffer[:end])
    del buffer[:end]
    return message


# Each call is a script: (sender, message name) in order; "uac" lines are sent by the caller, "uas" by the callee.
ANSWERED = [("uac", "invite"), ("uas", "trying"), ("uas", "ringing"), ("uas", "ok_invite"), ("uac", "ack"),
            ("uac", "bye"), ("uas", "ok_bye")]
BUSY = [("uac", "invite"), ("uas", "trying"), ("uas", "busy"), ("uac", "ack_busy")]


def _message(dialog: Dialog, name: str) -> bytes:
    if name == "ack_busy":  # the ACK of a non-2xx final response reuses the INVITE's branch (RFC 3261 §17.1.1.3)
        dialog.branches["ACK"] = dialog._branch("INVITE")
        return dialog.ack()
    return getattr(dialog, name)()


def run_tls_calls(folder: Path, calls: list[tuple[Dialog, list]]) -> tuple[Path, Path]:
    """Record SIP calls over one TLS connection on loopback; return (capture, key log)."""
    if shutil.which("tcpdump") is None or shutil.which("openssl") is None:
        pytest.skip("tcpdump and openssl are needed to record TLS on loopback")
    cert, key = make_certificate(folder)
    keylog = folder / "keys.log"
    capture = folder / "sip-tls.pcap"
    port = _free_port()
    log = folder / "tcpdump.log"
    tcpdump = start_loopback_capture(capture, f"tcp port {port}", log)
    try:
        _converse(port, cert, key, keylog, calls)
        settle_capture(capture)
    finally:
        if tcpdump.poll() is None:
            os.killpg(tcpdump.pid, signal.SIGINT)
        tcpdump.wait(timeout=10)
    if "packets captured" not in log.read_text():
        raise RuntimeError(f"tcpdump did not finish: {log.read_text()}")
    return capture, keylog



def _converse(port: int, cert: Path, key: Path, keylog: Path, calls: list[tuple[Dialog, list]]) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cert)
    client_ctx.keylog_filename = str(keylog)
    listener = socket.create_server(("127.0.0.1", port))
    errors: list[BaseException] = []

    def uas() -> None:
        try:
            raw, _ = listener.accept()
            with server_ctx.wrap_socket(raw, server_side=True) as conn:
                buffer = bytearray()
                for dialog, script in calls:
                    for sender, name in script:
                        if sender == "uac":
                            expected = _message(dialog, name)
                            got = _read_message(conn, buffer)
                            assert got == expected, (name, got[:80])
                        else:
                            conn.sendall(_message(dialog, name))
                conn.recv(1)  # until the caller closes
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    thread = threading.Thread(target=uas, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            buffer = bytearray()
            for dialog, script in calls:
                for sender, name in script:
                    if sender == "uac":
                        conn.sendall(_message(dialog, name))
                    else:
                        assert _read_message(conn, buffer) == _message(dialog, name)
    finally:
        thread.join(timeout=10)
        listener.close()
    if errors:
        raise errors[0]


# --- the tests -----------------------------------------------------------------------------------------------

SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]


@pytest.fixture(scope="module")
def tls_capture(tmp_path_factory) -> tuple[Path, Path]:
    """One TLS connection on loopback carrying an answered call and a busy one."""
    if not tshark_available():
        pytest.skip("tshark is not installed")
    answered = Dialog("127.0.0.1", 5062, "127.0.0.1", 5061, call_id="tls-answered@127.0.0.1", transport="TLS")
    busy = Dialog("127.0.0.1", 5062, "127.0.0.1", 5061, call_id="tls-busy@127.0.0.1", transport="TLS",
                  from_tag="77aa", to_tag="88bb", cseq=10,
                  branches={"INVITE": "z9hG4bK-busy-invite", "ACK": "z9hG4bK-busy-invite"})
    return run_tls_calls(tmp_path_factory.mktemp("tls"), [(answered, ANSWERED), (busy, BUSY)])


def _server_port(capture: Path) -> int:
    out = subprocess.run(["tshark", "-n", "-r", str(capture), "-Y", "tls.handshake.type == 1", "-T", "fields",
                          "-e", "tcp.dstport"], capture_output=True, text=True, timeout=60, check=True).stdout
    return int(out.split()[0])


def test_keylog_decrypts_the_calls(tls_capture: tuple[Path, Path]) -> None:
    capture, keylog = tls_capture
    analysis = analyze_file_tshark(str(capture), keylog=str(keylog))
    outcomes = {c.call_id: c.outcome for c in analysis.calls}
    assert outcomes == {"tls-answered@127.0.0.1": Outcome.ANSWERED, "tls-busy@127.0.0.1": Outcome.BUSY}
    assert {c.transport for c in analysis.calls} == {"tls"}
    assert dict(analysis.stats.by_transport) == {"tls": 11}
    assert analysis.stats.retransmissions == 0
    assert "tls_undecrypted" not in analysis.problems.counts
    # the 100, 180 and 200 went out in one TLS write: three messages of one frame, each with that frame
    answered = next(c for c in analysis.calls if c.outcome is Outcome.ANSWERED)
    frames = [r.frame for r in answered.records]
    assert len(frames) == 7 and len(set(frames)) < 7
    # tshark itself, told the port, is the oracle for the counts
    oracle = tshark_sip_stat(capture, prefs=[f"tls.keylog_file:{keylog}"], decode=[f"tls.port=={_server_port(capture)},sip"])
    assert analysis.stats.messages == oracle.messages == 11
    assert dict(analysis.stats.requests) == dict(oracle.requests)
    assert dict(analysis.stats.responses) == dict(oracle.responses)


def test_without_keylog_says_it_cannot_decrypt(tls_capture: tuple[Path, Path]) -> None:
    capture, _ = tls_capture
    analysis = analyze_file_tshark(str(capture))
    assert analysis.calls == []
    assert analysis.stats.messages == 0
    (problem,) = [p for p in analysis.problems.kept if p.kind == "tls_undecrypted"]
    assert f"127.0.0.1:{_server_port(capture)}" in problem.message
    assert "no key log given" in problem.message and problem.severity == "error"


def test_a_key_log_of_another_session_decrypts_nothing(tls_capture: tuple[Path, Path], tmp_path: Path) -> None:
    capture, keylog = tls_capture
    other = tmp_path / "other.log"
    other.write_text(re.sub(r"(\S+ )([0-9a-f]{64})( )", lambda m: m.group(1) + "0" * 64 + m.group(3),
                            keylog.read_text()))  # same labels, wrong client randoms
    analysis = analyze_file_tshark(str(capture), keylog=str(other))
    assert analysis.calls == []
    (problem,) = [p for p in analysis.problems.kept if p.kind == "tls_undecrypted"]
    assert "no key for it in the key log" in problem.message


def test_builtin_engine_points_to_the_tshark_engine(tls_capture: tuple[Path, Path]) -> None:
    capture, _ = tls_capture
    analysis = analyze_file(str(capture))
    assert analysis.calls == [] and analysis.stats.messages == 0
    (problem,) = [p for p in analysis.problems.kept if p.kind == "tls_encrypted"]
    assert "--engine tshark --tls-keylog" in problem.message


def test_cli_with_and_without_keylog(tls_capture: tuple[Path, Path], tmp_path: Path) -> None:
    capture, keylog = tls_capture
    out = tmp_path / "tls.json"
    done = subprocess.run([*SIPWATCH, "analyze", str(capture), "--engine", "tshark", "--tls-keylog", str(keylog),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["summary"]["calls"] == 2
    assert data["summary"]["outcomes"] == {"answered": 1, "busy": 1}

    done = subprocess.run([*SIPWATCH, "analyze", str(capture), "--engine", "tshark", "-f", "json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cannot be decrypted: no key log given (--tls-keylog FILE)" in done.stderr
    assert json.loads(done.stdout)["summary"]["calls"] == 0

    report = tmp_path / "postmortem.md"
    done = subprocess.run([*SIPWATCH, "report", str(capture), "--engine", "tshark", "--tls-keylog", str(keylog),
                           "-o", str(report)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "486" in report.read_text()

    done = subprocess.run([*SIPWATCH, "analyze", str(capture), "--tls-keylog", str(keylog)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--tls-keylog needs --engine tshark" in done.stderr


def test_capture_cut_short_is_read_up_to_the_cut(tls_capture: tuple[Path, Path], tmp_path: Path) -> None:
    """tshark exits 2 on a capture cut inside its last packet; that is damage to report, not a failure."""
    capture, keylog = tls_capture
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-10])  # the last packet (the connection's end) loses its tail
    analysis = analyze_file_tshark(str(cut), keylog=str(keylog))
    assert analysis.damaged
    assert "truncated_capture" in analysis.problems.counts
    assert sorted(c.outcome for c in analysis.calls) == sorted([Outcome.ANSWERED, Outcome.BUSY])
