"""SIP over WebSocket from a real browser, recorded on loopback.

Headless Chromium is the caller: a page's JavaScript opens `new WebSocket(url, "sip")` and sends the
INVITE, ACK and BYE of a call, so the frames are Chromium's own (masked with its keys, lengths in its
encoding, compressed with permessage-deflate when the server accepts it). A small callee written here
answers (100, 180, 200, then 200 to the BYE). tcpdump on `lo` records it; sipwatch must find the answered
call over `ws`, with tshark's counts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import zlib
from pathlib import Path

import pytest
from conftest import settle_capture, start_loopback_capture
from crafted import Dialog, tshark_available, tshark_sip_stat

from sipwatch.model import Outcome
from sipwatch.pipeline import analyze_file

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio"]
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

PAGE = """<!doctype html><meta charset="utf-8"><title>sip over ws</title><script>
const m = %s;
const ws = new WebSocket(m.url, "sip");
ws.onopen = () => ws.send(m.invite);
ws.onmessage = (e) => {
  const text = e.data;
  if (text.startsWith("SIP/2.0 200") && text.includes(" INVITE\\r\\n")) { ws.send(m.ack); ws.send(m.bye); }
  else if (text.startsWith("SIP/2.0 200") && text.includes(" BYE\\r\\n")) { ws.close(1000); }
};
</script>"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (make test installs it)")
    return path


class _Callee:
    """The server side: the WebSocket handshake (RFC 6455 §4.2), frames read and unmasked independently of
    sipwatch, and the callee's responses sent as unmasked text frames."""

    def __init__(self, dialog: Dialog, deflate: bool) -> None:
        self.dialog = dialog
        self.deflate = deflate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.negotiated = ""
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(30)
            with conn:
                self._serve(conn)
        except BaseException as exc:  # surfaced in the test
            self.error = exc

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        key = re.search(rb"(?i)\r\nsec-websocket-key:\s*(\S+)", head).group(1)
        accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest()).decode()
        offered = re.search(rb"(?i)\r\nsec-websocket-extensions:\s*([^\r\n]*)", head)
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Accept: {accept}", "Sec-WebSocket-Protocol: sip"]
        if self.deflate and offered and b"permessage-deflate" in offered.group(1):
            self.negotiated = "permessage-deflate"
            lines.append("Sec-WebSocket-Extensions: permessage-deflate")
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        inflater = zlib.decompressobj(-15)
        message, compressed = b"", False
        while True:
            while True:
                frame = _parse_frame(buf)
                if frame is not None:
                    break
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            fin, rsv1, opcode, payload, used = frame
            buf = buf[used:]
            if opcode == 8:
                conn.sendall(b"\x88\x02\x03\xe8")
                return
            if opcode in (1, 2):
                message, compressed = payload, rsv1
            elif opcode == 0:
                message += payload
            if not fin or opcode >= 8:
                continue
            if compressed:
                message = inflater.decompress(message + b"\x00\x00\xff\xff")
            self.received.append(message)
            for reply in self._replies(message):
                conn.sendall(_text_frame(reply))

    def _replies(self, message: bytes) -> list[bytes]:
        d = self.dialog
        if message.startswith(b"INVITE "):
            return [d.trying(), d.ringing(), d.ok_invite()]
        if message.startswith(b"BYE "):
            return [d.ok_bye()]
        return []


def _parse_frame(buf: bytes) -> tuple[bool, bool, int, bytes, int] | None:
    if len(buf) < 2:
        return None
    length, pos = buf[1] & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, pos = int.from_bytes(buf[2:4], "big"), 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, pos = int.from_bytes(buf[2:10], "big"), 10
    mask = None
    if buf[1] & 0x80:
        mask, pos = buf[pos : pos + 4], pos + 4
    if len(buf) < pos + length:
        return None
    payload = buf[pos : pos + length]
    if mask is not None:
        payload = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bool(buf[0] & 0x80), bool(buf[0] & 0x40), buf[0] & 0x0F, payload, pos + length


def _text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


def record_browser_call(folder: Path, deflate: bool, invite_body_size: int) -> tuple[Path, _Callee, Dialog]:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is needed to record on loopback")
    chromium = _chromium()
    dialog = Dialog("127.0.0.1", 0, "127.0.0.1", 0, transport="WS", call_id=f"browser-{os.getpid()}@chromium",
                    invite_body_size=invite_body_size)
    callee = _Callee(dialog, deflate)
    dialog.callee_port = callee.port
    page = folder / "uac.html"
    page.write_text(PAGE % json.dumps({"url": f"ws://127.0.0.1:{callee.port}/", "invite": dialog.invite().decode(),
                                       "ack": dialog.ack().decode(), "bye": dialog.bye().decode()}))
    capture = folder / "browser-ws.pcap"
    log = folder / "tcpdump.log"
    tcpdump = start_loopback_capture(capture, f"tcp port {callee.port}", log)
    browser = None
    try:
        callee.thread.start()
        browser = subprocess.Popen(
            ["timeout", "90", chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'profile'}", page.as_uri()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        callee.thread.join(timeout=60)
        settle_capture(capture)
    finally:
        if browser is not None and browser.poll() is None:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=20)
        if tcpdump.poll() is None:
            os.killpg(tcpdump.pid, signal.SIGINT)
        tcpdump.wait(timeout=10)
        callee.listener.close()
    if callee.error is not None:
        raise callee.error
    assert not callee.thread.is_alive(), "the browser never finished the call"
    return capture, callee, dialog



@pytest.mark.parametrize(("deflate", "body"), [(False, 0), (True, 0), (False, 70_000)],
                         ids=["plain", "permessage-deflate", "64-bit-length"])
def test_chromium_call_over_websocket(tmp_path: Path, deflate: bool, body: int) -> None:
    capture, callee, dialog = record_browser_call(tmp_path, deflate, body)
    assert [m.split(b" ", 1)[0] for m in callee.received] == [b"INVITE", b"ACK", b"BYE"]
    assert callee.negotiated == ("permessage-deflate" if deflate else "")
    analysis = analyze_file(str(capture))
    (call,) = analysis.calls
    assert call.call_id == dialog.call_id
    assert call.outcome is Outcome.ANSWERED and call.transport == "ws"
    assert analysis.stats.messages == 7
    assert dict(analysis.stats.by_transport) == {"ws": 7}
    assert "websocket_frame" not in analysis.problems.counts
    if tshark_available():
        oracle = tshark_sip_stat(capture, decode=[f"tcp.port=={callee.port},http"])
        assert oracle.messages == analysis.stats.messages
        assert dict(oracle.requests) == dict(analysis.stats.requests)
        assert dict(oracle.responses) == dict(analysis.stats.responses)
