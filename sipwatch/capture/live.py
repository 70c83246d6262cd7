"""Live frame sources: network interfaces through AF_PACKET rings, and a pcap stream arriving on stdin.

The source interface, which any other live input (a HEP collector, say) implements to plug into the live
runner (`sipwatch.live.runner`):

    class FrameSource(Protocol):
        name: str
        def batches(self, timeout: float) -> Iterator[FrameBlock | None]
            # FrameBlocks of frames as they are captured, in capture order per source: frame i of a block is
            # `data[offsets[i] : offsets[i] + lengths[i]]`, captured at `times[i]` (float seconds, UTC) on
            # link type `linktypes[i]`; `first_frame` is left at 0, the runner numbers frames. None when
            # nothing came within `timeout` seconds (the runner uses it to tick the analyzer on a quiet line).
            # The iterator ends when the source is exhausted (end of the stdin stream) or `stop()` was called.
        def now(self) -> float       # the source's capture clock, for ticks when no frame comes
        def stats(self) -> CaptureStats  # frames received and dropped so far (kernel counters where known)
        def stop(self) -> None       # safe from a signal handler: batches() ends soon after
        def close(self) -> None

`InterfaceSource` reads one or several interfaces (`any` for all) through a TPACKET_V3 memory-mapped ring per
socket, with a kernel BPF filter compiled by `tcpdump -ddd` attached before any packet can arrive. A ring block
(up to 1 MiB of frames, handed over when full or after 50 ms) becomes one FrameBlock with one copy, so frames
are never copied one by one and the decoder's block-oriented RTP lane applies as for files. Kernel drops come
from PACKET_STATISTICS. `any` uses a datagram socket (frames without link header, whatever the interface) and
puts a 14-byte Ethernet header in front of each frame in the copy, so every frame of every source is Ethernet.

`PcapStreamSource` reads a classic pcap stream (`tcpdump -U -w -`) from a file descriptor, handing over the
records as they arrive (a non-blocking read of what is there, never waiting for a buffer to fill).

This module imports only sipwatch.model and its sibling reader (for FrameBlock).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import struct
import subprocess
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sipwatch.capture.reader import MAX_SANE_CAPLEN, FrameBlock, _Repeat
from sipwatch.model import CaptureError, Problem, Severity, UsageError

# SIP on 5060/5061 over UDP and TCP, any UDP (RTP and RTCP ports are negotiated), and IP fragments: a
# `port 5060` filter alone would drop every fragment but the first, which carries no UDP header.
DEFAULT_FILTER = "udp or tcp port 5060 or tcp port 5061 or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)"

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_LOCK_FILTER = 44

_BLOCK_HDR = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (at byte 8 of the block)
_PKT_HDR = struct.Struct("=IIIII4xH")  # tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_mac
_SLL = struct.Struct("!HHi")  # sll_family (host order, unused), sll_protocol, sll_ifindex; at byte 48
_SLL_TYPE = struct.Struct("=HB")  # sll_hatype, sll_pkttype; at byte 56
_TPACKET3_HDRLEN = 48
_FAKE_ETHERNET = bytes(12)


@dataclass
class CaptureStats:
    """What a source received and lost. `dropped` counts frames the kernel could not queue (ring full)."""

    received: int = 0
    dropped: int = 0
    bytes: int = 0


class FrameSource(Protocol):
    name: str

    def batches(self, timeout: float) -> Iterator[FrameBlock | None]: ...

    def now(self) -> float: ...

    def stats(self) -> CaptureStats: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


def compile_filter(expression: str, linktype: int = LINKTYPE_ETHERNET) -> bytes:
    """A BPF program for `expression` (tcpdump syntax) on `linktype`, as the kernel's sock_fprog wants it.

    tcpdump compiles it (`-ddd`) against an empty capture file of that link type, so no interface is opened.
    Raises UsageError with tcpdump's message when the expression does not compile."""
    with tempfile.NamedTemporaryFile(suffix=".pcap") as empty:
        empty.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        empty.flush()
        try:
            result = subprocess.run(["tcpdump", "-ddd", "-r", empty.name, expression], capture_output=True,
                                    text=True, timeout=30)
        except FileNotFoundError as exc:
            raise UsageError("compiling the capture filter needs tcpdump (apt-get install tcpdump)") from exc
    if result.returncode != 0:
        message = " ".join(line for line in result.stderr.splitlines() if not line.startswith("reading from"))
        raise UsageError(f"capture filter {expression!r} does not compile: {message.strip()}")
    numbers = result.stdout.split()
    count = int(numbers[0])
    words = list(map(int, numbers[1:]))
    if len(words) != 4 * count:
        raise UsageError(f"capture filter {expression!r}: unexpected tcpdump output")
    return b"".join(struct.pack("=HBBI", *words[i : i + 4]) for i in range(0, len(words), 4))


