"""Writes captures/crafted/: encodings that are hard to record live, crafted with scapy (tests/crafted.py).

    .venv/bin/python captures/make_crafted.py

- qinq.pcap: a UDP call (INVITE, 100, 180, 200, ACK, BYE, 200) behind two VLAN tags (0x88a8 outer, 0x8100 inner)
- ipv4_fragments.pcap: the same call with a 3 kB INVITE in three IPv4 fragments, sent out of order (3, 1, 2)
- tcp_out_of_order.pcap: the call over TCP, the INVITE in three segments sent 3, 1, 2, and the 200 OK
  segment retransmitted
Addresses are from the documentation ranges (RFC 5737); nothing is sent anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from crafted import Dialog, TcpConversation, eth, udp_flow_packets, write_pcap  # noqa: E402
from scapy.layers.inet import IP, fragment  # noqa: E402
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: E402

CALLER, CALLEE = "192.0.2.10", "198.51.100.20"


def main() -> None:
    out = HERE / "crafted"
    out.mkdir(exist_ok=True)
    dialog = Dialog(CALLER, 5060, CALLEE, 5060, call_id="qinq-1@192.0.2.10")
    write_pcap(out / "qinq.pcap", [Ether() / Dot1AD(vlan=200) / Dot1Q(vlan=100) / p for p in udp_flow_packets(dialog)])

    dialog = Dialog(CALLER, 5060, CALLEE, 5060, call_id="frag-1@192.0.2.10", invite_body_size=3000)
    packets = udp_flow_packets(dialog)
    pieces = fragment(packets[0], fragsize=1480)
    assert len(pieces) == 3 and all(IP in p for p in pieces)
    write_pcap(out / "ipv4_fragments.pcap", [eth(p) for p in [pieces[2], pieces[0], pieces[1], *packets[1:]]])

    dialog = Dialog(CALLER, 49170, CALLEE, 5060, call_id="tcp-1@192.0.2.10", transport="TCP", invite_body_size=1200)
    conv = TcpConversation(dialog.caller, dialog.callee)
    frames = conv.handshake()
    groups = [conv.send(from_caller, message, pieces=3 if n == 0 else 1)
              for n, (from_caller, message) in enumerate(dialog.flow())]
    first, second, third = groups[0]
    frames += [third, first, second]
    for n, group in enumerate(groups[1:], 1):
        frames += group
        if n == 3:  # the 200 OK segment retransmitted
            frames += [group[0].copy()]
    write_pcap(out / "tcp_out_of_order.pcap", [eth(p) for p in frames])
    for path in sorted(out.glob("*.pcap")):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
