"""The decided calls of a file analysis, with memory bounded by the calls in progress, not by the file.

A call keeps its messages, SDP, streams and their statistics: some 25 KB. The first `keep` decided calls
stay in memory; each later one is pickled to an unlinked temporary file as it is decided, and only a summary
stays: the call without its messages, SDP and findings, its streams reduced to what capture-wide detection
reads (packets, first and last arrival, sequence gaps). Capture-wide figures (KPIs, capacity windows, patterns
across calls, capture loss) are computed over the summaries; a report reads the whole calls back one at a
time, in order of start, each time it goes through them.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from sipwatch.core.calls import Call
from sipwatch.core.findings import MediaThresholds, requalify

KEEP = 1000  # calls kept whole in memory; later ones go to disk


_NO_TAGS: frozenset[str] = frozenset()  # one object for every summary (`frozenset()` is not a singleton)


class StreamSummary:
    """What capture-wide loss detection reads of a stream (`core.findings.capture_loss_streams`)."""

    __slots__ = ("packets", "first", "last", "gap_arrivals", "capture_lost")

    def __init__(self, stream) -> None:
        stats = stream.stats
        self.packets, self.first, self.last = stats.packets, stats.first, stats.last
        self.gap_arrivals = tuple(stats.gap_arrivals)  # () for most streams: shared, costs nothing
        self.capture_lost = stream.capture_lost

    @property
    def stats(self) -> StreamSummary:
        return self


def summarize(call: Call) -> Call:
    """The call without what only its own report reads: the times, statuses, frames, outcome, Call-ID and
    users the capture-wide figures read stay; messages, SDP, addresses, URIs, tags, headers and findings go
    (the empty tuples are shared, so a summary holds a few hundred bytes)."""
    return replace(call, records=(), sdp=(), addresses=(), findings=(), anomalies=(), reasons=(),
                   early_tags=_NO_TAGS, from_uri=None, to_uri=None, from_tag=None, to_tag=None,
                   user_agent=None, server=None, caller=None, callee=None,
                   streams=tuple(StreamSummary(s) for s in call.streams))


class DecidedCalls(Sequence[Call]):
    """Calls in order of (start, Call-ID) once `finish()`ed; indexing and iteration give whole calls. The
    temporary file lives as long as the object (or until `close()`): the analysis reads from it."""

    def __init__(self, keep: int | None = None) -> None:
        self._keep = KEEP if keep is None else keep
        self._kept = 0
        self._file = None
        # (start, Call-ID, the call or its summary, where its pickle is (offset, length) or None)
        self._entries: list[tuple[float, str, Call, tuple[int, int] | None]] = []
        self._limits: MediaThresholds | None = None
        self._no_room = False

    def extend(self, calls: Iterable[Call]) -> None:
        for call in calls:
            self.add(call)

    def add(self, call: Call) -> None:
        if self._kept < self._keep or self._no_room:
            self._kept += 1
            self._entries.append((call.start, call.call_id, call, None))
            return
        blob = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="sipwatch-calls-")  # noqa: SIM115 - see close()
            offset = self._file.seek(0, 2)
            self._file.write(blob)
        except OSError:  # no room for the temporary file: later calls stay in memory, nothing is lost
            self._no_room = True
            self.add(call)
            return
        self._entries.append((call.start, call.call_id, summarize(call), (offset, len(blob))))

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def finish(self, limits: MediaThresholds) -> None:
        """All calls are in: sort them; `limits` decides quality again where capture loss was found."""
        self._entries.sort(key=lambda entry: (entry[0], entry[1]))
        self._limits = limits
        if self._file is not None:
            self._file.flush()

    @property
    def summaries(self) -> list[Call]:
        """Every call in order, whole when kept in memory, else its summary."""
        return [entry[2] for entry in self._entries]

    def kept(self) -> list[Call]:
        return [entry[2] for entry in self._entries if entry[3] is None]

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._whole(entry) for entry in self._entries[index]]
        return self._whole(self._entries[index])

    def __iter__(self) -> Iterator[Call]:
        for entry in self._entries:
            yield self._whole(entry)

    def _whole(self, entry) -> Call:
        summary, where = entry[2], entry[3]
        if where is None:
            return summary
        offset, length = where
        self._file.seek(offset)
        call = pickle.loads(self._file.read(length))
        lost = [s.capture_lost for s in summary.streams]
        if any(lost):  # capture loss found over the summaries: the whole call's streams learn their share
            for stream, n in zip(call.streams, lost, strict=True):
                stream.capture_lost = n
            requalify(call, self._limits)
        return call

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
