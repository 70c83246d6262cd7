"""End to end with real impairment: SIPp calls across a veth pair between two network namespaces, real packet
loss (an nftables numgen rule) and real jitter and reordering (a delaying UDP relay), captured by tcpdump and
analyzed by sipwatch. Topology and commands: tests/netlab.py and docs/testing.md ("Impairment lab").

Three scenarios of 3 calls each (SIPp's uac_pcap against a UAS that plays the same g711a.pcap back: 236 PCMA
packets 30 ms apart per direction and call, plus 10 RFC 4733 DTMF packets from the caller):
* baseline: nothing in the way: no loss, mean jitter below 2 ms, nothing reordered;
* loss: 10 % of what A sends to the UAS's media ports dropped at random on the way out of vethA (an nft
  netdev egress rule: the inet output hook would fail SIPp's sendto() with EPERM and stop its player);
* jitter: the UAS's SDP points at a relay in A that forwards the caller's media to the UAS after a uniform
  0-40 ms delay, which also reorders (two packets 30 ms apart swap when their delays differ by > 30 ms).
Needs root (namespaces, nft, tcpdump); skipped, with the reason, where namespaces cannot be created.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import netlab
import pytest
from test_rtpstats import assert_same, parse_rtp_streams

from sipwatch.core.result import Analysis
from sipwatch.pipeline import analyze_file

CALLS = 3
UAS_SIP_PORT, UAC_SIP_PORT = 5060, 5061
UAS_MEDIA, UAC_MEDIA = 6000, 7000
PCMA = 8
PCMA_PACKETS = 236  # g711a.pcap
DTMF_PACKETS = 10  # dtmf_2833_1.pcap, played by uac_pcap after the audio
LOSS_PERCENT = 10
MAX_DELAY_MS = 40.0
BASELINE_JITTER_MS = 2.0  # mean jitter of a stream nothing impaired (tshark's Mean Jitter column)
JITTERED_MS = 5.0  # mean and max jitter of a relayed stream exceed this (they settle near 12 and 17 ms)
FALSE_ALARM = 1e-6  # accepted chance that a correct run fails a binomial bound (each tail: half of it)
CAPTURE_PROBLEMS = frozenset((
    "truncated_capture", "corrupt_record", "corrupt_block", "unsupported_linktype", "incomplete_fragments",
    "overlapping_fragment", "tcp_gap", "internal_error",
))
SIPP_TIMEOUT = 30  # sipp -timeout: the whole run, each side; `timeout` outside gives 10 s more


@dataclass
class Run:
    name: str
    capture: Path
    analysis: Analysis
    captured: int
    kernel_drops: int
    seconds: float
    nft_dropped: int | None = None
    relay: dict = field(default_factory=dict)

    def streams(self):
        for call in self.analysis.calls:
            yield from call.streams

    def pcma(self, direction: str) -> list:
        return [s for s in self.streams() if s.direction == direction and PCMA in s.stats.payload_types]

    def figures(self) -> dict:
        out = {"scenario": self.name, "seconds": round(self.seconds, 1), "nft_dropped": self.nft_dropped,
               "relay": self.relay}
        for direction in ("caller->callee", "callee->caller"):
            out[direction] = [
                {"src": f"{s.src}:{s.sport}", "dst": f"{s.dst}:{s.dport}", "packets": s.stats.packets,
                 "lost": s.stats.lost, "lost_pct": round(s.stats.lost_pct, 2),
                 "mean_jitter_ms": round(s.stats.mean_jitter_ms or 0.0, 3),
                 "max_jitter_ms": round(s.stats.max_jitter_ms or 0.0, 3),
                 "max_delta_ms": round(s.stats.max_delta_ms, 3), "out_of_order": s.stats.out_of_order}
                for s in self.pcma(direction)
            ]
        return out


def binomial_bounds(n: int, p: float, alpha: float = FALSE_ALARM) -> tuple[int, int]:
    """[lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2 for X ~ Binomial(n, p), exactly."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, tail = 0, 0.0
    while tail + pmf[lo] <= alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail = n, 0.0
    while tail + pmf[hi] <= alpha / 2:
        tail += pmf[hi]
        hi -= 1
    return lo, hi


# --- running a scenario ----------------------------------------------------------------------------------------


def _wait_listening(ns: netlab.Namespace, port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while not ns.run(["ss", "-Hunl", f"sport = :{port}"]).stdout.strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"SIPp UAS is not listening on {port}: {log.read_text()[-2000:]}")
        time.sleep(0.02)


def run_scenario(name: str, folder: Path) -> Run:
    if os.geteuid() != 0:
        pytest.skip("the impairment lab needs root to create network namespaces")
    missing = netlab.missing_tools()
    if missing:
        pytest.skip(f"the impairment lab needs {', '.join(missing)} (make test installs them)")
    began = time.monotonic()
    relayed = name == "jitter"
    work = netlab.sipp_workdir(folder, netlab.ADDR_A if relayed else "[media_ip]")
    uas_ports = netlab.media_ports(UAS_MEDIA, CALLS)
    pcap = folder / f"{name}.pcap"
    nft_dropped = None
    relay_summary: dict = {}
    try:
        with netlab.Lab(name) as lab:
            if name == "loss":
                lab.add_loss(netlab.ADDR_B, uas_ports, LOSS_PERCENT)
            relay = None
            if relayed:
                relay = netlab.Relay(lab.a, netlab.ADDR_A, netlab.ADDR_B, uas_ports, MAX_DELAY_MS, seed=os.getpid())
                relay.start()
            capture = netlab.Capture(lab.b, pcap)
            capture.start()
            uas_log = folder / "uas.log"
            with uas_log.open("w") as log:
                uas = lab.b.start(
                    ["sipp", "-sf", "uas.xml", "-i", netlab.ADDR_B, "-p", str(UAS_SIP_PORT), "-mp", str(UAS_MEDIA),
                     "-m", str(CALLS), "-timeout", f"{SIPP_TIMEOUT}s", "-nostdin", "-trace_err"],
                    SIPP_TIMEOUT + 10, cwd=work, stdout=log, stderr=subprocess.STDOUT)
            _wait_listening(lab.b, UAS_SIP_PORT, uas, uas_log)
            uac = lab.a.run(
                ["sipp", "-sn", "uac_pcap", f"{netlab.ADDR_B}:{UAS_SIP_PORT}", "-i", netlab.ADDR_A,
                 "-p", str(UAC_SIP_PORT), "-mp", str(UAC_MEDIA), "-m", str(CALLS), "-r", str(CALLS),
                 "-l", str(CALLS), "-timeout", f"{SIPP_TIMEOUT}s", "-nostdin", "-trace_err"],
                timeout=SIPP_TIMEOUT + 10, check=False, cwd=work)
            (folder / "uac.log").write_text(uac.stdout + uac.stderr)
            assert uac.returncode == 0, f"SIPp UAC failed ({uac.returncode}): {uac.stdout[-3000:]}{uac.stderr}"
            assert uas.wait(15) == 0, f"SIPp UAS failed: {uas_log.read_text()[-3000:]}"
            if relay is not None:
                relay_summary = relay.stop()
            capture.stop()
            if name == "loss":
                nft_dropped = lab.loss_counter()
    except netlab.LabUnavailable as exc:
        pytest.skip(f"network namespaces are not available here: {exc}")
    run = Run(name, pcap, analyze_file(str(pcap)), capture.captured, capture.dropped, time.monotonic() - began,
              nft_dropped, relay_summary)
    (folder / "figures.json").write_text(json.dumps(run.figures(), indent=1))
    print(json.dumps(run.figures()))
    return run


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory) -> Run:
    return run_scenario("baseline", tmp_path_factory.mktemp("baseline"))


