"""What a live run writes while it runs: events as JSON lines, decided calls (JSON lines and Parquet), and a ring
buffer of pcap files of everything captured."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from struct import Struct
from typing import TextIO

import numpy as np

from sipwatch.capture.reader import FrameBlock

PARQUET_ROWS = 2_000  # calls per Parquet part file at most (and the most rows held in memory for one)
PARQUET_EVERY_S = 600.0  # capture seconds: a part is written at least this often when calls were decided


class EventWriter:
    """One JSON object per line, flushed at once: a `tail -f` or a pipe sees each event as it is decided."""

    def __init__(self, stream: TextIO, close: bool = False) -> None:
        self.stream = stream
        self._close = close
        self.written = 0

    def emit(self, event: dict) -> None:
        self.stream.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
        self.stream.flush()
        self.written += 1

    def close(self) -> None:
        if self._close:
            self.stream.close()
        else:
            self.stream.flush()


class CallStore:
    """Every decided call, written once: `calls.jsonl` (the JSON report's call objects, one a line) and, when
    pandas and pyarrow are installed, `calls-NNNNN.parquet` parts of flat rows."""

    def __init__(self, folder: Path, columns: list[str]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.jsonl = folder / "calls.jsonl"
        self._lines = self.jsonl.open("a")
        self.columns = columns
        self._rows: list[tuple] = []
        self._part = 0
        self._since: float | None = None
        self._streams = None
        self.streams = 0
        self.count = 0
        self.parquet_files: list[Path] = []
        try:
            import pandas  # noqa: F401
            import pyarrow

            # the system allocator: what Parquet writing frees goes back with the runner's malloc_trim (pyarrow's
            # own pool keeps it)
            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
            self.parquet = True
        except ImportError:
            self.parquet = False

    def add(self, call: dict) -> None:
        self._lines.write(json.dumps(call, separators=(",", ":")) + "\n")
        self.count += 1
        if self.parquet:
            from sipwatch.report.tables import call_row

            row = call_row(call)
            self._rows.append({k: row.get(k) for k in self.columns})
            if len(self._rows) >= PARQUET_ROWS:
                self._flush_parquet()

    def add_stream(self, stream: dict) -> None:
        """An RTP stream no call claimed (RTP heuristic), once it went quiet: `unattached_streams.jsonl`."""
        if self._streams is None:
            self._streams = (self.folder / "unattached_streams.jsonl").open("a")
        self._streams.write(json.dumps(stream, separators=(",", ":")) + "\n")
        self.streams += 1

    def flush(self) -> None:
        self._lines.flush()
        if self._streams is not None:
            self._streams.flush()

    def tick(self, now: float) -> None:
        """Capture time: write the pending Parquet rows when the last part is `PARQUET_EVERY_S` old."""
        if self._since is None:
            self._since = now
        elif now - self._since >= PARQUET_EVERY_S:
            self._since = now
            if self.parquet:
                self._flush_parquet()

    def _flush_parquet(self) -> None:
        if not self._rows:
            return
        self._part += 1
        path = self.folder / f"calls-{self._part:05d}.parquet"
        from sipwatch.report.tables import frame

        frame(self._rows, "calls").to_parquet(path, index=False)
        self.parquet_files.append(path)
        self._rows = []

    def close(self) -> None:
        if self.parquet:
            self._flush_parquet()
        self._lines.close()
        if self._streams is not None:
            self._streams.close()


_NANO_HEADER = Struct("<IHHiIII")  # nanosecond pcap file header: magic, version, zone, sigfigs, snaplen, link type
_RECORDS = np.dtype([("sec", "<u4"), ("nsec", "<u4"), ("caplen", "<u4"), ("len", "<u4")])


class PcapRing:
    """A ring buffer of nanosecond pcap files (`sipwatch-NNNNNN.pcap` in capture order): a new file when the
    current one passes `size_mb` (or when the link type changes: a pcap file has one), the oldest deleted when
    more than `count` exist. Every file is a complete pcap that tshark reads; `sipwatch extract DIR` follows a
    call across them."""

    def __init__(self, folder: Path, size_mb: float, count: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.limit = max(1, int(size_mb * 1_000_000))
        self.count = max(1, count)
        existing = sorted(folder.glob("sipwatch-*.pcap"))
        self._seq = max((int(p.stem.split("-")[1]) for p in existing if p.stem.split("-")[1].isdigit()), default=0)
        self.files: list[Path] = existing
        self._out = None
        self._size = 0
        self._linktype: int | None = None
        self.frames = 0

    def _rotate(self, linktype: int) -> None:
        if self._out is not None:
            self._out.close()
        self._seq += 1
        path = self.folder / f"sipwatch-{self._seq:06d}.pcap"
        self._out = path.open("wb")
        self._out.write(_NANO_HEADER.pack(0xA1B23C4D, 2, 4, 0, 0, 262144, linktype))
        self._linktype = linktype
        self._size = _NANO_HEADER.size
        self.files.append(path)
        while len(self.files) > self.count:
            old = self.files.pop(0)
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def write(self, block: FrameBlock) -> None:
        n = len(block)
        if not n:
            return
        single = block.single_linktype
        if single is None and len(set(block.linktypes)) > 1:  # one file per link type
            for i in range(n):
                self.write(FrameBlock(block.data, 0, block.offsets[i : i + 1], block.lengths[i : i + 1],
                                      block.times[i : i + 1], block.linktypes[i : i + 1]))
            return
        linktype = single if single is not None else block.linktypes[0]
        times = np.frombuffer(block.times, dtype=np.float64)
        lengths = np.frombuffer(block.lengths, dtype=np.int64)
        headers = np.empty(n, dtype=_RECORDS)
        seconds = np.floor(times)
        headers["sec"] = seconds
        headers["nsec"] = np.minimum(np.round((times - seconds) * 1e9), 999_999_999)
        headers["caplen"] = lengths
        headers["len"] = lengths
        raw = headers.tobytes()
        data, offsets = block.data, block.offsets
        i = 0
        while i < n:
            if self._out is None or self._size >= self.limit or linktype != self._linktype:
                self._rotate(linktype)
            # as many records as fit in this file (at least one)
            parts = []
            size = self._size
            while i < n and (size < self.limit or not parts):
                start, length = offsets[i], lengths[i]
                parts.append(raw[16 * i : 16 * i + 16])
                parts.append(data[start : start + length])
                size += 16 + int(length)
                i += 1
            self._out.write(b"".join(parts))
            self._size = size
        self.frames += n

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def stamp() -> str:
    """A UTC timestamp for folder names."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def is_terminal(stream) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
