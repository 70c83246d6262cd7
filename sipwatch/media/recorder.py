"""A stream's RTP packets kept compactly until its statistics are asked for.

The media hot path only appends: the first 16 bytes of each packet (the fixed header and, for RFC 4733
events, the event word), its arrival time, frame number and length. `RtpStreamStats.from_recording`
computes the statistics from these arrays at once, vectorised for the common clean stream. Packets whose
first byte is not the plain 0x80 (padding, extension or CSRCs present) are kept whole, so nothing is
guessed. 36 bytes a packet: a one-hour G.711 call costs about 6.5 MB until it ends.
"""

from __future__ import annotations

from array import array

import numpy as np


class RtpRecorder:
    __slots__ = ("ssrc", "headers", "arrivals", "frames", "lengths", "odd")

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.headers = bytearray()  # 16 bytes a packet
        self.arrivals = array("d")
        self.frames = array("q")
        self.lengths = array("q")
        self.odd: dict[int, bytes] = {}  # packet index -> whole packet, where the header is not plain

    def add(self, arrival: float, frame: int, packet: bytes) -> None:
        """Record one packet (version 2 and at least 12 bytes: the caller checked)."""
        head = packet[:16]
        if len(head) < 16:
            head = head.ljust(16, b"\0")
        if packet[0] != 0x80:
            self.odd[len(self.arrivals)] = packet
        self.add_plain(head, arrival, frame, len(packet))

    def add_plain(self, head: bytes, arrival: float, frame: int, length: int) -> None:
        """Record a packet with a plain header (first byte 0x80), given its first 16 bytes and its length."""
        self.headers += head
        self.arrivals.append(arrival)
        self.frames.append(frame)
        self.lengths.append(length)

    def extend(self, heads: bytes, arrivals: bytes, frames: bytes, lengths: bytes) -> None:
        """Record many plain packets at once: 16 bytes each, and float64 / int64 arrays as bytes."""
        self.headers += heads
        self.arrivals.frombytes(arrivals)
        self.frames.frombytes(frames)
        self.lengths.frombytes(lengths)

    def in_order(self) -> RtpRecorder:
        """The recording sorted by frame number. Packets arrive here by two roads (the per-frame path and the
        decoder's block lane), so within one block of frames a few may be recorded out of capture order."""
        frames = np.frombuffer(self.frames, dtype=np.int64)
        if len(frames) < 2 or bool(np.all(frames[1:] > frames[:-1])):
            return self
        order = np.argsort(frames, kind="stable")
        ordered = RtpRecorder(self.ssrc)
        heads = np.frombuffer(self.headers, dtype=np.uint8).reshape(-1, 16)
        ordered.headers = bytearray(heads[order].tobytes())
        ordered.arrivals.frombytes(np.frombuffer(self.arrivals, dtype=np.float64)[order].tobytes())
        ordered.frames.frombytes(frames[order].tobytes())
        ordered.lengths.frombytes(np.frombuffer(self.lengths, dtype=np.int64)[order].tobytes())
        if self.odd:
            position = np.empty_like(order)
            position[order] = np.arange(len(order))
            ordered.odd = {int(position[i]): packet for i, packet in self.odd.items()}
        return ordered

    def __len__(self) -> int:
        return len(self.arrivals)
