"""A two-namespace network lab for end-to-end tests with real impairment (tests/test_impairment.py).

    namespace A (`swA-<pid>-<tag>`)                 namespace B (`swB-<pid>-<tag>`)
    SIPp UAC, optional nft loss rule,  <-- veth -->  SIPp UAS, tcpdump on vethB
    optional jitter relay              198.51.100.1/24   198.51.100.2/24

Nothing here touches the host's interfaces, routes or firewall: both ends of the veth pair live in the lab's
own namespaces, which have no default route and no other interface than `lo`, so no packet can leave them.
Every command runs under `timeout`, every process started is ended by its own id, and `Lab.close()` deletes
both namespaces (the veth pair goes with them).

Run as a script, this module is the jitter relay (`python netlab.py relay ...`), started inside a namespace
with `ip netns exec`; see `relay_main`.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SIPP_PCAPS = Path("/usr/share/sip-tester")  # Debian sip-tester's RTP samples (g711a.pcap, DTMF)
TOOLS = ("ip", "ss", "nft", "sipp", "tcpdump", "timeout")

ADDR_A = "198.51.100.1"  # TEST-NET-2, only ever configured inside the lab's namespaces
ADDR_B = "198.51.100.2"
PREFIX = 24


class LabUnavailable(Exception):
    """The namespaces cannot be created here (not root, no CAP_SYS_ADMIN, no `ip netns`)."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(cmd: list[str], timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _end(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait: float = 5.0) -> None:
    """End one process we started (and its own process group, which it leads), by id."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(wait)


@dataclass
class Namespace:
    name: str
    address: str
    veth: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    def argv(self, cmd: list[str], timeout: float) -> list[str]:
        return ["ip", "netns", "exec", self.name, "timeout", "-k", "2", str(timeout), *cmd]

    def run(self, cmd: list[str], timeout: float = 10.0, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a command in the namespace and wait for it (bounded by `timeout` inside and out)."""
        result = subprocess.run(self.argv(cmd, timeout), capture_output=True, text=True, timeout=timeout + 5, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"[{self.name}] {' '.join(cmd)} failed ({result.returncode}): "
                               f"{result.stderr.strip()[-2000:]}")
        return result

    def start(self, cmd: list[str], timeout: float, **kwargs) -> subprocess.Popen:
        """Start a command in the namespace, in a process group of its own; `Lab.close()` ends it if still up."""
        proc = subprocess.Popen(self.argv(cmd, timeout), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def nft(self, *rules: str) -> None:
        for rule in rules:
            self.run(["nft", rule])


class Lab:
    """Two fresh namespaces joined by a veth pair; use as a context manager (always torn down)."""

    def __init__(self, tag: str) -> None:
        pid = os.getpid()
        self.a = Namespace(f"swA-{pid}-{tag}", ADDR_A, "vethA")
        self.b = Namespace(f"swB-{pid}-{tag}", ADDR_B, "vethB")
        self._created: list[str] = []

    def __enter__(self) -> Lab:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        for ns in (self.a, self.b):
            result = _run(["ip", "netns", "add", ns.name], check=False)
            if result.returncode != 0:
                raise LabUnavailable(f"cannot create network namespace {ns.name}: {result.stderr.strip()}")
            self._created.append(ns.name)
        # created inside A with its peer moved straight into B: never an interface in the host's namespace
        _run(["ip", "-n", self.a.name, "link", "add", self.a.veth, "type", "veth",
              "peer", "name", self.b.veth, "netns", self.b.name])
        for ns in (self.a, self.b):
            # no IPv6 on the veth (no router solicitations or MLD in the capture), IPv4 only, no default route
            ns.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{ns.veth}.disable_ipv6=1"])
            _run(["ip", "-n", ns.name, "addr", "add", f"{ns.address}/{PREFIX}", "dev", ns.veth])
            _run(["ip", "-n", ns.name, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns.name, "link", "set", ns.veth, "up"])
            # SIPp plays media to the other side's 2nd and 3rd call ports, which nobody binds: keep the
            # kernel's port-unreachable replies (rate-limited, so a random subset) out of the capture
            ns.nft("add table inet lab",
                   "add chain inet lab out { type filter hook output priority 0; }",
                   "add rule inet lab out icmp type destination-unreachable drop")

    def add_loss(self, dst: str, ports: list[int], percent: int) -> str:
        """Drop `percent` % of the UDP packets A sends to `dst` on `ports`, at random (nft numgen), on their way
        out of vethA.

        The drop is in the netdev egress hook, not in the inet output hook: a packet dropped by the output hook
        fails the sender's sendto() with EPERM, and SIPp's pcap player gives up the whole stream on the first
        error; past the egress hook the kernel reports nothing to a UDP (or raw) sender, as on a real link.
        """
        port_set = ", ".join(str(p) for p in ports)
        rule = (f"add rule netdev imp out ip daddr {dst} udp dport {{ {port_set} }} "
                f"numgen random mod 100 < {percent} counter drop")
        self.a.nft("add table netdev imp",
                   f'add chain netdev imp out {{ type filter hook egress device "{self.a.veth}" priority 0; }}',
                   rule)
        return rule

    def loss_counter(self) -> int:
        """Packets the loss rule dropped (its nft counter)."""
        listing = self.a.run(["nft", "list", "chain", "netdev", "imp", "out"]).stdout
        for line in listing.splitlines():
            if "numgen" in line and "counter packets" in line:
                return int(line.split("counter packets")[1].split()[0])
        raise AssertionError(f"no counter in {listing}")

    def close(self) -> None:
        for ns in (self.a, self.b):
            for proc in ns.procs:
                _end(proc)
        for name in reversed(self._created):
            _run(["ip", "netns", "del", name], check=False)
        self._created.clear()


# --- capture -------------------------------------------------------------------------------------------------


class Capture:
    """tcpdump on one interface of a namespace, stopped with SIGINT (so the file is complete)."""

    def __init__(self, ns: Namespace, path: Path, timeout: float = 120.0) -> None:
        self.ns = ns
        self.path = path
        self.log = path.with_suffix(".tcpdump.log")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.captured = self.dropped = -1

    def start(self) -> None:
        with self.log.open("w") as log:
            self.proc = self.ns.start(["tcpdump", "-n", "-i", self.ns.veth, "-U", "-w", str(self.path)],
                                      self.timeout, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while "listening on" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tcpdump did not start: {self.log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        assert self.proc is not None
        _end(self.proc, signal.SIGINT, wait=10)
        text = self.log.read_text()
        for line in text.splitlines():
            words = line.split()
            if line.endswith("packets captured"):
                self.captured = int(words[0])
            elif line.endswith("dropped by kernel"):
                self.dropped = int(words[0])
        if self.captured < 0 or self.dropped < 0:
            raise RuntimeError(f"tcpdump did not report its counts: {text}")


# --- SIPp ----------------------------------------------------------------------------------------------------

# The stock uas scenario answers PCMU and sends no media of its own (-rtp_echo would copy the caller's losses
# into the reply): this one answers PCMA and plays g711a.pcap back, so each direction is impaired (or not) on
# its own. {address} is the SDP c= address: [media_ip] normally, the relay's when media goes through it.
UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="sipwatch netlab UAS playing its own RTP">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[

      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SWlab[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SWlab[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP4 {address}
      s=-
      c=IN IP4 {address}
      t=0 0
      m=audio [auto_media_port] RTP/AVP 8
      a=rtpmap:8 PCMA/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <nop>
    <action>
      <exec play_pcap_audio="pcap/g711a.pcap"/>
    </action>
  </nop>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="300"/>
</scenario>
"""


def media_ports(base: int, calls: int) -> list[int]:
    """SIPp's [auto_media_port] of calls 1..n: base + 4 x (call number - 1)."""
    return [base + 4 * i for i in range(calls)]


def sipp_workdir(folder: Path, sdp_address: str = "[media_ip]") -> Path:
    """A working directory for SIPp: `pcap -> /usr/share/sip-tester` (uac_pcap plays pcap/g711a.pcap)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "pcap"
    if not link.exists():
        link.symlink_to(SIPP_PCAPS)
    (folder / "uas.xml").write_text(UAS_SCENARIO.replace("{address}", sdp_address))
    return folder


# --- the jitter relay ------------------------------------------------------------------------------------------


class Relay:
    """`relay_main` in a namespace: forwards UDP from `listen`:port to `to`:port with a random delay each."""

    def __init__(self, ns: Namespace, listen: str, to: str, ports: list[int], max_delay_ms: float, seed: int,
                 duration: float = 40.0, max_packets: int = 20000, idle: float = 3.0) -> None:
        self.ns = ns
        self.cmd = [sys.executable, str(Path(__file__).resolve()), "relay", "--listen", listen, "--to", to,
                    "--ports", ",".join(map(str, ports)), "--max-delay-ms", str(max_delay_ms), "--seed", str(seed),
                    "--duration", str(duration), "--max-packets", str(max_packets), "--idle", str(idle)]
        self.timeout = duration + 10
        self.proc: subprocess.Popen | None = None
        self.summary: dict = {}

    def start(self) -> None:
        self.proc = self.ns.start(self.cmd, self.timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("ready"):
            _end(self.proc)
            raise RuntimeError(f"relay did not start: {line}{self.proc.stderr.read()}")

    def stop(self) -> dict:
        """Ask it to stop now (it would stop by itself after `idle` seconds without traffic) and read its summary."""
        assert self.proc is not None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
        out, err = self.proc.communicate(timeout=15)
        lines = out.strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"relay failed ({self.proc.returncode}): {err}")
        self.summary = json.loads(lines[-1])
        return self.summary


_RTP_SEQ_SSRC = struct.Struct("!2xH4xI")


def relay_main(argv: list[str]) -> int:
    """Forward every datagram received on listen:port to to:port (from the same socket) after a delay drawn
    uniformly from [0, max-delay] ms: a delay spread wider than the packet interval also reorders.

    Bounded: it stops after --duration seconds, after --max-packets datagrams, after --idle seconds without
    traffic once some came, or on SIGINT/SIGTERM; datagrams still held then are dropped (and counted).
    Prints `ready` once bound, and a JSON summary at the end.
    """
    parser = argparse.ArgumentParser(prog="netlab.py relay")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--max-delay-ms", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=40.0)
    parser.add_argument("--max-packets", type=int, default=20000)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args(argv)

    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    rng = random.Random(args.seed)
    socks: dict[int, tuple[socket.socket, int]] = {}
    for port in (int(p) for p in args.ports.split(",")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((args.listen, port))
        sock.setblocking(False)
        socks[sock.fileno()] = (sock, port)
    by_port = {port: sock for sock, port in socks.values()}
    print("ready", flush=True)

    start = time.monotonic()
    deadline = start + args.duration
    held: list[tuple[float, int, int, bytes]] = []  # (due, arrival order, port, datagram)
    received = forwarded = reordered = 0
    delays: list[float] = []
    last_seq: dict[tuple[int, int], int] = {}
    last_rx: float | None = None
    while not stopping:
        now = time.monotonic()
        if now >= deadline or received >= args.max_packets:
            break
        if last_rx is not None and not held and now - last_rx > args.idle:
            break
        while held and held[0][0] <= now:
            due, _, port, data = heapq.heappop(held)
            by_port[port].sendto(data, (args.to, port))
            forwarded += 1
            if len(data) >= 12:
                seq, ssrc = _RTP_SEQ_SSRC.unpack_from(data)
                key = (port, ssrc)
                if key in last_seq and 0 < (last_seq[key] - seq) & 0xFFFF < 0x8000:
                    reordered += 1  # sent after a packet of the stream with a higher sequence number
                else:
                    last_seq[key] = seq
        wait = min(held[0][0] - now if held else 0.05, deadline - now, 0.05)
        try:
            readable, _, _ = select.select(list(socks), [], [], max(0.0, wait))
        except InterruptedError:
            continue
        for fd in readable:
            sock, port = socks[fd]
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    break
                arrival = time.monotonic()
                delay = rng.uniform(0.0, args.max_delay_ms) / 1000.0
                delays.append(delay * 1000.0)
                heapq.heappush(held, (arrival + delay, received, port, data))
                received += 1
                last_rx = arrival
    summary = {
        "received": received, "forwarded": forwarded, "dropped_at_stop": len(held), "reordered": reordered,
        "mean_delay_ms": sum(delays) / len(delays) if delays else 0.0, "max_delay_ms": max(delays, default=0.0),
        "seconds": round(time.monotonic() - start, 3),
    }
    print(json.dumps(summary), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["relay"]:
        return relay_main(argv[1:])
    print("usage: netlab.py relay --listen ADDR --to ADDR --ports P1,P2 [...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
