"""Where each record of a classic pcap file starts: the one sequential step of reading a capture.

Each record header says how long its record is, so finding record k+1 needs record k: a Python loop, about
0.5 µs a record, half a second for a million packets. For a large pcap file on disk that loop runs in a
child process, ahead of the parent: the child sends each chunk's record offsets, timestamps and lengths
through a pipe, and the parent reads exactly those records' bytes (no buffer is copied to carry a record cut
by a chunk's end) while its core analyzes the previous chunk. Both sides cut the file with `record_chunks`;
any disagreement (a file still being written, a child that died) makes the parent read the rest itself.
Nothing is lost either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from struct import Struct

import numpy as np

MAX_SANE_CAPLEN = 262144  # no link layer frame is larger (Linux's maximum snap length)
CHUNK = 4 << 20
# below this size a file is read in-process: starting the child costs some 100 ms of the other core
CHILD_MIN_BYTES = 32 << 20
# chunks the parent reads itself while the child starts (the child skips them)
PARENT_FIRST = 2
_SPAN12 = np.arange(12)


@dataclass(slots=True)
class Chunk:
    """Consecutive records: `buf[offsets[i] : offsets[i] + lengths[i]]` is one, captured at `times[i]`."""

    buf: bytes
    base: int  # where buf[0] is, from the first record
    offsets: array  # of each whole record's data in buf
    times: array  # float seconds
    lengths: array  # captured lengths
    end: int  # where the first record not in this chunk starts in buf (at the end of the file, a cut record)
    bad: int | None  # the impossible length of the record at `end`, which ends the capture
    last: bool  # nothing follows: the end of the file, or a bad record


def scanner(endian: str) -> Callable[[bytes], tuple[array, int, int | None]]:
    """buffer -> (data start of each whole record, where the first record not whole starts, the impossible
    length of the record found there or None)."""
    caplen_at = Struct(endian + "I").unpack_from

    def scan(buf: bytes) -> tuple[array, int, int | None]:
        offsets = array("q")
        append = offsets.append
        end = len(buf)
        pos = 16  # `pos` runs over data starts: each begins 16 bytes after its record header
        while pos <= end:
            caplen = caplen_at(buf, pos - 8)[0]
            if caplen > MAX_SANE_CAPLEN:
                return offsets, pos - 16, caplen
            stop = pos + caplen
            if stop > end:
                break  # the rest of this record is in the next chunk
            append(pos)
            pos = stop + 16
        return offsets, pos - 16, None

    return scan


def record_fields(endian: str, nano: bool) -> Callable[[bytes, array], tuple[array, array]]:
    """(buffer, record data starts) -> (timestamps in float seconds, captured lengths), from the record
    headers at once."""
    header = np.dtype([("sec", endian + "u4"), ("frac", endian + "u4"), ("caplen", endian + "u4")])
    divisor = 1e9 if nano else 1e6

    def fields(buf: bytes, offsets: array) -> tuple[array, array]:
        if not offsets:
            return array("d"), array("q")
        starts = np.frombuffer(offsets, dtype=np.int64)
        view = np.frombuffer(buf, dtype=np.uint8)
        found = np.ascontiguousarray(view[(starts - 16)[:, None] + _SPAN12]).view(header).ravel()
        return (array("d", (found["sec"] + found["frac"] / divisor).tobytes()),
                array("q", found["caplen"].astype(np.int64).tobytes()))

    return fields


def record_chunks(read: Callable[[int], bytes], endian: str, nano: bool, buf: bytes = b"",
                  base: int = 0) -> Iterator[Chunk]:
    """Read `read` (positioned at a record, `buf` holding what was read of it already) chunk by chunk. The last
    chunk yielded is the one at the end of the file (its `buf[end:]` a cut record, if any) or at a bad record."""
    scan = scanner(endian)
    fields = record_fields(endian, nano)
    while True:
        more = read(CHUNK)
        buf += more
        offsets, end, bad = scan(buf)
        last = bad is not None or not more
        yield Chunk(buf, base, offsets, *fields(buf, offsets), end, bad, last)
        if last:
            return
        base += end
        buf = buf[end:]


# bytes of whole records, bytes of the child's buffer, records, bad length (-1: none), last chunk
_MESSAGE = Struct("<qqqqq")


class ChildScan:
    """Reads a pcap file's records with the help of a child Python process (a fresh interpreter rather than a
    fork: a forked child would share the parent's heap copy-on-write, and every page the analysis then writes
    would be copied). `chunks(read)` yields what `record_chunks(read, ...)` would. Use as a context manager:
    the child is stopped and reaped on exit."""

    def __init__(self, path: str, start: int, endian: str, nano: bool) -> None:
        self._endian, self._nano = endian, nano
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", __name__, path, str(start), endian, "1" if nano else "0", str(CHUNK),
             str(PARENT_FIRST)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 16,
        )
        with contextlib.suppress(OSError, AttributeError):  # room for a few chunks (Linux), so the child runs ahead
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)

    def chunks(self, read: Callable[[int], bytes]) -> Iterator[Chunk]:
        local = record_chunks(read, self._endian, self._nano)
        for n, chunk in enumerate(local):
            yield chunk
            if chunk.last:
                return
            if n + 1 == PARENT_FIRST:
                break
        leftover, base = chunk.buf[chunk.end :], chunk.base + chunk.end
        while (message := self._message()) is not None:
            whole, size, offsets, times, lengths, bad, last = message
            want = size if last else whole  # the last chunk keeps the bytes of a cut record, for the report
            if want <= len(leftover):
                buf, leftover = leftover[:want], leftover[want:]
            else:
                buf, leftover = leftover + read(want - len(leftover)), b""
            if len(buf) != want:  # the file is not what the child read
                leftover = buf
                break
            yield Chunk(buf, base, offsets, times, lengths, whole, bad, last)
            if last:
                return
            base += whole
        self.stop()  # the child died or read another file: the parent reads the rest
        yield from record_chunks(read, self._endian, self._nano, leftover, base)

    def _message(self) -> tuple[int, int, array, array, array, int | None, bool] | None:
        if self._proc is None:
            return None
        pipe = self._proc.stdout
        head = pipe.read(_MESSAGE.size)
        if len(head) != _MESSAGE.size:
            return None
        whole, size, count, bad, last = _MESSAGE.unpack(head)
        body = pipe.read(24 * count)
        if len(body) != 24 * count:
            return None
        offsets, times, lengths = array("q"), array("d"), array("q")
        offsets.frombytes(body[: 8 * count])
        times.frombytes(body[8 * count : 16 * count])
        lengths.frombytes(body[16 * count :])
        return whole, size, offsets, times, lengths, None if bad < 0 else bad, bool(last)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.stdout.close()
            proc.wait()

    def __enter__(self) -> ChildScan:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _child(path: str, start: int, endian: str, nano: bool) -> int:
    out = sys.stdout.buffer
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            for n, chunk in enumerate(record_chunks(fh.read, endian, nano)):
                if n < PARENT_FIRST:  # the parent reads these itself
                    continue
                bad = -1 if chunk.bad is None else chunk.bad
                out.write(_MESSAGE.pack(chunk.end, len(chunk.buf), len(chunk.offsets), bad, chunk.last))
                out.write(chunk.offsets)
                out.write(chunk.times)
                out.write(chunk.lengths)
    except (OSError, KeyboardInterrupt):  # the parent went away, or notices the missing data and reads itself
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    CHUNK, PARENT_FIRST = int(sys.argv[5]), int(sys.argv[6])  # the parent's, so both cut the file alike
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"))
