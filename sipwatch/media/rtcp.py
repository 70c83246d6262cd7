"""RTCP (RFC 3550 §6) compound packets: SR, RR, SDES, BYE, APP, RTPFB/PSFB (RFC 4585) and XR (RFC 3611)
with its VoIP Metrics block.

Every `parse(cls, data)` takes the bytes of one RTCP packet, starting at its 4-byte header (bytes past the
length the header declares are ignored), and raises ValueError with one of the fixed messages below when the
packet is truncated or inconsistent. `parse_compound(data)` splits a whole UDP payload. Nothing else is ever
raised, whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct

__all__ = [
    "NTP_UNIX_OFFSET",
    "App",
    "ExtendedReport",
    "Feedback",
    "Goodbye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderInfo",
    "SenderReport",
    "SourceDescription",
    "VoipMetrics",
    "XrBlock",
    "ntp_middle32",
    "parse_compound",
    "round_trip_time",
]

SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR = range(200, 208)
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

SDES_ITEM_NAMES = {1: "cname", 2: "name", 3: "email", 4: "phone", 5: "loc", 6: "tool", 7: "note", 8: "priv"}
XR_VOIP_METRICS = 7

_HEADER = Struct("!BBH")
_U32 = Struct("!I")
_SENDER_INFO = Struct("!IIIII")
_REPORT_BLOCK = Struct("!IB3sIIII")
_TWO_U32 = Struct("!II")
_VOIP = Struct("!IBBBBHHHHbbBBBBBBBxHHH")

# The messages, exactly.
E_SHORT_HEADER = "RTCP packet is shorter than its 4-byte header"
E_VERSION = "RTCP version is {version}, not 2"
E_TYPE = "RTCP packet type {pt} is not {expected}"
E_LENGTH = "RTCP packet length {length} exceeds the {available} bytes available"
E_PADDING = "RTCP padding count {count} does not fit the packet"
E_SSRC = "RTCP packet has truncated SSRC"
E_SENDER_INFO = "RTCP packet has truncated sender info"
E_REPORT_BLOCK = "RTCP packet has truncated report block"
E_SDES_CHUNK = "RTCP SDES chunk is truncated"
E_SDES_ITEM = "RTCP SDES item is truncated"
E_BYE_SSRC = "RTCP BYE has truncated SSRC list"
E_BYE_REASON = "RTCP BYE reason is truncated"
E_APP = "RTCP APP packet is truncated"
E_FEEDBACK = "RTCP feedback packet is truncated"
E_XR_BLOCK_HEADER = "RTCP XR report block header is truncated"
E_XR_BLOCK = "RTCP XR report block is truncated"
E_XR_VOIP_LENGTH = "RTCP XR VoIP metrics block has length {words}, not 8"
E_EMPTY = "RTCP compound packet is empty"
E_TYPE_UNKNOWN = "RTCP packet type {pt} is not 200-207"


def _body(data: bytes, expected: int, name: str, also: int = -1) -> tuple[int, int]:
    """Validate one packet's header; returns (count field, end of the packet's contents without padding)."""
    if len(data) < 4:
        raise ValueError(E_SHORT_HEADER)
    first, pt, words = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError(E_VERSION.format(version=first >> 6))
    if pt != expected and pt != also:
        raise ValueError(E_TYPE.format(pt=pt, expected=name))
    length = (words + 1) * 4
    if length > len(data):
        raise ValueError(E_LENGTH.format(length=length, available=len(data)))
    end = length
    if first & 0x20:
        pad = data[length - 1]
        if pad == 0 or pad > length - 4:
            raise ValueError(E_PADDING.format(count=pad))
        end -= pad
    return first & 0x1F, end


def ntp_middle32(unix_time: float) -> int:
    """The middle 32 bits of the 64-bit NTP timestamp for a Unix time (what LSR carries), in 1/65536 s."""
    return int((unix_time + NTP_UNIX_OFFSET) * 65536.0) & 0xFFFFFFFF


def round_trip_time(arrival: float, lsr: int, dlsr: int) -> float | None:
    """RFC 3550 §6.4.1 round-trip time in seconds: arrival (Unix time of the report's receipt, at the
    sender of the SR it reflects) - LSR - DLSR, all in 1/65536 s modulo 2^32.

    None when LSR is 0 (no SR received yet). Negative when the clocks or the echoed values do not add up.
    """
    if not lsr:
        return None
    units = (ntp_middle32(arrival) - lsr - dlsr) & 0xFFFFFFFF
    if units >= 0x80000000:
        units -= 0x100000000
    return units / 65536.0


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int  # the source this block reports on
    fraction_lost: int  # lost / expected since the last report, x256 (0-255)
    cumulative_lost: int  # signed 24-bit: negative when duplicates outnumber losses
    highest_seq: int  # extended highest sequence number received (cycles << 16 | seq)
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR received from `ssrc` (0: none)
    dlsr: int  # delay since that SR, 1/65536 s

    SIZE = 24

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if len(data) < offset + 24:
            raise ValueError(E_REPORT_BLOCK)
        ssrc, fraction, cum, high, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        lost = int.from_bytes(cum, "big", signed=True)
        return cls(ssrc, fraction, lost, high, jitter, lsr, dlsr)

    @property
    def fraction_lost_pct(self) -> float:
        return self.fraction_lost * 100.0 / 256.0

    @property
    def seq_cycles(self) -> int:
        return self.highest_seq >> 16

    def jitter_ms(self, clock_rate: int) -> float | None:
        return self.jitter * 1000.0 / clock_rate if clock_rate > 0 else None

    @property
    def dlsr_seconds(self) -> float:
        return self.dlsr / 65536.0

    def rtt(self, arrival: float) -> float | None:
        """Round-trip time in seconds for this block received at `arrival` (Unix time), or None."""
        return round_trip_time(arrival, self.lsr, self.dlsr)


def _report_blocks(data: bytes, offset: int, count: int, end: int) -> tuple[tuple[ReportBlock, ...], int]:
    if offset + 24 * count > end:
        raise ValueError(E_REPORT_BLOCK)
    blocks = tuple(ReportBlock.parse(data, offset + 24 * i) for i in range(count))
    return blocks, offset + 24 * count


@dataclass(frozen=True, slots=True)
class SenderInfo:
    ntp_msw: int
    ntp_lsw: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> SenderInfo:
        if len(data) < offset + 20:
            raise ValueError(E_SENDER_INFO)
        return cls(*_SENDER_INFO.unpack_from(data, offset))

    @property
    def ntp_time(self) -> float:
        """The NTP timestamp as Unix time (seconds)."""
        return self.ntp_msw - NTP_UNIX_OFFSET + self.ntp_lsw / 4294967296.0

    @property
    def ntp_middle32(self) -> int:
        """What a receiver echoes as LSR for this SR."""
        return ((self.ntp_msw & 0xFFFF) << 16) | (self.ntp_lsw >> 16)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    sender_info: SenderInfo
    reports: tuple[ReportBlock, ...]
    extension: bytes = b""  # profile-specific extension

    packet_type = SR

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        count, end = _body(data, SR, "SR (200)")
        if end < 8:
            raise ValueError(E_SSRC)
        if end < 28:
            raise ValueError(E_SENDER_INFO)
        ssrc = _U32.unpack_from(data, 4)[0]
        info = SenderInfo.parse(data, 8)
        reports, offset = _report_blocks(data, 28, count, end)
        return cls(ssrc, info, reports, bytes(data[offset:end]))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...]
    extension: bytes = b""

    packet_type = RR

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        count, end = _body(data, RR, "RR (201)")
        if end < 8:
            raise ValueError(E_SSRC)
        ssrc = _U32.unpack_from(data, 4)[0]
        reports, offset = _report_blocks(data, 8, count, end)
        return cls(ssrc, reports, bytes(data[offset:end]))


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...]  # (item type, value); PRIV keeps its prefix length byte

    def item(self, item_type: int) -> str | None:
        for kind, value in self.items:
            if kind == item_type:
                return value.decode("utf-8", "replace")
        return None

    @property
    def cname(self) -> str | None:
        return self.item(1)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    packet_type = SDES

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        count, end = _body(data, SDES, "SDES (202)")
        offset = 4
        chunks = []
        for _ in range(count):
            if offset + 4 > end:
                raise ValueError(E_SDES_CHUNK)
            ssrc = _U32.unpack_from(data, offset)[0]
            offset += 4
            items = []
            while True:
                if offset >= end:
                    raise ValueError(E_SDES_CHUNK)
                kind = data[offset]
                if kind == 0:  # end of the item list, then padding to the next 32-bit boundary
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > end or offset + 2 + data[offset + 1] > end:
                    raise ValueError(E_SDES_ITEM)
                size = data[offset + 1]
                items.append((kind, bytes(data[offset + 2: offset + 2 + size])))
                offset += 2 + size
            if offset > end:
                raise ValueError(E_SDES_CHUNK)
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    @property
    def cnames(self) -> dict[int, str]:
        return {chunk.ssrc: chunk.cname for chunk in self.chunks if chunk.cname is not None}


@dataclass(frozen=True, slots=True)
class Goodbye:
    ssrcs: tuple[int, ...]
    reason: str | None = None

    packet_type = BYE

    @classmethod
    def parse(cls, data: bytes) -> Goodbye:
        count, end = _body(data, BYE, "BYE (203)")
        offset = 4 + 4 * count
        if offset > end:
            raise ValueError(E_BYE_SSRC)
        ssrcs = tuple(_U32.unpack_from(data, 4 + 4 * i)[0] for i in range(count))
        reason = None
        if offset < end:
            size = data[offset]
            if offset + 1 + size > end:
                raise ValueError(E_BYE_REASON)
            reason = bytes(data[offset + 1: offset + 1 + size]).decode("utf-8", "replace")
        return cls(ssrcs, reason)


@dataclass(frozen=True, slots=True)
class App:
    ssrc: int
    subtype: int
    name: str
    data: bytes

    packet_type = APP

    @classmethod
    def parse(cls, data: bytes) -> App:
        subtype, end = _body(data, APP, "APP (204)")
        if end < 12:
            raise ValueError(E_APP)
        ssrc = _U32.unpack_from(data, 4)[0]
        return cls(ssrc, subtype, bytes(data[8:12]).decode("latin-1"), bytes(data[12:end]))


@dataclass(frozen=True, slots=True)
class Feedback:
    """RTPFB (205) or PSFB (206), RFC 4585 §6.1: NACK, PLI, FIR, REMB... kept as raw FCI."""

    packet_type: int
    fmt: int
    sender_ssrc: int
    media_ssrc: int
    fci: bytes

    @classmethod
    def parse(cls, data: bytes) -> Feedback:
        fmt, end = _body(data, RTPFB, "RTPFB (205) or PSFB (206)", PSFB)
        if end < 12:
            raise ValueError(E_FEEDBACK)
        sender, media = _TWO_U32.unpack_from(data, 4)
        return cls(data[1], fmt, sender, media, bytes(data[12:end]))


def _unavailable(value: int) -> int | None:
    return None if value == 127 else value


@dataclass(frozen=True, slots=True)
class VoipMetrics:
    """RFC 3611 §4.7 VoIP Metrics report block (BT = 7), raw fields; the properties convert units."""

    ssrc: int
    loss_rate: int  # fraction of packets lost, x256
    discard_rate: int  # fraction discarded (late/early) by the jitter buffer, x256
    burst_density: int  # x256
    gap_density: int  # x256
    burst_duration: int  # ms
    gap_duration: int  # ms
    round_trip_delay: int  # ms
    end_system_delay: int  # ms
    signal_level: int  # dBm, signed; 127 unavailable
    noise_level: int  # dBm, signed; 127 unavailable
    rerl: int  # residual echo return loss, dB; 127 unavailable
    gmin: int
    r_factor: int  # 0-100; 127 unavailable
    ext_r_factor: int
    mos_lq: int  # MOS x 10 (10-50); 127 unavailable
    mos_cq: int
    rx_config: int  # PLC (2 bits), JBA (2 bits), JB rate (4 bits)
    jb_nominal: int  # ms
    jb_maximum: int
    jb_abs_max: int

    SIZE = 36

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> VoipMetrics:
        """Parse the block starting at its 4-byte block header (BT, reserved, length)."""
        if len(data) < offset + 4:
            raise ValueError(E_XR_BLOCK_HEADER)
        _, _, words = _HEADER.unpack_from(data, offset)
        if words != 8:
            raise ValueError(E_XR_VOIP_LENGTH.format(words=words))
        if len(data) < offset + 36:
            raise ValueError(E_XR_BLOCK)
        return cls(*_VOIP.unpack_from(data, offset + 4))

    @property
    def loss_pct(self) -> float:
        return self.loss_rate * 100.0 / 256.0

    @property
    def discard_pct(self) -> float:
        return self.discard_rate * 100.0 / 256.0

    @property
    def mos_lq_value(self) -> float | None:
        value = _unavailable(self.mos_lq)
        return None if value is None else value / 10.0

    @property
    def mos_cq_value(self) -> float | None:
        value = _unavailable(self.mos_cq)
        return None if value is None else value / 10.0

    @property
    def r_factor_value(self) -> int | None:
        return _unavailable(self.r_factor)

    @property
    def plc(self) -> str:
        """Packet-loss concealment in use (RFC 3611 §4.7.6 RX config PLC bits)."""
        return ("unspecified", "disabled", "enhanced", "standard")[self.rx_config >> 6]


@dataclass(frozen=True, slots=True)
class XrBlock:
    block_type: int
    type_specific: int
    data: bytes  # the block's contents after its 4-byte header


@dataclass(frozen=True, slots=True)
class ExtendedReport:
    ssrc: int
    blocks: tuple[XrBlock, ...]
    voip_metrics: tuple[VoipMetrics, ...]

    packet_type = XR

    @classmethod
    def parse(cls, data: bytes) -> ExtendedReport:
        _, end = _body(data, XR, "XR (207)")
        if end < 8:
            raise ValueError(E_SSRC)
        ssrc = _U32.unpack_from(data, 4)[0]
        offset = 8
        blocks = []
        metrics = []
        while offset < end:
            if offset + 4 > end:
                raise ValueError(E_XR_BLOCK_HEADER)
            block_type, specific, words = _HEADER.unpack_from(data, offset)
            size = 4 + 4 * words
            if offset + size > end:
                raise ValueError(E_XR_BLOCK)
            if block_type == XR_VOIP_METRICS:
                metrics.append(VoipMetrics.parse(data[:end], offset))
            blocks.append(XrBlock(block_type, specific, bytes(data[offset + 4: offset + size])))
            offset += size
        return cls(ssrc, tuple(blocks), tuple(metrics))


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | App | Feedback | ExtendedReport

_PARSERS = {SR: SenderReport.parse, RR: ReceiverReport.parse, SDES: SourceDescription.parse, BYE: Goodbye.parse,
            APP: App.parse, RTPFB: Feedback.parse, PSFB: Feedback.parse, XR: ExtendedReport.parse}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """All the RTCP packets of one datagram, in order. ValueError (fixed messages above) on anything
    truncated, a version other than 2, or a packet type outside 200-207. Up to 3 zero bytes after the last
    packet are ignored, as tshark does."""
    if not data:
        raise ValueError(E_EMPTY)
    packets: list[RtcpPacket] = []
    offset = 0
    total = len(data)
    while offset < total:
        if total - offset < 4:
            if not any(data[offset:]):
                break  # zero bytes after the last packet (seen from real stacks): not a packet, ignored
            raise ValueError(E_SHORT_HEADER)
        first, pt, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise ValueError(E_VERSION.format(version=first >> 6))
        parser = _PARSERS.get(pt)
        if parser is None:
            raise ValueError(E_TYPE_UNKNOWN.format(pt=pt))
        length = (words + 1) * 4
        if offset + length > total:
            raise ValueError(E_LENGTH.format(length=length, available=total - offset))
        packets.append(parser(data[offset: offset + length]))
        offset += length
    return packets
