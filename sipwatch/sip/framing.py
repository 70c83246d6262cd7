"""SIP over a byte stream (RFC 3261 §18.3): messages framed by the blank line and Content-Length.

A framer is fed the in-order bytes of one direction of a TCP connection and returns complete
messages. CRLF keep-alives (RFC 5626 §3.5.1) are skipped. Bytes that do not start a SIP message are
skipped up to the next start line and reported, so one bad message never derails the stream. The
buffer is bounded: a stream that never frames a message costs at most MAX_BUFFER bytes.
"""

from __future__ import annotations

import re

from sipwatch.sip.message import TOKEN_START, starts_like_sip
from sipwatch.sip.text import head_end

MAX_BUFFER = 1 << 20
MAX_HEAD = 256 * 1024

_CONTENT_LENGTH = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.IGNORECASE)
# the method's length is bounded: with [A-Z]+ a long run of capitals costs quadratic time to search
_START_LINE = re.compile(rb"(?:SIP/2\.0 \d{3}|[A-Z]{1,32} \S+ SIP/2\.0\r?\n)")
# a method is a token (RFC 3261 §25.1), e.g. RFC 4475's "!interesting-Method0123456789_*+`.%indeed'~"


class StreamFramer:
    """Frames SIP messages out of one TCP direction."""

    __slots__ = ("buffer", "skipped")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipped = 0  # bytes thrown away while resynchronizing (reported by the caller)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buffer
        buf += data
        messages: list[bytes] = []
        while buf:
            # keep-alives and stray line ends between messages
            strip = 0
            while strip < len(buf) and buf[strip] in (0x0D, 0x0A):
                strip += 1
            if strip:
                del buf[:strip]
                if not buf:
                    break
            if not _starts_message(buf):
                if not self._resync():
                    break
                continue
            end_of_head, sep = head_end(buf)
            if end_of_head < 0:
                if len(buf) > MAX_HEAD:
                    self.skipped += len(buf)
                    buf.clear()
                break
            match = _CONTENT_LENGTH.search(buf, 0, end_of_head + 2)
            digits = match.group(1).lstrip(b"0") if match else b""  # RFC 3261 §18.3: mandatory on streams
            # more than 9 digits is absurd anyway, and int() refuses more than 4300
            length = int(digits or b"0") if len(digits) <= 9 else MAX_BUFFER + 1
            end = end_of_head + sep + length
            if length > MAX_BUFFER:
                # an absurd Content-Length: deliver the head alone, the parser reports it
                end = end_of_head + sep
            if len(buf) < end:
                if len(buf) > MAX_BUFFER:
                    self.skipped += len(buf)
                    buf.clear()
                break
            messages.append(bytes(buf[:end]))
            del buf[:end]
        return messages

    def _resync(self) -> bool:
        """Drop bytes up to the next plausible start line; False when none is buffered yet."""
        buf = self.buffer
        match = _START_LINE.search(buf, 1)
        if match is None:
            keep = min(len(buf), 64)  # a start line may be split across segments
            if len(buf) > keep:
                self.skipped += len(buf) - keep
                del buf[: len(buf) - keep]
            return False
        self.skipped += match.start()
        del buf[: match.start()]
        return True


def _starts_message(buf: bytearray) -> bool:
    eol = buf.find(b"\n", 0, 4096)
    if eol < 0:
        # not a whole line yet: plausible while it is short and starts like a token
        return buf[:8] == b"SIP/2.0 " or (len(buf) < 4096 and buf[0] in TOKEN_START)
    return starts_like_sip(bytes(buf[: eol + 1]))
