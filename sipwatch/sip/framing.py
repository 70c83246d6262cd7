"""SIP over a byte stream (RFC 3261 §18.3): messages framed by the blank line and Content-Length.

A framer is fed the in-order bytes of one direction of a TCP connection and returns complete
messages. CRLF keep-alives (RFC 5626 §3.5.1) are skipped. Bytes that do not start a SIP message are
skipped up to the next start line and reported, so one bad message never derails the stream. The
buffer is bounded: a stream that never frames a message costs at most MAX_BUFFER bytes.
"""

from __future__ import annotations

import re

from sipwatch.sip.message import MAX_BODY_BYTES, TOKEN_START, starts_like_sip
from sipwatch.sip.text import head_end

MAX_BUFFER = MAX_BODY_BYTES  # the longest body a framer waits for
MAX_HEAD = 256 * 1024

_CONTENT_LENGTH = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
# the method's length is bounded: with [A-Z]+ a long run of capitals costs quadratic time to search
_START_LINE = re.compile(rb"(?:SIP/2\.0 \d{3}|[A-Z]{1,32} \S+ SIP/2\.0\r?\n)")
# a method is a token (RFC 3261 §25.1), e.g. RFC 4475's "!interesting-Method0123456789_*+`.%indeed'~"


class StreamFramer:
    """Frames SIP messages out of one TCP direction."""

    __slots__ = ("buffer", "skipped", "reason", "_lost")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipped = 0  # bytes thrown away while resynchronizing (reported by the caller)
        self.reason: str | None = None  # why bytes were last skipped, for the caller's report
        self._lost = False  # the last message's length was unreadable: the next one starts at a start line

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
            if self._lost or not _starts_message(buf):
                if not self._resync(0 if self._lost else 1):
                    break
                self._lost = False
                continue
            end_of_head, sep = head_end(buf)
            if end_of_head < 0:
                if len(buf) > MAX_HEAD:
                    self._skip(len(buf), f"a header section went on for over {MAX_HEAD} bytes without ending")
                break
            match = _CONTENT_LENGTH.search(buf, 0, end_of_head + 2)
            value = match.group(1).strip() if match else b"0"  # RFC 3261 §18.3: mandatory on streams
            digits = value.lstrip(b"0")
            if not value.isdigit():
                # "-5" or "abc": where this message ends is unknowable; deliver the head (the parser reports
                # the value) and look for the next start line rather than read the body as a message
                end = end_of_head + sep
                self._lost = True
            elif len(digits) > 9 or int(digits or b"0") > MAX_BUFFER:
                # an absurd Content-Length (int() refuses more than 4300 digits): deliver the head alone, the
                # parser reports it, the body is skipped up to the next start line
                end = end_of_head + sep
                self._lost = True
            else:
                end = end_of_head + sep + int(digits or b"0")
            if len(buf) < end:
                if len(buf) > MAX_BUFFER:
                    self._skip(len(buf), f"a message body never completed within {MAX_BUFFER} bytes")
                break
            messages.append(bytes(buf[:end]))
            del buf[:end]
        return messages

    def _skip(self, count: int, reason: str) -> None:
        self.skipped += count
        self.reason = reason
        del self.buffer[:count]

    def _resync(self, start: int = 1) -> bool:
        """Drop bytes up to the next plausible start line; False when none is buffered yet."""
        buf = self.buffer
        match = _START_LINE.search(buf, start)
        why = "the body of a message whose Content-Length is unusable" if self._lost else "bytes that start no SIP message"
        if match is None:
            keep = min(len(buf), 64)  # a start line may be split across segments
            if len(buf) > keep:
                self._skip(len(buf) - keep, why)
            return False
        if match.start():
            self._skip(match.start(), why)
        return True


def _starts_message(buf: bytearray) -> bool:
    eol = buf.find(b"\n", 0, 4096)
    if eol < 0:
        # not a whole line yet: plausible while it is short and starts like a token
        return buf[:8] == b"SIP/2.0 " or (len(buf) < 4096 and buf[0] in TOKEN_START)
    return starts_like_sip(bytes(buf[: eol + 1]))
