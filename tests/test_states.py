"""The call state machine as data: the table alone, and its drawing in docs/states.md."""

from __future__ import annotations

from conftest import ROOT

from sipwatch.core.states import (
    CALL_TRANSITIONS,
    FINAL_STATES,
    CallEvent,
    CallState,
    next_state,
    transitions_markdown,
)


def test_every_state_has_a_row() -> None:
    assert set(CALL_TRANSITIONS) == set(CallState)


def test_the_happy_path() -> None:
    state = CallState.CALLING
    for event in (CallEvent.TRYING, CallEvent.RINGING, CallEvent.ANSWER, CallEvent.ACK, CallEvent.BYE):
        state = next_state(state, event)
    assert state is CallState.ENDED


def test_a_challenge_starts_a_new_attempt() -> None:
    assert next_state(CallState.REJECTED, CallEvent.INVITE) is CallState.CALLING


def test_a_2xx_crossing_the_cancel_answers_the_call() -> None:
    assert next_state(CallState.CANCELLING, CallEvent.ANSWER) is CallState.ANSWERED


def test_missing_pairs_are_wire_anomalies() -> None:
    assert next_state(CallState.CALLING, CallEvent.ACK) is None
    assert next_state(CallState.CONFIRMED, CallEvent.REJECT) is None


def test_timer_b_only_in_early_states() -> None:
    for state, row in CALL_TRANSITIONS.items():
        if CallEvent.TIMER_B in row:
            assert state not in (CallState.ANSWERED, CallState.CONFIRMED, CallState.ENDED, CallState.REJECTED)
    assert {CallState.REJECTED, CallState.TIMED_OUT, CallState.ENDED} == FINAL_STATES


def test_docs_are_drawn_from_the_table() -> None:
    assert (ROOT / "docs" / "states.md").read_text() == transitions_markdown()
