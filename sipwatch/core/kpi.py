"""Capture-level KPIs from decided calls: RFC 6076 (SER, SEER, ISA, SCR, SRD, SDT) and the ITU-T E.411
family the carriers quote (ASR, NER, ACD, PDD). docs/kpi.md gives each formula.

Calls that started before the capture, and calls the capture's end cut before they were decided, are left out
of every ratio: a capture's edges must not read as failures. A call still open at the end counts only once it was
answered (the 2xx is in the capture); an unanswered one whose outcome the end of the capture may have cut short
(`open_at_end`) is not an attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import mean

from sipwatch.core.calls import Call
from sipwatch.model import Outcome

# RFC 6076 §4.6: responses that show the network did its job even though nobody talked
_SEER_CODES = frozenset((480, 486, 600, 603))
# RFC 6076 §4.8: responses of an ineffective attempt (the network failed the request)
_ISA_CODES = frozenset((408, 500, 503, 504))
# ITU-T E.411 NER: outcomes decided by the user, not by the network
_NER_OUTCOMES = frozenset((Outcome.ANSWERED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.DECLINED, Outcome.CANCELLED))


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _avg(values: list[float], digits: int = 1) -> float | None:
    return round(mean(values), digits) if values else None


def decided_calls(calls: Iterable[Call]) -> list[Call]:
    """The calls KPIs are computed over: whole attempts, decided within the capture."""
    return [
        c for c in calls
        if not c.started_before_capture and c.outcome not in (None, Outcome.IN_PROGRESS)
        and (not c.open_at_end or c.outcome == Outcome.ANSWERED)
    ]


def compute_kpis(calls: Iterable[Call]) -> dict[str, float | int | None]:
    decided = decided_calls(calls)
    attempts = len(decided)
    redirected = sum(1 for c in decided if c.final_status is not None and 300 <= c.final_status < 400)
    answered = [c for c in decided if c.outcome == Outcome.ANSWERED]
    completed = [c for c in answered if c.bye_ts is not None]
    seer = len(answered) + sum(1 for c in decided if c.final_status in _SEER_CODES)
    isa = sum(1 for c in decided if c.final_status in _ISA_CODES or c.outcome == Outcome.TIMEOUT)
    srd = [
        first - c.invite_ts
        for c in decided
        if c.invite_ts is not None and (first := _first_non_trying(c)) is not None
    ]
    return {
        "attempts": attempts,
        "ser": _pct(len(answered), attempts - redirected),
        "seer": _pct(seer, attempts - redirected),
        "isa": _pct(isa, attempts),
        "scr": _pct(len(completed), attempts),
        "srd_ms": _avg([d * 1000.0 for d in srd]),
        "sdt_s": _avg([c.duration_s for c in completed], 3),
        "asr": _pct(len(answered), attempts),
        "ner": _pct(sum(1 for c in decided if c.outcome in _NER_OUTCOMES), attempts),
        "acd_s": _avg([c.duration_s for c in completed], 3),
        "pdd_ms": _avg([c.pdd_ms for c in decided if c.pdd_ms is not None]),
        "setup_ms": _avg([c.setup_ms for c in answered if c.setup_ms is not None]),
    }


def _first_non_trying(call: Call) -> float | None:
    """RFC 6076 §4.1: SRD ends at the first provisional other than 100, or the final response."""
    candidates = [ts for ts in (call.ringing_ts, call.final_ts) if ts is not None]
    return min(candidates) if candidates else None
