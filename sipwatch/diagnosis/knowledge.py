"""The diagnosis knowledge base: one table explaining every failure sipwatch can name.

Each entry (`Knowledge`) is keyed the way the rest of sipwatch names things:

* ``sip:<code>`` for a SIP final response (every 4xx/5xx/6xx of `sipwatch.sip.codes`), plus the class
  entries ``sip:4xx``, ``sip:5xx`` and ``sip:6xx`` for codes the table does not list;
* ``q850:<cause>`` for an ITU-T Q.850 cause (as carried in a Reason header or by a gateway), plus
  ``q850:unknown``;
* ``finding:<kind>`` for a detector's finding (docs/findings.md) or a call classification such as
  ``finding:route_advance``.

The table is data: every entry is written out below, and the lookup functions only index it. Nothing here
decides anything about a capture; the core's detectors do, and the reports use this table to explain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sipwatch.sip.codes import STATUS_CODES


class Category(StrEnum):
    """Where the cause of a failure lies: the first question a person troubleshooting asks."""

    USER = "user"
    DIALING = "dialing"
    AUTH = "auth"
    BLOCKING = "blocking"
    CAPACITY = "capacity"
    NAT_ALG = "nat_alg"
    NETWORK = "network"
    CODEC = "codec"
    SERVER = "server"
    NORMAL = "normal"


CATEGORY_DESCRIPTIONS: dict[Category, str] = {
    Category.USER: "people rather than equipment: the callee busy, not answering, away or refusing, or the "
    "caller giving up first",
    Category.DIALING: "the number or address itself: unknown, unassigned, incomplete, ambiguous or no longer "
    "in service",
    Category.AUTH: "credentials and security negotiation: the sender could not prove who it is to a "
    "registrar, proxy or trunk",
    Category.BLOCKING: "a deliberate refusal by policy: barred destinations, account or fraud rules, "
    "unverified caller identity (STIR/SHAKEN), spam labelling",
    Category.CAPACITY: "not enough room: channel, concurrent-call or calls-per-second limits, overload, "
    "congestion",
    Category.NAT_ALG: "address translation in the way: NAT, firewalls and SIP ALGs that rewrite or drop "
    "signalling or media",
    Category.NETWORK: "reachability and transport: devices or hops that do not reply, timers that expire, "
    "packet loss and jitter",
    Category.CODEC: "media negotiation: no codec or media format in common, or RTP that differs from what "
    "the SDP agreed",
    Category.SERVER: "a SIP element (PBX, proxy, gateway, phone software) failing or misconfigured: "
    "internal errors, unsupported features, routing loops",
    Category.NORMAL: "expected behaviour, not a fault: normal clearing, cancelled forks, route advance, "
    "artefacts of the capture itself",
}

SEED_TERMS: tuple[str, ...] = (
    # the six failure reasons of the call-status article (Q.850 17, 19, 21, 18, 102, 31)
    "agent busy",
    "no answer",
    "call declined",
    "device not responding",
    "connection timeout",
    "call redirected by system",
    # its missed-call filters that a capture can show
    "briefly abandoned",
    "abandoned",
    "rejection list",
    # the four failure shapes of the troubleshooting article
    "never connects",
    "audio broken",
    "rejected or blocked",
    "capacity",
)


@dataclass(frozen=True, slots=True)
class Knowledge:
    """What one status code, cause or finding means, and what agents and admins should make of it.

    `retry_can_help` is True when placing the same call again, with nobody changing anything, has a real
    chance to succeed (later, over another route, or because the condition was passing); False when the
    cause is deliberate, permanent, or needs a configuration change first.
    """

    key: str
    title: str
    category: Category
    retry_can_help: bool
    meaning: str
    agent: str
    admin: str
    situations: tuple[str, ...] = ()
    seed_terms: tuple[str, ...] = ()
    related: tuple[str, ...] = ()


_C = Category


def _sip(
    code: int, category: Category, retry: bool, meaning: str, agent: str, admin: str,
    situations: tuple[str, ...] = (), seed_terms: tuple[str, ...] = (), related: tuple[str, ...] = (),
) -> Knowledge:
    """An entry for a listed status code; its title comes from the one table of codes."""
    title = f"{code} {STATUS_CODES[code].phrase}"
    return Knowledge(f"sip:{code}", title, category, retry, meaning, agent, admin, situations, seed_terms,
                     related)


# Agent and admin wording shared by the rarer codes of one category (their meaning stays specific).
_SHARED: dict[Category, tuple[str, str]] = {
    _C.SERVER: (
        "Two pieces of phone-system software disagreed about how to handle this request; you did nothing "
        "wrong. Unless the equipment corrects itself, calling again fails the same way, so report the time "
        "and the number called.",
        "Identify the element that produced the response (Server or User-Agent header, the Via chain) and "
        "read its Warning or Reason header; compare the failing request with one that works. These codes "
        "point at software, configuration or interoperability faults between SIP elements, which are "
        "fixed on those elements rather than by retrying.",
    ),
    _C.AUTH: (
        "Your device did not complete a security step the system asked for, so the request was refused. "
        "The account or device settings need attention; report it.",
        "The server expects a proof of identity or a security negotiation the sender did not supply. "
        "Compare the device's account, certificate and security options with what that server requires.",
    ),
    _C.BLOCKING: (
        "The call was refused on purpose by a rule on the far side or in the network, not by a fault. "
        "Dialing it again will not change the answer.",
        "Find which party refused (Server header, Reason header) and the policy behind it: caller identity "
        "presentation, account standing, or the recipient's own settings. Only lifting the restriction, or "
        "meeting its condition, lets such calls through.",
    ),
    _C.DIALING: (
        "What was dialed could not be matched to exactly one reachable person. Check the number or "
        "address before calling again.",
        "Compare the Request-URI that was sent with the dial plan and the destination's numbering; make "
        "sure the number is assigned and written in the format the next hop expects.",
    ),
    _C.NETWORK: (
        "A connection problem between two systems stopped this request; a new attempt a little later may "
        "go through.",
        "Check the reachability and stability of the path to the next hop at the time of the failure: "
        "connections and flows, bandwidth or resource reservation, and the logs of the hop that answered.",
    ),
}


def _rare(
    code: int, category: Category, retry: bool, meaning: str, situations: tuple[str, ...] = (),
    related: tuple[str, ...] = (),
) -> Knowledge:
    """A less common code: a specific meaning, with the agent/admin wording of its category."""
    agent, admin = _SHARED[category]
    seed = ("rejected or blocked",) if category == _C.BLOCKING else ("never connects",)
    return _sip(code, category, retry, meaning, agent, admin, situations, seed, related)


def _q850(
    cause: int, name: str, category: Category, retry: bool, meaning: str, agent: str, admin: str,
    situations: tuple[str, ...] = (), seed_terms: tuple[str, ...] = (), related: tuple[str, ...] = (),
) -> Knowledge:
    """An entry for a Q.850 cause; `name` is the ITU-T name of the cause."""
    return Knowledge(f"q850:{cause}", f"Q.850 {cause} {name}", category, retry, meaning, agent, admin,
                     situations, seed_terms, related)


def _finding(
    kind: str, title: str, category: Category, retry: bool, meaning: str, agent: str, admin: str,
    situations: tuple[str, ...] = (), seed_terms: tuple[str, ...] = (), related: tuple[str, ...] = (),
) -> Knowledge:
    return Knowledge(f"finding:{kind}", title, category, retry, meaning, agent, admin, situations,
                     seed_terms, related)


_ENTRIES: tuple[Knowledge, ...] = (
    # ----------------------------------------------------------------------------------------------------
    # SIP 4xx: the request as sent cannot succeed at that server
    # ----------------------------------------------------------------------------------------------------
    _rare(400, _C.SERVER, False,
          "The receiver could not parse the request: broken syntax, or a header that is missing or "
          "malformed.",
          ("A SIP ALG or SBC damaged a header while rewriting it", "Device firmware sends a non-standard "
           "header", "Oversized message truncated over UDP")),
    _sip(401, _C.AUTH, False,
         "The registrar or the called user agent wants digest credentials (WWW-Authenticate) before it "
         "accepts the request. A phone with the right password answers the challenge by itself; a call that "
         "ends on this response never proved who was calling.",
         "Your phone or softphone could not sign in for this call: it was asked for its password and had "
         "none or offered a wrong one. It is not caused by anything you did during the call; have the "
         "account settings checked.",
         "Check whether a second INVITE carrying an Authorization header followed. If none did, the device "
         "holds no credentials for that realm; if one did and drew another challenge, the auth username, "
         "password or realm is wrong, or a stale nonce is being reused. Compare the SIP account on the "
         "device and on the server, and ask trunk providers whether they authenticate by source IP "
         "instead of digest.",
         ("SIP password changed on the server but not on the phone",
          "Trunk set up for digest while the provider authorises by source address",
          "Auth username differs from the extension number and was left empty",
          "Device keeps resending an expired nonce"),
         ("never connects",),
         ("sip:407", "sip:403")),
    _rare(402, _C.BLOCKING, False,
          "Reserved by the SIP standard; where a server does send it, the account has no credit or no "
          "billing permission for this call.",
          ("Prepaid balance exhausted", "Account on hold for an unpaid invoice")),
    _sip(403, _C.BLOCKING, False,
         "The server understood the request and refuses to carry it; credentials would not change that. "
         "It is the policy answer: this caller may not make this call, from this address, to this "
         "destination.",
         "The system refused to place this call for you, for instance because the destination is outside "
         "what your line may dial or your line is barred. Calling again gives the same answer; ask an "
         "administrator.",
         "Locate the hop that sent the 403 (Server header, Via) and read its Reason or Warning header. "
         "Common causes: the trunk's source IP is not on the carrier's allow list, the presented caller ID "
         "(ANI) is not provisioned on the account, international or premium destinations are barred, the "
         "account is suspended for fraud or compliance, or a server reports bad credentials as 403 rather "
         "than 401. Fix the policy or trunk settings; retrying does nothing.",
         ("Carrier sees trunk traffic from an address it never authorised",
          "Caller ID not owned by, or not valid on, the originating account",
          "Destination country or premium range barred for the account",
          "Fraud or compliance hold on the originating number"),
         ("rejected or blocked", "never connects"),
         ("q850:21", "sip:401", "sip:607", "sip:608")),
    _sip(404, _C.DIALING, False,
         "The domain is served by the responding server, but the user or number in the Request-URI is not "
         "known there.",
         "The number you called does not exist on the system or on the carrier's network, or it was mistyped. "
         "Check the country code, prefix and digits before trying again.",
         "Compare the Request-URI actually sent with what the destination expects (E.164 or national "
         "format, prefixes added or stripped by the dial plan). If the number is right, it is unassigned or "
         "the carrier's routing data is outdated; a test call from an outside line tells a local dial-plan "
         "fault from a carrier one.",
         ("Typo or missing digits", "Dial plan sends national format where E.164 is required",
          "Extension deleted or renumbered on the PBX", "Number recently ported and routing data not yet "
          "updated", "Number that was never assigned"),
         ("never connects",),
         ("q850:1", "q850:3", "sip:410", "sip:484", "sip:604")),
    _rare(405, _C.SERVER, False,
          "The server knows the method but does not allow it for this address; its Allow header lists the "
          "methods it does take.",
          ("INVITE sent to a registrar-only or presence-only server",)),
    _rare(406, _C.SERVER, False,
          "The server could only answer with content that the request's Accept header ruled out.",
          ("Client accepting only a body type the server cannot produce",)),
    _sip(407, _C.AUTH, False,
         "A proxy on the way (often the PBX or the provider's edge) wants credentials in a "
         "Proxy-Authorization header before it routes the request. A correctly set up phone answers "
         "automatically; a call that ends here failed to authenticate to that proxy.",
         "Your device could not log in to the system that routes calls, so this call was not placed. This "
         "is an account setting problem, not something you did.",
         "Look for the retried INVITE with Proxy-Authorization. Missing: the device or PBX has no "
         "credentials for the proxy's realm. Present but challenged again: wrong auth username or password, "
         "a realm mismatch, or a trunk registered under a different account than the one sending calls. "
         "Also check that the outbound proxy configured on the device is the one holding its account.",
         ("Trunk credentials entered for registration but not for outgoing calls",
          "Outbound proxy of another provider configured on the device",
          "Password rotated on the provider portal only"),
         ("never connects",),
         ("sip:401",)),
    _sip(408, _C.NETWORK, True,
         "No final response arrived in time: the server could not reach the user before its timer ran "
         "out, or the request itself went unanswered. When the callee had been ringing, sipwatch counts the "
         "call as not answered rather than as a timeout.",
         "The called device (or the system behind it) did not react in time. If your phone rang, this is "
         "simply an unanswered call; if it never rang, your device was most likely offline or unreachable "
         "even though it looked logged in.",
         "Split the cases on whether a 180/183 preceded it. Without ringing, verify that the target is "
         "genuinely reachable and not only registered: age of the registration, NAT keepalive interval, "
         "firewall rules for SIP coming from the server, and whether the INVITE was retransmitted without "
         "ever drawing a 100 Trying. A passing network fault lets a retry succeed; repeated 408 towards one "
         "device means a stale registration.",
         ("Softphone registered on a laptop that went to sleep",
          "Expired NAT binding: the server's INVITE never reaches the phone",
          "Firewall dropping SIP towards an agent's network",
          "Forking proxy ended the attempt on its own timer while nobody picked up"),
         ("device not responding", "connection timeout", "never connects"),
         ("q850:18", "q850:102", "sip:480", "sip:504", "finding:timeout_no_response",
          "finding:timeout_trying_only", "finding:timeout_ringing")),
    _rare(410, _C.DIALING, False,
          "The user or number used to exist at this server but no longer does, and no forwarding address "
          "is known: in practice a disconnected number.",
          ("Calling a number whose subscription was cancelled", "Originating number deactivated and "
           "calling back to it"),
          ("q850:22", "sip:404")),
    _rare(412, _C.SERVER, False,
          "A conditional request (for example a PUBLISH refreshing an entity tag) referred to state the "
          "server no longer holds.",
          ("Presence publication refreshed after the server restarted",)),
    _rare(413, _C.SERVER, False,
          "The message body is bigger than the server is willing to process.",
          ("Very large SDP or multipart body",)),
    _rare(414, _C.SERVER, False,
          "The Request-URI is longer than the server is willing to interpret.",
          ("URI carrying many parameters added by chained proxies",)),
    _rare(415, _C.SERVER, False,
          "The body's format or encoding (a non-SDP body, compression) is not one the server accepts. This "
          "concerns the message format, not the voice codec.",
          ("Body sent with a Content-Type the receiver does not know",)),
    _rare(416, _C.SERVER, False,
          "The Request-URI uses a scheme (tel:, sips: or another) the server does not handle.",
          ("sips: URI sent to a server without TLS support",)),
    _rare(417, _C.SERVER, False,
          "The Resource-Priority header names a namespace or priority value the server does not know.",
          ("Priority signalling from a government or emergency network reaching an ordinary PBX",)),
    _rare(420, _C.SERVER, False,
          "The request demands (Require or Proxy-Require) an extension the server does not support.",
          ("Caller requires 100rel or timer support the callee lacks",)),
    _rare(421, _C.SERVER, False,
          "The server needs an extension, listed in its Require header, that the request did not declare as "
          "supported.",
          ("Server insists on reliable provisional responses",)),
    _rare(422, _C.SERVER, True,
          "The requested session-timer interval is below the server's minimum (Min-SE); the caller is "
          "expected to send the request again with a longer interval, normally without human help.",
          ("Session-Expires set very low on a device",)),
    _rare(423, _C.SERVER, True,
          "A registration or subscription asked for an expiry shorter than the server's minimum "
          "(Min-Expires); the client should resend with a longer one.",
          ("Phone configured with a very short re-registration period",)),
    _rare(424, _C.SERVER, False,
          "The location information carried by the request, used mostly for emergency calls, was malformed "
          "or not good enough.",
          ("Emergency call with a broken or missing civic address",)),
    _sip(428, _C.BLOCKING, False,
         "The receiving network requires an Identity header (a STIR/SHAKEN signature of the caller's "
         "number) and the request carried none.",
         "The network refused the call because your number was not vouched for by your provider's "
         "caller-ID signature. Redialing does not help; it must be fixed on the provider side.",
         "The originating side must sign calls (STIR/SHAKEN, RFC 8224/8588). If you originate, ask the "
         "carrier whether it signs your traffic and with which attestation; check that no SBC or gateway "
         "on the path removes the Identity header, and that the calling number is one the carrier can "
         "attest.",
         ("Carrier not signing traffic for this trunk",
          "SBC stripping unknown headers, Identity included",
          "Calling number not attributable to the account, so not signed"),
         ("rejected or blocked",),
         ("sip:436", "sip:437", "sip:438", "finding:identity_absent")),
    _rare(429, _C.AUTH, False,
          "The party asked to act on a REFER (a transfer) demands a signed Referred-By token from the "
          "referrer, and none was given.",
          ("Transfer towards a server that requires authenticated referrals",)),
    _rare(430, _C.NETWORK, True,
          "An edge proxy found that the outbound flow (the RFC 5626 connection) to the user agent has "
          "failed, so it cannot deliver the request over it.",
          ("TCP/TLS connection of a mobile client dropped", "NAT closed the flow between keepalives")),
    _rare(433, _C.BLOCKING, False,
          "The callee does not take calls whose caller identity is withheld.",
          ("Caller ID presentation restricted while calling an anonymous-call-rejection line",)),
    _sip(436, _C.BLOCKING, False,
         "The certificate reference in the Identity header (its info parameter) could not be used: the URL "
         "was unreachable, of an unsupported kind, or invalid, so the caller's signature could not be "
         "checked.",
         "The network could not check the digital signature that vouches for your number, so it refused "
         "the call. The fix is on the provider side.",
         "Fetch the certificate URL from the Identity header yourself: it must be reachable over HTTPS "
         "from the verifier and serve the signing certificate. Check the signing service's configuration "
         "and any proxy rewriting the header.",
         ("Certificate repository offline or behind a firewall",
          "Certificate URL mistyped in the signing service"),
         ("rejected or blocked",),
         ("sip:428", "sip:437", "sip:438", "finding:identity_invalid")),
    _sip(437, _C.BLOCKING, False,
         "The verifier obtained the signing certificate but will not accept it: not from a trusted STIR "
         "certificate authority, expired, revoked, or not covering the number.",
         "Your provider's proof of your number was not accepted by the receiving network, which refused the "
         "call. Redialing will not change this.",
         "Check the STI certificate used for signing: issuer on the governance authority's trust list, "
         "validity dates, revocation status, and that its scope covers the calling numbers. Renew or "
         "replace it with the certificate authority.",
         ("Signing certificate expired", "Certificate from an authority the terminating side does not "
          "trust", "Certificate revoked after a compliance action"),
         ("rejected or blocked",),
         ("sip:428", "sip:436", "sip:438", "finding:identity_invalid")),
    _sip(438, _C.BLOCKING, False,
         "The Identity header was present but its signature did not verify: the signed numbers or date do "
         "not match the request, the date is too old, or the signature is simply wrong.",
         "Your number's signature was found to be invalid by the receiving network, so the call was "
         "refused. Redialing does not help.",
         "Compare the signed orig/dest numbers in the PASSporT with the From/P-Asserted-Identity and "
         "Request-URI actually sent: number normalisation after signing (adding or removing a + or prefix) "
         "breaks the match. Check clock synchronisation on the signer (stale iat), and the algorithm and "
         "key in use.",
         ("Number translated by an SBC after the call was signed", "Signing server clock drifting",
          "Call retried with an old Identity header"),
         ("rejected or blocked",),
         ("sip:428", "sip:436", "sip:437", "finding:identity_invalid")),
    _rare(439, _C.SERVER, False,
          "The registrar supports outbound connection reuse but the first proxy on the path does not, so "
          "the registration cannot rely on it.",
          ("Client configured for SIP outbound behind a proxy without it",)),
    _rare(440, _C.SERVER, False,
          "Forking the request would exceed the allowed number of parallel branches (Max-Breadth).",
          ("Large ring group forked by several proxies in a row",)),
    _rare(469, _C.SERVER, False,
          "An INFO request carried an Info Package the receiver does not accept.",
          ("DTMF sent as SIP INFO to a device that expects RFC 4733 events",)),
    _rare(470, _C.BLOCKING, False,
          "The target has not given consent to receive requests from this sender (the RFC 5360 consent "
          "framework).",
          ("Relay asked to send to a list member who never opted in",)),
    _sip(480, _C.USER, True,
         "The callee's system was reached, but the user cannot take calls right now: logged out, in "
         "do-not-disturb, or with no device currently registered. After ringing, sipwatch reports it as no "
         "answer.",
         "You could not be reached at that moment: logged out, set to do-not-disturb, or your phone was not "
         "connected. If you expected calls, check your status and your device.",
         "Read the Reason or Warning header and look at the registrar: is any contact bound to this user? "
         "Many 480s for agents shown as available mean presence and registration disagree (app closed, "
         "phone off, status left available after a shift). After ringing it is a ring timeout: adjust ring "
         "time or queue overflow rather than the network.",
         ("Agent's app closed while their status still says available",
          "Do-not-disturb configured to answer 480",
          "No registered contact for the called user",
          "Queue or hunt group ring timer expired"),
         ("no answer", "never connects"),
         ("q850:18", "q850:19", "q850:20", "sip:408", "finding:timeout_ringing")),
    _rare(481, _C.SERVER, False,
          "The receiver has no dialog or transaction matching the request: it already ended or restarted, "
          "or identifiers (Call-ID, tags) were altered on the way.",
          ("BYE for a call the far end already cleared", "Re-INVITE after the far end rebooted",
           "SIP ALG changing tags or Call-ID")),
    _rare(482, _C.SERVER, False,
          "The request came back to a server it had already passed through: a routing loop.",
          ("Two PBXs forwarding the same number to each other",)),
    _rare(483, _C.SERVER, False,
          "Max-Forwards reached zero before the request reached its target: too many proxies, or a loop.",
          ("Forwarding chain between PBXs and carriers",)),
    _sip(484, _C.DIALING, False,
         "The number in the request has too few digits to be routed; an overlap-dialing phone sent it "
         "before the user finished.",
         "The number was sent before it was complete. Dial it in full, including the area or country code, "
         "and call again.",
         "Check the digit-collection timeout and the normalisation rules of the dial plan: a short "
         "inter-digit timer or a rule that removes digits produces this response. Carriers also send it for "
         "numbers shorter than their numbering plan allows.",
         ("User paused mid-number and the phone dialed early", "Dial rule strips the area code",
          "Short code not supported on this route"),
         ("never connects",),
         ("q850:28", "sip:404")),
    _rare(485, _C.DIALING, False,
          "The address matches several users; the response may list the candidates to choose from.",
          ("Dialing by name on a directory with duplicate entries",),
          ("q850:1",)),
    _sip(486, _C.USER, True,
         "The callee's device was reached and said it cannot take another call at the moment. Another "
         "location, or a later attempt, may succeed.",
         "You were already on a call, or your phone was set to signal busy, when this call tried to reach "
         "you; the phone turned it away as it should. Nothing is broken.",
         "No fault to repair. Track the rate over time: a high share means too few agents or a distribution "
         "that keeps offering calls to people already talking; consider queueing, call-waiting policy, or "
         "routing that skips agents on a call. Check whether do-not-disturb is set up to answer busy when "
         "another answer is wanted.",
         ("Agent on another call with call waiting disabled",
          "Do-not-disturb answering with busy",
          "Single-line device or trunk without a free line",
          "Hunt group offering calls to an agent whose status missed the active call"),
         ("agent busy",),
         ("q850:17", "sip:600", "finding:failure_burst")),
    _sip(487, _C.NORMAL, True,
         "The INVITE was ended by a CANCEL before anybody answered: the caller hung up while it rang, or a "
         "forking system withdrew this branch. It is the expected reply to a CANCEL, not an error.",
         "The call stopped ringing because the caller gave up or because the system took it away, very "
         "often since a colleague in the same group answered first. You did nothing wrong.",
         "Usually no action. Read the CANCEL's Reason header: 'call completed elsewhere' means another "
         "phone of a ring-all group answered (see finding:completed_elsewhere). Many calls "
         "cancelled after long ringing are abandonment, a staffing question.",
         ("Caller hung up during ringing", "Another member of a ring-all group answered",
          "Queue moved the call to the next agent after a ring timeout",
          "Transfer withdrew the original ringing leg"),
         ("call redirected by system",),
         ("finding:completed_elsewhere", "finding:briefly_abandoned", "finding:abandoned")),
    _sip(488, _C.CODEC, False,
         "The callee cannot accept the session described by the SDP offer: no codec, media type or "
         "transport profile (RTP/AVP versus RTP/SAVP) in common, or another media parameter it refuses.",
         "Your phone and the other side could not agree on how to carry the audio, so the call never "
         "started. This comes from configuration, not from anything you did.",
         "Compare the offered m= lines and rtpmap codecs with what the callee supports, and read the "
         "Warning header (305 Incompatible media format and similar). Usual fixes: enable a shared codec "
         "(G.711 as fallback), align SRTP requirements on both ends, or let an SBC transcode.",
         ("Caller offers only G.729 or Opus, callee only G.711",
          "SRTP mandatory on one side and not offered by the other",
          "Fax (T.38) or video offer to an audio-only device",
          "SBC removed codecs from the offer"),
         ("never connects",),
         ("sip:606", "q850:88", "finding:unexpected_payload_type")),
    _rare(489, _C.SERVER, False,
          "A SUBSCRIBE or NOTIFY named an event package the server does not understand.",
          ("Phone subscribing to a presence or message-waiting package the PBX lacks",)),
    _rare(491, _C.SERVER, True,
          "A request arrived while another request of the same dialog was still pending (re-INVITE glare); "
          "it should be sent again after a short random wait.",
          ("Both ends put the call on hold at the same moment",)),
    _rare(493, _C.SERVER, False,
          "The request carried an encrypted (S/MIME) body the receiver cannot decrypt.",
          ("Body encrypted with a key the receiver does not have",)),
    _rare(494, _C.AUTH, False,
          "The server requires a security mechanism to be agreed first (RFC 3329 Security-Client and "
          "Security-Server headers) before it handles the request.",
          ("IMS client not offering the required IPsec or TLS mechanism",)),
    # ----------------------------------------------------------------------------------------------------
    # SIP 5xx: a server failed on a possibly valid request
    # ----------------------------------------------------------------------------------------------------
    _sip(500, _C.SERVER, True,
         "A SIP server ran into an unexpected condition and could not complete the request; the fault lies "
         "in that server, not in the request.",
         "The phone system had an internal problem with this call. Try again, and report the time of the "
         "call if it keeps happening.",
         "Find the element that answered 500 (Server header, Via) and its logs at that moment, and honour "
         "any Retry-After. One 500 is often passing; a steady rate across many destinations indicates a "
         "software fault, overload, or a back end (database, routing engine) failing underneath.",
         ("Exception in a PBX or proxy module", "Routing database or API unreachable",
          "Gateway reporting a failure it cannot translate"),
         ("never connects",),
         ("q850:41", "q850:111", "q850:127")),
    _rare(501, _C.SERVER, False,
          "The server does not implement the method or the feature the request relies on.",
          ("UPDATE or REFER sent to a server that lacks it",)),
    _sip(502, _C.SERVER, True,
         "A proxy or gateway relaying the call got an unusable answer from the next server it contacted, "
         "or could not use that server at all.",
         "A system further along the route failed to handle the call. Calling again may work; report it "
         "if it repeats.",
         "Identify the downstream hop the gateway was using and check it: down, unreachable, returning "
         "malformed responses, or refusing at transport level. 502s spread over many destinations point at "
         "a broken interconnect or trunk rather than at one number.",
         ("Carrier interconnect down", "Next server returns malformed responses",
          "DNS still pointing at a retired server"),
         ("never connects",),
         ("q850:27", "q850:38")),
    _sip(503, _C.CAPACITY, True,
         "The server cannot take the call right now: overloaded, in maintenance, or without a route or "
         "capacity for it, possibly saying when to try again (Retry-After). On least-cost-routing "
         "termination it is also the deliberate signal to hand the call to the next carrier.",
         "The system or the carrier had no room for this call at that moment. Normally the system tries "
         "another route by itself; if calls keep failing at busy hours, tell your administrator.",
         "First decide whether it is route advance: on LCR termination, a 503 followed at once by an "
         "INVITE for the same call over another carrier is normal signalling (see "
         "finding:route_advance). Otherwise look at when 503s happen: only at peak means concurrent-call or "
         "calls-per-second limits (yours or the carrier's); at any hour and for all destinations means a "
         "trunk or server is down. Honour Retry-After and review the configured limits.",
         ("Concurrent-call or calls-per-second limit reached on a trunk",
          "LCR carrier unable to complete the call at the agreed rate",
          "Server overloaded or in maintenance",
          "No gateway currently available for the destination"),
         ("capacity", "never connects"),
         ("finding:route_advance", "q850:34", "q850:38", "q850:41", "q850:42", "q850:47", "finding:failure_burst",
          "finding:capacity_window")),
    _sip(504, _C.NETWORK, True,
         "A proxy or gateway gave up waiting for the next server, or for a lookup (DNS, location service) "
         "it needed to route the call.",
         "The call timed out between the systems that route it, not at your phone. Try again and report it "
         "if it repeats.",
         "Find the hop that answered 504 and what it was waiting for: the next-hop server, a DNS "
         "resolution, or an external routing query. Check reachability and latency towards that hop, "
         "firewall rules, and the gateway's transaction timers.",
         ("Next-hop carrier not replying", "DNS SRV or NAPTR lookups timing out",
          "Packet loss on the interconnect"),
         ("connection timeout", "never connects"),
         ("q850:102", "sip:408", "finding:timeout_trying_only")),
    _rare(505, _C.SERVER, False,
          "The SIP version in the request is not one the server supports.",
          ("Request line carrying a SIP version other than 2.0",)),
    _rare(513, _C.SERVER, False,
          "The message is longer than the server can process, typically a large request over UDP that "
          "should have gone over TCP.",
          ("Big SDP plus many headers exceeding the UDP limit",)),
    _rare(555, _C.SERVER, False,
          "The request asked for a push-notification service (RFC 8599) the proxy does not support.",
          ("Mobile client registering with a push provider the server lacks",)),
    _rare(580, _C.NETWORK, True,
          "The session's preconditions, such as a quality-of-service resource reservation (RFC 3312), "
          "could not be met.",
          ("Bandwidth reservation refused on an access network",)),
    # ----------------------------------------------------------------------------------------------------
    # SIP 6xx: definitive answers; no other location will do better
    # ----------------------------------------------------------------------------------------------------
    _sip(600, _C.USER, True,
         "The callee's end system says the user is busy and that no other device or location of theirs "
         "will take the call either.",
         "The person you called is busy on all their devices. Try again later.",
         "Handle it like 486, except that it is final for every fork: do not try the user's other "
         "contacts. A high rate means the called party or group lacks capacity, not that anything is "
         "broken.",
         ("Called person busy on every registered device", "Group busy with no queue"),
         ("agent busy",),
         ("q850:17", "sip:486")),
    _sip(603, _C.USER, False,
         "The callee, or a service acting for them, turned the call down on purpose and wants no other "
         "location tried; they could have accepted it.",
         "The call was refused deliberately: someone pressed Decline or Reject, or the phone refused it by "
         "itself because of do-not-disturb, a break status or another availability setting.",
         "Tell manual rejections from automatic ones (do-not-disturb, break codes, routing that offers "
         "calls to agents who cannot take them). High counts suggest agents marking themselves unavailable "
         "wrongly, misassigned queues or skills, or too few agents. From a carrier, 603 can also be a "
         "blocking decision on the terminating side.",
         ("Agent pressed Decline", "Do-not-disturb configured to answer 603",
          "Recipient or terminating carrier refusing the caller"),
         ("call declined", "rejected or blocked", "rejection list"),
         ("q850:21", "sip:607", "sip:608")),
    _sip(604, _C.DIALING, False,
         "The server has authoritative knowledge that the called user or number exists nowhere, not only "
         "at this location.",
         "The number you called does not exist. Check it before calling again.",
         "Verify the dialed number and its normalisation; if it is correct, the number is unassigned on "
         "the terminating network. Update stale numbers in CRM or dialer lists.",
         ("Unassigned number in a dialer campaign list", "Number taken out of service"),
         ("never connects",),
         ("q850:1", "sip:404")),
    _sip(606, _C.CODEC, False,
         "The user was reached, but some part of the proposed session (media type, bandwidth, addressing) "
         "is unacceptable, and no other location of theirs would accept it either.",
         "Your call reached the other person, but their equipment cannot handle the kind of call or audio "
         "format offered, so it did not start.",
         "Compare the SDP offer with what the callee supports (read the Warning header). Offer a common "
         "codec, drop media the callee cannot take (video, T.38), or transcode on an SBC.",
         ("Video call to an audio-only user", "Offer with only wideband codecs to a narrowband network"),
         ("never connects",),
         ("sip:488", "q850:88")),
    _sip(607, _C.BLOCKING, False,
         "The called user marked this call as unwanted (RFC 8197); networks and analytics services may use "
         "that judgement to block similar calls.",
         "The person you called flagged the call as unwanted, for instance as spam. Calling again will not "
         "go through.",
         "Calls from this number are being reported as nuisance. Check the calling pattern (volume, short "
         "calls, many unanswered destinations), caller ID presentation and STIR/SHAKEN attestation, and "
         "use the dispute channels of analytics providers if the traffic is legitimate.",
         ("Recipient pressed a block-as-spam button", "Outbound campaign calling people who opted out"),
         ("rejected or blocked", "rejection list"),
         ("sip:403", "sip:603", "sip:608")),
    _sip(608, _C.BLOCKING, False,
         "An intermediary, typically a call-analytics or anti-robocall service, rejected the call; the "
         "user never saw it (RFC 8688). The response may carry a contact to dispute the decision.",
         "A screening service in the network stopped the call before it reached the person. Redialing "
         "will be stopped the same way.",
         "Read the Call-Info/jCard for the rejecting service and its redress contact. Review what makes the "
         "traffic look suspicious: invalid or unallocated ANI, very short calls in volume, high "
         "calls-per-second to many numbers, missing or low attestation. Fix the pattern, then request "
         "removal.",
         ("Calling number labelled as robocaller by an analytics provider",
          "Short-duration high-volume traffic flagged as suspicious",
          "Invalid or unallocated originating number"),
         ("rejected or blocked", "rejection list"),
         ("sip:403", "sip:603", "sip:607", "finding:identity_attestation", "finding:short_call")),
    # ----------------------------------------------------------------------------------------------------
    # SIP classes: codes the table does not list (RFC 3261 treats an unknown code like its class's x00)
    # ----------------------------------------------------------------------------------------------------
    Knowledge(
        "sip:4xx", "4xx Client Error (unlisted code)", _C.SERVER, False,
        "A 4xx code this knowledge base has no entry for. SIP handles an unknown 4xx like 400: the request "
        "as sent cannot succeed at that server and must be changed before it is sent again.",
        "The system refused the request as it was sent; repeating it unchanged fails again. Report the "
        "time, the number and the code.",
        "Read the reason phrase and any Warning header of the response, and look the code up in the IANA "
        "SIP response code registry. 4xx responses generally trace back to the originating side: number "
        "format, credentials, IP authorisation or routing configuration.",
        ("New or vendor-specific 4xx code",),
        ("never connects",),
    ),
    Knowledge(
        "sip:5xx", "5xx Server Error (unlisted code)", _C.SERVER, True,
        "A 5xx code this knowledge base has no entry for. SIP handles an unknown 5xx like 500: a server "
        "failed on a request that may well be valid, so another attempt or another server may succeed.",
        "A system on the route had a problem with this call. Calling again may work; report it if it "
        "repeats.",
        "Read the reason phrase, Warning and Retry-After headers. Investigate further if the response "
        "persists across attempts, appears for many destinations, or your traffic is not on an LCR "
        "product where 5xx answers trigger route advance.",
        ("New or vendor-specific 5xx code",),
        ("never connects",),
    ),
    Knowledge(
        "sip:6xx", "6xx Global Failure (unlisted code)", _C.BLOCKING, False,
        "A 6xx code this knowledge base has no entry for: a definitive answer that no location will "
        "accept the call. RFC 3261 processes an unknown 6xx like 600, but the 6xx codes defined since are "
        "all refusals, so sipwatch files unknown ones as blocking.",
        "The call was refused for good; calling again gives the same answer.",
        "Read the reason phrase, Reason and Call-Info headers for who refused and why, and treat it as a "
        "deliberate decision on the terminating side until shown otherwise.",
        ("New or vendor-specific 6xx code",),
        ("rejected or blocked",),
    ),
    # ----------------------------------------------------------------------------------------------------
    # Q.850 causes (ITU-T names), as carried in Reason headers and by gateways
    # ----------------------------------------------------------------------------------------------------
    _q850(1, "Unallocated (unassigned) number", _C.DIALING, False,
          "The number has a valid format but is not currently assigned to any subscriber.",
          "Nobody has the number you called. Check it for mistakes or get an up-to-date number.",
          "Confirm the dialed digits and their format; if correct, the number is unassigned on the "
          "terminating network. Clean dialer and CRM lists, and for an originating number that plays a "
          "'disconnected' announcement, confirm it is still active and provisioned with the carrier.",
          ("Outdated number in a contact list", "Typo in a valid-looking number",
           "Number returned to the carrier's pool"),
          ("never connects",),
          ("sip:404", "sip:485", "sip:604")),
    _q850(3, "No route to destination", _C.DIALING, False,
          "The network that received the call has no route to the destination's network, either because it "
          "is unreachable from there or because that network is not served.",
          "The call cannot be routed to that destination from your system. Check the number; report it if "
          "the number is correct.",
          "Check the routing table and carrier coverage for the destination prefix (country, special "
          "ranges, non-geographic numbers) and place a test call from another network to isolate the "
          "route.",
          ("Destination prefix missing from the carrier's routing", "Special or satellite ranges not "
           "served"),
          ("never connects",),
          ("sip:404",)),
    _q850(16, "Normal call clearing", _C.NORMAL, False,
          "One of the parties hung up after the call was connected: the ordinary end of a conversation.",
          "The call ended normally because someone hung up.",
          "No action. If calls end with this cause while users report drops, look for a duration pattern "
          "(many calls ending near 32 s, or at one fixed length) that reveals a timer hanging up on their "
          "behalf.",
          ("Either party hung up",),
          (),
          ("q850:31",)),
    _q850(17, "User busy", _C.USER, True,
          "The called party's equipment was reached but cannot accept another call: it is engaged.",
          "You were already taking a call (or your phone showed busy), so the new call was turned away. "
          "That is correct behaviour.",
          "Nothing technical to fix; watch the trend. Persistently many busy outcomes mean more agents, "
          "queueing, or a distribution method that avoids offering calls to people on the phone.",
          ("Agent on an active call", "Device set to busy by do-not-disturb"),
          ("agent busy",),
          ("sip:486", "sip:600")),
    _q850(18, "No user responding", _C.NETWORK, True,
          "The called party's equipment did not react to the call setup within the allowed time: it never "
          "acknowledged or rang, unlike cause 19 where it rang unanswered.",
          "Your device did not react when the system offered it a call, so it never rang. It is a technical "
          "problem, not a call you missed.",
          "Needs prompt technical attention: compare registration state with real reachability, and check "
          "the device's network link, NAT keepalive intervals, firewall paths for SIP towards the device, "
          "and server load. Many cases across agents point at a systemic network or NAT fault.",
          ("Softphone frozen or crashed", "Device registered but actually offline",
           "Firewall blocking SIP replies", "Network lost during call setup"),
          ("device not responding",),
          ("sip:408", "sip:480", "finding:timeout_no_response", "finding:timeout_trying_only")),
    _q850(19, "No answer from user (user alerted)", _C.USER, True,
          "The called party was alerted, so the phone rang, but nobody answered within the allowed time.",
          "Your phone rang and the call was not picked up before the ring time ran out.",
          "A staffing and presence matter rather than a technical one: check ring timeouts, break coverage, "
          "and agents left 'available' while away. Presence tied to real activity reduces it.",
          ("Agent away from the desk", "Ring inaudible (headset unplugged, volume down)",
           "Call ignored without being rejected", "Shift over but device still registered and available"),
          ("no answer",),
          ("sip:480", "finding:timeout_ringing")),
    _q850(20, "Subscriber absent", _C.USER, True,
          "The called user cannot be reached at present: a mobile switched off or out of coverage, or a "
          "device not registered.",
          "The person you called had no phone reachable at that moment. Try later.",
          "No fault on your side. For your own users, check why their device was not registered at that "
          "time.",
          ("Mobile switched off", "Softphone not signed in"),
          ("never connects",),
          ("sip:480",)),
    _q850(21, "Call rejected", _C.USER, False,
          "The called equipment refused the call although it was neither busy nor incompatible and could "
          "have taken it.",
          "The call was turned down on purpose, either by someone pressing Reject or automatically by a "
          "do-not-disturb or availability setting.",
          "Review whether rejections are manual or policy-driven (do-not-disturb, skill routing mismatches), "
          "and whether queue assignments match who can really answer. From a carrier, this cause often "
          "stands for blocking of the caller.",
          ("Agent pressed Reject", "Do-not-disturb rejecting calls", "Caller on the recipient's block list"),
          ("call declined", "rejected or blocked", "rejection list"),
          ("sip:403", "sip:603")),
    _q850(22, "Number changed", _C.DIALING, False,
          "The called number is no longer in use; the subscriber has a new number, which the network may "
          "announce.",
          "The number you called has changed. Use the person's new number.",
          "Update the number in contact lists, CRM and speed dials.",
          ("Customer moved to a new number",),
          ("never connects",),
          ("sip:410",)),
    _q850(26, "Non-selected user clearing", _C.NORMAL, False,
          "The call was not given to this user because it went to someone else, typically another phone "
          "of the same group that answered first; in SIP it travels in the CANCEL's Reason header.",
          "A colleague answered the call before you, so it stopped ringing on your phone.",
          "No action; keep these out of missed-call counts.",
          ("Ring-all group answered by another member",),
          ("call redirected by system",),
          ("q850:31", "finding:completed_elsewhere")),
    _q850(27, "Destination out of order", _C.NETWORK, True,
          "The destination's interface is not working: a signalling message could not be delivered to the "
          "far user, for example because its link is down.",
          "The destination's line or device is out of service at the moment. Try later; report it if it "
          "persists.",
          "Check the link towards the destination (trunk, gateway port, the device's connectivity). For "
          "your own extensions, it means the phone or its network is down.",
          ("Gateway port or trunk down", "Device unplugged from the network"),
          ("never connects",),
          ("sip:502",)),
    _q850(28, "Invalid number format (address incomplete)", _C.DIALING, False,
          "The called number is not in a valid format, or it is incomplete.",
          "The number you dialed is incomplete or badly formatted. Dial it in full and call again.",
          "Check number normalisation (E.164, prefixes) and the inter-digit timeout of the dial plan.",
          ("Missing area code", "Number formatted wrongly by a dialer"),
          ("never connects",),
          ("sip:484",)),
    _q850(31, "Normal, unspecified", _C.NORMAL, False,
          "A normal-class ending for which no more specific normal cause applies; switching systems use it "
          "when they end a leg for their own routing reasons.",
          "The system ended the attempt on your phone on purpose, for example because a colleague answered "
          "first, the call moved to another queue, or the caller hung up while it rang.",
          "Nothing to repair; spot-check routing logic only if the numbers are unusually high.",
          ("Another agent of a ring-all group answered", "Call moved to another queue or department",
           "Caller hung up during ringing", "IVR or queue rerouted the call"),
          ("call redirected by system",),
          ("q850:16", "q850:26", "finding:completed_elsewhere")),
    _q850(34, "No circuit/channel available", _C.CAPACITY, True,
          "No suitable circuit or channel is free to carry the call right now.",
          "All lines were in use when the call was attempted. Calling again shortly may work.",
          "Compare concurrent calls with the channels licensed or provisioned on the trunk at that time; "
          "if failures cluster at peak hours, raise the limit, add a trunk, or spread the traffic.",
          ("Trunk channel limit reached", "All gateway ports busy"),
          ("capacity",),
          ("sip:503",)),
    _q850(38, "Network out of order", _C.NETWORK, False,
          "The network is not working properly and the condition is expected to last a relatively long "
          "time, so trying again at once will probably fail.",
          "The phone network on this route is out of order. Calls will fail until it is repaired.",
          "Check the carrier's status and your interconnect; route traffic over another carrier until the "
          "network is back.",
          ("Carrier outage", "Interconnect link down"),
          ("never connects",),
          ("sip:502", "sip:503")),
    _q850(41, "Temporary failure", _C.NETWORK, True,
          "The network is not working properly but expects to recover soon, so a new attempt shortly "
          "afterwards may succeed.",
          "A short-lived network problem stopped the call. Try again in a moment.",
          "Acceptable now and then; if it recurs, correlate with the carrier's and your own equipment's "
          "logs at those times.",
          ("Brief signalling link failure", "Server or gateway restarting"),
          ("never connects",),
          ("sip:500", "sip:503")),
    _q850(42, "Switching equipment congestion", _C.CAPACITY, True,
          "The switching equipment handling the call is under heavy load and cannot take it now.",
          "The system was too busy to connect the call. Try again shortly.",
          "Look for peaks in call rate and concurrency, calls-per-second limits and the load of the "
          "switching equipment; throttle or spread the traffic.",
          ("Burst of outbound campaign calls", "Overloaded switch at peak time"),
          ("capacity",),
          ("sip:503",)),
    _q850(47, "Resource unavailable, unspecified", _C.CAPACITY, True,
          "Some resource needed for the call is not available, without a more specific cause.",
          "The system lacked a resource to connect the call. Try again shortly.",
          "Check the resources involved at that time: channels, transcoders, media ports, licences.",
          ("Transcoder or media ports exhausted", "Licence limit reached"),
          ("capacity",),
          ("sip:503",)),
    _q850(88, "Incompatible destination", _C.CODEC, False,
          "The destination cannot handle the kind of call requested (its compatibility attributes, such as "
          "the bearer or media type, do not match).",
          "The receiving side cannot handle this type of call. This comes from configuration, not from "
          "you.",
          "Compare the media offered with what the destination supports and align codecs or media types; "
          "consider transcoding.",
          ("Data or fax call to a voice-only destination",),
          ("never connects",),
          ("sip:488", "sip:606")),
    _q850(102, "Recovery on timer expiry", _C.NETWORK, True,
          "A protocol timer ran out and the equipment ended the procedure as its error recovery: the other "
          "side stopped replying during setup or during the call.",
          "Contact with the device was lost: it looked online but stopped replying, so the system ended the "
          "attempt.",
          "Look for what went silent: NAT mappings expiring before keepalives, session-timer refreshes that "
          "fail, lossy or slow links, SIP keepalives switched off. Lengthening timers only helps on slow "
          "paths, not on ones that lose packets; escalate to support if basic network checks do not "
          "explain it.",
          ("NAT keepalive interval longer than the router's mapping lifetime",
           "Packet loss between the agent and the server", "ACK or session refresh never arriving",
           "Media stopped and the endpoint's RTP timer ended the call"),
          ("connection timeout",),
          ("sip:408", "sip:504", "finding:timeout_no_response", "finding:rtp_timeout",
           "finding:missing_ack")),
    _q850(111, "Protocol error, unspecified", _C.SERVER, False,
          "A protocol error occurred that no more specific cause describes.",
          "Two systems did not understand each other while setting up the call. Report it with the time.",
          "Capture signalling on both sides of the element that reported it and compare the messages "
          "against the specification; usually an interoperability defect.",
          ("Gateway receiving a message it cannot parse",),
          ("never connects",),
          ("sip:500",)),
    _q850(127, "Interworking, unspecified", _C.SERVER, False,
          "A network or gateway interworking with another protocol ended the call without a more exact "
          "cause: the real reason was lost in translation.",
          "The call failed while crossing between two different telephone networks. Report it with the time.",
          "Find the gateway that produced it and look at the response or cause it received on the other "
          "side; that underlying code, not this one, tells what went wrong.",
          ("SIP-to-ISDN gateway mapping an unknown response", "Carrier interworking with a legacy network"),
          ("never connects",),
          ("sip:500",)),
    Knowledge(
        "q850:unknown", "Unlisted Q.850 cause", _C.SERVER, False,
        "A Q.850 cause this knowledge base has no entry for. Its number still gives its class: 1 to 31 "
        "normal events, 32 to 47 resources unavailable, 48 to 63 service not available, 64 to 79 service "
        "not implemented, 80 to 95 invalid message, 96 to 111 protocol error, 112 to 127 interworking.",
        "The network gave a reason code that sipwatch does not explain. Report the code and the time.",
        "Place the cause in its class by number and look it up in ITU-T Q.850; read it together with the "
        "SIP response that carried it.",
        (),
        (),
    ),
    # ----------------------------------------------------------------------------------------------------
    # Findings of the detectors, and call classifications
    # ----------------------------------------------------------------------------------------------------
    _finding(
        "timeout_no_response", "INVITE never answered", _C.NETWORK, True,
        "The INVITE was sent and retransmitted but nothing at all came back, not even 100 Trying, before "
        "the transaction timer (Timer B, 64 times T1) expired. The next hop never got the request, or its "
        "replies never returned.",
        "The system tried to reach a device and got no reply whatsoever. The device was most likely "
        "offline, asleep or cut off by the network, even if it appeared logged in.",
        "Check that the target address is right and reachable: a stale registration (laptop asleep, phone "
        "unplugged), an expired NAT mapping dropping the server's requests, a firewall blocking SIP one "
        "way, or a server that is down. Retransmissions with no reply mean the packets vanished between "
        "the capture point and the target; capture at the receiving end too if you can.",
        ("Registered softphone on a sleeping or disconnected laptop",
         "Expired NAT mapping: inbound INVITEs dropped at the router",
         "Firewall blocking UDP 5060 towards the device",
         "Private address registered as Contact behind NAT", "Destination server down"),
        ("device not responding", "connection timeout", "never connects"),
        ("sip:408", "q850:18", "q850:102", "finding:timeout_trying_only"),
    ),
    _finding(
        "timeout_trying_only", "INVITE stalled after 100 Trying", _C.NETWORK, True,
        "The next hop acknowledged the INVITE with 100 Trying and then sent nothing else until the "
        "timeout: that hop is alive but got no answer from further along (the callee's device or a "
        "downstream server).",
        "The system accepted the call, but the device or network it passed the call to never replied; "
        "your phone most likely did not ring.",
        "The first hop is healthy; follow the call one hop further. On a PBX, check the target "
        "extension's registration and NAT keepalives; on a trunk, ask the carrier for its trace, since the "
        "problem lies beyond its edge. Also look for a 408 or 504 from the proxy that got lost on the way "
        "back.",
        ("PBX forwarding to an extension whose phone is unreachable",
         "Carrier accepted the call but its onward route is silent",
         "SBC losing the response on its way back", "Softphone frozen after being offered the call"),
        ("device not responding", "never connects"),
        ("sip:408", "sip:504", "q850:18", "finding:timeout_no_response"),
    ),
    _finding(
        "timeout_ringing", "Rang out without a final answer", _C.USER, True,
        "The callee was alerted (a 180 or 183 came back) but neither an answer nor any final response "
        "arrived before the timeout; sipwatch counts the call as not answered.",
        "Your phone rang and nobody picked it up before the system stopped trying.",
        "Treat it as a no-answer: ring time, presence and staffing. Since no final response arrived at "
        "all, also make sure the device or proxy sends one when its ring timer ends; a silent ending can "
        "hide a device or path fault.",
        ("Agent away while the phone rang", "Ringer inaudible (headset unplugged, volume off)",
         "Agent ignoring the call without rejecting it", "Device still available after the shift ended"),
        ("no answer",),
        ("sip:408", "sip:480", "q850:19"),
    ),
    _finding(
        "one_way_audio", "One-way audio", _C.NAT_ALG, False,
        "The call was answered and both sides announced media, yet RTP flowed in one direction only: one "
        "party heard the other, who heard nothing.",
        "One side of the call could not hear the other. That is a network setup issue between the "
        "systems, not your headset, unless your microphone was muted for the whole call.",
        "See which side sent nothing (silent_side) and compare the SDP c=/m= addresses with where RTP "
        "really went. Usual suspects: NAT without SDP rewriting, a router's SIP ALG mangling SDP, "
        "firewalls blocking the inbound RTP port range, or an SBC not anchoring media. Turn off SIP ALG, "
        "open or pin the RTP ports, use an SBC or STUN/ICE, then test again.",
        ("Phone behind NAT announcing its private address in SDP",
         "Router SIP ALG rewriting the SDP inconsistently",
         "Firewall letting RTP out but not in", "Asymmetric routing on a multi-homed server",
         "Microphone muted or broken on the sending device"),
        ("audio broken",),
        ("finding:nat_private_address", "finding:media_address_mismatch", "finding:no_media"),
    ),
    _finding(
        "no_media", "No media in either direction", _C.NAT_ALG, False,
        "The call was answered for a while with media announced on both sides, but not a single RTP "
        "packet was seen in either direction.",
        "The call connected but it was silent both ways: neither side heard anything.",
        "First make sure the capture point can see media at all (media may go directly between phones or "
        "through a media server on another interface). If it should, silence both ways usually means "
        "unreachable addresses in the SDP (NAT, ALG), RTP ports closed on a firewall, or an SBC or media "
        "relay that failed to start; compare the SDP addresses and ports with the network layout.",
        ("Both endpoints behind NAT with private SDP addresses", "RTP port range closed on the firewall",
         "Media relay not started", "Media taking a path the capture does not see"),
        ("audio broken",),
        ("finding:one_way_audio", "finding:rtp_timeout"),
    ),
    _finding(
        "rtp_timeout", "Media stopped during the call", _C.NETWORK, True,
        "One direction's media fell silent for longer than the threshold while the dialog was up: a long "
        "gap in mid-call, or media ending well before the BYE.",
        "The audio dropped out during the call, or the line went silent before it was hung up.",
        "Look at the direction and the moment it stopped. Media that stops while the call stays up often "
        "follows a network interruption, a NAT mapping expiring on a long call, a re-INVITE that moved "
        "media somewhere unreachable, or a crashed device. Endpoints with an RTP timer hang up on such "
        "silence, which users report as dropped calls.",
        ("Wi-Fi roaming or VPN reconnect interrupting the stream", "NAT mapping for RTP expired",
         "Re-INVITE moved media to a blocked path", "Endpoint's RTP timer ending the call"),
        ("connection timeout", "audio broken"),
        ("q850:102", "finding:no_media", "finding:poor_quality"),
    ),
    _finding(
        "missing_ack", "2xx never acknowledged", _C.NAT_ALG, False,
        "The callee answered (2xx) but no ACK for that answer was seen. The callee keeps retransmitting "
        "its 200 OK and, as SIP requires, drops the call after about 32 seconds.",
        "The call connected and then dropped on its own after roughly half a minute.",
        "The ACK is sent to the Contact (and through the Record-Route) of the 200 OK; when those carry an "
        "unreachable address (private IP behind NAT, a half-done ALG rewrite, a wrong advertised address "
        "on an SBC or PBX) the ACK goes nowhere. Check the 200's Contact and Record-Route, the external "
        "address settings of the PBX or SBC, and whether a SIP ALG is active.",
        ("200 OK Contact holding a private address", "SIP ALG rewriting Contact but not Record-Route",
         "PBX without its public address configured", "ACK sent over a transport the firewall blocks"),
        ("connection timeout", "audio broken"),
        ("finding:nat_private_address", "q850:102", "finding:media_address_mismatch"),
    ),
    _finding(
        "nat_private_address", "Private address behind NAT", _C.NAT_ALG, False,
        "A message carries a private or carrier-grade NAT address (RFC 1918, RFC 6598) in its Contact, Via "
        "or SDP, while its packets arrive from a different address: the sender sits behind NAT and nothing "
        "on the way rewrote what it advertises.",
        "Your phone is behind a router that translates addresses. Calls may fail to connect properly, drop "
        "after about half a minute, or have audio in one direction only.",
        "Make something fix the advertised addresses: enable NAT traversal on the SBC or PBX (rport, symmetric "
        "RTP, media latching or an RTP relay), use an outbound proxy or STUN/ICE on the endpoints, and switch "
        "off any SIP ALG on the router, which tends to rewrite only part of the message.",
        ("Softphone at home behind a consumer router", "Remote office without an SBC",
         "SIP ALG rewriting the Via but not the SDP"),
        ("audio broken", "never connects"),
        ("finding:media_address_mismatch", "finding:missing_ack", "finding:one_way_audio",
         "finding:sip_alg_rewrite"),
    ),
    _finding(
        "capture_loss", "Packets dropped by the capture", _C.NORMAL, False,
        "Several RTP streams lost packets at the same instant: the capture itself (tcpdump, a mirror "
        "port, a busy capture host) dropped them, not the network. Stream quality is judged on the rest.",
        "Nothing for agents: it concerns the recording of the traffic, not the calls.",
        "Do not hunt for network loss that is not there. Make the capture keep up: larger capture buffer "
        "(tcpdump -B), faster disk, a capture filter for unneeded traffic, a mirror port that is not "
        "oversubscribed, or a dedicated capture host. Capture again if the affected calls matter.",
        ("Mirror port oversubscribed", "tcpdump buffer too small at peak",
         "Capture host short of CPU or disk bandwidth"),
        (),
        ("finding:poor_quality",),
    ),
    _finding(
        "poor_quality", "Poor audio quality", _C.NETWORK, True,
        "A stream's network loss, jitter or estimated MOS passed its threshold, so the audio was likely "
        "choppy, distorted or delayed.",
        "The call sounded bad (choppy, robotic or delayed) because of the network path, not because of "
        "you.",
        "Find where loss and jitter enter: compare both directions and other calls from the same site and "
        "time. Look at Wi-Fi, saturated uplinks (uploads, backups), missing QoS/DSCP marking, VPN tunnels "
        "and the carrier interconnect. Loss already blamed on the capture (capture_lost) is left out.",
        ("Uplink saturated by uploads", "Agent on congested Wi-Fi", "No voice QoS on the WAN",
         "VPN adding delay and jitter"),
        ("audio broken",),
        ("finding:capture_loss", "finding:rtp_timeout"),
    ),
    _finding(
        "media_address_mismatch", "Media address differs from SDP", _C.NAT_ALG, False,
        "RTP used the address the SDP's sender signalled from instead of the c= address in its SDP: a NAT "
        "translated the packets and nothing (ALG, SBC) corrected the SDP.",
        "Nothing you notice directly; it explains audio trouble such as one-way audio on calls through "
        "this network.",
        "The device announces an address others cannot reach. Either correct the SDP (STUN, the PBX's "
        "external address setting, an SBC anchoring media) or make sure the far end latches onto the "
        "source address; disable SIP ALGs that rewrite only part of the message. Calls that still worked "
        "did so thanks to symmetric RTP.",
        ("Phone behind NAT without STUN", "PBX on a private network with no external address configured",
         "ALG rewriting the Via but not the SDP"),
        ("audio broken",),
        ("finding:nat_private_address", "finding:missing_ack", "finding:one_way_audio"),
    ),
    _finding(
        "unexpected_payload_type", "RTP payload type not negotiated", _C.CODEC, False,
        "RTP arrived with a payload type the SDP never offered: the sender is using a codec or format the "
        "receiver was not told about, which it may play as noise or not at all.",
        "The audio may have been garbled, noisy or silent because the two systems used different audio "
        "formats.",
        "Compare the payload type with the negotiated list: dynamic numbers that differ after an SBC "
        "rewrite (telephone-event, Opus), comfort noise (13) sent without being negotiated, or a device "
        "that ignores the answer and keeps its own codec. Align codec lists, check SBC codec handling, and "
        "update firmware.",
        ("Dynamic payload number changed by an SBC", "Comfort noise sent without negotiation",
         "Device ignoring the SDP answer"),
        ("audio broken",),
        ("sip:488",),
    ),
    _finding(
        "media_after_bye", "Media after BYE", _C.SERVER, False,
        "RTP went on for more than a second after the BYE: some media sender did not stop when the call "
        "ended.",
        "Nothing visible to you; the call had already ended.",
        "Check whether the BYE reached the party still sending (a BYE lost behind NAT or a firewall leaves "
        "that side in the call) or whether a media server or SBC keeps streams open. A few seconds are "
        "harmless; long streams waste bandwidth and can be billed as an open call.",
        ("BYE lost on its way to one endpoint", "Media server slow to release its ports"),
        (),
        (),
    ),
    _finding(
        "route_advance", "503 route advance (LCR)", _C.NORMAL, True,
        "A 503 was followed at once by a new INVITE from the same caller to the same callee: the "
        "originating system moved the call to its next route, which is how least-cost-routing termination "
        "is meant to work. The 503 is signalling here, not a failed call.",
        "Nothing to notice: the system found another route for the call by itself.",
        "No action while the advanced attempts succeed. Watch the proportion: if most calls need several "
        "advances, or the last route fails too, the first carrier lacks capacity or its rates no longer "
        "fit; if your platform cannot route-advance, a termination product with guaranteed completion "
        "suits it better.",
        ("LCR carrier unable to complete at the quoted rate", "Upstream provider briefly out of capacity",
         "Failover from an overloaded primary trunk to a backup"),
        ("capacity",),
        ("sip:503",),
    ),
    _finding(
        "completed_elsewhere", "Answered elsewhere (ring-all)", _C.NORMAL, False,
        "The ringing branch was cancelled with Reason 'call completed elsewhere' (SIP 200 or Q.850 26): "
        "another phone of the same group or fork answered the call.",
        "A colleague picked up first, so the call stopped ringing on your phone. It is not a missed call "
        "for you.",
        "Normal for ring-all and simultaneous-ring groups; leave these out of missed-call statistics. If "
        "agents find the constant ringing distracting, use a distribution strategy that rings fewer phones "
        "at once.",
        ("Ring-all group answered by another agent", "Simultaneous ring of desk phone and mobile"),
        ("call redirected by system",),
        ("sip:487", "q850:26", "q850:31"),
    ),
    _finding(
        "briefly_abandoned", "Briefly abandoned", _C.USER, True,
        "The caller hung up after a short time, before anyone answered: often a misdial or a change of "
        "mind, so it is usually counted apart from real missed calls.",
        "The caller gave up almost at once; you most likely had no chance to answer.",
        "Keep these out of service-level figures, but watch for spikes: a surge can mean callers hear "
        "something off-putting at the start (wrong greeting, silence from a media fault) or test calls by "
        "automated diallers.",
        ("Misdialed number hung up immediately", "Caller hearing an unexpected greeting"),
        ("briefly abandoned",),
        ("sip:487", "finding:abandoned"),
    ),
    _finding(
        "abandoned", "Abandoned", _C.USER, True,
        "The caller ended the call while it was still unanswered (ringing or queued) after a real wait, "
        "or no answer ever came: a missed call that counts.",
        "A customer waited and hung up before being answered. It is a missed call and may deserve a call "
        "back.",
        "The classic abandonment figure: relate it to waiting times, staffing per hour and ring timeouts. "
        "Offer call-back or expected-wait announcements, and check that calls are not ringing agents who "
        "cannot answer.",
        ("Long queue at peak hour", "Calls ringing agents who are away"),
        ("abandoned",),
        ("sip:487", "finding:briefly_abandoned"),
    ),

    # ----------------------------------------------------------------------------------------------------
    # Caller identity (STIR/SHAKEN), short calls, capacity, SIP ALGs
    # ----------------------------------------------------------------------------------------------------
    _finding(
        "identity_absent", "No caller identity signature", _C.BLOCKING, False,
        "The refused INVITE carried no Identity header: no STIR/SHAKEN PASSporT vouched for the calling "
        "number. Networks that require one answer 428; call analytics and blocking services weigh its "
        "absence when they refuse with 403, 607 or 608.",
        "The network could not tell that your number really belongs to your company, so it did not trust "
        "the call. Redialing is refused the same way; the provider must sign your calls.",
        "Make sure the originating carrier signs this traffic (RFC 8224, RFC 8588) and that no SBC, PBX or "
        "gateway on the path drops the Identity header. Check that the calling number is one the carrier "
        "knows belongs to the account, or it will not be signed at all.",
        ("Trunk provider not signing calls from this customer",
         "SBC configured to strip headers it does not know",
         "Calls entering from a gateway or an international route that carries no signature"),
        ("rejected or blocked",),
        ("sip:428",),
    ),
    _finding(
        "identity_attestation", "Caller identity only partly attested", _C.BLOCKING, False,
        "The INVITE's PASSporT vouched for the calling number with attestation B (the provider knows the "
        "customer, not that the number is theirs) or C (the provider only knows where the call entered its "
        "network). Analytics services treat B and C traffic with more suspicion than A, so it is blocked "
        "or labelled more often.",
        "Your provider signed the call but could not fully vouch for the number shown, and the receiving "
        "side turned it away. The provider's set-up decides this, not you.",
        "Ask the signing carrier why the calls get B or C: numbers not registered to the account, calls "
        "presenting a number ported elsewhere, or traffic reaching the carrier through a gateway. Register "
        "the numbers you present (or use ones the carrier assigned) so it can attest them with A.",
        ("Calling number not assigned to the trunk that sends it",
         "Wholesale or gateway traffic signed with C by the entry carrier",
         "Outbound campaign presenting numbers of another provider"),
        ("rejected or blocked",),
        ("sip:608",),
    ),
    _finding(
        "identity_invalid", "Caller identity signature unusable", _C.BLOCKING, False,
        "The INVITE's Identity header would fail verification: it cannot be decoded, the number it signs "
        "differs from the one in From, its iat is too far from when the call was sent, or the verifier "
        "could not use its certificate. sipwatch compares the claims with the request but does not check "
        "the signature, which needs the certificate and the network.",
        "Your number was signed, but the signature did not hold up at the receiving network, which refused "
        "the call. It has to be corrected where calls are signed.",
        "Compare the PASSporT with the SIP request: orig.tn against From or P-Asserted-Identity after any "
        "number rewriting, dest.tn against the Request-URI, iat against the signer's clock. Fetch the info "
        "URL to check the certificate is reachable, valid and trusted.",
        ("SBC adding or removing a + after signing", "Signing server clock wrong",
         "Certificate URL unreachable from the terminating network", "Truncated or re-encoded header"),
        ("rejected or blocked",),
        ("sip:436", "sip:437", "sip:438"),
    ),
    _finding(
        "short_call", "Very short answered call", _C.BLOCKING, False,
        "The call was answered and hung up within a few seconds. One such call means little; many from "
        "the same caller is what analytics engines count as robocalling, fraud or a dialler problem, and "
        "they flag or block that caller's later traffic. A callee hanging up at once can also be reacting "
        "to silence (audio that never started).",
        "The call ended almost as soon as it was answered. If it was yours, the other person may have "
        "heard nothing; if it happens a lot from one number, that number risks being labelled as spam.",
        "Look at the share of calls under the threshold per calling number. Many short calls from a "
        "campaign or dialler: fix the dialling pattern (answering-machine detection, abandoned calls, "
        "lists) before analytics label the numbers. Short calls hung up by the callee with no RTP: check "
        "the audio path of those calls first.",
        ("Predictive dialler hanging up on answer", "Callee hanging up on a recorded message",
         "Audio missing so the callee hangs up", "Fraud testing stolen numbers with brief calls"),
        ("rejected or blocked",),
        ("sip:608",),
    ),
    _finding(
        "failure_burst", "Burst of busy or unavailable responses", _C.CAPACITY, True,
        "Several calls were refused with 486, 480 or 503 within a couple of seconds. One busy callee is a "
        "person; a burst of them is a trunk, gateway or server out of channels or sessions.",
        "Several calls failed at the same moment because the system had no free line, not because of the "
        "people called. Calls a little later may go through.",
        "Find the element answering the burst (Server header, source address) and compare the moment with "
        "its limits: channels or concurrent sessions on the trunk, licence limits, calls-per-second caps. "
        "Spread the load (pacing, more channels, overflow routes) if the bursts repeat at peak times.",
        ("Dialler firing a batch of calls at once into a small trunk", "PBX licence limit on concurrent calls",
         "Gateway with all its channels in use"),
        ("capacity",),
        ("sip:486", "sip:503", "finding:capacity_window"),
    ),
    _finding(
        "capacity_window", "Failures concentrated at peak load", _C.CAPACITY, True,
        "Over the capture, the failures that signal a lack of room (503, 486, 480, 408 and INVITE timeouts) "
        "crowd into the seconds with the most new calls or the most calls in progress, and are rarer at "
        "quieter moments: a limit on calls per second or concurrent calls was reached.",
        "Calls failed mostly when the phone system was at its busiest. At quieter times the same calls work.",
        "Compare the window's calls per second and concurrent calls with the configured limits of the "
        "trunk, carrier contract, SBC and PBX licence. Raise the limit, pace outbound traffic, or add an "
        "overflow route; honour Retry-After on 503s rather than retrying at once.",
        ("Outbound campaign exceeding the carrier's calls-per-second limit",
         "More simultaneous calls than trunk channels at the hour's peak",
         "Server overloaded during a traffic spike"),
        ("capacity",),
        ("sip:503", "finding:failure_burst"),
    ),
    _finding(
        "sip_alg_rewrite", "SIP ALG rewrite", _C.NAT_ALG, False,
        "A message shows that something on the path rewrote part of it: the body no longer matches its "
        "Content-Length, the Contact was changed but not the Via beside it, a retransmission carries a "
        "different Contact than the first copy, or the SDP's o= and c= addresses disagree. Routers' SIP "
        "ALGs do this, and their half-done rewrites break calls.",
        "Equipment in the network, usually the office router, altered the call set-up messages. Calls may "
        "fail to connect, drop after half a minute or have one-way audio.",
        "Switch off the SIP ALG (SIP helper, SIP fix-up, SIP passthrough) on routers and firewalls between "
        "the phones and the server, and solve NAT on the SBC or with the phones' own traversal settings. A "
        "wrong Content-Length alone makes receivers reject or misread the message.",
        ("Consumer router with SIP ALG enabled by default", "Firewall SIP inspection rewriting SDP",
         "ALG keeping per-flow state that differs between retransmissions"),
        ("audio broken", "never connects"),
        ("finding:nat_private_address",),
    ),
)

_BY_KEY: dict[str, Knowledge] = {entry.key: entry for entry in _ENTRIES}


def all_entries() -> tuple[Knowledge, ...]:
    """Every entry, in table order: SIP codes, SIP classes, Q.850 causes, findings."""
    return _ENTRIES


def knowledge(key: str) -> Knowledge:
    """The entry for a canonical key (`parse_key` turns user input into one)."""
    entry = _BY_KEY.get(key)
    if entry is None:
        raise KeyError(
            f"no knowledge entry for {key!r}: keys look like 'sip:486', 'sip:5xx', 'q850:17' or "
            f"'finding:one_way_audio' (parse_key() accepts looser input)"
        )
    return entry


def _status_key(code: int) -> str:
    """The key explaining a 4xx-6xx code: its own entry, else its class's."""
    key = f"sip:{code}"
    if key in _BY_KEY:
        return key
    if 400 <= code <= 699:
        return f"sip:{code // 100}xx"
    raise KeyError(f"SIP {code} is not a failure response: the knowledge base covers 4xx, 5xx and 6xx")


