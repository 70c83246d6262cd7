"""The HTML post-mortem: well-formed, self-contained, a card and a ladder per failure, captured text kept inert,
and rendered by a real browser (headless Chromium) without errors."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTURES
from crafted import write_sip_exchange
from scapy.utils import wrpcap

from sipwatch.core.analyzer import AnalyzerConfig
from sipwatch.pipeline import analyze_file
from sipwatch.report.data import analysis_to_dict
from sipwatch.report.html import render_html
from sipwatch.report.markdown import render_markdown

SCRIPT = "<script>alert(1)</script>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
URL_ATTRS = {"src", "href", "xlink:href", "action", "formaction", "poster", "data", "srcset", "background", "ping"}
SVG_NS = "http://www.w3.org/2000/svg"


# --- a small DOM from html.parser ---------------------------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag and (cls is None or cls in n.classes)]

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)


class Page(HTMLParser):
    """Builds the tree, failing on any end tag that does not close the innermost open element."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = self.root
        self.errors: list[str] = []
        self.feed(source)
        self.close()
        if self.open is not self.root:
            self.errors.append(f"unclosed <{self.open.tag}> at the end")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.open)
        self.open.children.append(node)
        if tag not in VOID:
            self.open = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.children.append(Node(tag, dict(attrs), self.open))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag != self.open.tag:
            self.errors.append(f"</{tag}> closes <{self.open.tag}> at {self.getpos()}")
            return
        self.open = self.open.parent

    def handle_data(self, data: str) -> None:
        self.open.text.append(data)


def parse(source: str) -> Node:
    page = Page(source)
    assert page.errors == [], page.errors[:5]
    return page.root


def external_references(root: Node) -> list[str]:
    """Everything that would make the browser fetch something: URL attributes not in-page, CSS imports and urls."""
    found = []
    for node in root.iter():
        for name, value in node.attrs.items():
            value = (value or "").strip()
            if name == "xmlns" and value == SVG_NS:
                continue
            fetches = name in URL_ATTRS and not value.startswith(("#", "data:"))
            names_a_server = re.search(r"(?i)https?:|//[a-z0-9]", value) and name not in ("aria-label", "content")
            if fetches or names_a_server:
                found.append(f"<{node.tag} {name}={value!r}>")
    styles = " ".join(n.all_text() for n in root.find_all("style")) + " ".join(
        n.attrs.get("style") or "" for n in root.iter())
    found += re.findall(r"(?i)@import[^;]*", styles)
    found += [u for u in re.findall(r"(?i)url\(\s*['\"]?([^)'\"]*)", styles) if not u.startswith(("#", "data:"))]
    return found


def report(name: str) -> tuple[dict, str, Node]:
    data = analysis_to_dict(analyze_file(str(CAPTURES / name)))
    html = render_html(data)
    return data, html, parse(html)


# --- (a) real SIPp captures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing_ack.pcap", "one_way_audio.pcap", "busy_486.pcap", "answered_rtp.pcap"])
def test_report_of_a_sipp_capture(name: str) -> None:
    data, html, root = report(name)
    assert html.startswith("<!DOCTYPE html>")
    assert external_references(root) == []
    (title,) = root.find_all("head")[0].find_all("title")
    assert name in title.all_text()
    assert root.find_all("h1") and len(root.find_all("h2")) >= 4
    for table in root.find_all("table"):
        assert table.find_all("th"), "every table has header cells"
    troubled = [c for c in data["calls"] if c["cause"]]
    cards = root.find_all("article", "card")
    assert [card.attrs["id"] for card in cards] == [f"call-{c['number']}" for c in troubled]
    for call, card in zip(troubled, cards, strict=True):
        assert call["cause_detail"] in card.all_text()
        finding = next(f for f in call["findings"] if f["detail"] == call["cause_detail"])
        assert finding["advice"]["admin"] in card.all_text() and finding["advice"]["agent"] in card.all_text()
        evidence_table = card.find_all("table", "evidence")[0]
        assert len(evidence_table.find_all("tbody")[0].find_all("tr")) == len(finding["evidence"])
        (ladder,) = card.find_all("svg", "ladder")
        arrows = ladder.find_all("g", "msg")
        assert len(arrows) == len(call["signalling"]) > 0
        assert [int(a.attrs["data-frame"]) for a in arrows] == [m["frame"] for m in call["signalling"]]
        assert len(ladder.find_all("g", "retr")) == sum(m["retransmission"] for m in call["signalling"])
        assert ladder.attrs.get("role") == "img" and ladder.attrs.get("aria-label")
        assert len(ladder.find_all("g", "media")) == sum(1 for s in call["streams"] if s["direction"])
    ids = {n.attrs["id"] for n in root.iter() if "id" in n.attrs}
    assert [a.attrs["href"] for a in root.find_all("a") if a.attrs["href"][1:] not in ids] == []
    charts = root.find_all("svg", "chart")
    assert {"time", "bars"} <= {cls for svg in charts for cls in svg.classes}
    assert all(svg.attrs.get("aria-label") and svg.find_all("title") for svg in charts)
    streams = [s for c in data["calls"] for s in c["streams"]]
    quality = root.find_all("svg", "metrics")
    assert len(quality) == (1 if streams else 0)
    if streams:
        assert len(quality[0].find_all("g", "stream")) == len(streams)


