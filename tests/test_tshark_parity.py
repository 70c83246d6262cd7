"""Every capture, bundled and public, analyzed with no error and the same SIP counts as tshark.

tshark runs here, in the test, as the oracle: `tshark -q -z sip,stat`, told with `-d` to decode as SIP the
non-standard UDP and TCP ports sipwatch found SIP on (sipwatch detects SIP by its start line on any
port). SIP over WebSocket needs no `-d`: tshark follows the HTTP Upgrade and its `sip` subprotocol, as
sipwatch does. Captures of SIP over TLS without their key are analyzed too: both find no SIP, and
tests/test_inputs_captures.py checks that sipwatch says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CAPTURES, SHARED_CAPTURES, capture_files, tshark_sip_stat

from sipwatch.pipeline import analyze_file

# Captures whose SIP travels in a way sipwatch does not decode yet: skipped only with the missing feature.
NOT_YET: dict[str, str] = {}
# transports whose ports tshark can be told to decode as SIP; over SCTP it finds SIP by its heuristic
# (its sctp.port table offers no SIP), over WebSocket through the handshake's `sip` subprotocol
_DECODE_AS = frozenset(("udp", "tcp"))
# Not an oracle there: on the PROTOS fuzz corpus tshark's sip,stat tap drops each message whose dissection
# raised an exception part-way, so its count measures tshark's exceptions. tests/test_torture.py accounts for
# every frame of it instead.
NO_ORACLE = {
    "torture/protos-c07-sip/derived_protos_c07_invites.pcap.gz": "fuzz corpus: tshark's count is not an oracle",
    "hep-wireshark/hep.pcap": "HEP: tshark 4.0 has no HEP dissector; tests/test_hep.py checks it against sngrep -E",
    "hep-wireshark/hep3_compressed.pcap.pcapng": "HEP with zlib payloads: tshark has no HEP dissector; tests/test_hep.py",
}


def _cases() -> list:
    cases = [pytest.param(p, id=f"captures/{p.relative_to(CAPTURES)}") for p in capture_files(CAPTURES)]
    if SHARED_CAPTURES.is_dir():
        for path in capture_files(SHARED_CAPTURES):
            rel = str(path.relative_to(SHARED_CAPTURES))
            reason = NOT_YET.get(rel) or NO_ORACLE.get(rel)
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            cases.append(pytest.param(path, id=f"shared/{rel}", marks=marks))
    return cases


@pytest.mark.parametrize("path", _cases())
def test_sip_counts_equal_tshark(path: Path) -> None:
    analysis = analyze_file(str(path))
    assert not [p for p in analysis.problems.kept if p.kind == "internal_error"]
    oracle = tshark_sip_stat(path, {(t, port) for t, port in analysis.stats.ports if t in _DECODE_AS})
    stats = analysis.stats
    assert stats.messages == oracle.messages
    assert dict(stats.requests) == dict(oracle.requests)
    assert dict(stats.responses) == dict(oracle.responses)


def test_not_yet_list_is_current(shared_captures: Path) -> None:
    """A skipped capture must exist, and must really still be missing SIP (so the skip list shrinks)."""
    for rel in NOT_YET:
        path = shared_captures / rel
        assert path.exists(), rel
        ports = {(t, port) for t, port in analyze_file(str(path)).stats.ports if t in _DECODE_AS}
        oracle = tshark_sip_stat(path, ports)
        assert oracle.messages > analyze_file(str(path)).stats.messages, f"{rel} now parses: drop it from NOT_YET"
