"""Shared test helpers: where the captures are, and tshark as an oracle."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
SHARED_CAPTURES = ROOT.parent / "shared" / "captures"


def capture_files(folder: Path) -> list[Path]:
    suffixes = (".pcap", ".pcapng", ".gz", ".cap")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(suffixes))


@dataclass
class TsharkSipStat:
    messages: int
    resent: int
    requests: Counter = field(default_factory=Counter)
    responses: Counter = field(default_factory=Counter)


_METHOD_LINE = re.compile(r"^\s+(\S+)\s+:\s+(\d+) Packets", re.MULTILINE)
_STATUS_LINE = re.compile(r"^\s+SIP (\d{3})\b.*:\s+(\d+) Packets", re.MULTILINE)


def parse_sip_stat(text: str) -> TsharkSipStat:
    messages = int(re.search(r"Number of SIP messages: (\d+)", text).group(1))
    resent = int(re.search(r"Number of resent SIP messages: (\d+)", text).group(1))
    codes_part, _, methods_part = text.partition("List of SIP Request methods")
    stat = TsharkSipStat(messages, resent)
    for code, n in _STATUS_LINE.findall(codes_part):
        stat.responses[int(code)] += int(n)
    for method, n in _METHOD_LINE.findall(methods_part):
        stat.requests[method] += int(n)
    return stat


def tshark_sip_stat(path: Path, ports: set[tuple[str, int]] = frozenset()) -> TsharkSipStat:
    """Run `tshark -q -z sip,stat`, decoding the given (transport, port) pairs as SIP."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test installs it)")
    # out-of-order TCP segments are put back in order by sipwatch; tshark does it only when asked
    cmd = ["tshark", "-n", "-q", "-r", str(path), "-o", "tcp.reassemble_out_of_order:TRUE", "-z", "sip,stat"]
    for transport, port in sorted(ports):
        if port not in (5060, 5061):
            cmd += ["-d", f"{transport}.port=={port},sip"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return parse_sip_stat(result.stdout)


@pytest.fixture(scope="session")
def shared_captures() -> Path:
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"{SHARED_CAPTURES} is not present")
    return SHARED_CAPTURES


def settle_capture(capture: Path, timeout: float = 10.0) -> None:
    """Wait until tcpdump has written what the kernel handed it: the file stops growing for half a second."""
    size, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = capture.stat().st_size if capture.exists() else 0
        if now != size:
            size, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since > 0.5:
            return
        time.sleep(0.05)


def start_loopback_capture(capture: Path, bpf: str, log: Path) -> subprocess.Popen:
    """tcpdump recording `bpf` on lo into `capture`, returned once it listens (skips where lo cannot be
    captured). Stop it with SIGINT to its process group, then settle_capture()."""
    with log.open("w") as err:
        tcpdump = subprocess.Popen(
            ["timeout", "120", "tcpdump", "-n", "-i", "lo", "--immediate-mode", "-U", "-w", str(capture), bpf],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while "listening on" not in log.read_text():
        if tcpdump.poll() is not None or time.monotonic() > deadline:
            pytest.skip(f"tcpdump cannot capture on lo here: {log.read_text()}")
        time.sleep(0.02)
    return tcpdump