def test_missing_ack_card_marks_the_retransmitted_200() -> None:
    data, html, root = report("missing_ack.pcap")
    (card,) = root.find_all("article", "card")
    retransmitted = card.find_all("g", "retr")
    assert len(retransmitted) == 10 and all("ok" in g.classes for g in retransmitted)
    assert all("(retr.)" in g.all_text() for g in retransmitted)
    assert "NAT / ALG" in card.all_text()
    links = [a.attrs["href"] for a in card.find_all("a")]
    assert "#call-1-f4" in links  # evidence frame 4 links to its arrow in the ladder
    assert any(g.attrs.get("id") == "call-1-f4" for g in card.find_all("g", "msg"))


def test_one_way_audio_ladder_draws_the_one_stream_that_flowed() -> None:
    data, _, root = report("one_way_audio.pcap")
    (call,) = data["calls"]
    (stream,) = call["streams"]
    assert stream["direction"] == "caller->callee"
    (ladder,) = root.find_all("svg", "ladder")
    (media,) = ladder.find_all("g", "media")
    assert f"{stream['packets']} pkts" in media.all_text()
    (line,) = media.find_all("line")
    caller_x, callee_x = (float(lf.attrs["x1"]) for lf in ladder.find_all("line", "life"))
    assert float(line.attrs["x1"]) == caller_x and float(line.attrs["x2"]) > callee_x - 20  # caller → callee
    frames = [int(g.attrs["data-frame"]) for g in ladder.iter() if g.tag == "g" and g.classes & {"msg", "media"}]
    assert frames == sorted(frames)  # media sits among the messages in capture order


def test_html_carries_what_the_markdown_carries() -> None:
    data, html, root = report("one_way_audio.pcap")
    md = render_markdown(data)
    text = root.all_text()
    for heading in re.findall(r"^## (.+?)(?: \(\d+\))?$", md, re.MULTILINE):
        assert heading.split(":")[0] in text, heading
    kpi = data["summary"]["kpi"]
    for key, label in (("asr", "ASR"), ("ner", "NER"), ("pdd_ms", "PDD"), ("acd_s", "ACD")):
        assert label in text and (kpi[key] is None or f"{kpi[key]:g}" in text)
    (call,) = data["calls"]
    stream = call["streams"][0]
    assert stream["ssrc_hex"] in text and call["call_id"] in text


