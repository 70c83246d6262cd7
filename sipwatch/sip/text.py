"""Small text helpers shared by the SIP and SDP parsers and the stream framer."""

from __future__ import annotations


def to_int(text: str) -> int | None:
    """ASCII digits as an int, else None (str.isdigit() also takes '²', and int() refuses 4300+ digits)."""
    if not text.isascii() or not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # more digits than sys.get_int_max_str_digits()
        return None


def head_end(data: bytes | bytearray) -> tuple[int, int]:
    """Where a SIP header section ends and how long its terminator is: CRLF CRLF, or the bare LF LF that some
    equipment sends (RFC 3261 §7.5 asks receivers to be tolerant). (-1, 0) while it has not ended."""
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return end, 4
    end = data.find(b"\n\n")
    return (end, 2) if end >= 0 else (-1, 0)
