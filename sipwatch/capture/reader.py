"""Capture files (pcap, nanosecond pcap, pcapng, gzip) and pcap streams, read as raw frames.

scapy's raw reader parses every pcapng block. Classic pcap, the bulk of most support captures, has a 24-byte
file header read here (importing scapy would cost more than reading most files) and records read in 4 MiB
chunks (sipwatch.capture.scan) with one precompiled `struct`
per record: scapy's per-record `_read_packet` costs 2.6 µs here against 0.5 µs for the block loop
(measured on the benchmark load capture, docs/benchmarks.md), and reading is a third of an analysis.

This module adds what a support engineer needs: one timestamp convention (float seconds), frame numbers,
and a precise account (frame number, byte offset) of where a damaged file stops making sense. Frames are
never dissected here.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from struct import Struct
from typing import BinaryIO

from sipwatch.capture.scan import CHILD_MIN_BYTES, MAX_SANE_CAPLEN, ChildScan, Chunk, record_chunks
from sipwatch.model import CaptureError, CaptureNotFound, Problem, Severity

# scapy reports damaged records through its logger; we report them ourselves, with offsets.
logging.getLogger("scapy").setLevel(logging.CRITICAL)

_GZIP_MAGIC = b"\x1f\x8b"
_PCAP_MAGICS = {b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAP_FILE_HEADER = 24
_PCAP_RECORD_HEADER = 16
# pcapng blocks also carry options, name tables, key logs: far more room than a frame, but a block claiming
# gigabytes is corruption too, and scapy would read that much into memory before finding out.
MAX_SANE_BLOCK = 64 << 20


class _CountingReader(io.RawIOBase):
    """For streams that cannot tell(): counts the bytes consumed, so damage can be located by offset."""

    def __init__(self, inner: BinaryIO, prefix: bytes = b"") -> None:
        self._inner = inner
        self._prefix = prefix
        self.position = 0
        self.name = getattr(inner, "name", "<stream>")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0:
                data, self._prefix = self._prefix + self._inner.read(), b""
            else:
                data, self._prefix = self._prefix[:size], self._prefix[size:]
                if len(data) < size:
                    data += self._inner.read(size - len(data))
        else:
            data = self._inner.read(size)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:  # pragma: no cover - gzip and scapy use read()
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        self._inner.close()
        super().close()


class _BoundedReads:
    """The stream scapy's pcapng reader reads blocks from, refusing any read larger than MAX_SANE_BLOCK."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        if size > MAX_SANE_BLOCK:
            raise CaptureError(f"block claims {size + 12} bytes; the capture is corrupt from here on")
        return self._inner.read(size)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _Repeat:
    """One link type for every frame of a block (classic pcap has a single link type)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __getitem__(self, index: int) -> int:
        return self.value


@dataclass(slots=True)
class FrameBlock:
    """Consecutive frames of a capture: `data[offsets[i] : offsets[i] + lengths[i]]` is frame
    `first_frame + i`, captured at `times[i]` on link type `linktypes[i]`."""

    data: bytes
    first_frame: int
    offsets: array
    lengths: array
    times: array
    linktypes: array | _Repeat

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def single_linktype(self) -> int | None:
        return self.linktypes.value if isinstance(self.linktypes, _Repeat) else None


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
    size: int | None = None  # of the file on disk, when known (for progress)
    _reader: object = None
    _stream: BinaryIO | None = None  # what the records are read from (file, gzip, counting stdin)
    _raw: BinaryIO | None = None  # the file on disk, for progress

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far (compressed bytes for gzip)."""
        raw = self._raw if self._raw is not None else self._stream
        try:
            return raw.tell()
        except (OSError, ValueError):
            return 0

    def frames(self) -> Iterator[tuple[int, float, int, bytes]]:
        """Yield (frame number, timestamp in seconds, link type, frame bytes) for every record."""
        for block in self.blocks():
            data, offsets, lengths, times = block.data, block.offsets, block.lengths, block.times
            linktypes = block.linktypes
            frame = block.first_frame
            for i in range(len(offsets)):
                start = offsets[i]
                yield frame + i, times[i], linktypes[i], data[start : start + lengths[i]]

    def blocks(self) -> Iterator[FrameBlock]:
        """Yield the records in blocks: one buffer and arrays of offsets, lengths, timestamps, link types."""
        if self.format == "pcap":
            yield from self._pcap_blocks()
        else:
            yield from self._pcapng_blocks()

    def _pcap_blocks(self) -> Iterator[FrameBlock]:
        reader = self._reader
        linktype = reader.linktype
        self.linktypes.add(linktype)
        frame = 0
        first = ts = None
        with self._records(reader) as chunks:
            for chunk in chunks:
                offset = _PCAP_FILE_HEADER + chunk.base  # of chunk.buf[0] in the file
                offsets = chunk.offsets
                if chunk.bad is not None:
                    self._problem(
                        "corrupt_record", f"record claims {chunk.bad} bytes; the capture is corrupt from here on",
                        frame + len(offsets) + 1, offset + chunk.end, Severity.ERROR,
                    )
                if offsets:
                    block_first = frame + 1
                    times = chunk.times
                    frame += len(offsets)
                    ts = times[-1]
                    if first is None:
                        first = times[0]
                    yield FrameBlock(chunk.buf, block_first, offsets, chunk.lengths, times, _Repeat(linktype))
                if chunk.bad is not None:
                    self._finish(frame, first, ts, offset + chunk.end)
                    return
        buf, pos = chunk.buf, chunk.end
        remaining = len(buf) - pos
        if remaining:
            if remaining >= 16:
                caplen = Struct(reader.endian + "I").unpack_from(buf, pos + 8)[0]
                message = f"capture ends inside frame {frame + 1}: {remaining - 16} of {caplen} bytes present"
            else:
                message = f"capture ends inside a record header after frame {frame} ({remaining} stray bytes)"
            self._problem("truncated_capture", message, frame + 1, offset + pos, Severity.ERROR)
        self._finish(frame, first, ts, offset + len(buf))

    @contextlib.contextmanager
    def _records(self, reader: _PcapHeader) -> Iterator[Iterator[Chunk]]:
        """The records in chunks: read with a child process's help for a large pcap file on disk (the parent
        analyzes meanwhile), else here."""
        stream = self._stream
        child = None
        if self._raw is None and self.size is not None and self.size >= CHILD_MIN_BYTES and hasattr(stream, "fileno"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                child = ChildScan(stream.name, stream.tell(), reader.endian, reader.nano)
        if child is None:
            yield record_chunks(stream.read, reader.endian, reader.nano)
            return
        with child:
            yield child.chunks(stream.read)

    def _pcapng_blocks(self) -> Iterator[FrameBlock]:
        """pcapng blocks are parsed by scapy one by one; their frames are grouped here into FrameBlocks."""
        parts: list[bytes] = []
        offsets, lengths, times, linktypes = array("q"), array("q"), array("d"), array("H")
        size = 0
        block_first = 1
        for frame, ts, linktype, data in self._pcapng_frames():
            offsets.append(size)
            lengths.append(len(data))
            times.append(ts)
            linktypes.append(linktype)
            parts.append(data)
            size += len(data)
            if len(parts) >= 4096:
                yield FrameBlock(b"".join(parts), block_first, offsets, lengths, times, linktypes)
                parts = []
                offsets, lengths, times, linktypes = array("q"), array("q"), array("d"), array("H")
                size = 0
                block_first = frame + 1
        if parts:
            yield FrameBlock(b"".join(parts), block_first, offsets, lengths, times, linktypes)

    def _pcapng_frames(self) -> Iterator[tuple[int, float, int, bytes]]:
        reader = self._reader
        read = reader._read_packet
        frame = 0
        first = ts = None
        linktypes = self.linktypes
        corrupt = False
        while True:
            before = self._stream_position()
            try:
                data, meta = read(MAX_SANE_CAPLEN)
            except EOFError:
                break
            except Exception as exc:  # scapy raises several types on corrupt blocks
                self._problem("corrupt_block", f"unreadable pcapng block: {exc}", frame + 1, before, Severity.ERROR)
                corrupt = True
                break
            frame += 1
            if meta.tsresol:
                ts = ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
            elif ts is None:  # simple packet blocks carry no timestamp
                ts = 0.0
            if first is None:
                first = ts
            linktypes.add(meta.linktype)
            yield frame, ts, meta.linktype, data
        end = self._stream_position()
        if self.size is not None and self._raw is None and end < self.size and not corrupt:
            self._problem(
                "truncated_capture",
                f"pcapng data after frame {frame} could not be read ({self.size - end} bytes left)",
                frame + 1, end, Severity.ERROR,
            )
        self._finish(frame, first, ts, end)

    def _stream_position(self) -> int:
        try:
            return self._stream.tell()
        except (OSError, ValueError):
            return 0

    def _finish(self, frames: int, first: float | None, last: float | None, position: int) -> None:
        self.packets = frames
        self.first_ts = first
        self.last_ts = last
        self.bytes_read = position

    def _problem(self, kind: str, message: str, frame: int | None, offset: int | None, severity: Severity) -> None:
        self.problems.append(Problem(kind, message, frame=frame, offset=offset, severity=severity))

    def close(self) -> None:
        for stream in (self._stream, self._raw):
            if stream is not None:
                stream.close()


def open_capture(path: str) -> CaptureFile:
    """Open a capture file, or '-' for a pcap/pcapng stream on standard input.

    Raises CaptureNotFound or CaptureError with a one-line message when the input is not a capture.
    """
    raw: BinaryIO | None = None
    if path == "-":
        name = "<stdin>"
        size = None
        head = sys.stdin.buffer.read(4)
        stream: BinaryIO = _CountingReader(sys.stdin.buffer, head)
        if head[:2] == _GZIP_MAGIC:
            unzipped = gzip.GzipFile(fileobj=stream)
            try:
                head = unzipped.read(4)
            except (OSError, EOFError) as exc:
                raise CaptureError(f"{name}: damaged gzip stream ({exc})") from exc
            stream = _CountingReader(unzipped, head)
    else:
        if not os.path.exists(path):
            raise CaptureNotFound(f"{path}: no such file")
        if os.path.isdir(path):
            raise CaptureError(f"{path}: is a directory, not a capture file")
        try:
            stream = open(path, "rb")  # noqa: SIM115 - owned by the returned CaptureFile
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror}") from exc
        name = path
        size = os.fstat(stream.fileno()).st_size
        if size == 0:
            stream.close()
            raise CaptureError(f"{path}: empty file, not a capture")
        if stream.peek(2)[:2] == _GZIP_MAGIC:
            raw, stream = stream, gzip.GzipFile(fileobj=stream)

    try:
        magic = head if path == "-" else stream.peek(4)[:4]
    except (OSError, EOFError) as exc:
        raise CaptureError(f"{name}: unreadable ({exc})") from exc
    if not magic:
        raise CaptureError(f"{name}: empty input, not a capture")
    if magic in _PCAP_MAGICS:
        fmt = "pcap"
    elif magic == _PCAPNG_MAGIC:
        fmt = "pcapng"
    else:
        stream.close()
        raise CaptureError(f"{name}: not a pcap or pcapng capture (starts with {magic!r})")
    try:
        if fmt == "pcap":
            reader = _read_pcap_header(stream)
        else:
            # scapy reads and checks the section and interface blocks (imported only here: loading scapy
            # costs 0.2 s, a tenth of a whole analysis of the benchmark capture, for a 24-byte pcap header)
            from scapy.error import Scapy_Exception
            from scapy.utils import RawPcapReader

            try:
                reader = RawPcapReader(stream)
            except Scapy_Exception as exc:
                raise ValueError(str(exc)) from exc
            reader.f = _BoundedReads(reader.f)
    except (ValueError, EOFError, OSError, gzip.BadGzipFile) as exc:
        stream.close()
        raise CaptureError(f"{name}: damaged {fmt} file header ({exc})") from exc
    return CaptureFile(name=name, format=fmt, size=size, _reader=reader, _stream=stream, _raw=raw)


@dataclass(frozen=True, slots=True)
class _PcapHeader:
    """A classic pcap file header: byte order, timestamp resolution, link type (what the record loop needs)."""

    endian: str
    nano: bool
    snaplen: int
    linktype: int


_PCAP_BYTE_ORDERS = {  # magic -> (struct byte order, nanosecond timestamps)
    b"\xa1\xb2\xc3\xd4": (">", False), b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\x3c\x4d": (">", True), b"\x4d\x3c\xb2\xa1": ("<", True),
}


def _read_pcap_header(stream: BinaryIO) -> _PcapHeader:
    """The 24-byte file header, read as scapy's RawPcapReader reads it (the records follow it)."""
    head = b""
    while len(head) < _PCAP_FILE_HEADER:
        chunk = stream.read(_PCAP_FILE_HEADER - len(head))
        if not chunk:
            raise ValueError(f"{len(head)} bytes, where a pcap file header has {_PCAP_FILE_HEADER}")
        head += chunk
    endian, nano = _PCAP_BYTE_ORDERS[head[:4]]
    _major, _minor, _zone, _sigfigs, snaplen, linktype = Struct(endian + "HHIIII").unpack_from(head, 4)
    return _PcapHeader(endian, nano, snaplen, linktype)
