"""STIR/SHAKEN caller identity: the Identity header (RFC 8224) and the PASSporT it carries (RFC 8225, 8588).

An Identity header value is a JWS in compact serialization, `header.payload.signature` (base64url), then
parameters: `;info=<URL of the signing certificate>`, `;alg=ES256`, `;ppt=shaken`. The full form carries
the PASSporT claims in the middle segment; the compact form leaves it empty (RFC 8225 §7: the verifier
rebuilds it from the SIP headers), so its attestation cannot be read. SHAKEN (RFC 8588) adds `attest`
(A full, B partial, C gateway) and `origid` to the claims.

sipwatch reads what the INVITE claimed; it does not verify the signature (that needs the certificate at
the `info` URL, so the network, and a trust list). `check_identity` compares the claims with the request
that carried them, as a verifier would before checking the signature (RFC 8224 §6.2.1).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from sipwatch.sip.message import parse_params, split_header_values

IAT_SKEW_S = 60.0  # RFC 8224 §6.2.1: a verifier rejects an `iat` further than this from the time it receives the request
ATTESTATIONS = ("A", "B", "C")

_TOKEN = re.compile(r"[A-Za-z0-9_\-=]*")
_VISUAL = re.compile(r"[\s\-.()]")  # visual separators dropped from telephone numbers (RFC 8224 §8.3)


class IdentityParseError(ValueError):
    """An Identity header value that is not a PASSporT sipwatch can read; the message says why."""


@dataclass(frozen=True, slots=True)
class Passport:
    """The claims of a full-form PASSporT (RFC 8225 §5, SHAKEN extension RFC 8588)."""

    alg: str | None  # from the JOSE header
    ppt: str | None  # PASSporT extension ("shaken", "div"...), from the JOSE header
    x5u: str | None  # certificate URL, from the JOSE header
    attest: str | None  # "A", "B" or "C" (SHAKEN)
    orig_tn: str | None
    dest_tn: tuple[str, ...]
    iat: int | None
    origid: str | None


@dataclass(frozen=True, slots=True)
class IdentityHeader:
    """One Identity header value."""

    raw: str
    form: str  # "full" (claims carried), "compact" (payload omitted)
    info: str | None  # the info parameter (RFC 8224 §4: required), without its angle brackets
    alg: str | None
    ppt: str | None
    passport: Passport | None  # None in compact form

    @classmethod
    def parse(cls, raw: str) -> IdentityHeader:
        raw = raw.strip()
        token, _, params_text = raw.partition(";")
        token = "".join(token.split())  # folded lines may split a long token
        params = parse_params(";" + params_text) if params_text else {}
        info = params.get("info")
        if info is not None:
            info = info.strip().removeprefix("<").removesuffix(">") or None
        segments = token.split(".")
        if len(segments) != 3:
            raise IdentityParseError(
                f"Identity value is not a JWS (header.payload.signature): {len(segments)} segment(s)"
                + (" (an RFC 4474 signature, obsolete)" if len(segments) == 1 and token else "")
            )
        header_b64, payload_b64, signature_b64 = segments
        if not header_b64 or not signature_b64:
            raise IdentityParseError("Identity JWS has an empty header or signature segment")
        header = _json_segment(header_b64, "header")
        alg = params.get("alg") or _str(header.get("alg"))
        ppt = params.get("ppt") or _str(header.get("ppt"))
        if not payload_b64:
            return cls(raw, "compact", info, alg, ppt, None)
        claims = _json_segment(payload_b64, "payload")
        passport = _passport(header, claims)
        return cls(raw, "full", info, alg, ppt, passport)


def _json_segment(segment: str, name: str) -> dict:
    if not _TOKEN.fullmatch(segment):
        raise IdentityParseError(f"PASSporT {name} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise IdentityParseError(f"PASSporT {name} is not base64url: {exc}") from exc
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise IdentityParseError(f"PASSporT {name} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise IdentityParseError(f"PASSporT {name} is not a JSON object")
    return value


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _passport(header: dict, claims: dict) -> Passport:
    orig = claims.get("orig")
    dest = claims.get("dest")
    orig_tn = _str(orig.get("tn")) if isinstance(orig, dict) else None
    dest_tn: tuple[str, ...] = ()
    if isinstance(dest, dict):
        tns = dest.get("tn")
        if isinstance(tns, str):
            tns = [tns]
        if isinstance(tns, list):
            dest_tn = tuple(t for t in tns if isinstance(t, str))
    iat = claims.get("iat")
    attest = _str(claims.get("attest"))
    return Passport(
        _str(header.get("alg")), _str(header.get("ppt")), _str(header.get("x5u")),
        attest.upper() if attest else None, orig_tn, dest_tn,
        iat if isinstance(iat, int) and not isinstance(iat, bool) else None, _str(claims.get("origid")),
    )


def canonical_tn(number: str | None) -> str | None:
    """Digits of a telephone number, separators and a leading '+' dropped (RFC 8224 §8.3); None if no number."""
    if not number:
        return None
    text = _VISUAL.sub("", number.split(";", 1)[0]).removeprefix("+")
    return text if text.isdigit() else None


@dataclass(frozen=True, slots=True)
class IdentityStatus:
    """What an INVITE carried as caller identity, and how it compares with the request.

    `state` is "absent" (no Identity header), "signed" (a readable PASSporT) or "malformed".
    `problems` names what a verifier would refuse before even checking the signature:
    "orig_mismatch" (signed number differs from the From user), "iat_skew" (signed more than IAT_SKEW_S
    from the capture time of the INVITE), "no_info" (no info parameter; `info` then shows the PASSporT's
    x5u if it has one), "no_attestation" (SHAKEN without a readable `attest`).
    """

    state: str
    frame: int | None
    ts: float | None
    headers: int = 0
    form: str | None = None
    attestation: str | None = None
    orig_tn: str | None = None
    dest_tn: tuple[str, ...] = ()
    iat: int | None = None
    iat_offset_s: float | None = None  # iat minus the INVITE's capture time
    origid: str | None = None
    info: str | None = None
    alg: str | None = None
    ppt: str | None = None
    error: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def weak(self) -> bool:
        """Absent, unreadable, or not fully attested: what terminating networks treat with suspicion."""
        return self.state != "signed" or self.attestation != "A" or bool(self.problems)

    def describe(self) -> str:
        if self.state == "absent":
            return "no Identity header"
        if self.state == "malformed":
            return f"unreadable Identity header ({self.error})"
        level = f"attestation {self.attestation}" if self.attestation else f"{self.form} form, attestation unknown"
        text = f"{level}, orig {self.orig_tn or '?'}"
        return text + (f" ({', '.join(self.problems)})" if self.problems else "")

    def to_dict(self) -> dict:
        return {
            "state": self.state, "attestation": self.attestation, "form": self.form, "headers": self.headers,
            "orig_tn": self.orig_tn, "dest_tn": list(self.dest_tn), "iat": self.iat,
            "iat_offset_s": self.iat_offset_s, "origid": self.origid, "info": self.info, "alg": self.alg,
            "ppt": self.ppt, "error": self.error, "problems": list(self.problems), "frame": self.frame,
        }


def check_identity(
    lines: tuple[str, ...] | list[str], from_user: str | None, ts: float | None, frame: int | None = None,
) -> IdentityStatus:
    """Read the Identity header lines of an INVITE (sent at capture time `ts` by From user `from_user`).

    With several headers (RFC 8224 §4 allows one per PASSporT type) the SHAKEN one is judged.
    """
    values = [v for line in lines for v in split_header_values(line) if v]
    if not values:
        return IdentityStatus("absent", frame, ts)
    parsed: list[IdentityHeader] = []
    error = None
    for value in values:
        try:
            parsed.append(IdentityHeader.parse(value))
        except IdentityParseError as exc:
            error = error or str(exc)
    if not parsed:
        return IdentityStatus("malformed", frame, ts, len(values), error=error)
    chosen = next((h for h in parsed if (h.ppt or "").lower() == "shaken"), parsed[0])
    passport = chosen.passport
    problems: list[str] = []
    offset = None
    if chosen.info is None:
        problems.append("no_info")
    if passport is not None:
        if passport.attest not in ATTESTATIONS and (chosen.ppt or "").lower() == "shaken":
            problems.append("no_attestation")
        signed, sent = canonical_tn(passport.orig_tn), canonical_tn(from_user)
        if passport.orig_tn and signed != sent:
            problems.append("orig_mismatch")
        if passport.iat is not None and ts is not None:
            offset = round(passport.iat - ts, 3)
            if abs(offset) > IAT_SKEW_S:
                problems.append("iat_skew")
    return IdentityStatus(
        "signed", frame, ts, len(values), chosen.form,
        passport.attest if passport and passport.attest in ATTESTATIONS else None,
        passport.orig_tn if passport else None, passport.dest_tn if passport else (),
        passport.iat if passport else None, offset, passport.origid if passport else None,
        chosen.info or (passport.x5u if passport else None), chosen.alg, chosen.ppt, error, tuple(problems),
    )