def for_status(code: int) -> Knowledge:
    """The entry for a SIP final response; codes the table lacks get their class entry (sip:4xx...)."""
    return _BY_KEY[_status_key(code)]


def for_q850(cause: int) -> Knowledge:
    """The entry for a Q.850 cause; causes the table lacks get 'q850:unknown'."""
    return _BY_KEY.get(f"q850:{cause}", _BY_KEY["q850:unknown"])


def for_finding(kind: str) -> Knowledge:
    """The entry for a finding kind ('one_way_audio' or 'finding:one_way_audio')."""
    key = kind if kind.startswith("finding:") else f"finding:{kind}"
    entry = _BY_KEY.get(key)
    if entry is None:
        raise KeyError(f"no knowledge entry for finding {kind!r}; known: {', '.join(_finding_kinds())}")
    return entry


def _finding_kinds() -> list[str]:
    return [e.key.removeprefix("finding:") for e in _ENTRIES if e.key.startswith("finding:")]


_SIP_RE = re.compile(r"(?:sip)?[\s:]*(\d{3}|[4-6]xx)")
_Q850_RE = re.compile(r"(?:q\.?\s*850|cause)[\s:]*(\d{1,3}|unknown)")
_FINDING_RE = re.compile(r"(?:finding[\s:]+)?([a-z][a-z_\- ]*)")


