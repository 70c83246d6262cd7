"""One call's packets out of a capture, into a pcap file tshark and Wireshark open: its SIP messages and its
RTP streams, with their original timestamps and bytes.

The analysis (with `keep_frames`) says which frames belong to the call; a second pass over the capture copies
those frames. RTCP and IP fragments other than the one completing a datagram are not included yet.

The capture may be several consecutive files (the rotated files of `sipwatch live --write`, or a folder of
them): `CaptureChain` reads them as one capture, frames numbered across the files, so a call (and a TCP stream)
that crosses a rotation is followed from one file into the next.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from struct import Struct

from sipwatch.capture.reader import CaptureFile, FrameBlock, open_capture
from sipwatch.core.calls import Call
from sipwatch.model import CaptureNotFound, Problem, UsageError

_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")

_FILE_HEADER = Struct("<IHHiIII")
_RECORD = Struct("<IIII")


def call_frames(call: Call) -> set[int]:
    frames = {record.frame for record in call.records}
    for stream in call.streams:
        if stream.frames is not None:
            frames.update(stream.frames)
    return frames


def capture_paths(captures: list[str]) -> list[str]:
    """The files named, a folder standing for the capture files in it, in name order (the ring buffer's names
    sort in capture order)."""
    paths: list[str] = []
    for capture in captures:
        if capture == "-":
            raise UsageError("extract reads the capture twice: give files, not '-'")
        if os.path.isdir(capture):
            inside = sorted(str(p) for p in Path(capture).iterdir() if p.is_file() and p.name.endswith(_CAPTURE_SUFFIXES))
            if not inside:
                raise CaptureNotFound(f"{capture}: no capture files in this folder")
            paths += inside
        else:
            paths.append(capture)
    return paths


class CaptureChain:
    """Consecutive capture files read as one capture: frames numbered across the files, problems of each kept
    (with the file's name), the same attributes as a CaptureFile for the pipeline."""

    def __init__(self, paths: list[str]) -> None:
        if not paths:
            raise UsageError("no capture file given")
        for path in paths:
            if not os.path.exists(path):
                raise CaptureNotFound(f"{path}: no such file")
        self.paths = paths
        self.name = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
        self.format = "pcap"
        self.problems: list[Problem] = []
        self.linktypes: set[int] = set()
        self.packets = 0
        self.bytes_read = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.size = sum(os.path.getsize(p) for p in paths)
        self._done = 0  # bytes of the files already read
        self._current: CaptureFile | None = None

    @property
    def position(self) -> int:
        return self._done + (self._current.position if self._current is not None else 0)

    def blocks(self) -> Iterator[FrameBlock]:
        self.packets = self.bytes_read = self._done = 0
        for path in self.paths:
            capture = self._current = open_capture(path)
            self.format = capture.format
            try:
                for block in capture.blocks():
                    block.first_frame += self.packets
                    yield block
            finally:
                capture.close()
            self._current = None
            self.linktypes |= capture.linktypes
            self.problems += [Problem(p.kind, f"{path}: {p.message}", None if p.frame is None else p.frame + self.packets,
                                      p.offset, p.severity) for p in capture.problems]
            self.packets += capture.packets
            self.bytes_read += capture.bytes_read
            self._done += os.path.getsize(path)
            if capture.first_ts is not None and self.first_ts is None:
                self.first_ts = capture.first_ts
            if capture.last_ts is not None:
                self.last_ts = capture.last_ts

    def close(self) -> None:
        if self._current is not None:
            self._current.close()


def extract(capture: str | list[str], frames: set[int], output: Path) -> int:
    """Copy the given frames of `capture` (one file, or consecutive files read as one capture) into a
    microsecond pcap at `output`; return how many were written."""
    written = 0
    linktype = None
    source = CaptureChain(capture_paths([capture] if isinstance(capture, str) else capture))
    try:
        with output.open("wb") as out:
            for block in source.blocks():
                first = block.first_frame
                for i in range(len(block)):
                    if first + i not in frames:
                        continue
                    if linktype is None:
                        linktype = block.linktypes[i]
                        out.write(_FILE_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
                    elif block.linktypes[i] != linktype:
                        raise UsageError("the call's frames come from interfaces of different link types; "
                                         "extracting them into one pcap is not supported yet")
                    start, length, ts = block.offsets[i], block.lengths[i], block.times[i]
                    seconds = math.floor(ts)
                    micros = min(999_999, round((ts - seconds) * 1_000_000))
                    out.write(_RECORD.pack(seconds, micros, length, length))
                    out.write(block.data[start : start + length])
                    written += 1
    finally:
        source.close()
    return written
