"""SIP over TLS through the tshark engine, on real TLS recorded on loopback.

Debian's SIPp is built without TLS, so a small SIP-over-TLS caller and callee are written here with
Python's `ssl`: the callee serves a self-signed certificate made with the openssl CLI, the caller's
`SSLContext.keylog_filename` writes the NSS key log, and tcpdump on `lo` records the connection. sipwatch
with the key log must find the calls and their outcomes; without it, it must say it cannot decrypt and
report no calls.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from crafted import Dialog

CALLER_PORT_BASE = 20000 + os.getpid() % 20000


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
    with log.open("w") as err:
        tcpdump = subprocess.Popen(
            ["timeout", "120", "tcpdump", "-n", "-i", "lo", "--immediate-mode", "-U", "-w", str(capture), f"tcp port {port}"],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while "listening on" not in log.read_text():
            if tcpdump.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"tcpdump cannot capture on lo here: {log.read_text()}")
            time.sleep(0.02)
        _converse(port, cert, key, keylog, calls)
        _settle(capture)
    finally:
        if tcpdump.poll() is None:
            os.killpg(tcpdump.pid, signal.SIGINT)
        tcpdump.wait(timeout=10)
    if "packets captured" not in log.read_text():
        raise RuntimeError(f"tcpdump did not finish: {log.read_text()}")
    return capture, keylog


def _settle(capture: Path) -> None:
    """Wait until tcpdump has written what the kernel handed it: the file stops growing."""
    size, stable_since, deadline = -1, time.monotonic(), time.monotonic() + 10
    while time.monotonic() < deadline:
        now = capture.stat().st_size if capture.exists() else 0
        if now != size:
            size, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 0.5:
            return
        time.sleep(0.05)


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
