"""The record scan of classic pcap files: in-process and in a child process, the same frames and the same
account of damage; a child that dies costs nothing."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from conftest import CAPTURES

import sipwatch.capture.reader as reader
from sipwatch.capture import scan
from sipwatch.capture.reader import open_capture


def frames_and_problems(path: Path) -> tuple[list[tuple[int, float, bytes]], list[tuple], int]:
    capture = open_capture(str(path))
    try:
        frames = [(n, ts, data) for n, ts, _lt, data in capture.frames()]
    finally:
        capture.close()
    return frames, [(p.kind, p.frame, p.offset, p.message) for p in capture.problems], capture.bytes_read


@pytest.fixture
def child_always(monkeypatch):
    """Every file scanned by the child, with small chunks so that a small capture spans many."""
    monkeypatch.setattr(reader, "CHILD_MIN_BYTES", 0)
    monkeypatch.setattr(scan, "CHUNK", 4096)


@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.setattr(reader, "CHILD_MIN_BYTES", 1 << 62)
    monkeypatch.setattr(scan, "CHUNK", 4096)


def both(path: Path, monkeypatch) -> tuple:
    monkeypatch.setattr(scan, "CHUNK", 4096)
    monkeypatch.setattr(reader, "CHILD_MIN_BYTES", 1 << 62)
    here = frames_and_problems(path)
    monkeypatch.setattr(reader, "CHILD_MIN_BYTES", 0)
    from_child = []
    real = scan.ChildScan._message

    def counting(self):
        message = real(self)
        from_child.append(message is not None)
        return message

    monkeypatch.setattr(scan.ChildScan, "_message", counting)
    child = frames_and_problems(path)
    assert any(from_child), "no chunk came from the child"
    return here, child


def test_child_scan_reads_every_frame_as_the_in_process_scan(monkeypatch) -> None:
    path = CAPTURES / "answered_rtp.pcap"
    here, child = both(path, monkeypatch)
    assert len(here[0]) > 100
    assert child == here


@pytest.mark.parametrize("cut", [7, 16 + 20, 4096 * 3 + 5])
def test_truncated_capture_is_reported_alike(tmp_path: Path, monkeypatch, cut: int) -> None:
    data = (CAPTURES / "answered_rtp.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: len(data) - cut])
    here, child = both(path, monkeypatch)
    assert [p[0] for p in here[1]] == ["truncated_capture"]
    assert child == here


def test_corrupt_record_length_is_reported_alike(tmp_path: Path, monkeypatch) -> None:
    data = bytearray((CAPTURES / "answered_rtp.pcap").read_bytes())
    # walk to the 50th record and make its captured length impossible
    pos = 24
    for _ in range(49):
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    struct.pack_into("<I", data, pos + 8, scan.MAX_SANE_CAPLEN + 1)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    here, child = both(path, monkeypatch)
    assert [(p[0], p[1], p[2]) for p in here[1]] == [("corrupt_record", 50, pos)]
    assert len(here[0]) == 49
    assert child == here


def test_a_child_that_dies_costs_nothing(tmp_path: Path, monkeypatch, child_always) -> None:
    """The child is killed after its first message: the parent reads the rest itself."""
    path = tmp_path / "copy.pcap"
    shutil.copy(CAPTURES / "answered_rtp.pcap", path)
    real_message = scan.ChildScan._message
    messages = []

    def message_then_kill(self):
        if messages:  # what a dead child gives: nothing more on the pipe
            self._proc.kill()
            self._proc.wait()
            messages.append(None)
            return None
        messages.append(real_message(self))
        return messages[-1]

    monkeypatch.setattr(scan.ChildScan, "_message", message_then_kill)
    frames, problems, _ = frames_and_problems(path)
    assert messages[0] is not None and messages[1:] == [None]  # one chunk from the child, then it was gone
    monkeypatch.setattr(scan.ChildScan, "_message", real_message)
    monkeypatch.setattr(reader, "CHILD_MIN_BYTES", 1 << 62)
    assert (frames, problems) == frames_and_problems(path)[:2]


def test_a_file_that_grows_after_the_child_read_it_is_scanned_here(tmp_path: Path, child_always) -> None:
    """The parent and the child must cut the same buffers; when the file changes under them (a capture
    still being written), the parent notices the different length and scans itself."""
    data = (CAPTURES / "answered_rtp.pcap").read_bytes()
    path = tmp_path / "growing.pcap"
    path.write_bytes(data)
    capture = open_capture(str(path))
    try:
        frames = capture.frames()
        first = [next(frames) for _ in range(3)]
        with path.open("ab") as fh:  # the rest of the file the child may already have scanned changes length
            fh.write(data[24:])
        rest = list(frames)
    finally:
        capture.close()
    total = len(first) + len(rest)
    count = sum(1 for _ in open_capture(str(CAPTURES / "answered_rtp.pcap")).frames())
    assert count <= total <= 2 * count
    assert not [p for p in capture.problems if p.kind == "corrupt_record"]
