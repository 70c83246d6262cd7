"""`sipwatch live --hep-send`: the SIP and RTCP the capture sees, forwarded to HOMER as HEPv3 (docs/hep.md).

The forwarder taps the decoder's output: whole SIP messages (UDP, WebSocket, SCTP, decrypted TLS) go as they
are; TCP stream bytes are framed into messages first (the capture layer does not know SIP); RTCP goes as the
binary packet. Sending never blocks the capture: a full socket buffer costs the datagram, counted.
"""

from __future__ import annotations

from collections import OrderedDict

from sipwatch.capture.hep_net import HepSender
from sipwatch.model import Datagram, Transport
from sipwatch.sip.framing import StreamFramer
from sipwatch.sip.message import starts_like_sip

MAX_FRAMERS = 10_000  # TCP connections followed for framing; the least recently used is dropped beyond


class HepForwarder:
    def __init__(self, spec: str, capture_id: int = 0, password: str | None = None) -> None:
        self.sender = HepSender(spec, capture_id, password, node_name="sipwatch")
        self._framers: OrderedDict[tuple, StreamFramer] = OrderedDict()

    def __call__(self, datagram: Datagram) -> None:
        payload = datagram.payload
        if datagram.transport is Transport.TCP:
            key = (datagram.src, datagram.sport, datagram.dst, datagram.dport)
            framer = self._framers.get(key)
            if framer is None:
                if not starts_like_sip(payload):
                    return
                framer = self._framers[key] = StreamFramer()
                if len(self._framers) > MAX_FRAMERS:
                    self._framers.popitem(last=False)
            else:
                self._framers.move_to_end(key)
            for message in framer.feed(payload):
                self.sender.send_sip(datagram._replace(payload=message))
        elif starts_like_sip(payload):
            self.sender.send_sip(datagram)
        elif len(payload) >= 8 and payload[0] >> 6 == 2 and 200 <= payload[1] <= 204:
            self.sender.send_rtcp(datagram)

    def counters(self) -> dict[str, int]:
        return self.sender.counters()

    def close(self) -> None:
        self.sender.close()