@pytest.fixture(scope="module")
def loss_run(tmp_path_factory) -> Run:
    return run_scenario("loss", tmp_path_factory.mktemp("loss"))


@pytest.fixture(scope="module")
def jitter_run(tmp_path_factory) -> Run:
    return run_scenario("jitter", tmp_path_factory.mktemp("jitter"))


SCENARIOS = ("baseline", "loss", "jitter")


@pytest.fixture(params=SCENARIOS)
def run(request) -> Run:
    return request.getfixturevalue(f"{request.param}_run")


# --- every scenario --------------------------------------------------------------------------------------------


def test_every_call_answered_with_media_both_ways(run: Run) -> None:
    calls = run.analysis.calls
    assert len(calls) == CALLS, [c.call_id for c in calls]
    for call in calls:
        assert call.outcome == "answered", (call.call_id, call.outcome)
        directions = sorted(s.direction for s in call.streams if PCMA in s.stats.payload_types)
        assert directions == ["callee->caller", "caller->callee"], (call.call_id, directions)
    assert not run.analysis.unattached_streams


def test_capture_is_complete(run: Run) -> None:
    """Loss must show up in the streams, not as capture damage: tcpdump dropped nothing, sipwatch read every
    frame tcpdump wrote and logged no capture problem."""
    assert run.kernel_drops == 0
    assert run.analysis.capture.packets == run.captured
    assert not run.analysis.damaged
    assert not CAPTURE_PROBLEMS & set(run.analysis.problems.counts), run.analysis.problems.counts
    assert not [p for p in run.analysis.problems.kept if p.severity == "error"], run.analysis.problems.kept