class _Ring:
    """One AF_PACKET socket with its TPACKET_V3 ring, bound to one interface (or to all: `any`)."""

    def __init__(self, interface: str, program: bytes, block_size: int, blocks: int) -> None:
        self.interface = interface
        self.any = interface == "any"
        kind = socket.SOCK_DGRAM if self.any else socket.SOCK_RAW
        # protocol 0: the socket receives nothing until bind(), when the filter is already attached. `any` cannot
        # be bound by name: it listens from the start, and the ring (filled only through the filter) comes after
        # the filter; what queued before the ring existed stays in the plain receive queue, never read.
        self.sock = socket.socket(socket.AF_PACKET, kind, socket.htons(ETH_P_ALL) if self.any else 0)
        try:
            self._setup(program, block_size, blocks)
        except BaseException:
            self.sock.close()
            raise
        self.block_size = block_size
        self.blocks = blocks
        self.current = 0
        # the counters reset on each read: start from zero once the ring is in place
        self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        self.dropped = 0
        self.received = 0

    def _setup(self, program: bytes, block_size: int, blocks: int) -> None:
        sock = self.sock
        buffer = _sock_fprog(program)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, buffer)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame_size = 2048
        # tpacket_req3: block size, block count, frame size, frame count, retire timeout (ms), priv size, features
        request = struct.pack("=7I", block_size, blocks, frame_size, block_size // frame_size * blocks, 50, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self.ring = mmap.mmap(sock.fileno(), block_size * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        if self.any:
            return
        try:
            sock.bind((self.interface, ETH_P_ALL))
        except OSError as exc:
            self.ring.close()
            raise UsageError(f"cannot capture on {self.interface}: {exc.strerror}") from exc

    def fileno(self) -> int:
        return self.sock.fileno()

    def ready(self) -> bool:
        base = self.current * self.block_size
        return bool(_BLOCK_HDR.unpack_from(self.ring, base + 8)[0] & TP_STATUS_USER)

    def take(self) -> FrameBlock | None:
        """The current block's frames, if the kernel has handed it over; the block goes back to the kernel."""
        ring = self.ring
        base = self.current * self.block_size
        status, count, first = _BLOCK_HDR.unpack_from(ring, base + 8)
        if not status & TP_STATUS_USER:
            return None
        # blk_len (byte 20) is where the block's used part ends
        used = struct.unpack_from("=I", ring, base + 20)[0]
        data = bytearray(ring[base : base + used]) if self.any else ring[base : base + used]
        struct.pack_into("=I", ring, base + 8, TP_STATUS_KERNEL)
        self.current = (self.current + 1) % self.blocks
        offsets, lengths, times = array("q"), array("q"), array("d")
        unpack, sll, sll_type = _PKT_HDR.unpack_from, _SLL.unpack_from, _SLL_TYPE.unpack_from
        at = first
        any_ = self.any
        for _ in range(count):
            following, sec, nsec, snaplen, _length, mac = unpack(data, at)
            hatype, pkttype = sll_type(data, at + 56)
            # loopback shows every packet twice (leaving and arriving): keep one, as libpcap does
            if not (pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK):
                start = at + mac
                if any_:  # a datagram socket gives the network layer: put an Ethernet header in front
                    protocol = sll(data, at + _TPACKET3_HDRLEN)[1]
                    start -= 14
                    data[start : start + 14] = _FAKE_ETHERNET + protocol.to_bytes(2, "big")
                    snaplen += 14
                offsets.append(start)
                lengths.append(snaplen)
                times.append(sec + nsec * 1e-9)
            if not following:
                break
            at += following
        self.received += len(offsets)
        return FrameBlock(bytes(data), 0, offsets, lengths, times, _Repeat(LINKTYPE_ETHERNET))

    def kernel_drops(self) -> int:
        """Drops since the socket opened (PACKET_STATISTICS resets on each read; totals are kept here)."""
        with contextlib.suppress(OSError):
            _packets, drops, _freezes = struct.unpack("=III", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
            self.dropped += drops
        return self.dropped

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ring.close()
        self.sock.close()


def _sock_fprog(program: bytes) -> bytes:
    """struct sock_fprog {unsigned short len; struct sock_filter *filter;} pointing at `program`."""
    import ctypes

    buffer = ctypes.create_string_buffer(program)
    _KEEP.append(buffer)  # the kernel copies the program at attach time; keep it alive until then anyway
    if len(_KEEP) > 64:
        del _KEEP[:32]
    return struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))