def parse_key(text: str) -> str:
    """Turn what a user types into the canonical key of an existing entry.

    Accepts "503", "sip:503", "SIP 503", "5xx", "q850:17", "Q.850 17", "cause 17", "one_way_audio",
    "one-way audio", "finding:one_way_audio". A 4xx-6xx code without its own entry gives its class key
    ("599" -> "sip:5xx") and a Q.850 cause without one gives "q850:unknown", so the result always works
    with `knowledge()`. Anything else raises ValueError saying what is accepted.
    """
    raw = text.strip().lower()
    if match := _SIP_RE.fullmatch(raw):
        value = match.group(1)
        if value.endswith("xx"):
            return f"sip:{value}"
        code = int(value)
        if not 400 <= code <= 699:
            raise ValueError(
                f"SIP {code} is not a failure response: the knowledge base explains 4xx, 5xx and 6xx codes"
            )
        return _status_key(code)
    if match := _Q850_RE.fullmatch(raw):
        value = match.group(1)
        if value == "unknown":
            return "q850:unknown"
        cause = int(value)
        if not 1 <= cause <= 127:
            raise ValueError(f"Q.850 cause {cause} is out of range: causes run from 1 to 127")
        return for_q850(cause).key
    if match := _FINDING_RE.fullmatch(raw):
        kind = re.sub(r"[\s\-]+", "_", match.group(1).strip())
        if f"finding:{kind}" in _BY_KEY:
            return f"finding:{kind}"
        raise ValueError(f"unknown finding {text.strip()!r}; known findings: {', '.join(_finding_kinds())}")
    raise ValueError(
        f"cannot read {text.strip()!r} as a knowledge key: give a SIP code ('486', 'sip:486', '5xx'), a "
        f"Q.850 cause ('q850:17', 'Q.850 17') or a finding ('one_way_audio', 'finding:one_way_audio')"
    )


def categories_markdown() -> str:
    """The category list for docs/knowledge.md."""
    lines = ["| category | covers |", "|---|---|"]
    lines += [f"| `{category}` | {text} |" for category, text in CATEGORY_DESCRIPTIONS.items()]
    return "\n".join(lines) + "\n"


def knowledge_markdown() -> str:
    """The table of every entry for docs/knowledge.md: key, title, category, whether a retry can help."""
    lines = ["| key | title | category | retry? |", "|---|---|---|---|"]
    for entry in _ENTRIES:
        retry = "yes" if entry.retry_can_help else "no"
        lines.append(f"| `{entry.key}` | {entry.title} | `{entry.category}` | {retry} |")
    return "\n".join(lines) + "\n"