def test_scales_to_many_calls_endpoints_and_messages() -> None:
    data, _, _ = report("missing_ack.pcap")
    call = data["calls"][0]
    # a call relayed through proxies: 6 addresses, 60 messages
    hops = [f"10.0.0.{i}:5060" for i in range(1, 7)]
    messages = []
    for i in range(60):
        a = i % 5
        src, dst = (hops[a], hops[a + 1]) if i % 2 == 0 else (hops[a + 1], hops[a])
        messages.append({**call["signalling"][i % 4], "frame": 100 + i, "src": src, "dst": dst,
                         "ts": call["signalling"][0]["ts"] + i, "retransmission": i % 7 == 0})
    calls = [{**call, "number": n, "signalling": messages, "start_ts": call["start_ts"] + n * 30}
             for n in range(1, 81)]
    calls[74] = {**calls[74], "cause": "capacity"}  # one call of another pattern, late in the capture
    data = {**data, "calls": calls}
    root = parse(render_html(data))
    cards = root.find_all("article", "card")
    assert len(cards) == 50  # as the Markdown post-mortem, at most MAX_CARDS...
    assert "30 more failed or degraded calls" in root.all_text()
    numbers = [int(card.attrs["id"].removeprefix("call-")) for card in cards]
    assert numbers == list(range(1, 50)) + [75]  # ...but every pattern keeps a card
    patterns = root.find_all("div", "patterns")[0].find_all("tbody")[0].find_all("tr")
    assert [row.find_all("td")[3].all_text() for row in patterns] == ["79", "1"]
    ladder = cards[0].find_all("svg", "ladder")[0]
    assert len(ladder.find_all("g", "msg")) == 60 and len(ladder.find_all("g", "endpoint")) == 6
    xs = [float(line.attrs["x1"]) for line in ladder.find_all("line", "life")]
    assert len(set(xs)) == 6 and min(b - a for a, b in zip(xs, xs[1:], strict=False)) >= 150
    columns = root.find_all("svg", "time")[0].find_all("g", "column")
    assert 20 <= len(columns) <= 60  # 80 calls over 40 minutes, bucketed
    assert sum(int(re.search(r": (\d+) calls", c.all_text()).group(1)) for c in columns) == 80


def test_capture_wide_findings_and_unattached_streams(tmp_path: Path) -> None:
    from test_capture_loss import _capture

    data = analysis_to_dict(analyze_file(str(_capture(tmp_path / "loss.pcap")), AnalyzerConfig(rtp_heuristic=True)))
    (finding,) = data["findings"]
    root = parse(render_html(data))
    (section,) = [n for n in root.find_all("section") if n.attrs.get("id") == "capture-findings"]
    assert finding["detail"] in section.all_text() and finding["advice"]["admin"] in section.all_text()
    assert len(section.find_all("table", "evidence")[0].find_all("tbody")[0].find_all("tr")) == len(
        finding["evidence"])
    (quality,) = root.find_all("svg", "metrics")
    assert len(quality.find_all("g", "stream")) == 6  # unattached streams are drawn too
    assert "unattached" in root.all_text() and "Failures and degraded calls (0)" in root.all_text()


def test_damaged_capture_is_flagged(tmp_path: Path) -> None:
    data = (CAPTURES / "answered_rtp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 5])
    out = tmp_path / "pm.html"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(cut), "-o", str(out)],
                            capture_output=True, timeout=120)
    assert result.returncode == 6, result.stderr
    root = parse(out.read_text(encoding="utf-8"))
    (warning,) = [n for n in root.find_all("p", "warning")]
    assert "damaged" in warning.all_text() and warning.attrs.get("role") == "alert"
    (problems,) = [n for n in root.find_all("section") if n.attrs.get("id") == "problems"]
    assert "truncated_capture" in problems.all_text() and re.search(r"frame \d+, byte [\d,]+", problems.all_text())


def test_redacted_report_keeps_no_address(tmp_path: Path) -> None:
    out = tmp_path / "pm.html"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(CAPTURES / "nat_private_sdp.pcap"),
                             "-o", str(out), "--redact"], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert "192.168.1.23" not in html and "sipp" not in html  # the private address and the caller's user part
    root = parse(html)
    (card,) = root.find_all("article", "card")
    assert "NAT / ALG" in card.all_text() and "10.0.0.1" in card.all_text()  # still a private address: still NAT


# --- (b) hostile captured text ----------------------------------------------------------------------------------


def _hostile_capture(path: Path) -> Path:
    """A 486 whose User-Agent, Server, reason phrase, Reason text, Call-ID and From user are markup.

    (A From display name is not in the report data, so it cannot reach the page.)"""
    headers = (
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        'From: "Eve" <sip:"onload=alert(3)//@192.0.2.1>;tag=1\r\n'
        "To: <sip:bob@192.0.2.2>{tag}\r\nCall-ID: <img src=x onerror=alert(4)>\r\nCSeq: 1 INVITE\r\n"
    )
    invite = ("INVITE sip:bob@192.0.2.2 SIP/2.0\r\n" + headers.format(tag="")
              + f'User-Agent: {SCRIPT}"onload=alert(5)\r\nContent-Length: 0\r\n\r\n')
    busy = (f"SIP/2.0 486 {SCRIPT}\r\n" + headers.format(tag=";tag=2") + f"Server: {SCRIPT}\r\n"
            f'Reason: Q.850;cause=17;text="{SCRIPT}"\r\nContent-Length: 0\r\n\r\n')
    return write_sip_exchange(path, [invite, busy])