_KEEP: list = []


class InterfaceSource:
    """Frames from one or several network interfaces (`any`: all of them), filtered in the kernel."""

    def __init__(self, interfaces: list[str], expression: str = DEFAULT_FILTER, buffer_mb: int = 64) -> None:
        if not interfaces:
            raise UsageError("no interface to capture on")
        if "any" in interfaces and len(interfaces) > 1:
            raise UsageError("`any` already captures every interface: give it alone")
        self.name = ",".join(interfaces)
        self.expression = expression
        block_size = 1 << 20
        blocks = max(4, buffer_mb // len(interfaces))
        self._rings: list[_Ring] = []
        try:
            for interface in interfaces:
                linktype = LINKTYPE_RAW if interface == "any" else LINKTYPE_ETHERNET
                try:
                    ring = _Ring(interface, compile_filter(expression, linktype), block_size, blocks)
                except PermissionError as exc:
                    raise UsageError(f"capturing on {interface} needs root or CAP_NET_RAW") from exc
                self._rings.append(ring)
        except BaseException:
            self.close()
            raise
        self._stopping = False
        self._poll = select.poll()
        for ring in self._rings:
            self._poll.register(ring.fileno(), select.POLLIN | select.POLLERR)
        self._bytes = 0

    def batches(self, timeout: float) -> Iterator[FrameBlock | None]:
        rings = self._rings
        while not self._stopping:
            handed = False
            for ring in rings:
                while not self._stopping and (block := ring.take()) is not None:
                    handed = True
                    self._bytes += sum(block.lengths)
                    yield block
            if handed:
                continue
            events = self._poll.poll(timeout * 1000)
            for fd, flags in events:
                if flags & select.POLLERR:  # e.g. the interface went down: clear the error, keep listening
                    with contextlib.suppress(OSError):
                        self._clear_error(fd)
            if not any(ring.ready() for ring in rings):
                yield None  # nothing handed over: the runner may tick
        # what the kernel already handed over is still read: nothing captured is lost at stop (one turn of each
        # ring at most, as the kernel goes on filling the blocks given back)
        for ring in rings:
            for _ in range(ring.blocks):
                block = ring.take()
                if block is None:
                    break
                self._bytes += sum(block.lengths)
                yield block

    def _clear_error(self, fd: int) -> None:
        for ring in self._rings:
            if ring.fileno() == fd:
                ring.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def now(self) -> float:
        return time.time()  # kernel timestamps are the system clock

    def stats(self) -> CaptureStats:
        return CaptureStats(sum(r.received for r in self._rings), sum(r.kernel_drops() for r in self._rings),
                            self._bytes)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings = []


class CountingSource:
    """What a FrameSource that reads frames itself (no kernel ring, so no drops to count) shares: counters of
    the frames and bytes it handed over, and a stop flag its `batches()` checks."""

    def __init__(self) -> None:
        self._stopping = False
        self._received = 0
        self._bytes = 0

    def stats(self) -> CaptureStats:
        return CaptureStats(self._received, 0, self._bytes)

    def stop(self) -> None:
        self._stopping = True

    def close(self) -> None:
        pass


class PcapStreamSource(CountingSource):
    """A classic pcap stream (microsecond or nanosecond, either byte order) read from a file descriptor as the
    records arrive: `tcpdump -U -w - | sipwatch live -`. Ends at end of stream."""

    def __init__(self, fd: int = 0, name: str = "<stdin>") -> None:
        super().__init__()
        self.fd = fd
        self.name = name
        self._eof = False  # the writer closed the pipe
        self._buffer = bytearray()
        self._offset = 0  # of _buffer[0] in the stream
        self._last_ts: float | None = None
        self._last_wall = time.monotonic()
        self.problems: list[Problem] = []
        header = self._read_exactly(24)
        if len(header) < 24:
            raise CaptureError(f"{name}: empty input, not a pcap stream")
        magic = header[:4]
        formats = {b"\xd4\xc3\xb2\xa1": ("<", 1e6), b"\xa1\xb2\xc3\xd4": (">", 1e6),
                   b"\x4d\x3c\xb2\xa1": ("<", 1e9), b"\xa1\xb2\x3c\x4d": (">", 1e9)}
        if magic == b"\x0a\x0d\x0d\x0a":
            raise CaptureError(f"{name}: a pcapng stream; live input reads classic pcap (tcpdump -U -w -, or "
                               "dumpcap -P / tshark -F pcap)")
        if magic not in formats:
            raise CaptureError(f"{name}: not a pcap stream (starts with {magic!r})")
        endian, self._divisor = formats[magic]
        self._record = struct.Struct(endian + "IIII")
        self.linktype = struct.unpack(endian + "I", header[20:24])[0]
        self._offset = 24

    def _read_exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = os.read(self.fd, n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def batches(self, timeout: float) -> Iterator[FrameBlock | None]:
        poll = select.poll()
        poll.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while not self._stopping:
            try:
                events = poll.poll(timeout * 1000)
            except InterruptedError:
                continue
            if not events:
                yield None
                continue
            block = self._read()
            if block is not None:
                yield block
            if self._eof:
                break
        if self._stopping and not self.problems:  # what the pipe holds was captured: read it (until quiet)
            while not self._eof and poll.poll(timeout * 1000):
                block = self._read()
                if block is not None:
                    yield block
        if self._buffer and not self.problems:
            self.problems.append(Problem("truncated_capture", f"stream ends inside a record ({len(self._buffer)} "
                                         "bytes)", self._received + 1, self._offset, Severity.ERROR))

    def _read(self) -> FrameBlock | None:
        """What the pipe holds now, as a block of whole records (None: no whole record yet); `_eof` once the
        writer has closed it."""
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            self._eof = True
            return None
        self._buffer += chunk
        return self._records()

    def _records(self) -> FrameBlock | None:
        buf = self._buffer
        end = len(buf)
        corrupt_at = None
        unpack = self._record.unpack_from
        offsets, lengths, times = array("q"), array("q"), array("d")
        pos = 0
        divisor = self._divisor
        while pos + 16 <= end:
            sec, frac, caplen, _wire = unpack(buf, pos)
            if caplen > MAX_SANE_CAPLEN:
                frame = self._received + len(offsets) + 1
                self.problems.append(Problem("corrupt_record", f"record claims {caplen} bytes; the stream is corrupt "
                                             "from here on", frame, self._offset + pos, Severity.ERROR))
                self._stopping = True
                corrupt_at = pos
                break
            if pos + 16 + caplen > end:
                break
            offsets.append(pos + 16)
            lengths.append(caplen)
            times.append(sec + frac / divisor)
            pos += 16 + caplen
        data = bytes(buf[:pos])
        if corrupt_at is not None:
            self._offset += len(buf)
            buf.clear()
        else:
            del buf[:pos]
            self._offset += pos
        if not offsets:
            return None
        self._received += len(offsets)
        self._bytes += pos
        self._last_ts = times[-1]
        self._last_wall = time.monotonic()
        return FrameBlock(data, 0, offsets, lengths, times, _Repeat(self.linktype))

    def now(self) -> float:
        """The stream's clock: its last timestamp, moved on by the time waited since it came."""
        if self._last_ts is None:
            return float("-inf")
        return self._last_ts + (time.monotonic() - self._last_wall)
