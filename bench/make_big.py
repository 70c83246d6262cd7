"""Makes a large capture (hundreds of MB to GBs) from the SIPp load capture, for the scale benchmark.

The load capture (bench/make_load.sh: ~1,000 SIPp calls with two-way RTP, recorded by tcpdump) is repeated
back to back, each copy shifted in time to start after the previous one, with its Call-IDs and SSRCs made
its own (the SIPp process id in Call-IDs and branches, and the top byte of the SSRC, carry the copy's number), so every
copy is new calls and new streams, as a long capture of a busy line would be. Lengths are kept, so no
checksum or length field changes. Writing stops once the file reaches the asked size: the last copy is cut
mid-way, as real captures are.

    python bench/make_big.py --size 2000 bench/data/big2g.pcap
"""

from __future__ import annotations

import argparse
import re
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIP_PORTS = (5190, 5191)  # bench/make_load.sh
RECORD = struct.Struct("<IIII")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    parser.add_argument("--size", type=float, required=True, help="size to reach, in MB")
    parser.add_argument("--load", type=Path, default=HERE / "data" / "load.pcap")
    parser.add_argument("--gap", type=float, default=10.0, help="seconds from one copy's end to the next's start")
    parser.add_argument("--sip-ports", default="5190,5191", help="ports of the SIP to rewrite")
    args = parser.parse_args()
    ports = tuple(int(p) for p in args.sip_ports.split(","))
    write_big(args.load, args.output, int(args.size * 1e6), args.gap, ports)


def write_big(load: Path, output: Path, size: int, gap: float = 10.0, sip_ports: tuple = SIP_PORTS) -> int:
    """Write `output`, up to `size` bytes of whole records; returns the packets written."""
    raw = load.read_bytes()
    header, body = raw[:24], raw[24:]
    if header[:4] != b"\xd4\xc3\xb2\xa1":
        sys.exit(f"{load}: expected a little-endian microsecond pcap (as tcpdump writes it)")
    linktype = struct.unpack_from("<I", header, 20)[0]
    l2 = {1: 14, 113: 16, 276: 20}.get(linktype)
    if l2 is None:
        sys.exit(f"{load}: link type {linktype} not handled here")
    pid = re.search(rb"Call-ID: \d+-(\d+)@", body)
    if pid is None:
        sys.exit(f"{load}: no SIPp Call-ID found")
    records = _records(body)
    first, last = records[0][0] + records[0][1] / 1e6, records[-1][0] + records[-1][1] / 1e6
    span = last - first + gap  # seconds from one copy's start to the next's
    written = 0
    with output.open("wb") as out:
        out.write(header)
        total = len(header)
        copy = 0
        while total < size:
            token_in = b"-" + pid[1]  # in Call-IDs (N-PID@host) and Via branches (z9hG4bK-PID-N-0)
            token_out = b"-" + str(copy % 10 ** len(pid[1])).rjust(len(pid[1]), "9").encode()
            for sec, usec, start, length in records:
                if total + 16 + length > size:
                    return written
                frame = bytearray(body[start : start + length])
                _rewrite(frame, l2, copy, token_in, token_out, sip_ports)
                micros = sec * 1_000_000 + usec + round(copy * span * 1e6)
                out.write(RECORD.pack(micros // 1_000_000, micros % 1_000_000, length, length))
                out.write(frame)
                total += 16 + length
                written += 1
            copy += 1
    return written


def _records(body: bytes) -> list[tuple[int, int, int, int]]:
    out = []
    pos = 0
    while pos + 16 <= len(body):
        sec, usec, incl, _ = RECORD.unpack_from(body, pos)
        out.append((sec, usec, pos + 16, incl))
        pos += 16 + incl
    return out


def _rewrite(frame: bytearray, l2: int, copy: int, token_in: bytes, token_out: bytes, sip_ports: tuple) -> None:
    if copy == 0 or len(frame) < l2 + 28 or frame[l2] >> 4 != 4 or frame[l2 + 9] != 17:
        return
    udp = l2 + (frame[l2] & 0x0F) * 4
    sport, dport = struct.unpack_from("!HH", frame, udp)
    payload = udp + 8
    if sport in sip_ports or dport in sip_ports:
        frame[payload:] = bytes(frame[payload:]).replace(token_in, token_out)
    elif len(frame) >= payload + 12 and frame[payload] >> 6 == 2:
        frame[payload + 8] ^= copy & 0xFF  # the SSRC's top byte: a new stream per copy


if __name__ == "__main__":
    main()
