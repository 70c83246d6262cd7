"""Truthfulness at a capture's edges: a capture cut in the middle of a call, or started mid-call, must not make
failures that the whole capture does not have.

Every SIPp capture in captures/ is cut with editcap at several points (at its SIP messages, inside its RTP, and
by time with -A/-B), keeping the head (the capture ends mid-call) or the tail (it starts mid-call). The analysis
of the whole capture is the oracle: a call of a cut capture may know less, but it may not fail where the whole
capture does not, carry a finding the whole capture does not, or count in the failure rates when it is partial.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CAPTURES

from sipwatch.core.analyzer import Analyzer
from sipwatch.core.kpi import compute_kpis, decided_calls
from sipwatch.diagnosis.attribution import diagnose
from sipwatch.model import Datagram, Outcome, Transport
from sipwatch.pipeline import analyze_file

SIPP_CAPTURES = sorted(
    p.stem for p in CAPTURES.glob("*.pcap") if p.stem not in ("register_401_200",)  # no INVITE: no call to cut
)
NOT_FAILED = (Outcome.ANSWERED, Outcome.IN_PROGRESS)


@pytest.fixture(scope="module", autouse=True)
def _editcap() -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap (tshark's package) is not installed (make test installs it)")


def _cuts(name: str, tmp_path: Path):
    """(label, cut analysis) for every cut of one capture."""
    path = CAPTURES / f"{name}.pcap"
    tmp_path.mkdir(parents=True, exist_ok=True)
    full = analyze_file(str(path))
    packets = full.capture.packets
    sip_frames = sorted({r.frame for c in full.calls for r in c.records})
    frames = sorted(set(sip_frames) | {max(1, packets * k // 5) for k in range(1, 5)})
    jobs = []
    for frame in frames:
        if frame < packets:
            jobs.append((f"head-{frame}", ["-r", str(path), "OUT", f"1-{frame}"]))
        if frame > 1:
            jobs.append((f"tail-{frame}", ["-r", str(path), "OUT", f"{frame}-{packets}"]))
    first, last = full.capture.first, full.capture.last
    for share in (0.25, 0.5, 0.75):
        at = datetime.fromtimestamp(first + (last - first) * share, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        jobs.append((f"before-{share}", ["-B", at, str(path), "OUT"]))
        jobs.append((f"after-{share}", ["-A", at, str(path), "OUT"]))
    out = []
    for label, args in jobs:
        target = tmp_path / f"{name}-{label}.pcap"
        result = subprocess.run(["editcap", *[str(target) if a == "OUT" else a for a in args]], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        if target.stat().st_size <= 24:
            continue  # the cut kept no packet
        out.append((label, analyze_file(str(target))))
    assert len(out) >= 6
    return full, out


def _by_call_id(analysis) -> dict:
    return {c.call_id: c for c in analysis.calls}


@pytest.mark.parametrize(
    "name", SIPP_CAPTURES
)
def test_cut_capture_makes_no_false_failure(name: str, tmp_path: Path) -> None:
    full, cuts = _cuts(name, tmp_path)
    reference = _by_call_id(full)
    wrong = []
    for label, cut in cuts:
        assert "internal_error" not in cut.problems.counts
        for call in cut.calls:
            whole = reference.get(call.call_id)
            assert whole is not None, (label, call.call_id)
            if call.outcome not in NOT_FAILED and call.outcome != whole.outcome:
                wrong.append(f"{label}: {call.call_id} {call.outcome}, whole capture {whole.outcome}")
            extra = {f.kind for f in call.findings} - {f.kind for f in whole.findings}
            if extra:
                wrong.append(f"{label}: {call.call_id} findings {sorted(extra)} not in the whole capture")
            if not call.partial and call.outcome != whole.outcome:
                wrong.append(f"{label}: {call.call_id} whole in the cut but {call.outcome}, not {whole.outcome}")
    assert wrong == []


@pytest.mark.parametrize(
    "name", SIPP_CAPTURES
)
def test_partial_calls_stay_out_of_the_failure_rates(name: str, tmp_path: Path) -> None:
    full, cuts = _cuts(name, tmp_path)
    full_decided = {c.call_id: c.outcome for c in decided_calls(full.calls)}
    partial_seen = 0
    for label, cut in cuts:
        decided = decided_calls(cut.calls)
        partial_seen += sum(1 for c in cut.calls if c.partial)
        assert not [c.call_id for c in decided if c.partial and c.outcome != Outcome.ANSWERED], label
        # a call counted in a cut is counted as the whole capture counts it
        assert all(full_decided.get(c.call_id) == c.outcome for c in decided), label
        kpis = compute_kpis(cut.calls)
        assert kpis["attempts"] == len(decided)
        failed = [c for c in decided if c.outcome not in NOT_FAILED]
        assert len(failed) <= sum(1 for o in full_decided.values() if o not in NOT_FAILED), label
    assert partial_seen > 0  # the cuts did cut calls


def test_calls_started_before_the_capture_are_marked(tmp_path: Path) -> None:
    _, cuts = _cuts("answered_rtp", tmp_path)
    tails = [cut for label, cut in cuts if label.startswith("tail-")]
    assert tails and all(c.started_before_capture for cut in tails for c in cut.calls)
    heads = [cut for label, cut in cuts if label in ("head-2", "head-3", "head-4", "head-5")]
    assert heads and all(c.open_at_end for cut in heads for c in cut.calls)
    assert all(compute_kpis(cut.calls)["attempts"] == 0 for cut in tails)


def test_missing_ack_needs_the_evidence_a_cut_capture_may_lack(tmp_path: Path) -> None:
    path = CAPTURES / "missing_ack.pcap"
    whole = analyze_file(str(path)).calls[0]
    assert "missing_ack" in [f.kind for f in whole.findings]  # 11 retransmissions, then the UAS's BYE
    findings = {}
    for frames in (5, 6, 7, 14):  # the 2xx sent 2, 3, 4 and 11 times, then the capture ends (no BYE)
        out = tmp_path / f"cut-{frames}.pcap"
        subprocess.run(["editcap", "-r", str(path), str(out), f"1-{frames}"], check=True, capture_output=True)
        (call,) = analyze_file(str(out)).calls
        assert call.open_at_end
        findings[frames] = [f.kind for f in call.findings if f.kind == "missing_ack"]
    # two or three 2xx and the end of the capture: the ACK may simply not have come yet
    assert findings == {5: [], 6: [], 7: ["missing_ack"], 14: ["missing_ack"]}


# attribution.py gives every call a cause from its final response, partial or not: a call whose INVITE (or whose
# CANCEL) is before the capture still counts among the failure causes - see the report
def test_partial_calls_have_no_failure_cause(tmp_path: Path) -> None:
    caused = []
    for name in ("busy_486", "cancel_487", "route_advance_503", "declined_603"):
        _, cuts = _cuts(name, tmp_path / name)
        for label, cut in cuts:
            diagnoses = diagnose(cut.calls)
            caused += [f"{name} {label}: {diagnoses[c.number].cause}" for c in cut.calls
                       if c.partial and diagnoses[c.number].cause is not None]
    assert caused == []


def _message(first: bytes, to_tag: bytes = b"") -> bytes:
    return (first + b"\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKring\r\nFrom: <sip:a@10.0.0.1>;tag=1\r\n"
            b"To: <sip:b@10.0.0.2>" + to_tag + b"\r\nCall-ID: ringing\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def test_a_call_still_ringing_at_the_end_is_not_a_failure() -> None:
    analyzer = Analyzer()
    calls = []
    calls += analyzer.feed(Datagram(1, 0.0, "10.0.0.1", 5060, "10.0.0.2", 5060, Transport.UDP,
                                    _message(b"INVITE sip:b@10.0.0.2 SIP/2.0")))
    calls += analyzer.feed(Datagram(2, 0.1, "10.0.0.2", 5060, "10.0.0.1", 5060, Transport.UDP,
                                    _message(b"SIP/2.0 180 Ringing", b";tag=9")))
    for second in range(1, 41):
        calls += analyzer.tick(float(second))
    calls += analyzer.close()
    (call,) = [event.call for event in calls]
    assert call.outcome == Outcome.IN_PROGRESS and call.open_at_end
    assert compute_kpis([call])["attempts"] == 0
