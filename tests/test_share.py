"""Outputs for sharing: redaction that masks identities consistently, and the tables for tools."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import CAPTURES, ROOT, SHARED_CAPTURES

from sipwatch.pipeline import analyze_file
from sipwatch.report.data import analysis_to_dict
from sipwatch.report.markdown import render_markdown
from sipwatch.report.redact import Redactor, redact
from sipwatch.report.tables import SCHEMA, tables, tables_markdown

SIPWATCH = [sys.executable, "-c", "from sipwatch.cli import main; main()"]
PUBLIC_CALLS = SHARED_CAPTURES / "pcap2sipp" / "example.pcap"  # +39 numbers, 10.x and public addresses
CLOUDSHARK = SHARED_CAPTURES / "suricata-verify" / "sip-body-frames__public-cloudshark-sip-s0.pcap"
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")


def _identities(data: dict) -> tuple[set[str], set[str]]:
    """The users and the non-loopback IPv4 addresses a report mentions."""
    users = {c[k] for c in data["calls"] for k in ("from_user", "to_user") if c[k]}
    text = json.dumps(data)
    addresses = {a for a in _IPV4.findall(text) if not a.startswith(("127.", "0."))}
    return users, addresses


@pytest.mark.parametrize("capture", [PUBLIC_CALLS, CLOUDSHARK, CAPTURES / "nat_private_sdp.pcap"], ids=lambda p: p.name)
def test_redaction_leaves_no_number_user_or_address(capture: Path) -> None:
    data = analysis_to_dict(analyze_file(str(capture)))
    users, addresses = _identities(data)
    assert users and addresses  # something to hide
    redacted = redact(data)
    text = json.dumps(redacted) + render_markdown(redacted)
    for user in users:
        assert not re.search(rf"(?<![\w.]){re.escape(user)}(?![\w.])", text), user
    for address in addresses:
        assert address not in text, address
    # the report keeps its shape: same calls, outcomes, causes, streams
    assert [c["outcome"] for c in redacted["calls"]] == [c["outcome"] for c in data["calls"]]
    assert [c["cause"] for c in redacted["calls"]] == [c["cause"] for c in data["calls"]]
    assert redacted["summary"] == redact(data)["summary"]


def test_redaction_is_consistent_and_keeps_the_kind_of_address() -> None:
    data = redact(analysis_to_dict(analyze_file(str(CAPTURES / "nat_private_sdp.pcap"))))
    call = data["calls"][0]
    # one user, one pseudonym, wherever it appears
    assert call["from_user"].startswith("user-")
    assert f"sip:{call['from_user']}@" in call["from"]
    nat = next(f for f in call["findings"] if f["kind"] == "nat_private_address")
    advertised = {e["value"].split(",")[0] for e in nat["evidence"]}
    assert len(advertised) == 1  # Contact, Via and SDP c= carried the same address: one pseudonym
    pseudonym = ipaddress.ip_address(advertised.pop())
    assert pseudonym.is_private and str(pseudonym) != "192.168.1.23"
    assert call["caller"].startswith("127.0.0.1:")  # loopback tells nothing: kept


def test_redactor_pseudonyms() -> None:
    r = Redactor()
    assert r.text("sip:+15551234567@203.0.113.9") == "sip:user-1@198.18.0.1"
    assert r.text("tel:+1-555-123-4567;x") == "tel:user-1;x"  # the same number, written otherwise
    assert r.text("P-Asserted-Identity: +1 555 123 4567") == "P-Asserted-Identity: user-1"
    assert r.text('"Jane Doe" <sip:jane@[2001:4860::8888]:5060>') == '"name-1" <sip:user-2@[2001:db8::1]:5060>'
    assert r.text("from 192.168.7.7 and 100.64.1.2") == "from 10.0.0.1 and 100.64.0.1"
    # timestamps, versions and hex stay as they are
    kept = "2026-11-25T15:40:12.123456Z 13:40:10.775 SIPp v3.7.1 ssrc 0x1234ABCD frame 1234"
    assert r.text(kept) == kept


def test_redacted_cli_outputs_agree(tmp_path: Path) -> None:
    outputs = {}
    for suffix in (".json", ".md"):
        out = tmp_path / f"report{suffix}"
        result = subprocess.run([*SIPWATCH, "report", str(PUBLIC_CALLS), "-o", str(out), "--redact"],
                                capture_output=True, timeout=120, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        outputs[suffix] = out.read_text()
    data = json.loads(outputs[".json"])
    for call in data["calls"]:
        assert call["from_user"] in outputs[".md"] or call["cause"] is None
    assert "390398927986" not in outputs[".json"] + outputs[".md"]


def test_tables_follow_the_schema() -> None:
    data = analysis_to_dict(analyze_file(str(CAPTURES / "one_way_audio.pcap")))
    frames = tables(data)
    assert set(frames) == {"calls", "messages", "streams", "findings"}
    for name, frame in frames.items():
        assert list(frame.columns) == [column for column, _, _ in SCHEMA[name]]
        assert [str(t) for t in frame.dtypes] == [dtype for _, dtype, _ in SCHEMA[name]]
    calls = frames["calls"]
    assert len(calls) == len(data["calls"])
    assert len(frames["messages"]) == sum(c["messages"] for c in data["calls"]) == calls["messages"].sum()
    assert len(frames["streams"]) == len(data["calls"][0]["streams"])
    one_way = frames["findings"][frames["findings"]["kind"] == "one_way_audio"]
    assert len(one_way) == 1 and bool(one_way["principal"].iloc[0])
    assert json.loads(one_way["evidence"].iloc[0])  # evidence kept, as JSON


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_tables_command_writes_readable_files(tmp_path: Path, fmt: str) -> None:
    result = subprocess.run([*SIPWATCH, "tables", str(CAPTURES / "busy_486.pcap"), "-o", str(tmp_path), "-f", fmt],
                            capture_output=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"calls.{fmt}"
    calls = (pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path) if fmt == "csv"
             else pd.read_json(path, lines=True))
    assert list(calls["outcome"]) == ["busy"]
    assert int(calls["final_status"].iloc[0]) == 486
    if fmt == "parquet":  # types survive: a missing number stays missing
        assert str(calls["q850_cause"].dtype) == "Int64" and calls["q850_cause"].isna().all()


def test_tables_doc_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "tables.md").read_text() == tables_markdown()
