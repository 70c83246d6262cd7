"""Capture files (pcap, nanosecond pcap, pcapng, gzip) and pcap streams, read as raw frames.

scapy's raw readers do the record parsing; this module adds what a support engineer needs from it:
one timestamp convention, frame numbers, the byte offset of every record, and a precise account of
where a damaged file stops making sense. Frames are never dissected here.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from sipwatch.model import CaptureError, CaptureNotFound, Problem, Severity

# scapy reports damaged records through its logger; we report them ourselves, with offsets.
logging.getLogger("scapy").setLevel(logging.CRITICAL)
from scapy.error import Scapy_Exception  # noqa: E402
from scapy.utils import RawPcapNgReader, RawPcapReader  # noqa: E402

_GZIP_MAGIC = b"\x1f\x8b"
_PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAP_FILE_HEADER = 24
_PCAP_RECORD_HEADER = 16
# scapy cuts frames at 4 * MTU; a record claiming more than this is certainly corrupt.
_MAX_SANE_CAPLEN = 262144


class _CountingReader(io.RawIOBase):
    """Counts the bytes scapy consumes, so a damaged record can be located by byte offset."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._inner.read(size)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:  # pragma: no cover - scapy uses read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


@dataclass(slots=True)
class RawFrame:
    frame: int
    ts: float
    linktype: int
    data: bytes
    offset: int


@dataclass
class CaptureFile:
    """An open capture. Iterate `frames()`; read `problems`, `linktypes`, `packets` afterwards."""

    name: str
    format: str
    problems: list[Problem] = field(default_factory=list)
    linktypes: set[int] = field(default_factory=set)
    packets: int = 0
    bytes_read: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    _reader: object = None
    _stream: _CountingReader | None = None
    size: int | None = None

    def frames(self) -> Iterator[tuple[int, float, int, bytes]]:
        """Yield (frame number, timestamp in seconds, link type, frame bytes) for every record."""
        if self.format == "pcap":
            yield from self._pcap_frames()
        else:
            yield from self._pcapng_frames()

    def _pcap_frames(self) -> Iterator[tuple[int, float, int, bytes]]:
        reader = self._reader
        stream = self._stream
        linktype = reader.linktype
        self.linktypes.add(linktype)
        divisor = 1e9 if reader.nano else 1e6
        read = reader._read_packet
        frame = 0
        record_start = _PCAP_FILE_HEADER
        first = None
        ts = None
        while True:
            try:
                data, meta = read(_MAX_SANE_CAPLEN)
            except EOFError:
                break
            frame += 1
            ts = meta.sec + meta.usec / divisor
            if first is None:
                first = ts
            caplen = meta.caplen
            if len(data) < caplen:
                end = stream.position
                if caplen > _MAX_SANE_CAPLEN:
                    self._problem(
                        "corrupt_record",
                        f"record claims {caplen} bytes; the capture is corrupt from here on",
                        frame,
                        record_start,
                        Severity.ERROR,
                    )
                else:
                    self._problem(
                        "truncated_capture",
                        f"capture ends inside frame {frame}: {len(data)} of {caplen} bytes present",
                        frame,
                        record_start,
                        Severity.ERROR,
                    )
                self.packets = frame - 1
                self._finish(first, ts, end)
                return
            yield frame, ts, linktype, data
            record_start += _PCAP_RECORD_HEADER + caplen
        self.packets = frame
        if stream.position > record_start:
            self._problem(
                "truncated_capture",
                f"capture ends inside a record header after frame {frame}"
                f" ({stream.position - record_start} stray bytes)",
                frame + 1,
                record_start,
                Severity.ERROR,
            )
        self._finish(first, ts, stream.position)

    def _pcapng_frames(self) -> Iterator[tuple[int, float, int, bytes]]:
        reader = self._reader
        stream = self._stream
        read = reader._read_packet
        frame = 0
        first = None
        ts = None
        linktypes = self.linktypes
        while True:
            start = stream.position
            try:
                data, meta = read(_MAX_SANE_CAPLEN)
            except EOFError:
                break
            except Exception as exc:  # scapy raises several types on corrupt blocks
                self._problem("corrupt_block", f"unreadable pcapng block: {exc}", frame + 1, start, Severity.ERROR)
                break
            frame += 1
            if meta.tsresol:
                ts = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
            else:  # simple packet block: no timestamp
                ts = ts if ts is not None else 0.0
            if first is None:
                first = ts
            linktypes.add(meta.linktype)
            yield frame, ts, meta.linktype, data
        self.packets = frame
        end = stream.position
        if self.size is not None and end < self.size:
            self._problem(
                "truncated_capture",
                f"pcapng data after frame {frame} could not be read ({self.size - end} bytes left)",
                frame + 1,
                end,
                Severity.ERROR,
            )
        self._finish(first, ts, end)

    def _finish(self, first: float | None, last: float | None, position: int) -> None:
        self.first_ts = first
        self.last_ts = last
        self.bytes_read = position

    def _problem(self, kind: str, message: str, frame: int | None, offset: int | None, severity: Severity) -> None:
        self.problems.append(Problem(kind, message, frame=frame, offset=offset, severity=severity))

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def open_capture(path: str) -> CaptureFile:
    """Open a capture file, or '-' for a pcap/pcapng stream on standard input.

    Raises CaptureNotFound or CaptureError with a one-line message when the input is not a capture.
    """
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        name = "<stdin>"
        size = None
    else:
        if not os.path.exists(path):
            raise CaptureNotFound(f"{path}: no such file")
        if os.path.isdir(path):
            raise CaptureError(f"{path}: is a directory, not a capture file")
        try:
            raw = open(path, "rb")  # noqa: SIM115 - owned by the returned CaptureFile
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror}") from exc
        name = path
        size = os.fstat(raw.fileno()).st_size
        if size == 0:
            raw.close()
            raise CaptureError(f"{path}: empty file, not a capture")

    head = raw.read(2) if path == "-" else raw.peek(2)[:2]
    if head == _GZIP_MAGIC:
        if path == "-":
            raw = _Prepend(head, raw)
        raw = gzip.GzipFile(fileobj=raw)
        size = None  # the decompressed size is unknown until read
    elif path == "-":
        raw = _Prepend(head, raw)

    stream = _CountingReader(raw)
    try:
        magic = stream.read(4)
    except (OSError, EOFError) as exc:
        raise CaptureError(f"{name}: unreadable ({exc})") from exc
    if not magic:
        raise CaptureError(f"{name}: empty input, not a capture")
    if magic in _PCAP_MAGICS:
        fmt, cls = "pcap", RawPcapReader
    elif magic == _PCAPNG_MAGIC:
        fmt, cls = "pcapng", RawPcapNgReader
    else:
        stream.close()
        raise CaptureError(f"{name}: not a pcap or pcapng capture (starts with {magic!r})")
    try:
        reader = cls(_Prepend(magic, stream))
    except (Scapy_Exception, EOFError, OSError) as exc:
        stream.close()
        raise CaptureError(f"{name}: damaged {fmt} file header ({exc})") from exc
    return CaptureFile(name=name, format=fmt, _reader=reader, _stream=stream, size=size)


class _Prepend(io.RawIOBase):
    """A stream whose first bytes were already read to sniff the format."""

    def __init__(self, prefix: bytes, inner) -> None:
        self._prefix = prefix
        self._inner = inner
        self.name = getattr(inner, "name", "<stream>")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data, self._prefix = self._prefix + self._inner.read(), b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(data) < size:
                data += self._inner.read(size - len(data))
            return data
        return self._inner.read(size)

    def readinto(self, buffer) -> int:  # pragma: no cover - gzip uses read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()
