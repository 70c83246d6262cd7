"""The sans-IO analysis core: fed datagrams and ticks with capture timestamps, it returns events.

No capture library, no wall clock, no printing: the file reader and the live capture drive the same
`Analyzer`. Time only moves with the timestamps it is given, so INVITE timeouts fire at the same place
in a capture whether it is read in a second or watched for an hour.

    analyzer = Analyzer()
    for datagram in datagrams:
        for event in analyzer.feed(datagram):
            ...
    events = analyzer.close()      # decides every call still open at the end of the capture
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sipwatch.core.calls import AddressRecord, Call, MessageRecord, SdpRecord
from sipwatch.core.findings import MediaThresholds, call_findings
from sipwatch.core.media import MediaTracker, RtpStream
from sipwatch.core.states import FINAL_STATES, CallEvent, CallState, next_state
from sipwatch.model import Datagram, ProblemLog, Severity, Transport, hostport
from sipwatch.sip.framing import StreamFramer
from sipwatch.sip.message import SipMessage, SipParseError, TruncatedMessage, starts_like_sip
from sipwatch.sip.sdp import SdpParseError
from sipwatch.sip.text import to_int

T1 = 0.5  # RFC 3261 §17.1.1.1
MAX_FRAMERS = 4096  # SIP streams followed at once


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """Every threshold of the core, in one place (docs/kpi.md explains each)."""

    invite_timeout: float = 64 * T1  # Timer B: no final response to an INVITE
    transaction_timeout: float = 64 * T1  # Timer F: no final response to a non-INVITE request
    linger: float = 64 * T1  # keep a finished call this long for late retransmissions
    dialog_idle_timeout: float = 4 * 3600.0  # an answered call silent this long is retired as open
    max_records_per_call: int = 2000
    sweep_interval: float = 1.0  # how often (capture time) timers are checked
    framer_idle_timeout: float = 300.0  # a TCP direction silent this long loses its framer (and partial message)
    # live capture: unattached streams (RTP heuristic) silent this long leave the core, see take_expired_streams();
    # None (files) keeps them to the end of the capture
    unattached_idle_timeout: float | None = None
    rtp_heuristic: bool = False  # follow RTP nobody signalled (listed as unattached streams)
    keep_frames: bool = False  # keep every RTP packet's frame number (8 bytes a packet), for sipwatch extract
    media: MediaThresholds = field(default_factory=MediaThresholds)


@dataclass(frozen=True, slots=True)
class CallFinished:
    """A call is decided and leaves the core's memory."""

    call: Call


@dataclass(slots=True)
class _Transaction:
    method: str
    first_ts: float
    requests: int = 0
    final_status: int | None = None
    responses: set[int] = field(default_factory=set)


@dataclass
class SipStats:
    """Capture-wide SIP counters. Message counts include retransmissions, as tshark's sip,stat does."""

    messages: int = 0
    retransmissions: int = 0
    requests: Counter = field(default_factory=Counter)  # method -> messages
    responses: Counter = field(default_factory=Counter)  # code -> messages
    transactions: dict[str, Counter] = field(default_factory=dict)  # method -> final status/"timeout" -> n
    by_transport: Counter = field(default_factory=Counter)
    ports: set[tuple[str, int]] = field(default_factory=set)  # (transport, port) pairs SIP was seen on
    parse_errors: int = 0  # counted in `messages`, but unusable for calls
    truncated: int = 0  # cut by the capture inside the headers; not counted in `messages`
    first_ts: float | None = None
    last_ts: float | None = None


MAX_METHODS = 256  # distinct request methods counted by name (RFC 3261 and its extensions define about 14)

# methods that belong to an INVITE dialog; the others are counted as standalone transactions
_CALL_METHODS = frozenset(("INVITE", "ACK", "CANCEL", "BYE", "PRACK", "UPDATE"))
_DIALOG_METHODS = frozenset(("INFO", "REFER", "NOTIFY", "MESSAGE"))


