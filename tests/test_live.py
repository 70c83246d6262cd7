"""`sipwatch live` end to end on real traffic: SIPp calls across a veth pair between two network namespaces
(tests/netlab.py), captured by `sipwatch live -i vethB` inside namespace B, stopped with SIGINT.

* a mix of calls at once: answered (RTP both ways), busy (486), unavailable (503), cancelled while ringing, and
  one-way audio (the callee sends no RTP): every call and its outcome in the final report, the events as JSON
  lines (one-way audio detected while the call was up), the pcap ring buffer readable by tshark, and `sipwatch
  extract` following a call across the rotated files;
* loss made by an nft `numgen random` rule on the way out of vethA shows up as stream loss, not capture drops;
* `tcpdump -U -w - | sipwatch live -`.
Needs root (namespaces, AF_PACKET); skipped, with the reason, where namespaces cannot be created.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import netlab
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "captures" / "scenarios"
SIPWATCH = [sys.executable, "-m", "sipwatch.cli"]
TIMEOUT = 90

# name -> (UAS SIP port, UAS arguments, UAC arguments, expected outcome, expected final status)
KEYS = ["-key", "sig_host", netlab.ADDR_A, "-key", "sdp_ip", netlab.ADDR_A]
CALLS = {
    "answered": (5062, ["-sf", str(SCENARIOS / "uas_answer.xml"), "-rtp_echo"],
                 ["-sf", str(SCENARIOS / "uac_call.xml"), *KEYS, "-set", "rtp", "1", "-d", "3000"], "answered", 200),
    "busy": (5063, ["-sf", str(SCENARIOS / "uas_reply.xml"), "-set", "code", "486"],
             ["-sf", str(SCENARIOS / "uac_fail.xml")], "busy", 486),
    "unavailable": (5064, ["-sf", str(SCENARIOS / "uas_reply.xml"), "-set", "code", "503"],
                    ["-sf", str(SCENARIOS / "uac_fail.xml")], "capacity", 503),
    "cancelled": (5065, ["-sf", str(SCENARIOS / "uas_cancel.xml")],
                  ["-sf", str(SCENARIOS / "uac_cancel.xml"), "-d", "1000"], "cancelled", 487),
    "one_way": (5066, ["-sf", str(SCENARIOS / "uas_answer.xml")],
                ["-sf", str(SCENARIOS / "uac_call.xml"), *KEYS, "-set", "rtp", "1", "-d", "4000"], "answered", 200),
}


def _need_lab() -> None:
    if os.geteuid() != 0:
        pytest.skip("the live tests need root to create network namespaces and capture")
    missing = netlab.missing_tools() + [t for t in ("tshark",) if shutil.which(t) is None]
    if missing:
        pytest.skip(f"the live tests need {', '.join(missing)} (make test installs them)")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _start_live(ns: netlab.Namespace, args: list[str], log: Path) -> subprocess.Popen:
    with log.open("w") as err:
        proc = ns.start([*SIPWATCH, "live", *args], TIMEOUT, stdout=subprocess.DEVNULL, stderr=err, env=_env(),
                        cwd=ROOT)
    return proc


def _wait_started(events: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while not (events.exists() and '"started"' in events.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sipwatch live did not start ({proc.poll()}): {log.read_text()[-3000:]}")
        time.sleep(0.05)


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C to the command a Namespace started, not to its `timeout -k 2` wrapper: the wrapper would pass the
    signal on and SIGKILL the command 2 s later, while it writes its final report."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGINT)


def _stop(proc: subprocess.Popen, log: Path) -> str:
    interrupt(proc)
    code = proc.wait(60)
    text = log.read_text()
    assert code == 0, f"sipwatch live exited {code}: {text[-3000:]}"
    return text


def _run_calls(lab: netlab.Lab, work: Path, names: list[str]) -> None:
    """Start a UAS per call in B, then every UAC at once in A; wait for all of them."""
    uas_procs = []
    for n, name in enumerate(names):
        port, uas_args, _, _, _ = CALLS[name]
        log = (work / f"{name}.uas.log").open("w")
        uas_procs.append((name, lab.b.start(
            ["sipp", *uas_args, "-i", netlab.ADDR_B, "-p", str(port), "-mi", netlab.ADDR_B,
             "-mp", str(16000 + 10 * n), "-m", "1", "-timeout", "40s", "-nostdin", "-trace_err"],
            50, cwd=work, stdout=log, stderr=subprocess.STDOUT)))
    for name, proc in uas_procs:
        _wait_udp(lab.b, CALLS[name][0], proc)
    uac_procs = []
    for n, name in enumerate(names):
        port, _, uac_args, _, _ = CALLS[name]
        log = (work / f"{name}.uac.log").open("w")
        uac_procs.append((name, lab.a.start(
            ["sipp", *uac_args, f"{netlab.ADDR_B}:{port}", "-i", netlab.ADDR_A, "-p", str(port + 100),
             "-mi", netlab.ADDR_A, "-mp", str(17000 + 10 * n), "-m", "1", "-timeout", "40s", "-timeout_error",
             "-nostdin", "-trace_err"], 50, cwd=work, stdout=log, stderr=subprocess.STDOUT)))
    for name, proc in uac_procs + uas_procs:
        assert proc.wait(60) == 0, f"SIPp {name} failed: {(work / f'{name}.uac.log').read_text()[-2000:]}"


def _wait_udp(ns: netlab.Namespace, port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 10
    while not ns.run(["ss", "-Hunl", f"sport = :{port}"]).stdout.strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"SIPp UAS is not listening on {port}")
        time.sleep(0.02)


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _tshark_count(path: Path, display_filter: str = "") -> int:
    cmd = ["tshark", "-n", "-r", str(path)]
    if display_filter:
        cmd += ["-Y", display_filter]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"tshark cannot read {path}: {result.stderr}"
    return len(result.stdout.splitlines())


def test_live_mix_of_calls_sigint_report_events_and_ring(tmp_path: Path) -> None:
    _need_lab()
    work = netlab.sipp_workdir(tmp_path / "sipp")
    out, ring = tmp_path / "out", tmp_path / "ring"
    events = tmp_path / "events.jsonl"
    log = tmp_path / "live.log"
    names = list(CALLS)
    with netlab.Lab("live") as lab:
        proc = _start_live(lab.b, ["-i", lab.b.veth, "--out", str(out), "--events", str(events),
                                   "--write", str(ring), "--rotate-size", "0.05", "--rotate-count", "1000",
                                   "--no-dashboard"], log)
        _wait_started(events, proc, log)
        _run_calls(lab, work, names)
        stderr = _stop(proc, log)

    # the final report: every call, each with its outcome
    assert f"wrote {out / 'report.json'}" in stderr
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("# Post-mortem")
    by_user = {}
    for call in report["calls"]:
        by_user.setdefault(call["callee"].rsplit(":", 1)[1], []).append(call)
    for name in names:
        port, _, _, outcome, status = CALLS[name]
        calls = by_user.get(str(port), [])
        assert len(calls) == 1, f"{name}: {calls}"
        assert calls[0]["outcome"] == outcome, (name, calls[0])
        assert calls[0]["final_status"] == status, (name, calls[0])
    assert len(report["calls"]) == len(names)
    assert report["live"]["calls_decided"] == len(names)
    assert report["live"]["frames_dropped_by_kernel"] == 0
    assert report["live"]["stopped_by"] == "SIGINT"
    one_way = by_user["5066"][0]
    assert "one_way_audio" in [f["kind"] for f in one_way["findings"]]
    answered = by_user["5062"][0]
    assert {s["direction"] for s in answered["streams"]} == {"caller->callee", "callee->caller"}
    assert all(s["packets"] > 50 and s["lost"] == 0 for s in answered["streams"])
    assert len((out / "calls.jsonl").read_text().splitlines()) == len(names)

    # the events: one call_ended per call with its outcome, failures with a cause, one-way audio while up
    seen = _events(events)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    ended = {e["call_id"]: e for e in seen if e["event"] == "call_ended"}
    assert {c["call_id"]: c["outcome"] for c in report["calls"]} == {k: e["outcome"] for k, e in ended.items()}
    failures = {e["call_id"]: e for e in seen if e["event"] == "failure"}
    for name in ("busy", "unavailable"):
        call = by_user[str(CALLS[name][0])][0]
        assert failures[call["call_id"]]["cause"] == call["cause"] and failures[call["call_id"]]["evidence"]
    alerts = [e for e in seen if e["event"] == "one_way_audio"]
    assert [a["call_id"] for a in alerts] == [one_way["call_id"]]
    assert alerts[0]["silent_side"] == "callee" and 2.0 <= alerts[0]["after_s"] < 4.5
    ended_at = [i for i, e in enumerate(seen) if e["event"] == "call_ended" and e["call_id"] == one_way["call_id"]]
    assert seen.index(alerts[0]) < ended_at[0], "one-way audio must be told while the call is up"
    assert not [e for e in seen if e["event"] == "capture_drops"]

    # the ring buffer: several files, each read by tshark, together every frame captured
    files = sorted(ring.glob("sipwatch-*.pcap"))
    assert len(files) >= 3
    total = sum(_tshark_count(f) for f in files)
    assert total == report["capture"]["packets"]

    # extract follows the answered call across the rotated files (given as a folder)
    pcap = tmp_path / "answered.pcap"
    result = subprocess.run([*SIPWATCH, "extract", str(ring), "--call", answered["call_id"], "-o", str(pcap)],
                            capture_output=True, text=True, timeout=120, env=_env(), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert _tshark_count(pcap, "sip") == answered["messages"]
    assert _tshark_count(pcap, "udp and not sip") == sum(s["packets"] for s in answered["streams"])
    media_files = [f for f in files if _tshark_count(f, "udp.port == 17000 or udp.port == 16000")]
    assert len(media_files) >= 2, "the answered call's media should cross a rotation"


def test_live_loss_on_the_wire_is_stream_loss_not_capture_drops(tmp_path: Path) -> None:
    _need_lab()
    work = netlab.sipp_workdir(tmp_path / "sipp")
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    log = tmp_path / "live.log"
    with netlab.Lab("lloss") as lab:
        lab.add_loss(netlab.ADDR_B, [16000], 10)
        proc = _start_live(lab.b, ["-i", lab.b.veth, "--out", str(out), "--events", str(events), "--no-dashboard"],
                           log)
        _wait_started(events, proc, log)
        _run_calls(lab, work, ["answered"])
        dropped_on_wire = lab.loss_counter()
        _stop(proc, log)
    report = json.loads((out / "report.json").read_text())
    assert report["live"]["frames_dropped_by_kernel"] == 0
    assert not [e for e in _events(events) if e["event"] == "capture_drops"]
    assert "capture_loss" not in report["summary"]["findings"]
    (call,) = report["calls"]
    forward = [s for s in call["streams"] if s["direction"] == "caller->callee" and s["packets"] > 50]
    assert len(forward) == 1
    assert dropped_on_wire > 0
    # a drop at the very end of the stream leaves no gap in the sequence numbers: at most that many go unseen
    assert dropped_on_wire - 3 <= forward[0]["lost"] <= dropped_on_wire
    assert forward[0]["loss_pct"] > 0


def test_live_stdin_from_tcpdump(tmp_path: Path) -> None:
    _need_lab()
    work = netlab.sipp_workdir(tmp_path / "sipp")
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    log = tmp_path / "live.log"
    names = ["one_way", "busy"]
    with netlab.Lab("lstdin") as lab:
        tcpdump_log = tmp_path / "tcpdump.log"
        dump = lab.b.start(["tcpdump", "-n", "-i", lab.b.veth, "-U", "-w", "-"], TIMEOUT, stdout=subprocess.PIPE,
                           stderr=tcpdump_log.open("w"))
        with log.open("w") as err:
            proc = lab.b.start([*SIPWATCH, "live", "-", "--out", str(out), "--events", str(events), "--no-dashboard"],
                               TIMEOUT, stdin=dump.stdout, stdout=subprocess.DEVNULL, stderr=err, env=_env(), cwd=ROOT)
        dump.stdout.close()
        deadline = time.monotonic() + 20
        while "listening on" not in tcpdump_log.read_text():
            assert dump.poll() is None and time.monotonic() < deadline, tcpdump_log.read_text()
            time.sleep(0.05)
        _run_calls(lab, work, names)
        # records are handed over as they arrive (no buffer to fill): the one-way audio of the first call was
        # told while the stream is still open
        deadline = time.monotonic() + 10
        while "one_way_audio" not in [e["event"] for e in _events(events)]:
            assert time.monotonic() < deadline, "no one-way audio told while the stream is open"
            time.sleep(0.1)
        _stop(proc, log)  # SIGINT to sipwatch alone: tcpdump still writes, what it wrote is read
    report = json.loads((out / "report.json").read_text())
    outcomes = sorted(c["outcome"] for c in report["calls"])
    assert outcomes == ["answered", "busy"]
    assert report["live"]["stopped_by"] == "SIGINT"
    assert report["capture"]["link_types"] == [1]


def test_live_any_and_several_interfaces_see_the_same_calls(tmp_path: Path) -> None:
    """`-i any` (a datagram socket, every frame given an Ethernet header; loopback kept once) and `-i lo -i vethB`
    (two rings) in namespace B, at the same time, on the same calls: the same outcomes and packet counts."""
    _need_lab()
    work = netlab.sipp_workdir(tmp_path / "sipp")
    runs = {"any": ["-i", "any"], "two": ["-i", "lo", "-i", "vethB"], "veth": ["-i", "vethB"]}
    procs = {}
    with netlab.Lab("lany") as lab:
        for name, args in runs.items():
            events = tmp_path / f"{name}.jsonl"
            procs[name] = (_start_live(lab.b, [*args, "--out", str(tmp_path / name), "--events", str(events),
                                               "--no-dashboard"], tmp_path / f"{name}.log"), events)
        for name, (proc, events) in procs.items():
            _wait_started(events, proc, tmp_path / f"{name}.log")
        # loopback traffic in B: one datagram, seen once on `lo` (not twice, leaving and arriving)
        lab.b.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                   ".sendto(b'x' * 20, ('127.0.0.1', 9))"])
        _run_calls(lab, work, ["answered", "busy"])
        for name, (proc, _) in procs.items():
            _stop(proc, tmp_path / f"{name}.log")
    reports = {name: json.loads((tmp_path / name / "report.json").read_text()) for name in runs}
    for name, report in reports.items():
        assert sorted(c["outcome"] for c in report["calls"]) == ["answered", "busy"], name
        assert report["live"]["frames_dropped_by_kernel"] == 0
        assert report["capture"]["link_types"] == [1]
    streams = {name: sorted((s["src"], s["dst"], s["packets"]) for c in r["calls"] for s in c["streams"])
               for name, r in reports.items()}
    assert streams["any"] == streams["two"] == streams["veth"] and streams["any"]
    packets = {name: r["capture"]["packets"] for name, r in reports.items()}
    assert packets["any"] == packets["two"] == packets["veth"] + 1, packets  # + the loopback datagram, once


def test_live_counts_kernel_drops_when_it_cannot_keep_up(tmp_path: Path) -> None:
    """sipwatch stopped (SIGSTOP) while tcpreplay sends more than its 4 MiB ring holds: the kernel drops the rest,
    and sipwatch says so (event, report), with received + dropped = sent. No timing involved."""
    _need_lab()
    if shutil.which("tcpreplay") is None:
        pytest.skip("tcpreplay is needed (make test installs it)")
    out, events, log = tmp_path / "out", tmp_path / "events.jsonl", tmp_path / "live.log"
    with netlab.Lab("ldrop") as lab:
        proc = _start_live(lab.b, ["-i", lab.b.veth, "--buffer", "1", "--out", str(out), "--events", str(events),
                                   "--no-dashboard"], log)
        _wait_started(events, proc, log)
        (child,) = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        os.kill(int(child), signal.SIGSTOP)
        try:
            replay = lab.a.run(["tcpreplay", "-i", lab.a.veth, "--topspeed", "--loop", "100",
                                str(ROOT / "captures" / "answered_rtp.pcap")], timeout=120)
        finally:
            os.kill(int(child), signal.SIGCONT)
        sent = int(replay.stdout.split("Actual: ")[1].split()[0])
        time.sleep(0.5)
        _stop(proc, log)
    report = json.loads((out / "report.json").read_text())
    received, dropped = report["live"]["frames_received"], report["live"]["frames_dropped_by_kernel"]
    assert sent == 100 * 209
    assert dropped > 0 and received + dropped == sent, (sent, received, dropped)
    assert received * 250 < 5 << 20  # what the 4 MiB ring held
    told = [e for e in _events(events) if e["event"] == "capture_drops"]
    assert told and sum(e["dropped"] for e in told) == dropped
    assert "capture_drops" in [p["kind"] for p in report["problems"]]
