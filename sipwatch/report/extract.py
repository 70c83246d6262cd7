"""One call's packets out of a capture, into a pcap file tshark and Wireshark open: its SIP messages and its
RTP streams, with their original timestamps and bytes.

The analysis (with `keep_frames`) says which frames belong to the call; a second pass over the capture copies
those frames. RTCP and IP fragments other than the one completing a datagram are not included yet.
"""

from __future__ import annotations

import math
from pathlib import Path
from struct import Struct

from sipwatch.capture.reader import open_capture
from sipwatch.core.calls import Call
from sipwatch.model import UsageError

_FILE_HEADER = Struct("<IHHiIII")
_RECORD = Struct("<IIII")


def call_frames(call: Call) -> set[int]:
    frames = {record.frame for record in call.records}
    for stream in call.streams:
        if stream.frames is not None:
            frames.update(stream.frames)
    return frames


def extract(capture: str, frames: set[int], output: Path) -> int:
    """Copy the given frames of `capture` into a microsecond pcap at `output`; return how many were written."""
    if capture == "-":
        raise UsageError("extract reads the capture twice: give a file, not '-'")
    written = 0
    linktype = None
    source = open_capture(capture)
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
