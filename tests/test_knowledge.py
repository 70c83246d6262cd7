"""The diagnosis knowledge base: complete, consistent with the code table, and written in our own words."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re

import pytest
from conftest import ROOT

from sipwatch.diagnosis import (
    SEED_TERMS,
    Category,
    Knowledge,
    all_entries,
    categories_markdown,
    for_finding,
    for_q850,
    for_status,
    knowledge,
    knowledge_markdown,
    parse_key,
)
from sipwatch.model import Outcome
from sipwatch.sip.codes import STATUS_CODES

# The package re-exports the function knowledge(), which shadows the submodule's attribute name.
kb = importlib.import_module("sipwatch.diagnosis.knowledge")

SEEDS = ROOT.parent / "shared" / "seeds"

REQUIRED_SIP = (401, 403, 404, 407, 408, 428, 436, 437, 438, 480, 484, 486, 487, 488, 500, 502, 503, 504,
                600, 603, 604, 606, 607, 608)

Q850_NAMES = {
    1: "Unallocated (unassigned) number",
    16: "Normal call clearing",
    17: "User busy",
    18: "No user responding",
    19: "No answer from user (user alerted)",
    21: "Call rejected",
    27: "Destination out of order",
    31: "Normal, unspecified",
    34: "No circuit/channel available",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    102: "Recovery on timer expiry",
    127: "Interworking, unspecified",
}

REQUIRED_FINDINGS = (
    "timeout_no_response", "timeout_trying_only", "timeout_ringing", "one_way_audio", "no_media",
    "rtp_timeout", "missing_ack", "capture_loss", "poor_quality", "media_address_mismatch",
    "unexpected_payload_type", "media_after_bye", "route_advance", "completed_elsewhere",
    "briefly_abandoned", "abandoned",
)

BRIEF_SEED_TERMS = (
    "agent busy", "no answer", "call declined", "device not responding", "connection timeout",
    "call redirected by system", "never connects", "audio broken", "rejected or blocked", "capacity",
    "briefly abandoned", "abandoned",
)

# The call-status article's six reasons are, by definition, these Q.850 causes.
SEED_Q850 = {
    "agent busy": 17,
    "no answer": 19,
    "call declined": 21,
    "device not responding": 18,
    "connection timeout": 102,
    "call redirected by system": 31,
}

# A call outcome from sipwatch.sip.codes and the categories its codes may be filed under.
OUTCOME_CATEGORIES = {
    Outcome.BUSY: {Category.USER},
    Outcome.DECLINED: {Category.USER},
    Outcome.UNAVAILABLE: {Category.USER},
    Outcome.BLOCKED: {Category.BLOCKING},
    Outcome.NOT_FOUND: {Category.DIALING},
    Outcome.AUTH_FAILED: {Category.AUTH},
    Outcome.CAPACITY: {Category.CAPACITY},
    Outcome.CANCELLED: {Category.NORMAL},
    Outcome.TIMEOUT: {Category.NETWORK},
    Outcome.SERVER_ERROR: {Category.SERVER, Category.NETWORK},
    Outcome.FAILED: set(Category),
}


def failure_codes() -> list[int]:
    return sorted(code for code in STATUS_CODES if code >= 400)


def texts(entry: Knowledge) -> list[str]:
    return [entry.title, entry.meaning, entry.agent, entry.admin, *entry.situations]


# --- completeness ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", failure_codes())
def test_every_failure_code_has_its_own_entry(code: int) -> None:
    entry = for_status(code)
    assert entry.key == f"sip:{code}", "fell back to a class entry"
    assert entry is knowledge(f"sip:{code}")
    assert STATUS_CODES[code].phrase in entry.title


@pytest.mark.parametrize("code", REQUIRED_SIP)
def test_important_codes_have_their_own_wording(code: int) -> None:
    entry = for_status(code)
    shared = {text for pair in kb._SHARED.values() for text in pair}
    assert entry.agent not in shared and entry.admin not in shared
    assert entry.situations, "important codes list typical situations"
    others = [e for e in all_entries() if e.key != entry.key]
    assert all(entry.meaning != o.meaning for o in others)


@pytest.mark.parametrize("code", failure_codes())
def test_category_agrees_with_the_code_tables_outcome(code: int) -> None:
    status = STATUS_CODES[code]
    entry = for_status(code)
    assert entry.category in OUTCOME_CATEGORIES[status.outcome], (code, status.outcome, entry.category)
    if status.outcome_if_rang is Outcome.NO_ANSWER:  # 408, 480: the text must say so
        assert "no answer" in entry.seed_terms or "not answered" in entry.meaning


@pytest.mark.parametrize(("cause", "name"), sorted(Q850_NAMES.items()))
def test_required_q850_causes_with_itu_names(cause: int, name: str) -> None:
    entry = for_q850(cause)
    assert entry.key == f"q850:{cause}"
    assert entry.title == f"Q.850 {cause} {name}"


@pytest.mark.parametrize("kind", REQUIRED_FINDINGS)
def test_required_findings(kind: str) -> None:
    assert for_finding(kind).key == f"finding:{kind}"
    assert for_finding(f"finding:{kind}") is for_finding(kind)


def test_every_documented_and_detected_finding_kind_is_explained() -> None:
    kinds_table = (ROOT / "docs" / "findings.md").read_text().split("| kind |", 1)[1]
    first_cells = re.findall(r"^\| (`[^|]+)\|", kinds_table, re.MULTILINE)
    documented = [kind for cell in first_cells for kind in re.findall(r"`(\w+)`", cell.split("(")[0])]
    source = (ROOT / "sipwatch" / "core" / "findings.py").read_text()
    detected = re.findall(r'Finding\(\s*"(\w+)"', source)
    kinds = set(documented + detected)
    assert {"one_way_audio", "capture_loss", "media_after_bye", "timeout_ringing", "missing_ack"} <= kinds
    for kind in kinds:
        for_finding(kind)
    for timeout_kind in ("no_response", "trying_only", "ringing"):  # Call.timeout_kind values
        for_finding(f"timeout_{timeout_kind}")


def test_keys_unique_and_entries_immutable() -> None:
    entries = all_entries()
    assert len({e.key for e in entries}) == len(entries)
    entry = entries[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.title = "x"  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")


# --- consistency -----------------------------------------------------------------------------------------


def test_categories_are_exactly_the_ten() -> None:
    assert [c.value for c in Category] == ["user", "dialing", "auth", "blocking", "capacity", "nat_alg",
                                           "network", "codec", "server", "normal"]
    assert set(kb.CATEGORY_DESCRIPTIONS) == set(Category)
    for entry in all_entries():
        assert isinstance(entry.category, Category), entry.key
        assert isinstance(entry.retry_can_help, bool), entry.key


def test_every_category_is_used() -> None:
    assert {e.category for e in all_entries()} == set(Category)


def test_deliberate_and_permanent_failures_do_not_invite_retries() -> None:
    for entry in all_entries():
        if entry.category in (Category.BLOCKING, Category.DIALING):
            assert not entry.retry_can_help, entry.key


def test_debatable_decisions() -> None:
    assert for_status(503).category is Category.CAPACITY and for_status(503).retry_can_help
    assert for_finding("route_advance").category is Category.NORMAL
    assert for_status(408).category is Category.NETWORK
    assert for_status(480).category is Category.USER
    assert for_status(487).category is Category.NORMAL


@pytest.mark.parametrize("entry", all_entries(), ids=lambda e: e.key)
def test_texts_present_and_agent_differs_from_admin(entry: Knowledge) -> None:
    for text in (entry.title, entry.meaning, entry.agent, entry.admin):
        assert isinstance(text, str) and text.strip() == text and len(text) > 3
    assert entry.agent != entry.admin
    assert isinstance(entry.situations, tuple) and all(isinstance(s, str) and s for s in entry.situations)
    assert isinstance(entry.seed_terms, tuple) and isinstance(entry.related, tuple)


@pytest.mark.parametrize("entry", all_entries(), ids=lambda e: e.key)
def test_related_keys_exist_and_point_back(entry: Knowledge) -> None:
    assert entry.key not in entry.related
    assert len(set(entry.related)) == len(entry.related)
    for key in entry.related:
        other = knowledge(key)
        assert entry.key in other.related, f"{key} does not list {entry.key} back"


def test_busy_pairs_with_user_busy() -> None:
    assert "q850:17" in for_status(486).related and "sip:486" in for_q850(17).related


# --- seed vocabulary -------------------------------------------------------------------------------------


def test_seed_terms_are_the_known_vocabulary() -> None:
    assert set(BRIEF_SEED_TERMS) <= set(SEED_TERMS)
    for entry in all_entries():
        assert set(entry.seed_terms) <= set(SEED_TERMS), entry.key


@pytest.mark.parametrize("term", SEED_TERMS)
def test_each_seed_term_maps_to_an_entry(term: str) -> None:
    assert any(term in e.seed_terms for e in all_entries())


@pytest.mark.parametrize(("term", "cause"), sorted(SEED_Q850.items()))
def test_seed_reasons_are_their_q850_causes(term: str, cause: int) -> None:
    assert term in for_q850(cause).seed_terms


def test_seed_terms_come_from_the_articles() -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"{SEEDS} not present")
    seeds = " ".join(p.read_text(encoding="utf-8").lower() for p in SEEDS.glob("0*.txt"))
    seeds = re.sub(r"\s+", " ", seeds.replace(" is ", " "))  # "audio is broken" -> "audio broken"
    for term in SEED_TERMS:
        assert term in seeds, term


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def test_no_text_copied_from_the_seeds() -> None:
    files = sorted(SEEDS.glob("0*.txt")) if SEEDS.is_dir() else []
    if not files:
        pytest.skip(f"no seed articles in {SEEDS}")
    n = 12
    windows: set[tuple[str, ...]] = set()
    for path in files:
        words = _words(path.read_text(encoding="utf-8"))
        windows.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    copied = []
    for entry in all_entries():
        for text in texts(entry):
            words = _words(text)
            copied += [(entry.key, " ".join(words[i:i + n])) for i in range(len(words) - n + 1)
                       if tuple(words[i:i + n]) in windows]
    assert not copied


# --- lookups ---------------------------------------------------------------------------------------------


def test_class_fallbacks() -> None:
    assert for_status(599).key == "sip:5xx"
    assert for_status(499).key == "sip:4xx"
    assert for_status(699).key == "sip:6xx"
    for key in ("sip:4xx", "sip:5xx", "sip:6xx", "q850:unknown"):
        knowledge(key)


def test_not_failures_and_unknown_keys() -> None:
    with pytest.raises(KeyError, match="4xx, 5xx and 6xx"):
        for_status(200)
    with pytest.raises(KeyError, match="no knowledge entry"):
        knowledge("sip:999")
    with pytest.raises(KeyError, match="known:"):
        for_finding("gremlins")


def test_q850_fallback() -> None:
    assert for_q850(99).key == "q850:unknown"
    assert for_q850(17).key == "q850:17"


@pytest.mark.parametrize(("text", "key"), [
    ("503", "sip:503"),
    ("sip:503", "sip:503"),
    ("SIP 486", "sip:486"),
    (" sip:486 ", "sip:486"),
    ("599", "sip:5xx"),
    ("5xx", "sip:5xx"),
    ("sip:6XX", "sip:6xx"),
    ("q850:17", "q850:17"),
    ("Q.850 17", "q850:17"),
    ("Q850:102", "q850:102"),
    ("cause 21", "q850:21"),
    ("q850:99", "q850:unknown"),
    ("q850:unknown", "q850:unknown"),
    ("one_way_audio", "finding:one_way_audio"),
    ("finding:one_way_audio", "finding:one_way_audio"),
    ("One-way audio", "finding:one_way_audio"),
    ("route_advance", "finding:route_advance"),
])
def test_parse_key(text: str, key: str) -> None:
    assert parse_key(text) == key
    knowledge(key)


@pytest.mark.parametrize(("text", "message"), [
    ("200", "not a failure"),
    ("302", "not a failure"),
    ("799", "not a failure"),
    ("q850:0", "1 to 127"),
    ("q850:200", "1 to 127"),
    ("gremlins", "unknown finding"),
    ("", "cannot read"),
    ("sip:abc", "cannot read"),
    ("48", "cannot read"),
])
def test_parse_key_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_key(text)


# --- documentation and layering --------------------------------------------------------------------------


def test_docs_contain_the_generated_tables() -> None:
    doc = (ROOT / "docs" / "knowledge.md").read_text(encoding="utf-8")
    assert knowledge_markdown() in doc, "regenerate the table with knowledge_markdown()"
    assert categories_markdown() in doc, "regenerate the categories with categories_markdown()"


def test_diagnosis_imports_only_model_and_codes() -> None:
    """The knowledge base is pure data over the model and the code table; the rest of the diagnosis package
    may also use the core (imports flow model <- parsers <- core <- diagnosis), never the reports or cli."""
    allowed = {"sipwatch.model", "sipwatch.sip.codes", "sipwatch.diagnosis.knowledge"}
    for path in [ROOT / "sipwatch" / "diagnosis" / "knowledge.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sipwatch"):
                assert node.module in allowed, (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("sipwatch") for a in node.names), path.name
