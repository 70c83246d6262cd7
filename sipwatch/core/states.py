"""Theory of operation: the life of an INVITE-initiated call, as data.

A call is seen from the wire, not from an endpoint: sipwatch observes both sides, so its state machine
merges the INVITE client transaction (RFC 3261 §17.1.1) with the dialog it creates (§12). Each SIP
message (or timer) that concerns the call's *initial* INVITE or its dialog is turned into a `CallEvent`
and looked up in `CALL_TRANSITIONS[state][event]`:

    CALLING --100--> TRYING --18x--> RINGING --2xx--> ANSWERED --ACK--> CONFIRMED --BYE--> ENDED
       |                |               |                 |
       +---- 3xx-6xx ---+---------------+--> REJECTED     +--BYE (no ACK seen)--> ENDED
       +---- CANCEL ----+---------------+--> CANCELLING --487--> REJECTED
       +---- Timer B (64*T1 with no final response) --------> TIMED_OUT

REJECTED followed by a new INVITE on the same Call-ID (an answer to a 401/407 challenge, or a retry
after 3xx) starts a new attempt: back to CALLING. A message that is retransmitted, or that arrives in a
state where it changes nothing, maps to the same state. A pair missing from the table is a protocol
anomaly *on the wire* (e.g. ACK before any final response): the call keeps its state and the anomaly is
recorded. `docs/states.md` draws these tables.
"""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    CALLING = "calling"  # initial INVITE sent, nothing back yet
    TRYING = "trying"  # 100 Trying received
    RINGING = "ringing"  # 18x received (possibly several forks)
    CANCELLING = "cancelling"  # caller sent CANCEL, no final response yet
    ANSWERED = "answered"  # 2xx received, ACK not yet seen
    CONFIRMED = "confirmed"  # ACK for the 2xx seen: media may flow
    REJECTED = "rejected"  # final non-2xx response
    TIMED_OUT = "timed_out"  # Timer B fired: no final response within 64*T1
    ENDED = "ended"  # BYE seen


class CallEvent(StrEnum):
    INVITE = "invite"  # initial INVITE (no To-tag), first or retransmitted or new attempt
    TRYING = "100"
    RINGING = "18x"  # 180/181/182/183 and other non-100 provisionals
    ANSWER = "2xx"
    REJECT = "3xx-6xx"
    ACK = "ack"
    CANCEL = "cancel"
    BYE = "bye"
    TIMER_B = "timer_b"  # capture time passed INVITE + 64*T1 with no final response


S = CallState
E = CallEvent

CALL_TRANSITIONS: dict[CallState, dict[CallEvent, CallState]] = {
    S.CALLING: {
        E.INVITE: S.CALLING, E.TRYING: S.TRYING, E.RINGING: S.RINGING, E.ANSWER: S.ANSWERED,
        E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLING, E.TIMER_B: S.TIMED_OUT,
    },
    S.TRYING: {
        E.INVITE: S.TRYING, E.TRYING: S.TRYING, E.RINGING: S.RINGING, E.ANSWER: S.ANSWERED,
        E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLING, E.TIMER_B: S.TIMED_OUT,
    },
    S.RINGING: {
        E.INVITE: S.RINGING, E.TRYING: S.RINGING, E.RINGING: S.RINGING, E.ANSWER: S.ANSWERED,
        E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLING, E.TIMER_B: S.TIMED_OUT,
    },
    S.CANCELLING: {
        E.INVITE: S.CANCELLING, E.TRYING: S.CANCELLING, E.RINGING: S.CANCELLING, E.CANCEL: S.CANCELLING,
        # a 2xx can cross the CANCEL on the wire (RFC 3261 §9.1): the call was answered after all
        E.ANSWER: S.ANSWERED, E.REJECT: S.REJECTED, E.TIMER_B: S.TIMED_OUT,
    },
    S.ANSWERED: {
        E.INVITE: S.ANSWERED, E.TRYING: S.ANSWERED, E.RINGING: S.ANSWERED, E.ANSWER: S.ANSWERED,
        E.ACK: S.CONFIRMED, E.CANCEL: S.ANSWERED, E.BYE: S.ENDED,
    },
    S.CONFIRMED: {
        E.INVITE: S.CONFIRMED, E.ANSWER: S.CONFIRMED, E.ACK: S.CONFIRMED, E.CANCEL: S.CONFIRMED,
        E.RINGING: S.CONFIRMED, E.TRYING: S.CONFIRMED, E.BYE: S.ENDED,
    },
    S.REJECTED: {
        E.INVITE: S.CALLING, E.REJECT: S.REJECTED, E.ACK: S.REJECTED, E.CANCEL: S.REJECTED,
        E.TRYING: S.REJECTED, E.RINGING: S.REJECTED,
    },
    S.TIMED_OUT: {
        # late messages after Timer B: the capture saw more than the UAC did; follow the wire
        E.INVITE: S.TIMED_OUT, E.TRYING: S.TRYING, E.RINGING: S.RINGING, E.ANSWER: S.ANSWERED,
        E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLING, E.TIMER_B: S.TIMED_OUT,
    },
    S.ENDED: {
        E.BYE: S.ENDED, E.ACK: S.ENDED, E.ANSWER: S.ENDED, E.INVITE: S.ENDED, E.CANCEL: S.ENDED,
        E.REJECT: S.ENDED, E.TRYING: S.ENDED, E.RINGING: S.ENDED,
    },
}

FINAL_STATES = frozenset((S.REJECTED, S.TIMED_OUT, S.ENDED))
EARLY_STATES = frozenset((S.CALLING, S.TRYING, S.RINGING, S.CANCELLING))


def next_state(state: CallState, event: CallEvent) -> CallState | None:
    """The state after `event`, or None when the table has no such transition (a wire anomaly)."""
    return CALL_TRANSITIONS[state].get(event)


def transitions_markdown() -> str:
    """The transition table as Markdown (docs/states.md is this output; a test keeps them equal)."""
    events = list(CallEvent)
    lines = [
        "# Call states",
        "",
        "Generated from `sipwatch/core/states.py` by `transitions_markdown()` (tests/test_states.py keeps this page",
        "equal to it); do not edit by hand.",
        "Rows: state; columns: event; cell: next state (`-`: a wire anomaly, recorded on the call).",
        "",
        "| state | " + " | ".join(f"`{e.value}`" for e in events) + " |",
        "|---|" + "---|" * len(events),
    ]
    for state in CallState:
        row = CALL_TRANSITIONS[state]
        cells = [row[e].value if e in row else "-" for e in events]
        lines.append(f"| **{state.value}** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
