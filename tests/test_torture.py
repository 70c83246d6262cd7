"""The PROTOS c07-sip corpus: 4446 malformed INVITEs, one per frame. Every frame is accounted for.

tshark's sip,stat is no oracle here (its tap drops each message whose dissection raised part-way), so the
test checks sipwatch's own bookkeeping: each frame is either a counted SIP message (usable, or recorded as a
parse problem with its frame number), a message cut short, or not SIP at all by its start line, and nothing
makes sipwatch itself fail.
"""

from __future__ import annotations

from conftest import SHARED_CAPTURES

from sipwatch.capture.decode import FrameDecoder
from sipwatch.capture.reader import open_capture
from sipwatch.pipeline import analyze_file
from sipwatch.sip.message import starts_like_sip

PROTOS = SHARED_CAPTURES / "torture" / "protos-c07-sip" / "derived_protos_c07_invites.pcap.gz"


def test_every_protos_frame_is_accounted_for(shared_captures) -> None:
    analysis = analyze_file(str(PROTOS))
    assert analysis.capture.packets == 4446
    problems = analysis.problems
    assert "internal_error" not in problems.counts
    decoder = FrameDecoder()
    sip_frames = 0
    for frame, ts, linktype, data in open_capture(str(PROTOS)).frames():
        datagram = decoder.decode(frame, ts, linktype, data)
        if datagram is not None and starts_like_sip(datagram.payload):
            sip_frames += 1
    stats = analysis.stats
    # every frame that starts like SIP is a counted message or a message cut short, nothing else
    assert stats.messages + stats.truncated == sip_frames
    assert stats.parse_errors == problems.counts.get("sip_parse", 0)
    assert stats.parse_errors > 100  # the corpus is malformed on purpose: many are rejected, with reasons
    # the reference INVITE (case 0, frame 1) and most single-field mutations still make calls
    assert analysis.calls and analysis.calls[0].first_frame == 1
    assert len(analysis.calls) > 3000
    # problems name their frame
    assert all(p.frame is not None for p in problems.kept if p.kind == "sip_parse")