class Analyzer:
    def __init__(self, config: AnalyzerConfig | None = None, problems: ProblemLog | None = None) -> None:
        self.config = config or AnalyzerConfig()
        self.problems = problems if problems is not None else ProblemLog()
        self.stats = SipStats()
        self.calls: dict[str, Call] = {}
        self.finished: int = 0
        self.started: int = 0  # calls seen so far: each call's `number`
        self._transactions: dict[tuple, _Transaction] = {}
        self._framers: dict[tuple, StreamFramer] = {}
        self._framer_seen: dict[tuple, float] = {}  # capture time of each TCP direction's last segment
        self._next_expiry = float("-inf")
        self._now = float("-inf")
        self._next_sweep = float("-inf")
        self.media = MediaTracker(self.config.rtp_heuristic, self.config.keep_frames, self.problems)
        self._media_packet = self.media.packet

    # --- input ----------------------------------------------------------------------------------

    def feed(self, datagram: Datagram) -> list[CallFinished]:
        ts = datagram.ts
        events: list[CallFinished] = []
        if ts > self._now:
            self._now = ts
            if ts >= self._next_sweep:
                events = self._sweep(ts)
        payload = datagram.payload
        if datagram.transport is Transport.TCP:
            self._feed_stream(datagram)
        elif starts_like_sip(payload):
            self._message(payload, datagram)
        else:
            self._media_packet(
                datagram.frame, ts, datagram.src, datagram.sport, datagram.dst, datagram.dport, payload
            )
        return events

    def tick(self, ts: float) -> list[CallFinished]:
        """Capture time has reached `ts` (live capture on a quiet line)."""
        if ts <= self._now:
            return []
        self._now = ts
        return self._sweep(ts)

    def close(self) -> list[CallFinished]:
        """The capture ended: decide every call still in memory."""
        end = self._now if self._now != float("-inf") else 0.0
        for tx in self._transactions.values():
            self._count_transaction(tx, end)
        self._transactions.clear()
        for key, framer in self._framers.items():
            if framer.buffer.strip(b"\r\n"):
                self.problems.report(
                    "incomplete_message",
                    f"TCP stream {key[0]}:{key[1]} -> {key[2]}:{key[3]} ended inside a SIP message "
                    f"({len(framer.buffer)} bytes unframed)",
                )
        self._framers.clear()
        self._framer_seen.clear()
        events = [self._retire(call, end) for call in list(self.calls.values())]
        return events

    # --- streams --------------------------------------------------------------------------------

    def _feed_stream(self, datagram: Datagram) -> None:
        key = (datagram.src, datagram.sport, datagram.dst, datagram.dport)
        framer = self._framers.get(key)
        if framer is None:
            # only streams that start like SIP get a framer (SIP on any port, not every TCP flow)
            if not starts_like_sip(datagram.payload.lstrip(b"\r\n")):
                return
            if len(self._framers) >= MAX_FRAMERS:  # the oldest stream gives way (a flood of half-sent messages)
                old_key = next(iter(self._framers))
                old = self._framers.pop(old_key)
                if old.buffer.strip(b"\r\n"):
                    self.problems.report(
                        "incomplete_message",
                        f"TCP stream {old_key[0]}:{old_key[1]} -> {old_key[2]}:{old_key[3]} dropped with "
                        f"{len(old.buffer)} bytes unframed: more than {MAX_FRAMERS} SIP streams open",
                        datagram.frame,
                    )
            framer = self._framers[key] = StreamFramer()
        self._framer_seen[key] = datagram.ts
        skipped = framer.skipped
        for message in framer.feed(datagram.payload):
            self._message(message, datagram)
        if framer.skipped != skipped:
            self.problems.report(
                "stream_resync",
                f"{framer.skipped - skipped} bytes of {key[0]}:{key[1]} -> {key[2]}:{key[3]} "
                "did not frame as SIP and were skipped" + (f" ({framer.reason})" if framer.reason else ""),
                datagram.frame,
            )

    # --- messages -------------------------------------------------------------------------------

    def _message(self, data: bytes, datagram: Datagram) -> None:
        stats = self.stats
        try:
            msg = SipMessage.parse(data)
        except TruncatedMessage as exc:
            stats.truncated += 1
            self.problems.report("truncated_message", f"SIP message cut short: {exc}", datagram.frame)
            return
        except SipParseError as exc:
            self._count(datagram)
            stats.parse_errors += 1
            self._count_start_line(data)
            self.problems.report("sip_parse", f"malformed SIP message: {exc}", datagram.frame, severity=Severity.ERROR)
            return
        self._count(datagram)
        for warning in msg.warnings:
            self.problems.report("sip_warning", warning, datagram.frame)
        if msg.method is not None:
            self._count_method(msg.method)
        else:
            stats.responses[msg.status] += 1
        # a TCP datagram is stream bytes the framer cut by Content-Length; UDP, SCTP, WebSocket and TLS records
        # carry whole messages, whose body can be shorter than declared
        if msg.content_length is not None and msg.body_length_mismatch < 0 and datagram.transport is not Transport.TCP:
            self.problems.report(
                "content_length",
                f"Content-Length {msg.content_length} but only {msg.content_length + msg.body_length_mismatch}"
                " body bytes captured",
                datagram.frame,
            )
        try:
            retransmission = self._transaction(msg, datagram.ts)
        except SipParseError as exc:
            self.problems.report("sip_parse", f"malformed SIP message: {exc}", datagram.frame, severity=Severity.ERROR)
            return
        if retransmission:
            stats.retransmissions += 1
        method = msg.cseq_method
        call = self.calls.get(msg.call_id)
        if call is None:
            if method not in _CALL_METHODS:
                return
            self.started += 1
            call = self.calls[msg.call_id] = Call(msg.call_id, datagram.ts, datagram.frame, self.started)
        elif method not in _CALL_METHODS and method not in _DIALOG_METHODS:
            return
        self._call_message(call, msg, datagram, retransmission)

    def _count(self, datagram: Datagram) -> None:
        stats = self.stats
        stats.messages += 1
        if stats.first_ts is None:
            stats.first_ts = datagram.ts
        stats.last_ts = datagram.ts
        stats.by_transport[str(datagram.transport)] += 1
        stats.ports.add((str(datagram.transport), datagram.sport))
        stats.ports.add((str(datagram.transport), datagram.dport))

    def _count_start_line(self, data: bytes) -> None:
        """A message that failed to parse still counts by its start line (tshark counts it too)."""
        line = data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        parts = line.split(" ")
        code = to_int(parts[1]) if parts[0] == "SIP/2.0" and len(parts) > 1 else None
        if code is not None:
            self.stats.responses[code] += 1
        elif len(parts) >= 3:
            self._count_method(parts[0])

    def _count_method(self, method: str) -> None:
        """Requests by method; past MAX_METHODS distinct names (a flood of invented methods) they count as
        "other", so the table stays bounded."""
        requests = self.stats.requests
        if method in requests or len(requests) < MAX_METHODS:
            requests[method] += 1
        else:
            requests["other"] += 1

    def _transaction(self, msg: SipMessage, ts: float) -> bool:
        """Track the transaction (RFC 3261 §17); return True when the message is a retransmission."""
        via = msg.top_via
        branch = via.branch if via is not None else None
        if branch and branch.startswith("z9hG4bK"):
            key = (branch, msg.cseq_method)
        else:  # RFC 2543 peers: no magic cookie (RFC 3261 §17.2.3)
            key = (msg.call_id, msg.cseq, msg.cseq_method, msg.from_.tag)
        tx = self._transactions.get(key)
        if tx is None:
            tx = self._transactions[key] = _Transaction(msg.cseq_method, ts)
        if msg.method is not None:
            tx.requests += 1
            return tx.requests > 1
        status = msg.status
        if status in tx.responses:
            return True
        tx.responses.add(status)
        if status >= 200 and tx.final_status is None:
            tx.final_status = status
        return False

    def _call_message(self, call: Call, msg: SipMessage, datagram: Datagram, retransmission: bool) -> None:
        ts = datagram.ts
        call.last_ts = ts
        call.messages += 1
        if retransmission:
            call.retransmissions += 1
        if len(call.records) < self.config.max_records_per_call:
            call.records.append(
                MessageRecord(
                    datagram.frame, ts, f"{hostport(datagram.src, datagram.sport)}",
                    f"{hostport(datagram.dst, datagram.dport)}", str(datagram.transport), msg.label,
                    msg.cseq, msg.cseq_method, msg.status, retransmission,
                )
            )
        else:
            call.records_dropped += 1
        if msg.body and not retransmission:
            self._sdp(call, msg, datagram)
        event = self._call_event(call, msg, datagram, retransmission)
        if len(call.addresses) < 4 and (
            (msg.method == "INVITE" and not msg.to.tag and not retransmission)
            or (msg.status is not None and 200 <= msg.status < 300 and msg.cseq_method == "INVITE"
                and msg.cseq == call.invite_cseq)  # 2xx retransmissions too: an ALG may rewrite one copy
        ):
            self._addresses(call, msg, datagram, retransmission)
        if event is None:
            return
        new = next_state(call.state, event)
        if new is None:
            call.anomalies.append(f"frame {datagram.frame}: {msg.label} in state {call.state}")
            return
        call.state = new

    def _addresses(self, call: Call, msg: SipMessage, datagram: Datagram, retransmission: bool) -> None:
        try:
            contact = msg.contacts[0].uri.host if msg.contacts else None
        except SipParseError as exc:  # a broken Contact is evidence lost, not a message lost
            self.problems.report("sip_warning", f"unusable Contact header: {exc}", datagram.frame)
            contact = None
        via = msg.top_via
        call.addresses.append(AddressRecord(
            datagram.frame, datagram.ts, "caller" if msg.is_request else "callee", msg.label, datagram.src, contact,
            via.host if via else None, via.received if via else None, via.rport if via else None,
            via.port if via else None, retransmission,
            msg.body_length_mismatch if datagram.transport is not Transport.TCP else 0,
            tuple(msg.headers.get("identity", ())),
        ))

    def _sdp(self, call: Call, msg: SipMessage, datagram: Datagram) -> None:
        try:
            sdp = msg.sdp
        except SdpParseError as exc:
            self.problems.report("sdp_parse", f"malformed SDP: {exc}", datagram.frame)
            return
        if sdp is None:
            return
        # the sender of a request is the caller when its From-tag is the caller's; responses go the other way
        from_caller = call.from_tag is None or msg.from_.tag == call.from_tag
        sender = "caller" if msg.is_request == from_caller else "callee"
        call.sdp.append(
            SdpRecord(
                datagram.frame, datagram.ts, sender, msg.label, datagram.src, sdp.origin_address,
                [m.connection for m in sdp.media], [m.port for m in sdp.media], [m.direction for m in sdp.media],
                [m.payload_types for m in sdp.media],
            )
        )
        self.media.expect(call.call_id, sender, sdp, datagram.src, datagram.frame)

    def _call_event(self, call: Call, msg: SipMessage, datagram: Datagram, retransmission: bool) -> CallEvent | None:
        """Map a message to a CallEvent, recording the call's timeline on the way."""
        ts = datagram.ts
        method = msg.method
        first = call.messages == 1
        if method == "INVITE":
            if msg.to.tag:  # re-INVITE inside the dialog
                if first:
                    call.started_before_capture = True
                    call.state = CallState.CONFIRMED
                return None
            if call.invite_cseq != msg.cseq:
                self._new_attempt(call, msg, datagram)
            return CallEvent.INVITE
        if method is None:
            if msg.cseq_method != "INVITE":
                if msg.cseq_method == "BYE" and first:
                    call.started_before_capture = True
                    call.state = CallState.ENDED
                return None
            if call.invite_cseq is None:  # the INVITE itself was not captured
                call.started_before_capture = True
                call.invite_cseq = msg.cseq
            if msg.cseq != call.invite_cseq:
                return None  # a response to a re-INVITE or to an earlier attempt
            return self._response_event(call, msg, datagram, retransmission)
        if first:  # ACK, BYE, CANCEL... as the first message: the call began before the capture
            call.started_before_capture = True
            call.state = CallState.CONFIRMED if msg.to.tag else CallState.CALLING
        if method == "ACK":
            if msg.cseq == call.invite_cseq and call.ack_ts is None and call.answer_ts is not None:
                call.ack_ts = ts
            return CallEvent.ACK
        if method == "CANCEL":
            if call.cancel_ts is None:
                call.cancel_ts, call.cancel_frame = ts, datagram.frame
                self._reasons(call, msg, "CANCEL")
            return CallEvent.CANCEL
        if method == "BYE":
            if call.bye_ts is None:
                call.bye_ts, call.bye_frame = ts, datagram.frame
                if call.from_tag is not None:
                    call.bye_by = "caller" if msg.from_.tag == call.from_tag else "callee"
                self._reasons(call, msg, "BYE")
            return CallEvent.BYE
        return None

    def _new_attempt(self, call: Call, msg: SipMessage, datagram: Datagram) -> None:
        call.attempts += 1
        call.invite_cseq = msg.cseq
        if call.invite_ts is None:
            call.invite_ts, call.invite_frame = datagram.ts, datagram.frame
            call.caller = hostport(datagram.src, datagram.sport)
            call.callee = hostport(datagram.dst, datagram.dport)
            call.transport = str(datagram.transport)
            call.from_uri, call.from_user = msg.from_.uri.raw, msg.from_.user
            call.to_uri, call.to_user = msg.to.uri.raw, msg.to.user
            call.from_tag = msg.from_.tag
            call.user_agent = msg.user_agent
            if call.messages > 1:  # something of this Call-ID came before its INVITE
                call.started_before_capture = True
        # a new attempt after a final response starts over (RFC 3261 §22.2: answer to a challenge)
        call.final_status = call.final_phrase = call.final_ts = call.final_frame = None

    def _response_event(self, call: Call, msg: SipMessage, datagram: Datagram, retransmission: bool) -> CallEvent:
        status = msg.status
        ts = datagram.ts
        if status == 100:
            if call.trying_ts is None:
                call.trying_ts = ts
            return CallEvent.TRYING
        if status < 200:
            if call.ringing_ts is None:
                call.ringing_ts, call.ringing_status = ts, status
            if msg.to.tag:
                call.early_tags.add(msg.to.tag)
            return CallEvent.RINGING
        if call.server is None:
            call.server = msg.user_agent
        if status < 300:
            if call.answer_ts is None:
                call.answer_ts, call.answer_frame = ts, datagram.frame
                call.to_tag = msg.to.tag
                call.final_status, call.final_phrase = status, msg.reason_phrase
                call.final_ts, call.final_frame = ts, datagram.frame
            return CallEvent.ANSWER
        if call.final_status is None:
            call.final_status, call.final_phrase = status, msg.reason_phrase
            call.final_ts, call.final_frame = ts, datagram.frame
            call.retry_after = msg.retry_after
            if status in (401, 407):
                call.auth_challenges += 1
            self._reasons(call, msg, f"{status}")
        return CallEvent.REJECT

    def _reasons(self, call: Call, msg: SipMessage, source: str) -> None:
        reasons = msg.reasons
        if reasons:
            call.reasons = reasons
            call.reason_source = source

    # --- timers and memory ------------------------------------------------------------------------

    def _sweep(self, now: float) -> list[CallFinished]:
        config = self.config
        self._next_sweep = now + config.sweep_interval
        events = []
        for call in list(self.calls.values()):
            state = call.state
            if state in FINAL_STATES:
                if now - call.last_ts > config.linger:
                    events.append(self._retire(call, now))
            elif call.invite_ts is not None and call.answer_ts is None and state != CallState.TIMED_OUT:
                if call.timed_out(now, config.invite_timeout):
                    call.state = next_state(state, CallEvent.TIMER_B) or state
            elif now - call.last_ts > config.dialog_idle_timeout:
                events.append(self._retire(call, now))
        expiry = now >= self._next_expiry
        # transactions leave once over (a branch seen again later is a new transaction, not a retransmission):
        # all of them every 10 s of capture time; while there are many, at each sweep, the oldest first up to
        # the first one still running (the table is in order of arrival, so that is nearly all that are over)
        if expiry or len(self._transactions) > 1024:
            over = config.transaction_timeout + config.linger
            done = []
            for key, tx in self._transactions.items():
                if now - tx.first_ts > over:
                    done.append(key)
                elif not expiry:
                    break
            for key in done:
                self._count_transaction(self._transactions.pop(key), now)
        if expiry:
            self._next_expiry = now + 10 * config.sweep_interval
            self._expire(now)
        return events

    def _expire(self, now: float) -> None:
        """Idle state leaves by capture time: TCP framers (one with nothing buffered costs nothing to rebuild;
        one holding part of a message is given up after `framer_idle_timeout`) and, live, unattached streams."""
        config = self.config
        many = len(self._framers) > 4096
        for key, seen in list(self._framer_seen.items()):
            idle = now - seen
            framer = self._framers[key]
            if framer.buffer.strip(b"\r\n"):
                if idle <= config.framer_idle_timeout:
                    continue
                self.problems.report(
                    "incomplete_message",
                    f"TCP stream {key[0]}:{key[1]} -> {key[2]}:{key[3]} idle {idle:.0f} s inside a SIP message "
                    f"({len(framer.buffer)} bytes unframed, given up)",
                )
            elif idle <= config.linger and not many:
                continue
            del self._framers[key], self._framer_seen[key]
        if config.unattached_idle_timeout is not None:
            self.media.expire_unattached(now - config.unattached_idle_timeout)

    def take_expired_streams(self) -> list[RtpStream]:
        """Unattached streams that went idle (live capture, `unattached_idle_timeout`), handed over once."""
        return self.media.take_expired()

    def memory(self) -> dict[str, int]:
        """How many entries each of the core's growing structures holds (tests check a long run stays flat)."""
        return {"calls": len(self.calls), "transactions": len(self._transactions), "framers": len(self._framers),
                **self.media.memory()}

    def _count_transaction(self, tx: _Transaction, now: float) -> None:
        if tx.method in ("INVITE", "ACK"):
            return
        if tx.final_status is not None:
            result: int | str = tx.final_status
        elif now - tx.first_ts >= self.config.transaction_timeout:
            result = "timeout"
        elif tx.requests == 0:
            result = "no_request"  # only responses captured
        else:
            result = "pending"
        self.stats.transactions.setdefault(tx.method, Counter())[result] += 1

    def _retire(self, call: Call, now: float) -> CallFinished:
        del self.calls[call.call_id]
        call.decide(now, self.config.invite_timeout)
        call.streams = self.media.release(call.call_id)
        call.findings.extend(call_findings(call, call.streams, self.config.media, now))
        self.finished += 1
        return CallFinished(call)

    def unattached_streams(self) -> list[RtpStream]:
        return self.media.unattached()
