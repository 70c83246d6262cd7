"""The frame decoder against crafted captures: every encapsulation, fragmentation and TCP case sipwatch
claims to handle, checked end to end through `analyze_file` and, where tshark is installed, against
tshark's own `sip,stat` counts on the very same file.
"""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import pytest
from crafted import (
    FLOW_REQUESTS,
    FLOW_RESPONSES,
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    MAC_A,
    MAC_B,
    SHORT_FLOW_RESPONSES,
    T0_NS,
    Dialog,
    TcpConversation,
    eth,
    pcapng_bytes,
    tshark_available,
    tshark_sip_stat,
    udp_flow_packets,
    udp_packet,
    write_pcap,
)
from scapy.contrib.erspan import ERSPAN_II
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, fragment6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw
from scapy.utils import PcapWriter

from sipwatch.core.result import Analysis
from sipwatch.model import Outcome, UnsupportedLinkType
from sipwatch.pipeline import analyze_file

CALLER_V4, CALLEE_V4 = "192.0.2.10", "198.51.100.20"
CALLER_V6, CALLEE_V6 = "2001:db8::10", "2001:db8:1::20"
TUNNEL_A, TUNNEL_B = "203.0.113.1", "203.0.113.2"


def analyze(path: Path) -> Analysis:
    return analyze_file(str(path))


def udp_dialog(**kw) -> Dialog:
    kw.setdefault("call_id", "3848276298220188511@atlanta.example.com")
    return Dialog(CALLER_V4, 5060, CALLEE_V4, 5060, **kw)


def assert_answered_call(analysis: Analysis, dialog: Dialog, transport: str = "udp") -> None:
    """One answered call with the dialog's Call-ID, caller and callee; the full 7-message flow counted."""
    assert analysis.stats.messages == 7
    assert dict(analysis.stats.requests) == FLOW_REQUESTS
    assert dict(analysis.stats.responses) == FLOW_RESPONSES
    assert analysis.stats.retransmissions == 0
    assert len(analysis.calls) == 1
    call = analysis.calls[0]
    assert call.call_id == dialog.call_id
    assert call.outcome is Outcome.ANSWERED
    assert call.outcome == "answered"
    assert call.caller == hostport(*dialog.caller)
    assert call.callee == hostport(*dialog.callee)
    assert call.transport == transport
    assert call.messages == 7
    assert call.bye_by == "caller"
    assert not call.partial
    assert call.ringing_status == 180


def hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def assert_no_problems(analysis: Analysis) -> None:
    assert analysis.problems.counts == {}, [str(p) for p in analysis.problems.kept]


def assert_same_as_tshark(analysis: Analysis, path: Path, **kw) -> None:
    """sipwatch's SIP message, request-method and response-code counts equal tshark's sip,stat."""
    if not tshark_available():
        pytest.skip("tshark is not installed")
    ref = tshark_sip_stat(path, **kw)
    assert analysis.stats.messages == ref.messages
    assert dict(analysis.stats.requests) == dict(ref.requests)
    assert dict(analysis.stats.responses) == dict(ref.responses)


# --- VLAN tags ---------------------------------------------------------------------------------------


