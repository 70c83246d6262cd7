"""Listening-quality estimate from the ITU-T G.107 E-model, in the simplified form VoIP monitors use.

    R      = Ro - Is - Id - Ie_eff + A      with the G.107 defaults Ro - Is = 93.2 and A = 0
    Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)                       (G.107 §7.4, eq. 7-29)
    Id     = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)                           (Cole & Rosenbluth 2001)
    MOS    = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6,   1 below R = 0, 4.5 above R = 100   (G.107 Annex B)

Ie (equipment impairment) and Bpl (packet-loss robustness) per codec come from ITU-T G.113 Appendix I where
G.113 lists the codec, and are marked as approximations otherwise (see docs/rtp.md). Everything is on the
narrowband R scale (0-100): wideband codecs are rated as if they were a perfect narrowband channel, so their
MOS caps at 4.41 like G.711's.

The burst ratio comes from the 2-state Markov (Gilbert) loss model of G.107 §7.4: with p = P(loss | last
packet received) and q = P(received | last packet lost), BurstR = 1 / (p + q); 1 for random loss, > 1 for
bursty loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "CODECS",
    "CodecImpairment",
    "burst_ratio",
    "codec_impairment",
    "delay_impairment",
    "mos_from_r",
    "r_factor",
    "estimate_mos",
]

R0_MINUS_IS = 93.2  # G.107 Table 3 defaults: Ro = 94.77, Is = 1.41 (and A = 0)


class CodecImpairment(NamedTuple):
    ie: float  # equipment impairment factor at zero loss
    bpl: float  # packet-loss robustness factor
    source: str  # where the numbers come from


_G113 = "ITU-T G.113 Appendix I"
_APPROX = "approximation (not in G.113)"

# Keys are normalised names (see _normalise): lower case, no '.', '-', '_', ' ', no '/rate' suffix.
CODECS: dict[str, CodecImpairment] = {
    # G.711 with the G.711 Appendix I packet-loss concealment: what current endpoints do. Without PLC
    # G.113 gives Bpl = 4.3; use codec "g711noplc" for that.
    "g711": CodecImpairment(0.0, 25.1, _G113 + " (G.711 with PLC)"),
    "g711noplc": CodecImpairment(0.0, 4.3, _G113 + " (G.711 without PLC)"),
    "g729": CodecImpairment(11.0, 19.0, _G113 + " (G.729A + VAD)"),
    "g7231": CodecImpairment(15.0, 16.1, _G113 + " (G.723.1 6.3 kbit/s + VAD)"),
    "gsmefr": CodecImpairment(5.0, 10.0, _G113 + " (GSM-EFR)"),
    "gsm": CodecImpairment(20.0, 10.0, "Ie: " + _G113 + " (GSM 06.10 full rate); Bpl: " + _APPROX),
    "g726": CodecImpairment(7.0, 10.0, "Ie: " + _G113 + " (G.726 32 kbit/s); Bpl: " + _APPROX),
    "g728": CodecImpairment(7.0, 10.0, "Ie: " + _G113 + " (G.728 16 kbit/s); Bpl: " + _APPROX),
    "ilbc": CodecImpairment(10.0, 32.0, _APPROX),
    "g722": CodecImpairment(0.0, 25.1, _APPROX + ", rated as G.711 with PLC"),
    "opus": CodecImpairment(0.0, 30.0, _APPROX),
    "amr": CodecImpairment(5.0, 10.0, _APPROX + ", rated as GSM-EFR (AMR 12.2)"),
    "amrwb": CodecImpairment(0.0, 20.0, _APPROX),
    "speex": CodecImpairment(11.0, 19.0, _APPROX + ", rated as G.729"),
    "silk": CodecImpairment(0.0, 25.0, _APPROX),
}

_ALIASES = {
    "pcmu": "g711", "pcma": "g711", "g711u": "g711", "g711a": "g711", "g711ulaw": "g711", "g711alaw": "g711",
    "ulaw": "g711", "alaw": "g711", "mulaw": "g711",
    "g729a": "g729", "g729ab": "g729", "g729b": "g729", "g729d": "g729", "g729e": "g729",
    "g723": "g7231", "g72316": "g7231",
    "gsmfr": "gsm", "gsm0610": "gsm",
    "g72616": "g726", "g72624": "g726", "g72632": "g726", "g72640": "g726", "g721": "g726",
    "g7221": "g722", "g7222": "amrwb", "amrnb": "amr", "evs": "amrwb",
}


def _normalise(codec: str) -> str:
    name = codec.strip().lower().split("/", 1)[0]
    for ch in ".-_ ":
        name = name.replace(ch, "")
    return _ALIASES.get(name, name)


def codec_impairment(codec: str | None) -> CodecImpairment | None:
    """(Ie, Bpl, source) for a codec name as SDP, tshark or humans write it (PCMU, g711A, G.729, opus/48000),
    or None when the codec is unknown."""
    if not codec:
        return None
    return CODECS.get(_normalise(codec))


def delay_impairment(delay_ms: float) -> float:
    """Id for a one-way mouth-to-ear delay in ms (Cole & Rosenbluth's fit of G.107 Id, echo-free)."""
    d = max(0.0, delay_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def r_factor(ie: float, bpl: float, loss_pct: float, burst_ratio: float = 1.0, delay_ms: float = 0.0) -> float:
    """The E-model transmission rating R for equipment impairment `ie`, robustness `bpl`, packet loss
    `loss_pct` (0-100, clamped), burst ratio and one-way delay."""
    ppl = min(max(loss_pct, 0.0), 100.0)
    br = burst_ratio if burst_ratio > 0 else 1.0
    ie_eff = ie + (95.0 - ie) * ppl / (ppl / br + bpl) if ppl else ie
    return R0_MINUS_IS - delay_impairment(delay_ms) - ie_eff


def mos_from_r(r: float) -> float:
    """G.107 Annex B: estimated listening-quality MOS (1.0-4.5) for a rating R."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6


def estimate_mos(codec: str | None, loss_pct: float, burst_ratio: float = 1.0, delay_ms: float = 0.0) -> float | None:
    """MOS (1.0-4.5, two decimals) for a codec at a packet-loss percentage, or None for an unknown codec.

    `burst_ratio` is 1.0 for random loss (use `burst_ratio()` on the observed loss pattern); `delay_ms` is
    the one-way mouth-to-ear delay, 0 when unknown, which leaves the delay impairment out (Id = 0).
    Negative loss (tshark's "lost" goes negative with duplicates) counts as no loss.
    """
    imp = codec_impairment(codec)
    if imp is None:
        return None
    return round(mos_from_r(r_factor(imp.ie, imp.bpl, loss_pct, burst_ratio, delay_ms)), 2)


def burst_ratio(loss_bursts: Iterable[int], expected: int) -> float:
    """Burst ratio of a loss pattern: `loss_bursts` are the lengths of the runs of consecutive lost packets,
    `expected` the number of packets sent (received + lost).

    With the Gilbert model fitted to the pattern (q = 1 / mean loss-run length, p = runs / received),
    BurstR = 1 / (p + q) = mean loss-run length x (1 - loss ratio). 1.0 when nothing was lost or nothing
    was received. Below 1 when losses are more spread out than random ones would be.
    """
    runs = 0
    lost = 0
    for length in loss_bursts:
        if length > 0:
            runs += 1
            lost += length
    if not runs or expected <= lost:
        return 1.0
    return (lost / runs) * (1.0 - lost / expected)
