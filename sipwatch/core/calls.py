"""What the core knows about one call: its messages, its timeline and, once decided, its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipwatch.core.states import EARLY_STATES, CallState
from sipwatch.model import Finding, Outcome
from sipwatch.sip.codes import AUTH_CHALLENGES, invite_outcome
from sipwatch.sip.identity import IdentityStatus, check_identity
from sipwatch.sip.message import ReasonValue

TIMER_C = 180.0  # RFC 3261 §16.6 step 11: a proxy gives up on an INVITE after 3 min without a final response


@dataclass(slots=True)
class MessageRecord:
    """One SIP message of a call, as a ladder diagram or an evidence list needs it."""

    frame: int
    ts: float
    src: str
    dst: str
    transport: str
    label: str  # method, or "code phrase"
    cseq: int
    cseq_method: str
    status: int | None
    retransmission: bool


@dataclass(slots=True)
class SdpRecord:
    """One SDP body seen in the call: who sent it and what it announced."""

    frame: int
    ts: float
    sender: str  # "caller" or "callee"
    message: str  # label of the carrying message (INVITE, 183 Session Progress, ...)
    signalling_src: str
    origin_address: str | None
    connections: list[str | None]
    ports: list[int]
    directions: list[str]
    payload_types: list[list[int]]

    @property
    def on_hold(self) -> bool:
        return any(d in ("sendonly", "inactive") for d in self.directions) or any(
            c in ("0.0.0.0", "::") for c in self.connections
        )


@dataclass(slots=True)
class AddressRecord:
    """What an initial INVITE or its 2xx said about its sender, beside where it really came from.

    NAT and SIP ALG evidence: Contact and Via against the packet's source, the body against its
    Content-Length; and the caller identity (STIR/SHAKEN) the INVITE carried.
    """

    frame: int
    ts: float
    sender: str  # "caller" or "callee"
    message: str
    source: str  # the packet's source IP
    contact_host: str | None
    via_host: str | None  # top Via sent-by: a request's own; in a response, the caller's as echoed back
    via_received: str | None  # its received= (RFC 3261 §18.2.1): where the responder saw the request come from
    via_rport: int | None  # its rport= value (RFC 3581)
    via_port: int | None = None  # top Via sent-by port
    retransmission: bool = False  # a 2xx retransmission (recorded to compare its Contact with the first)
    body_excess: int = 0  # UDP: body bytes captured minus Content-Length (an ALG that resized the SDP)
    identity: tuple[str, ...] = ()  # Identity header lines of an INVITE (RFC 8224)


@dataclass(slots=True)
class Call:
    call_id: str
    first_ts: float
    first_frame: int
    number: int = 0  # 1, 2, 3... in order of first message: unique even when a Call-ID is reused
    state: CallState = CallState.CALLING
    caller: str | None = None  # "ip:port" the initial INVITE came from
    callee: str | None = None  # "ip:port" it went to
    transport: str | None = None
    from_uri: str | None = None
    from_user: str | None = None
    to_uri: str | None = None
    to_user: str | None = None
    from_tag: str | None = None  # of the initial INVITE: tells which side sent BYE
    to_tag: str | None = None  # of the answered dialog
    early_tags: set[str] = field(default_factory=set)  # To-tags of 18x: more than one means forking
    user_agent: str | None = None
    server: str | None = None

    invite_ts: float | None = None
    invite_frame: int | None = None
    invite_cseq: int | None = None
    attempts: int = 0  # initial INVITE transactions (a 401/407 challenge adds one)
    auth_challenges: int = 0
    trying_ts: float | None = None
    ringing_ts: float | None = None
    ringing_status: int | None = None
    answer_ts: float | None = None
    answer_frame: int | None = None
    ack_ts: float | None = None
    cancel_ts: float | None = None
    cancel_frame: int | None = None
    bye_ts: float | None = None
    bye_frame: int | None = None
    bye_by: str | None = None  # "caller" or "callee"
    final_status: int | None = None
    final_phrase: str | None = None
    final_ts: float | None = None
    final_frame: int | None = None
    retry_after: int | None = None
    reasons: list[ReasonValue] = field(default_factory=list)  # Reason headers on final/CANCEL/BYE
    reason_source: str | None = None  # the message that carried them

    last_ts: float = 0.0
    messages: int = 0
    retransmissions: int = 0
    records: list[MessageRecord] = field(default_factory=list)
    records_dropped: int = 0
    started_before_capture: bool = False
    open_at_end: bool = False
    anomalies: list[str] = field(default_factory=list)
    sdp: list[SdpRecord] = field(default_factory=list)  # every SDP of the call, in order
    addresses: list[AddressRecord] = field(default_factory=list)  # initial INVITEs and 2xx (first four)
    streams: list = field(default_factory=list)  # RtpStream, filled when the call is retired
    findings: list[Finding] = field(default_factory=list)
    outcome: Outcome | None = None
    timeout_kind: str | None = None  # "no_response", "trying_only", "ringing"

    @property
    def partial(self) -> bool:
        return self.started_before_capture or self.open_at_end

    @property
    def start(self) -> float:
        return self.invite_ts if self.invite_ts is not None else self.first_ts

    @property
    def end(self) -> float:
        for ts in (self.bye_ts, self.final_ts):
            if ts is not None:
                return ts
        return self.last_ts

    @property
    def pdd_ms(self) -> float | None:
        """Post-dial delay: first INVITE to first ringing (18x)."""
        if self.invite_ts is None or self.ringing_ts is None:
            return None
        return (self.ringing_ts - self.invite_ts) * 1000.0

    @property
    def setup_ms(self) -> float | None:
        """Setup time: first INVITE to the 2xx that answered it."""
        if self.invite_ts is None or self.answer_ts is None:
            return None
        return (self.answer_ts - self.invite_ts) * 1000.0

    @property
    def duration_s(self) -> float | None:
        """Talk time: answer to BYE (to the end of the capture for a call still up)."""
        if self.answer_ts is None:
            return None
        end = self.bye_ts if self.bye_ts is not None else self.last_ts
        return max(0.0, end - self.answer_ts)

    @property
    def identity(self) -> IdentityStatus | None:
        """The caller identity (STIR/SHAKEN) the last initial INVITE carried; None if no INVITE was captured."""
        invite = next((r for r in reversed(self.addresses) if r.sender == "caller" and r.message == "INVITE"), None)
        if invite is None:
            return None
        return check_identity(invite.identity, self.from_user, invite.ts, invite.frame)

    @property
    def completed_elsewhere(self) -> bool:
        """CANCEL with Reason 'call completed elsewhere' (RFC 3326; Q.850 26 says the same)."""
        for reason in self.reasons:
            if reason.protocol == "SIP" and reason.cause == 200:
                return True
            if reason.protocol == "Q.850" and reason.cause == 26:
                return True
            if reason.text and "elsewhere" in reason.text.lower():
                return True
        return False

    def timed_out(self, now: float, invite_timeout: float) -> bool:
        """Timer B (RFC 3261 §17.1.1.2) runs only until a provisional response comes; after one, a proxy's
        Timer C (3 min, §16.6 step 11) from the last provisional is the limit."""
        if self.invite_ts is None:
            return False
        provisional = max((ts for ts in (self.trying_ts, self.ringing_ts) if ts is not None), default=None)
        if provisional is None:
            return now - self.invite_ts >= invite_timeout
        return now - provisional >= TIMER_C

    def decide(self, capture_end: float, invite_timeout: float) -> Outcome:
        """Set and return the outcome, given the end of the capture (the calls still open stay so)."""
        self.outcome = self._outcome(capture_end, invite_timeout)
        return self.outcome

    def _outcome(self, capture_end: float, invite_timeout: float) -> Outcome:
        state = self.state
        if self.answer_ts is not None or state in (CallState.CONFIRMED, CallState.ENDED):
            if state not in (CallState.ENDED, CallState.REJECTED):
                self.open_at_end = True
            return Outcome.ANSWERED
        if state == CallState.REJECTED:
            code = self.final_status or 0
            if code in AUTH_CHALLENGES:
                if self.final_ts is not None and capture_end - self.final_ts < invite_timeout:
                    self.open_at_end = True  # the retried INVITE may come after the end of the capture
                    return Outcome.IN_PROGRESS
                return Outcome.AUTH_FAILED
            outcome = invite_outcome(code, rang=self.ringing_ts is not None)
            if outcome == Outcome.CANCELLED and self.completed_elsewhere:
                return Outcome.REDIRECTED
            return outcome
        if state == CallState.TIMED_OUT:
            return self._timed_out()
        if state == CallState.CANCELLING:
            return Outcome.REDIRECTED if self.completed_elsewhere else Outcome.CANCELLED
        if state in EARLY_STATES and state != CallState.CANCELLING and self.timed_out(capture_end, invite_timeout):
            self.state = CallState.TIMED_OUT
            return self._timed_out()
        self.open_at_end = True
        return Outcome.IN_PROGRESS

    def _timed_out(self) -> Outcome:
        if self.ringing_ts is not None:
            self.timeout_kind = "ringing"
            return Outcome.NO_ANSWER
        self.timeout_kind = "trying_only" if self.trying_ts is not None else "no_response"
        return Outcome.TIMEOUT
