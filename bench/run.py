"""`make bench`: sipwatch against tshark on the SIPp load capture, measured in the same run.

Runs are alternated (sipwatch, tshark, sipwatch, tshark...) so that machine noise hits both alike; the
medians and the speed-up (tshark time / sipwatch time) are printed with sipwatch's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOAD = HERE / "data" / "load.pcap"
SIP_PORT = 5190  # the load capture's SIP port (bench/make_load.sh)


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall time in seconds and peak RSS in KiB of one run of `cmd` (output discarded)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed with exit code {code}: {stderr.strip()[:500]}")
    return elapsed, usage.ru_maxrss


def packets(path: Path) -> int:
    out = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split(":")[-1].strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9, help="runs of each tool (alternated; this shared machine is noisy)")
    parser.add_argument("--capture", type=Path, default=LOAD)
    parser.add_argument("--scale", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure peak RSS on 200 MB and 2 GB captures made from the load capture")
    args = parser.parse_args()

    if not args.capture.exists():
        subprocess.run(["bash", str(HERE / "make_load.sh"), str(args.capture)], check=True)
    sipwatch = shutil.which("sipwatch", path=str(ROOT / ".venv" / "bin")) or "sipwatch"
    n = packets(args.capture)
    print(f"load capture: {args.capture} ({n} packets, {args.capture.stat().st_size / 1e6:.1f} MB)")

    tools = {
        "sipwatch analyze": [sipwatch, "analyze", str(args.capture), "--format", "json", "-o", os.devnull],
        "tshark sip,stat": [
            "tshark", "-n", "-q", "-r", str(args.capture), "-d", f"udp.port=={SIP_PORT},sip", "-z", "sip,stat",
        ],
        "tshark sip,stat+rtp,streams": [
            "tshark", "-n", "-q", "-r", str(args.capture), "-d", f"udp.port=={SIP_PORT},sip", "-z", "sip,stat",
            "-z", "rtp,streams",
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in tools}
    rss: list[int] = []
    for i in range(args.runs):
        for name, cmd in tools.items():
            elapsed, peak = timed(cmd)
            times[name].append(elapsed)
            if name.startswith("sipwatch"):
                rss.append(peak)
            print(f"  run {i + 1}: {name:28s} {elapsed:7.2f} s")
    med = {name: statistics.median(values) for name, values in times.items()}
    print()
    for name, value in med.items():
        print(f"median {name:28s} {value:7.2f} s  ({n / value:,.0f} packets/s)")
    ours = med["sipwatch analyze"]
    print(f"speed-up vs tshark -z sip,stat (SIP only):             {med['tshark sip,stat'] / ours:.2f}x")
    print(f"speed-up vs tshark -z sip,stat -z rtp,streams (full):  {med['tshark sip,stat+rtp,streams'] / ours:.2f}x")
    # each alternation's own ratio (its runs are seconds apart, so a slow spell of the machine hits both)
    paired = [t / s for t, s in zip(times["tshark sip,stat+rtp,streams"], times["sipwatch analyze"], strict=True)]
    print(f"  per alternation (full): median {statistics.median(paired):.2f}x, "
          f"range {min(paired):.2f}x-{max(paired):.2f}x over {len(paired)} runs")
    print(f"sipwatch peak RSS: {max(rss) / 1024:.0f} MiB (full analysis: SIP, RTP statistics, findings, JSON)")
    if args.scale:
        scale(args.capture, sipwatch)


def scale(load: Path, sipwatch: str) -> None:
    """Peak RSS on a 200 MB and a 2 GB capture (bench/make_big.py): streaming means the 2 GB peak stays
    near the 200 MB one, bounded by the calls up at once rather than by the file's size."""
    print()
    peaks = {}
    for mb in (200, 2000):
        path = HERE / "data" / f"big{mb}.pcap"
        if not path.exists() or path.stat().st_size < mb * 1e6 * 0.99:
            subprocess.run([sys.executable, str(HERE / "make_big.py"), "--size", str(mb), "--load", str(load),
                            str(path)], check=True)
        elapsed, peak = timed([sipwatch, "analyze", str(path), "--format", "json", "-o", os.devnull])
        peaks[mb] = peak
        n = packets(path)
        print(f"{mb:5d} MB capture: {n:,} packets in {elapsed:.1f} s ({n / elapsed:,.0f} packets/s), "
              f"peak RSS {peak / 1024:.0f} MiB")
    print(f"peak RSS 2 GB / 200 MB: {peaks[2000] / peaks[200]:.2f}x (bounded streaming: at most 1.5x)")


if __name__ == "__main__":
    main()