def test_streams_match_tshark(run: Run) -> None:
    """Every RTP stream tshark finds, sipwatch finds with the same packets and lost (and the same deltas,
    jitter and Problems? flag), and no other."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make test installs it)")
    result = subprocess.run(
        ["tshark", "-n", "-q", "-r", str(run.capture), "-d", f"udp.port=={UAS_SIP_PORT},sip",
         "-d", f"udp.port=={UAC_SIP_PORT},sip", "-z", "rtp,streams"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    theirs = {s.key: s for s in parse_rtp_streams(result.stdout)}
    ours = {(s.src, s.sport, s.dst, s.dport, s.ssrc): s for s in run.streams()}
    assert set(ours) == set(theirs)
    # 3 calls x 2 directions of PCMA, and the DTMF uac_pcap plays after the audio
    assert len(theirs) == CALLS * 3
    for key, stream in theirs.items():
        assert_same(ours[key].stats, stream, f"{run.name} {key}")


# --- each scenario ---------------------------------------------------------------------------------------------


def test_baseline_has_no_loss_and_little_jitter(baseline_run: Run) -> None:
    """Straight across the veth, the jitter is the sample file's own timing as SIPp replays it: mean about
    0.36 ms, max 0.8-1.3 ms on an idle machine. The bound is on the mean: with every CPU busy a single
    scheduling stall of SIPp can push one stream's max to 7 ms, but hardly moves its mean."""
    for direction in ("caller->callee", "callee->caller"):
        streams = baseline_run.pcma(direction)
        assert len(streams) == CALLS
        for s in streams:
            assert (s.stats.packets, s.stats.lost, s.stats.out_of_order) == (PCMA_PACKETS, 0, 0), s.stats.to_dict()
            assert s.stats.mean_jitter_ms < BASELINE_JITTER_MS, s.stats.to_dict()


def test_loss_is_seen_on_the_impaired_direction_only(loss_run: Run) -> None:
    """nft drops each packet A sends to the UAS's media ports with probability 10 %, independently, so the
    loss over the 3 x 236 PCMA packets is Binomial(708, 0.1): mean 70.8, standard deviation 8.0. The bounds
    are the exact binomial quantiles leaving 1e-6 in the tails (35-113 packets, 4.9 %-16.0 %): a correct sipwatch
    fails them once in a million runs, a sipwatch counting loss wrong (or not at all) fails every time."""
    forward = loss_run.pcma("caller->callee")
    assert len(forward) == CALLS
    sent = CALLS * PCMA_PACKETS
    lost = sum(s.stats.lost for s in forward)
    lo, hi = binomial_bounds(sent, LOSS_PERCENT / 100)
    assert lo <= lost <= hi, (lost, (lo, hi), loss_run.figures())
    for s in forward:
        lo1, hi1 = binomial_bounds(PCMA_PACKETS, LOSS_PERCENT / 100)
        assert lo1 <= s.stats.lost <= hi1, s.stats.to_dict()
        assert s.stats.lost == s.stats.missing  # random single losses, no reordering, nothing duplicated
        assert s.stats.out_of_order == 0
    # what nft dropped plus what was captured is all the caller sent (audio and DTMF): the veth loses nothing
    to_uas = [s for s in loss_run.streams() if s.direction == "caller->callee"]
    assert sum(s.stats.packets for s in to_uas) + loss_run.nft_dropped == CALLS * (PCMA_PACKETS + DTMF_PACKETS)
    for s in loss_run.pcma("callee->caller"):
        assert (s.stats.packets, s.stats.lost) == (PCMA_PACKETS, 0), s.stats.to_dict()


def test_jitter_and_reordering_on_the_relayed_direction(jitter_run: Run) -> None:
    """The relay delays each packet by U(0, 40 ms): |D| between neighbours averages 13.3 ms, so RFC 3550
    jitter settles near 13 ms (the baseline stays under 1 ms), and about 3 % of packets overtake their
    predecessor (delays differing by more than the 30 ms interval)."""
    relay = jitter_run.relay
    assert relay["dropped_at_stop"] == 0 and relay["forwarded"] == relay["received"], relay
    forward = jitter_run.pcma("caller->callee")
    assert len(forward) == CALLS
    for s in forward:
        assert s.stats.packets == PCMA_PACKETS and s.stats.missing == 0, s.stats.to_dict()
        assert s.stats.max_jitter_ms > JITTERED_MS and s.stats.mean_jitter_ms > JITTERED_MS, s.stats.to_dict()
    # every packet the relay sent behind a higher sequence number is one sipwatch counts out of order
    to_uas = [s for s in jitter_run.streams() if s.direction == "caller->callee"]
    assert sum(s.stats.out_of_order for s in to_uas) == relay["reordered"] > 0, relay
    for s in jitter_run.pcma("callee->caller"):  # not relayed
        assert (s.stats.packets, s.stats.lost, s.stats.out_of_order) == (PCMA_PACKETS, 0, 0), s.stats.to_dict()
        assert s.stats.mean_jitter_ms < BASELINE_JITTER_MS, s.stats.to_dict()


def test_lab_left_nothing_behind(baseline_run: Run, loss_run: Run, jitter_run: Run) -> None:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert f"-{os.getpid()}-" not in names, names