def test_ethernet_single_8021q_tag(tmp_path):
    dialog = udp_dialog()
    frames = [Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=100, prio=5) / p for p in udp_flow_packets(dialog)]
    path = write_pcap(tmp_path / "vlan.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.packets == 7
    assert analysis.capture.linktypes == [LINKTYPE_ETHERNET]
    assert_same_as_tshark(analysis, path)


def test_ethernet_qinq_88a8_outer_8100_inner(tmp_path):
    dialog = udp_dialog()
    frames = [Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=200) / Dot1Q(vlan=100) / p for p in udp_flow_packets(dialog)]
    assert bytes(frames[0])[12:14] == b"\x88\xa8" and bytes(frames[0])[16:18] == b"\x81\x00"
    path = write_pcap(tmp_path / "qinq.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


# --- IP fragments ------------------------------------------------------------------------------------


def fragmented_flow(dialog: Dialog, order: list[int], drop: int | None = None):
    """The call's frames with the INVITE fragmented into 3 IPv4/IPv6 fragments, sent in `order`."""
    packets = udp_flow_packets(dialog)
    invite = packets[0]
    if ":" in dialog.caller_ip:
        ip6 = invite[IPv6]
        with_frag = (IPv6(src=ip6.src, dst=ip6.dst, hlim=64) / IPv6ExtHdrFragment(id=0xBEEF01)
                     / ip6[UDP])
        pieces = fragment6(with_frag, 1280)
    else:
        pieces = fragment(invite, fragsize=1480)
    assert len(pieces) == 3
    sent = [pieces[i] for i in order if i != drop]
    return [eth(p) for p in sent + packets[1:]], pieces


def test_ipv4_fragmented_invite_out_of_order(tmp_path):
    dialog = udp_dialog(invite_body_size=3000)
    assert 2960 < len(dialog.invite()) < 4400  # three fragments of up to 1480 bytes
    frames, pieces = fragmented_flow(dialog, order=[2, 0, 1])
    assert [p[IP].frag for p in pieces] == [0, 185, 370] and pieces[2][IP].flags == 0
    path = write_pcap(tmp_path / "frag4.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)  # the whole SDP body arrived: no content_length problem
    assert analysis.capture.reassembled_fragments == 1
    call = analysis.calls[0]
    assert call.invite_frame == 3  # completed by the third frame of the capture
    assert analysis.capture.packets == 9
    assert_same_as_tshark(analysis, path)


def test_ipv4_fragmented_invite_with_missing_fragment(tmp_path):
    dialog = udp_dialog(invite_body_size=3000)
    frames, _ = fragmented_flow(dialog, order=[2, 0, 1], drop=1)
    path = write_pcap(tmp_path / "frag4-missing.pcap", frames)
    analysis = analyze(path)
    assert analysis.capture.reassembled_fragments == 0
    assert analysis.problems.counts.get("incomplete_fragments") == 1
    problem = next(p for p in analysis.problems.kept if p.kind == "incomplete_fragments")
    assert problem.frame == 1  # the first fragment of the datagram seen
    # the INVITE never became a message; the rest of the call did
    assert analysis.stats.messages == 6
    assert "INVITE" not in analysis.stats.requests
    assert dict(analysis.stats.requests) == {"ACK": 1, "BYE": 1}
    assert dict(analysis.stats.responses) == FLOW_RESPONSES
    assert len(analysis.calls) == 1
    call = analysis.calls[0]
    assert call.call_id == dialog.call_id
    assert call.invite_ts is None and call.caller is None
    assert call.started_before_capture
    assert call.outcome is Outcome.ANSWERED
    assert_same_as_tshark(analysis, path)


def test_ipv6_fragmented_invite(tmp_path):
    dialog = Dialog(CALLER_V6, 5060, CALLEE_V6, 5060, call_id="v6-frag-77a1@[2001:db8::10]", invite_body_size=3000)
    frames, pieces = fragmented_flow(dialog, order=[1, 2, 0])
    assert [p[IPv6ExtHdrFragment].m for p in pieces] == [1, 1, 0]
    path = write_pcap(tmp_path / "frag6.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.reassembled_fragments == 1
    assert analysis.calls[0].caller == "[2001:db8::10]:5060"
    assert analysis.calls[0].callee == "[2001:db8:1::20]:5060"
    assert_same_as_tshark(analysis, path)


def test_ipv6_hop_by_hop_and_destination_options_before_udp(tmp_path):
    dialog = Dialog(CALLER_V6, 5060, CALLEE_V6, 5062, call_id="v6-hbh-0042@biloxi.example.com")
    frames = []
    for n, packet in enumerate(udp_flow_packets(dialog)):
        ip6 = packet[IPv6]
        ext = IPv6ExtHdrHopByHop() if n % 2 else IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
        frames.append(eth(IPv6(src=ip6.src, dst=ip6.dst, hlim=64) / ext / ip6[UDP]))
    raw = bytes(frames[0])
    assert raw[14 + 6] == 0 and raw[14 + 40] == 60  # next header: hop-by-hop, then destination options
    path = write_pcap(tmp_path / "hbh.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.calls[0].callee == "[2001:db8:1::20]:5062"
    assert ("udp", 5062) in analysis.stats.ports
    assert_same_as_tshark(analysis, path, udp_ports=[5062])


def test_ipv6_fragmented_invite_with_destination_options_in_fragmentable_part(tmp_path):
    """Fragment header, then a Destination Options header inside the fragmented part (RFC 8200 §4.5):
    the options are walked only after reassembly (they used to be parsed out of each fragment)."""
    dialog = Dialog(CALLER_V6, 5060, CALLEE_V6, 5060, call_id="v6-frag-dopt-31@[2001:db8::10]", invite_body_size=3000)
    packets = udp_flow_packets(dialog)
    ip6 = packets[0][IPv6]
    pieces = fragment6(IPv6(src=ip6.src, dst=ip6.dst, hlim=64) / IPv6ExtHdrFragment(id=0x31) / IPv6ExtHdrDestOpt()
                       / ip6[UDP], 1280)
    assert len(pieces) == 3 and all(bytes(p)[40] == 60 for p in pieces)  # every fragment says: dest. options next
    path = write_pcap(tmp_path / "frag6-dopt.pcap", [eth(p) for p in [pieces[2], pieces[0], pieces[1], *packets[1:]]])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.reassembled_fragments == 1
    assert_same_as_tshark(analysis, path)


def test_ipv4_fragments_with_ethernet_padding(tmp_path):
    """A last fragment of 16 bytes travels in a frame padded to the 60-byte Ethernet minimum: the IP total
    length, not the frame length, says where the fragment ends."""
    dialog = udp_dialog(invite_body_size=3000)
    packets = udp_flow_packets(dialog)
    invite = IP(bytes(packets[0]))
    payload = bytes(invite[IP].payload)
    middle_end = 1480 + (len(payload) - 1480 - 16) // 8 * 8
    header = dict(src=invite.src, dst=invite.dst, id=invite.id, proto=17, ttl=64)
    pieces = [
        IP(flags="MF", frag=0, **header) / Raw(payload[:1480]),
        IP(flags="MF", frag=1480 // 8, **header) / Raw(payload[1480:middle_end]),
        IP(frag=middle_end // 8, **header) / Raw(payload[middle_end:]),
    ]
    last = bytes(eth(pieces[2]))
    assert len(last) < 60
    frames = [eth(pieces[0]), eth(pieces[1]), last + b"\0" * (60 - len(last))]
    frames += [eth(p) for p in packets[1:]]
    path = write_pcap(tmp_path / "frag4-padded.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.reassembled_fragments == 1
    assert_same_as_tshark(analysis, path)


def test_overlapping_ipv4_fragments(tmp_path):
    """A conflicting duplicate of the first fragment and a fragment overlapping its predecessor by 80 bytes:
    the first data is kept, the datagram is reassembled, and both overlaps are reported."""
    dialog = udp_dialog(invite_body_size=3000)
    packets = udp_flow_packets(dialog)
    invite = IP(bytes(packets[0]))  # checksums filled in
    payload = bytes(invite[IP].payload)
    header = dict(src=invite.src, dst=invite.dst, id=invite.id, proto=17, ttl=64)
    first = IP(flags="MF", frag=0, **header) / Raw(payload[:1480])
    conflicting = IP(flags="MF", frag=0, **header) / Raw(payload[:8] + b"X" * 1472)
    overlapping = IP(flags="MF", frag=1400 // 8, **header) / Raw(payload[1400:2880])
    last = IP(frag=2880 // 8, **header) / Raw(payload[2880:])
    frames = [eth(p) for p in (first, conflicting, overlapping, last, *packets[1:])]
    path = write_pcap(tmp_path / "overlap.pcap", frames)
    analysis = analyze(path)  # must not raise
    assert "internal_error" not in analysis.problems.counts
    assert analysis.problems.counts.get("overlapping_fragment", 0) >= 2
    assert analysis.capture.reassembled_fragments == 1
    assert_answered_call(analysis, dialog)  # the first data was kept: the INVITE parses whole
    assert "content_length" not in analysis.problems.counts


def test_ipv4_fragments_that_only_overlap_never_complete(tmp_path):
    """Fragments overlapping in a loop around a hole: no datagram, no crash, reported at the end."""
    dialog = udp_dialog(invite_body_size=3000)
    invite = IP(bytes(udp_flow_packets(dialog)[0]))
    payload = bytes(invite[IP].payload)
    header = dict(src=invite.src, dst=invite.dst, id=invite.id, proto=17, ttl=64)
    frames = [eth(IP(flags="MF", frag=0, **header) / Raw(payload[:1480]))]
    for n in range(4):  # the same region sent again and again at shifting offsets, never the middle
        frames.append(eth(IP(flags="MF", frag=(8 + 8 * n) // 8, **header) / Raw(payload[8 + 8 * n : 1480])))
    frames.append(eth(IP(frag=2880 // 8, **header) / Raw(payload[2880:])))
    path = write_pcap(tmp_path / "overlap-hole.pcap", frames)
    analysis = analyze(path)
    assert "internal_error" not in analysis.problems.counts
    assert analysis.stats.messages == 0
    assert analysis.capture.reassembled_fragments == 0
    assert analysis.problems.counts.get("incomplete_fragments") == 1
    assert analysis.problems.counts.get("overlapping_fragment", 0) >= 1


# --- TCP ---------------------------------------------------------------------------------------------


def tcp_dialog(server_port: int = 5060, **kw) -> Dialog:
    kw.setdefault("call_id", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.10")
    return Dialog(CALLER_V4, 49170, CALLEE_V4, server_port, transport="TCP", **kw)


def tcp_flow(dialog: Dialog, conv: TcpConversation, invite_pieces: int = 1, acks: bool = False):
    """Per message of the flow, the data segments carrying it (the INVITE in `invite_pieces`), followed by
    the receiver's pure ACK when `acks`. Built in order, so every ACK number is what the peer had sent."""
    out = []
    for n, (from_caller, message) in enumerate(dialog.flow()):
        group = conv.send(from_caller, message, pieces=invite_pieces if n == 0 else 1)
        if acks:
            group.append(conv.ack(not from_caller))
        out.append(group)
    return out


def test_tcp_message_split_across_three_segments_with_handshake(tmp_path):
    dialog = tcp_dialog(invite_body_size=1000)
    conv = TcpConversation(dialog.caller, dialog.callee)
    packets = conv.handshake()
    segments = tcp_flow(dialog, conv, invite_pieces=3, acks=True)
    assert len(segments[0]) == 4  # three data segments and the callee's ACK
    for group in segments:
        packets += group
    packets += [conv.fin(True), conv.fin(False), conv.ack(True)]
    path = write_pcap(tmp_path / "tcp-split.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    assert analysis.calls[0].invite_frame == 6  # the segment that completed the INVITE
    assert analysis.stats.by_transport == {"tcp": 7}
    assert analysis.capture.tcp_retransmissions == 0
    assert_same_as_tshark(analysis, path)


def test_tcp_two_messages_in_one_segment_mid_stream(tmp_path):
    """No SYN in the capture; 100+180 share a segment, and so do ACK+BYE."""
    dialog = tcp_dialog()
    conv = TcpConversation(dialog.caller, dialog.callee)
    flow = dialog.flow()
    packets = [
        *conv.send(True, flow[0][1]),
        *conv.send(False, flow[1][1] + flow[2][1]),
        *conv.send(False, flow[3][1]),
        *conv.send(True, flow[4][1] + flow[5][1]),
        *conv.send(False, flow[6][1]),
    ]
    assert len(packets) == 5
    path = write_pcap(tmp_path / "tcp-merged.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    call = analysis.calls[0]
    assert [r.frame for r in call.records] == [1, 2, 2, 3, 4, 4, 5]
    assert [r.label for r in call.records][:3] == ["INVITE", "100 Trying", "180 Ringing"]
    assert_same_as_tshark(analysis, path)


def test_tcp_segments_out_of_order(tmp_path):
    dialog = tcp_dialog(invite_body_size=1200)
    conv = TcpConversation(dialog.caller, dialog.callee)
    packets = conv.handshake()
    segments = tcp_flow(dialog, conv, invite_pieces=3)
    first, second, third = segments[0]
    packets += [third, first, second]  # the INVITE's segments reordered: 3, 1, 2
    for group in segments[1:]:
        packets += group
    path = write_pcap(tmp_path / "tcp-reorder.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    assert analysis.calls[0].invite_frame == 6  # made whole by the last of the three
    # tshark reassembles out-of-order segments only when asked to
    assert_same_as_tshark(analysis, path, prefs=["tcp.reassemble_out_of_order:TRUE"])


def test_tcp_retransmitted_segments_not_counted_twice(tmp_path):
    dialog = tcp_dialog(invite_body_size=600)
    conv = TcpConversation(dialog.caller, dialog.callee)
    packets = conv.handshake()
    segments = tcp_flow(dialog, conv, invite_pieces=2)
    packets += [segments[0][0], segments[0][0].copy(), segments[0][1]]  # the INVITE's first half twice
    packets += segments[1] + segments[2] + segments[3]
    packets += segments[3]  # the whole 200 OK segment retransmitted (same seq, same data)
    for group in segments[4:]:
        packets += group
    assert bytes(packets[3]) == bytes(packets[4])
    path = write_pcap(tmp_path / "tcp-retrans.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert analysis.capture.tcp_retransmissions == 2
    assert analysis.stats.responses[200] == 2  # 200 to INVITE once, 200 to BYE once
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_tcp_non_standard_port_mid_stream(tmp_path):
    dialog = tcp_dialog(server_port=6060)
    conv = TcpConversation(dialog.caller, dialog.callee, isn_client=0xFFFFFF00)  # sequence numbers wrap
    packets = [p for group in tcp_flow(dialog, conv, invite_pieces=2) for p in group]
    assert packets[1][IP].payload.seq < packets[0][IP].payload.seq  # wrapped inside the INVITE
    path = write_pcap(tmp_path / "tcp-6060.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    assert analysis.calls[0].callee == "198.51.100.20:6060"
    assert ("tcp", 6060) in analysis.stats.ports and ("tcp", 5060) not in analysis.stats.ports
    assert_same_as_tshark(analysis, path, tcp_ports=[6060])


def test_tcp_data_with_fin_retransmitted(tmp_path):
    """BYE sent on the segment that also carries FIN, then sent again (its ACK was lost): the second copy
    arrives after the direction was closed and must not make a second BYE."""
    dialog = tcp_dialog()
    conv = TcpConversation(dialog.caller, dialog.callee)
    packets = conv.handshake()
    flow = dialog.flow()
    for from_caller, message in flow[:5]:
        packets += conv.send(from_caller, message)
    bye = flow[5][1]
    bye_fin = conv._packet(True, "FPA", bye)
    conv.seq[True] += len(bye) + 1
    packets += [bye_fin, bye_fin.copy()]
    packets += conv.send(False, flow[6][1])
    packets += [conv.fin(False), conv.ack(True)]
    path = write_pcap(tmp_path / "tcp-fin-retrans.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    assert analysis.capture.tcp_retransmissions == 1
    assert analysis.stats.requests["BYE"] == 1
    assert_same_as_tshark(analysis, path)


def test_tcp_over_ipv6_split_and_merged(tmp_path):
    dialog = Dialog(CALLER_V6, 49500, CALLEE_V6, 5060, transport="TCP", call_id="tcp6-9f1c@[2001:db8::10]",
                    invite_body_size=2000)
    conv = TcpConversation(dialog.caller, dialog.callee)
    flow = dialog.flow()
    packets = conv.handshake()
    packets += conv.send(True, flow[0][1], pieces=2)
    packets += conv.send(False, flow[1][1] + flow[2][1] + flow[3][1])  # 100, 180 and 200 in one segment
    packets += conv.send(True, flow[4][1] + flow[5][1][:40])  # ACK and the start of BYE
    packets += conv.send(True, flow[5][1][40:])
    packets += conv.send(False, flow[6][1])
    path = write_pcap(tmp_path / "tcp6.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert_answered_call(analysis, dialog, transport="tcp")
    assert_no_problems(analysis)
    assert analysis.calls[0].caller == "[2001:db8::10]:49500"
    assert analysis.calls[0].bye_frame == 8
    assert_same_as_tshark(analysis, path)


def test_tcp_mid_stream_capture_starting_with_reordered_segments(tmp_path):
    """No SYN, and the INVITE's second segment is the first one captured: the stream starts in the middle
    of a message, so that INVITE is lost (as it is to tshark); every later message is still found."""
    dialog = tcp_dialog(invite_body_size=900)
    conv = TcpConversation(dialog.caller, dialog.callee)
    segments = tcp_flow(dialog, conv, invite_pieces=3)
    first, second, third = segments[0]
    packets = [second, first, third] + [p for group in segments[1:] for p in group]
    path = write_pcap(tmp_path / "tcp-mid-reorder.pcap", [eth(p) for p in packets])
    analysis = analyze(path)
    assert "internal_error" not in analysis.problems.counts
    assert analysis.stats.messages == 6
    assert "INVITE" not in analysis.stats.requests
    call = analysis.calls[0]
    assert call.call_id == dialog.call_id and call.started_before_capture
    assert call.outcome is Outcome.ANSWERED
    assert_same_as_tshark(analysis, path, prefs=["tcp.reassemble_out_of_order:TRUE"])


# --- link types --------------------------------------------------------------------------------------


def test_linux_cooked_sll(tmp_path):
    dialog = udp_dialog()
    frames = [CookedLinux(pkttype=0 if n % 2 else 4, lladdrtype=1, lladdrlen=6, src=b"\x00\x1b\x21\x3a\x4f\x01\0\0",
                          proto=0x0800) / p for n, p in enumerate(udp_flow_packets(dialog))]
    path = write_pcap(tmp_path / "sll.pcap", frames, LINKTYPE_LINUX_SLL)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.linktypes == [LINKTYPE_LINUX_SLL]
    assert_same_as_tshark(analysis, path)


def test_linux_cooked_sll2(tmp_path):
    dialog = Dialog(CALLER_V6, 5060, CALLEE_V6, 5060, call_id="sll2-6021@[2001:db8::10]")
    frames = [CookedLinuxV2(proto=0x86DD, ifindex=3, lladdrtype=1, pkttype=4, lladdrlen=6,
                            src=b"\x00\x1b\x21\x3a\x4f\x01\0\0") / p for p in udp_flow_packets(dialog)]
    assert bytes(frames[0])[:2] == b"\x86\xdd"
    path = write_pcap(tmp_path / "sll2.pcap", frames, LINKTYPE_LINUX_SLL2)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.calls[0].caller == "[2001:db8::10]:5060"
    assert analysis.capture.linktypes == [LINKTYPE_LINUX_SLL2]
    assert_same_as_tshark(analysis, path)


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_IPV4])
def test_raw_ipv4(tmp_path, linktype):
    dialog = udp_dialog()
    path = write_pcap(tmp_path / f"raw{linktype}.pcap", udp_flow_packets(dialog), linktype)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.capture.linktypes == [linktype]
    assert_same_as_tshark(analysis, path)


@pytest.mark.parametrize(
    ("family", "order", "caller", "callee"),
    [
        (2, "<I", CALLER_V4, CALLEE_V4),  # written on a little-endian host
        (2, ">I", CALLER_V4, CALLEE_V4),  # written on a big-endian host
        (30, "<I", CALLER_V6, CALLEE_V6),  # AF_INET6 on macOS
        (24, ">I", CALLER_V6, CALLEE_V6),  # AF_INET6 on NetBSD/OpenBSD
    ],
)
def test_bsd_null_loopback(tmp_path, family, order, caller, callee):
    dialog = Dialog(caller, 5060, callee, 5060, call_id=f"loop-{family}-{order[0] == '<'}@localhost")
    frames = [struct.pack(order, family) + bytes(p) for p in udp_flow_packets(dialog)]
    path = write_pcap(tmp_path / "null.pcap", frames, LINKTYPE_NULL)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_unsupported_link_type_only(tmp_path):
    """An 802.11 capture: sipwatch cannot decode a single frame and says so."""
    dialog = udp_dialog()
    frames = [b"\x08\x02" + b"\0" * 22 + bytes(p) for p in udp_flow_packets(dialog)]
    path = write_pcap(tmp_path / "wlan.pcap", frames, LINKTYPE_IEEE802_11)
    with pytest.raises(UnsupportedLinkType, match=r"105 \(IEEE 802\.11\)") as info:
        analyze(path)
    assert info.value.exit_code == 5


# --- tunnels -----------------------------------------------------------------------------------------


def tunnel_frames(dialog: Dialog, wrap) -> list:
    return [eth(IP(src=TUNNEL_A, dst=TUNNEL_B, ttl=64, id=0x4000 + n) / wrap(p))
            for n, p in enumerate(udp_flow_packets(dialog))]


def test_ip_in_ip(tmp_path):
    dialog = udp_dialog()
    frames = tunnel_frames(dialog, lambda p: p)
    assert bytes(frames[0])[14 + 9] == 4  # outer protocol: IPv4
    path = write_pcap(tmp_path / "ipip.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)  # the inner addresses, not the tunnel endpoints
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_gre_carrying_ipv4(tmp_path):
    dialog = udp_dialog()
    frames = tunnel_frames(dialog, lambda p: GRE(key_present=1, key=0x1234, proto=0x0800) / p)
    path = write_pcap(tmp_path / "gre.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_gre_erspan_type2_with_sequence(tmp_path):
    dialog = udp_dialog()
    frames = tunnel_frames(
        dialog,
        lambda p: GRE(seqnum_present=1, sequence_number=0x10, proto=0x88BE)
        / ERSPAN_II(session_id=42, vlan=0, en=3, index=7) / Ether(src=MAC_B, dst=MAC_A) / Dot1Q(vlan=12) / p,
    )
    raw = bytes(frames[0])
    assert raw[34] & 0x10 and raw[36:38] == b"\x88\xbe"  # GRE S bit, ERSPAN type II
    path = write_pcap(tmp_path / "erspan.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_vxlan(tmp_path):
    dialog = udp_dialog()
    frames = tunnel_frames(
        dialog, lambda p: UDP(sport=51234, dport=4789) / VXLAN(vni=4242, flags=0x08) / Ether(src=MAC_B, dst=MAC_A) / p
    )
    path = write_pcap(tmp_path / "vxlan.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert ("udp", 4789) not in analysis.stats.ports
    assert_same_as_tshark(analysis, path)


def test_mpls_label_stack(tmp_path):
    dialog = udp_dialog()
    frames = [Ether(src=MAC_A, dst=MAC_B) / MPLS(label=1001, s=0, ttl=64) / MPLS(label=2002, s=1, ttl=64) / p
              for p in udp_flow_packets(dialog)]
    path = write_pcap(tmp_path / "mpls.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_pppoe_session(tmp_path):
    dialog = udp_dialog()
    frames = [Ether(src=MAC_A, dst=MAC_B) / PPPoE(sessionid=0x0007) / PPP(proto=0x0021) / p
              for p in udp_flow_packets(dialog)]
    path = write_pcap(tmp_path / "pppoe.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_gre_transparent_ethernet_bridging(tmp_path):
    dialog = udp_dialog()
    frames = tunnel_frames(dialog, lambda p: GRE(proto=0x6558) / Ether(src=MAC_B, dst=MAC_A) / p)
    path = write_pcap(tmp_path / "gre-teb.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_ipv6_in_ipv4(tmp_path):
    dialog = Dialog(CALLER_V6, 5060, CALLEE_V6, 5060, call_id="6in4-e2@[2001:db8::10]")
    frames = tunnel_frames(dialog, lambda p: p)
    assert bytes(frames[0])[14 + 9] == 41
    path = write_pcap(tmp_path / "6in4.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert analysis.calls[0].caller == "[2001:db8::10]:5060"
    assert_same_as_tshark(analysis, path)


# --- file formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tsresol_exp", [6, 9])
def test_pcapng_two_interfaces_of_different_link_types(tmp_path, tsresol_exp):
    """Requests captured on an Ethernet interface, responses on a raw-IP tunnel interface."""
    dialog = udp_dialog()
    frames = []
    for (from_caller, _), packet in zip(dialog.flow(), udp_flow_packets(dialog), strict=True):
        frames.append((0, eth(packet)) if from_caller else (1, packet))
    t0_ns = T0_NS + 123_456_789
    data = pcapng_bytes([LINKTYPE_ETHERNET, LINKTYPE_RAW], frames, tsresol_exp=tsresol_exp, t0_ns=t0_ns)
    path = tmp_path / "two-ifaces.pcapng"
    path.write_bytes(data)
    analysis = analyze(path)
    assert analysis.capture.format == "pcapng"
    assert analysis.capture.linktypes == [LINKTYPE_ETHERNET, LINKTYPE_RAW]
    assert analysis.capture.packets == 7
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    precision = 1e-7 if tsresol_exp == 9 else 1e-6  # nanosecond units keep the 789 ns microseconds drop
    assert analysis.calls[0].start == pytest.approx(t0_ns / 1e9, abs=precision)
    assert_same_as_tshark(analysis, path)


def test_nanosecond_pcap_keeps_precision(tmp_path):
    dialog = udp_dialog()
    t0_ns = T0_NS + 123_456_789
    step_ns = 250  # 250 ns between frames: lost entirely at microsecond precision
    path = write_pcap(tmp_path / "nano.pcap", [eth(p) for p in udp_flow_packets(dialog)], nano=True, t0_ns=t0_ns,
                      step_ns=step_ns)
    assert path.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    call = analysis.calls[0]
    assert abs(call.start - 1_700_000_000.123456789) < 1e-6
    assert abs(analysis.capture.first - 1_700_000_000.123456789) < 1e-6
    assert abs(analysis.capture.last - 1_700_000_000.123458289) < 1e-6
    assert_same_as_tshark(analysis, path)

    # near the epoch a float holds nanoseconds: the 750 ns INVITE -> 200 OK setup time survives
    near = write_pcap(tmp_path / "nano-near.pcap", [eth(p) for p in udp_flow_packets(dialog)], nano=True,
                      t0_ns=5_000_000_007, step_ns=step_ns)
    call = analyze(near).calls[0]
    assert call.start == pytest.approx(5.000000007, abs=1e-12)
    assert call.setup_ms == pytest.approx(750e-6, abs=1e-9)


def test_nanosecond_pcap_written_by_scapy(tmp_path):
    dialog = udp_dialog()
    path = tmp_path / "scapy-nano.pcap"
    writer = PcapWriter(str(path), nano=True, linktype=LINKTYPE_ETHERNET)
    for n, packet in enumerate(udp_flow_packets(dialog)):
        frame = eth(packet)
        frame.time = Decimal("1700000000.987654321") + Decimal(n) / 1000
        writer.write(frame)
    writer.close()
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert abs(analysis.calls[0].start - 1_700_000_000.987654321) < 1e-6
    assert analysis.calls[0].setup_ms == pytest.approx(3.0, abs=1e-3)
    assert_same_as_tshark(analysis, path)


def test_gzip_compressed_pcap(tmp_path):
    dialog = udp_dialog()
    messages = dialog.short_flow()
    path = write_pcap(tmp_path / "call.pcap.gz", [eth(p) for p in udp_flow_packets(dialog, messages)], compress=True)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    analysis = analyze(path)
    assert analysis.stats.messages == 5
    assert dict(analysis.stats.requests) == FLOW_REQUESTS
    assert dict(analysis.stats.responses) == SHORT_FLOW_RESPONSES
    assert len(analysis.calls) == 1
    call = analysis.calls[0]
    assert call.call_id == dialog.call_id
    assert call.outcome is Outcome.ANSWERED
    assert (call.caller, call.callee) == ("192.0.2.10:5060", "198.51.100.20:5060")
    assert analysis.capture.packets == 5
    assert analysis.capture.bytes > path.stat().st_size  # counted in decompressed bytes
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path)


def test_udp_sip_on_non_standard_port_plain_ethernet(tmp_path):
    """Baseline: plain Ethernet, UDP, both sides on 5080; tshark needs to be told it is SIP."""
    dialog = Dialog(CALLER_V4, 5080, CALLEE_V4, 5080, call_id="plain-5080@atlanta.example.com")
    frames = [eth(p) for p in udp_flow_packets(dialog)]
    frames.insert(3, eth(udp_packet(CALLER_V4, 40000, CALLEE_V4, 40002, b"\x80\x00" + b"\0" * 170)))  # RTP
    path = write_pcap(tmp_path / "plain.pcap", frames)
    analysis = analyze(path)
    assert_answered_call(analysis, dialog)
    assert_no_problems(analysis)
    assert_same_as_tshark(analysis, path, udp_ports=[5080])
