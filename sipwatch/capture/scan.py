"""Where each record of a classic pcap file starts: the one sequential step of reading a capture.

Each record header says how long its record is, so finding record k+1 needs record k: a Python loop, about
0.5 µs a record, half a second for a million packets. For a large pcap file on disk that loop runs in a
child process, one 4 MiB chunk ahead of the parent, which reads the same chunks and gets their record
offsets through a pipe; the parent's core meanwhile analyzes the previous chunk. Both sides share
`record_chunks`, so they cut the file into the same buffers; any disagreement (a file still being written,
a child that died) makes the parent scan the rest itself. Nothing is lost either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import subprocess
import sys
from array import array
from collections.abc import Callable, Iterator
from struct import Struct

MAX_SANE_CAPLEN = 262144  # no link layer frame is larger (Linux's maximum snap length)
CHUNK = 4 << 20
# below this size a file is scanned in-process: starting the child costs some 30 ms
CHILD_MIN_BYTES = 32 << 20

# (buffer, where the next record header starts) -> (data start of each whole record, where the next record
# header starts, the impossible length of the record found there or None)
Scan = Callable[[bytes, int], tuple[array, int, int | None]]


def scanner(endian: str) -> Scan:
    """The in-process scan of one buffer."""
    caplen_at = Struct(endian + "I").unpack_from

    def scan(buf: bytes, pos: int) -> tuple[array, int, int | None]:
        offsets = array("q")
        append = offsets.append
        end = len(buf)
        pos += 16  # `pos` runs over data starts: each begins 16 bytes after its record header
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


def record_chunks(read: Callable[[int], bytes], scan: Scan) -> Iterator[tuple[bytes, int, array, int, int | None]]:
    """Read `read` (positioned at the first record) chunk by chunk; yield (buffer, the buffer's offset from the
    first record, record data starts in the buffer, where the unfinished record begins, the bad length that
    ends the capture or None). The last chunk yielded is the one at the end of the file or at a bad record."""
    buf = b""
    pos = 0
    base = 0
    while True:
        chunk = read(CHUNK)
        if pos:
            base += pos
            buf = buf[pos:] + chunk
        elif chunk:
            buf += chunk
        offsets, pos, bad = scan(buf, 0)
        yield buf, base, offsets, pos, bad
        if bad is not None or not chunk:
            return


_MESSAGE = Struct("<qqqq")  # buffer length, records, next record position, bad length (-1: none)


class ChildScan:
    """A child Python process running `record_chunks` over the same file; `scan` hands its results to the
    parent's `record_chunks`. A fresh interpreter rather than a fork: a forked child would share the parent's
    heap copy-on-write, and every page the analysis then writes would be copied. Use as a context manager
    (the child is stopped and reaped on exit)."""

    def __init__(self, path: str, start: int, endian: str) -> None:
        self._fallback = scanner(endian)
        self._first = True  # the first chunk is scanned here while the child starts (the child skips it)
        self._proc: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", __name__, path, str(start), endian],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=1 << 16,
        )
        with contextlib.suppress(OSError):  # room for a few chunks' offsets, so the child can run ahead
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)

    def scan(self, buf: bytes, pos: int) -> tuple[array, int, int | None]:
        if self._first:
            self._first = False
        elif self._proc is not None and pos == 0:
            pipe = self._proc.stdout
            head = pipe.read(_MESSAGE.size)
            if len(head) == _MESSAGE.size:
                length, count, after, bad = _MESSAGE.unpack(head)
                body = pipe.read(count * 8)
                if length == len(buf) and len(body) == count * 8:
                    offsets = array("q")
                    offsets.frombytes(body)
                    return offsets, after, None if bad < 0 else bad
            self.stop()  # the child died or saw another file: scan the rest here
        return self._fallback(buf, pos)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.stdout.close()
            proc.wait()

    def __enter__(self) -> Scan:
        return self.scan

    def __exit__(self, *exc) -> None:
        self.stop()


def _child(path: str, start: int, endian: str) -> int:
    out = sys.stdout.buffer
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            chunks = record_chunks(fh.read, scanner(endian))
            next(chunks)  # the parent scans the first chunk itself
            for buf, _base, offsets, pos, bad in chunks:
                out.write(_MESSAGE.pack(len(buf), len(offsets), pos, -1 if bad is None else bad))
                out.write(offsets)
    except (OSError, KeyboardInterrupt):  # the parent went away, or notices the missing data and scans itself
        return 1
    out.flush()
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.exit(_child(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