def test_captured_markup_stays_text(tmp_path: Path) -> None:
    data = analysis_to_dict(analyze_file(str(_hostile_capture(tmp_path / "x.pcap"))))
    (call,) = data["calls"]
    assert call["user_agent"].startswith(SCRIPT) and call["from_user"] == '"onload=alert(3)//'
    html = render_html(data)
    root = parse(html)
    assert root.find_all("script") == [] and root.find_all("img") == []
    assert [(n.tag, a) for n in root.iter() for a in n.attrs if a.startswith("on")] == []
    assert "<script>" not in html and "&lt;script&gt;" in html
    text = root.all_text()
    assert f'{SCRIPT}"onload=alert(5)' in text  # shown, as text
    assert "<img src=x onerror=alert(4)>" in text and '"onload=alert(3)//' in text
    (ladder,) = root.find_all("svg", "ladder")
    assert f"486 {SCRIPT}" in "".join(t.all_text() for t in ladder.find_all("text"))  # inside SVG <text> too
    assert external_references(root) == []


def test_a_parse_check_that_can_fail() -> None:
    assert Page("<div><p>x</div></p>").errors
    root = Page('<img src="http://example.com/x.png"><style>@import "x.css";</style>').root
    assert len(external_references(root)) == 2


# --- (c) in a browser ---------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `make test` installs it (Debian package chromium); the browser "
                    "test of the HTML report cannot run without it")
    return path


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB(A) PNG as a height × width × channels array (zlib and the five PNG row filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) & 255
        elif kind == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average, Paeth: each byte depends on the one before it
            row, up = line.tolist(), prev.tolist()
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    row[i] = (row[i] + ((a + b) >> 1)) & 255
                    continue
                c = up[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.array(row, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, bpp)


def _chromium_run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def failure_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The post-mortem of a capture with several failures and RTP, written by the CLI."""
    folder = tmp_path_factory.mktemp("page")
    merged = folder / "merged.pcap"
    parts = ["missing_ack.pcap", "one_way_audio.pcap", "busy_486.pcap", "answered_rtp.pcap", "route_advance_503.pcap"]
    frames = []
    from scapy.utils import rdpcap

    for part in parts:
        frames += list(rdpcap(str(CAPTURES / part)))
    frames.sort(key=lambda p: float(p.time))
    wrpcap(str(merged), frames)
    out = folder / "postmortem.html"
    result = subprocess.run([sys.executable, "-m", "sipwatch.cli", "report", str(merged), "-o", str(out)],
                            capture_output=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return out


def test_screenshot_in_headless_chromium(failure_page: Path, tmp_path: Path) -> None:
    png = tmp_path / "postmortem.png"
    result = _chromium_run([f"--screenshot={png}", "--window-size=1280,4000", failure_page.as_uri()], tmp_path)
    assert png.exists(), result.stderr[-2000:]
    pixels = decode_png(png.read_bytes())
    assert pixels.shape[:2] == (4000, 1280)
    colours = np.unique(pixels[:, :, :3].reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"a near-blank screenshot: {len(colours)} colours"
    lower = pixels[2000:, :, :3].reshape(-1, 3)
    assert len(np.unique(lower, axis=0)) > 20, "nothing drawn in the lower half (cards, ladders)"


def test_dom_in_headless_chromium(failure_page: Path, tmp_path: Path) -> None:
    result = _chromium_run(["--dump-dom", failure_page.as_uri()], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    root = parse(result.stdout)  # the DOM as the browser built it
    # a card and ladder per call with a cause: missing ACK, one-way audio, busy, route advance, and the other
    # SIPp calls, whose caller made three short calls in the capture (a short-call pattern)
    data = analysis_to_dict(analyze_file(str(failure_page.parent / "merged.pcap")))
    troubled = [c for c in data["calls"] if c["cause"]]
    assert {c["findings"][0]["kind"] for c in troubled} >= {"missing_ack", "sip_486", "route_advance"}
    assert len(root.find_all("svg", "ladder")) == len(troubled) >= 4
    assert root.find_all("svg", "time") and root.find_all("svg", "metrics") and root.find_all("svg", "bars")
    assert root.find_all("script") == []


class DevTools:
    """Chromium driven over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON): no websocket needed."""

    def __init__(self, tmp_path: Path) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, its fd 4 writes the answers
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={tmp_path / 'profile'}",
             "--window-size=1280,2000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            os.write(self._to_child, json.dumps({"id": 0, "method": "Browser.close", "params": {}}).encode() + b"\0")
            self.process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=30)
        os.close(self._to_child)
        os.close(self._from_child)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "chromium did not answer over the DevTools pipe"
            ready, _, _ = select.select([self._from_child], [], [], remaining)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                assert chunk, "chromium closed the DevTools pipe"
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params: object) -> dict:
        self._id += 1
        command: dict = {"id": self._id, "method": method, "params": params}
        if session:
            command["sessionId"] = session
        os.write(self._to_child, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            if message.get("id") == self._id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._read(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message


@dataclass
class Rendered:
    problems: list[str]  # console errors and warnings, exceptions, dialogs, requests beyond the page
    facts: dict


def render_in_chromium(page: Path, tmp_path: Path) -> Rendered:
    browser = DevTools(tmp_path)
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session)
        browser.send("Page.navigate", session, url=page.as_uri())
        browser.wait_for("Page.loadEventFired")
        facts = browser.send("Runtime.evaluate", session, returnByValue=True, expression="""({
            title: document.title,
            ladders: [...document.querySelectorAll('svg.ladder')].map(s => ({
                arrows: s.querySelectorAll('g.msg').length,
                width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height})),
            charts: [...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().height),
            cards: document.querySelectorAll('article.card').length,
            scripts: document.scripts.length,
            handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes])
                .filter(a => a.name.startsWith('on')).length,
            height: document.documentElement.scrollHeight,
        })""")["result"]["value"]
        browser.send("Runtime.evaluate", session, expression="1")  # drain events queued meanwhile
    finally:
        browser.close()
    problems = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            problems.append(f"exception: {params['exceptionDetails'].get('text')} "
                            f"{params['exceptionDetails'].get('exception', {}).get('description', '')}")
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
            problems.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            problems.append(f"log {params['entry']['level']}: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Page.javascriptDialogOpening":
            problems.append(f"dialog: {params['message']}")
        elif method == "Network.requestWillBeSent" and params["request"]["url"] not in (page.as_uri(), "data:,"):
            problems.append(f"request: {params['request']['url']}")
    return Rendered(problems, facts)


def test_no_console_errors_and_everything_drawn_in_chromium(failure_page: Path, tmp_path: Path) -> None:
    rendered = render_in_chromium(failure_page, tmp_path)
    assert rendered.problems == []
    facts = rendered.facts
    assert facts["title"].startswith("Post-mortem:")
    data = analysis_to_dict(analyze_file(str(failure_page.parent / "merged.pcap")))
    troubled = [c for c in data["calls"] if c["cause"]]
    assert facts["cards"] == len(troubled) >= 4 and facts["scripts"] == 0 and facts["handlers"] == 0
    # an arrow per SIP message of each call with a card
    assert sorted(ladder["arrows"] for ladder in facts["ladders"]) == sorted(len(c["signalling"]) for c in troubled)
    assert all(ladder["width"] > 300 and ladder["height"] > 100 for ladder in facts["ladders"])
    assert len(facts["charts"]) >= 5 and all(h > 20 for h in facts["charts"])


def test_hostile_page_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render_html(analysis_to_dict(analyze_file(str(_hostile_capture(tmp_path / "x.pcap"))))),
                    encoding="utf-8")
    rendered = render_in_chromium(page, tmp_path)
    assert rendered.problems == []  # no alert dialog, no request for the <img>, no CSP violation
    assert rendered.facts["scripts"] == 0 and rendered.facts["handlers"] == 0
    assert [ladder["arrows"] for ladder in rendered.facts["ladders"]] == [2]


def test_the_browser_check_catches_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><title>x</title><img src="missing.png"><script>console.error("boom");'
                    "no_such_function()</script>", encoding="utf-8")
    problems = render_in_chromium(page, tmp_path).problems
    assert any("boom" in p for p in problems)
    assert any("no_such_function" in p for p in problems)
    assert any("missing.png" in p for p in problems)
