"""A frame source that replays capture files as fast as they can be read, looped with time shifted: many hours
of capture time in minutes, through the live runner (the memory benchmark, bench/live.py, and its test)."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

import numpy as np

from sipwatch.capture.live import CountingSource
from sipwatch.capture.reader import FrameBlock, open_capture


class ReplaySource(CountingSource):
    """Each of `loops` passes reads `paths` in order, every timestamp moved `shift` seconds later than in the
    pass before. `on_loop(n)` is called after pass n (1-based) has been handed over.

    With `paced`, frames are handed over one by one and a quiet second between two frames is told as a live
    source tells it (None, with `now()` moved on), so timers and in-call checks fire as on a live line."""

    def __init__(self, paths: list[str], loops: int, shift: float,
                 on_loop: Callable[[int], None] | None = None, paced: bool = False) -> None:
        super().__init__()
        self.name = f"replay of {', '.join(paths)} x{loops}"
        self.paths = paths
        self.loops = loops
        self.shift = shift
        self.on_loop = on_loop
        self.paced = paced
        self._last = float("-inf")

    def batches(self, timeout: float) -> Iterator[FrameBlock | None]:
        for n in range(self.loops):
            offset = n * self.shift
            for path in self.paths:
                capture = open_capture(path)
                try:
                    for block in capture.blocks():
                        if self._stopping:
                            return
                        times = np.frombuffer(block.times, dtype=np.float64) + offset
                        block.times = array("d", times.tobytes())
                        self._received += len(block)
                        self._bytes += int(sum(block.lengths))
                        if self.paced:
                            yield from self._paced(block, times)
                            continue
                        self._last = float(times[-1]) if len(times) else self._last
                        yield block
                finally:
                    capture.close()
            # the quiet half of the gap before the next pass: the runner ticks its timers
            self._last += self.shift / 2
            yield None
            if self.on_loop is not None:
                self.on_loop(n + 1)

    def _paced(self, block: FrameBlock, times: np.ndarray) -> Iterator[FrameBlock | None]:
        for i, ts in enumerate(times.tolist()):
            while ts - self._last > 1.0 and self._last != float("-inf"):
                self._last += 1.0
                yield None
            self._last = ts
            start, length = block.offsets[i], block.lengths[i]
            linktype = block.linktypes[i]
            yield FrameBlock(block.data[start : start + length], 0, array("q", [0]), array("q", [length]),
                             array("d", [ts]), array("H", [linktype]))

    def now(self) -> float:
        return self._last
