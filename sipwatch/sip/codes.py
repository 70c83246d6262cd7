"""SIP response codes: the one table of what each code is called and which call outcome it means.

Every other module asks this table; none keeps its own list of codes. The diagnosis knowledge base
(causes, advice) is keyed by the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sipwatch.model import Outcome


@dataclass(frozen=True, slots=True)
class StatusCode:
    code: int
    phrase: str
    outcome: Outcome  # the outcome of an INVITE that ends with this code
    outcome_if_rang: Outcome | None = None  # a different outcome when the callee had been ringing


_O = Outcome
_TABLE = [
    # 1xx: not outcomes, but they have names
    StatusCode(100, "Trying", _O.IN_PROGRESS),
    StatusCode(180, "Ringing", _O.IN_PROGRESS),
    StatusCode(181, "Call Is Being Forwarded", _O.IN_PROGRESS),
    StatusCode(182, "Queued", _O.IN_PROGRESS),
    StatusCode(183, "Session Progress", _O.IN_PROGRESS),
    StatusCode(199, "Early Dialog Terminated", _O.IN_PROGRESS),
    # 2xx
    StatusCode(200, "OK", _O.ANSWERED),
    StatusCode(202, "Accepted", _O.ANSWERED),
    StatusCode(204, "No Notification", _O.ANSWERED),
    # 3xx (RFC 3261 §21.3)
    StatusCode(300, "Multiple Choices", _O.REDIRECTED),
    StatusCode(301, "Moved Permanently", _O.REDIRECTED),
    StatusCode(302, "Moved Temporarily", _O.REDIRECTED),
    StatusCode(305, "Use Proxy", _O.REDIRECTED),
    StatusCode(380, "Alternative Service", _O.REDIRECTED),
    # 4xx (RFC 3261 §21.4 and later RFCs)
    StatusCode(400, "Bad Request", _O.FAILED),
    StatusCode(401, "Unauthorized", _O.AUTH_FAILED),
    StatusCode(402, "Payment Required", _O.FAILED),
    StatusCode(403, "Forbidden", _O.BLOCKED),
    StatusCode(404, "Not Found", _O.NOT_FOUND),
    StatusCode(405, "Method Not Allowed", _O.FAILED),
    StatusCode(406, "Not Acceptable", _O.FAILED),
    StatusCode(407, "Proxy Authentication Required", _O.AUTH_FAILED),
    StatusCode(408, "Request Timeout", _O.TIMEOUT, _O.NO_ANSWER),
    StatusCode(410, "Gone", _O.NOT_FOUND),
    StatusCode(412, "Conditional Request Failed", _O.FAILED),
    StatusCode(413, "Request Entity Too Large", _O.FAILED),
    StatusCode(414, "Request-URI Too Long", _O.FAILED),
    StatusCode(415, "Unsupported Media Type", _O.FAILED),
    StatusCode(416, "Unsupported URI Scheme", _O.FAILED),
    StatusCode(417, "Unknown Resource-Priority", _O.FAILED),
    StatusCode(420, "Bad Extension", _O.FAILED),
    StatusCode(421, "Extension Required", _O.FAILED),
    StatusCode(422, "Session Interval Too Small", _O.FAILED),
    StatusCode(423, "Interval Too Brief", _O.FAILED),
    StatusCode(424, "Bad Location Information", _O.FAILED),
    StatusCode(428, "Use Identity Header", _O.BLOCKED),
    StatusCode(429, "Provide Referrer Identity", _O.FAILED),
    StatusCode(430, "Flow Failed", _O.FAILED),
    StatusCode(433, "Anonymity Disallowed", _O.BLOCKED),
    StatusCode(436, "Bad Identity Info", _O.BLOCKED),
    StatusCode(437, "Unsupported Credential", _O.BLOCKED),
    StatusCode(438, "Invalid Identity Header", _O.BLOCKED),
    StatusCode(439, "First Hop Lacks Outbound Support", _O.FAILED),
    StatusCode(440, "Max-Breadth Exceeded", _O.FAILED),
    StatusCode(469, "Bad Info Package", _O.FAILED),
    StatusCode(470, "Consent Needed", _O.BLOCKED),
    StatusCode(480, "Temporarily Unavailable", _O.UNAVAILABLE, _O.NO_ANSWER),
    StatusCode(481, "Call/Transaction Does Not Exist", _O.FAILED),
    StatusCode(482, "Loop Detected", _O.FAILED),
    StatusCode(483, "Too Many Hops", _O.FAILED),
    StatusCode(484, "Address Incomplete", _O.NOT_FOUND),
    StatusCode(485, "Ambiguous", _O.NOT_FOUND),
    StatusCode(486, "Busy Here", _O.BUSY),
    StatusCode(487, "Request Terminated", _O.CANCELLED),
    StatusCode(488, "Not Acceptable Here", _O.FAILED),
    StatusCode(489, "Bad Event", _O.FAILED),
    StatusCode(491, "Request Pending", _O.FAILED),
    StatusCode(493, "Undecipherable", _O.FAILED),
    StatusCode(494, "Security Agreement Required", _O.FAILED),
    # 5xx (RFC 3261 §21.5)
    StatusCode(500, "Server Internal Error", _O.SERVER_ERROR),
    StatusCode(501, "Not Implemented", _O.SERVER_ERROR),
    StatusCode(502, "Bad Gateway", _O.SERVER_ERROR),
    StatusCode(503, "Service Unavailable", _O.CAPACITY),
    StatusCode(504, "Server Time-out", _O.SERVER_ERROR),
    StatusCode(505, "Version Not Supported", _O.SERVER_ERROR),
    StatusCode(513, "Message Too Large", _O.SERVER_ERROR),
    StatusCode(555, "Push Notification Service Not Supported", _O.SERVER_ERROR),
    StatusCode(580, "Precondition Failure", _O.SERVER_ERROR),
    # 6xx (RFC 3261 §21.6, RFC 8197, RFC 8688)
    StatusCode(600, "Busy Everywhere", _O.BUSY),
    StatusCode(603, "Decline", _O.DECLINED),
    StatusCode(604, "Does Not Exist Anywhere", _O.NOT_FOUND),
    StatusCode(606, "Not Acceptable", _O.FAILED),
    StatusCode(607, "Unwanted", _O.BLOCKED),
    StatusCode(608, "Rejected", _O.BLOCKED),
]

STATUS_CODES: dict[int, StatusCode] = {entry.code: entry for entry in _TABLE}

_CLASS_DEFAULTS = {
    1: ("Provisional", _O.IN_PROGRESS),
    2: ("Success", _O.ANSWERED),
    3: ("Redirection", _O.REDIRECTED),
    4: ("Client Error", _O.FAILED),
    5: ("Server Error", _O.SERVER_ERROR),
    6: ("Global Failure", _O.FAILED),
}

AUTH_CHALLENGES = frozenset((401, 407))


def lookup(code: int) -> StatusCode:
    """The table entry for a code; an unlisted code gets its class's meaning (RFC 3261 §8.1.3.2)."""
    entry = STATUS_CODES.get(code)
    if entry is None:
        phrase, outcome = _CLASS_DEFAULTS.get(code // 100, ("Unknown", _O.FAILED))
        entry = StatusCode(code, phrase, outcome)
    return entry


def invite_outcome(code: int, rang: bool) -> Outcome:
    """The outcome of a call whose INVITE got this final response."""
    entry = lookup(code)
    if rang and entry.outcome_if_rang is not None:
        return entry.outcome_if_rang
    return entry.outcome
