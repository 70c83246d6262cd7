"""The decided calls of a file analysis, in memory set by the calls in progress plus a small summary of
each decided call, not by the file's size.

A call keeps its messages, SDP, streams and their statistics: some 25 KB. The first `keep` decided calls
stay in memory; each later one is pickled to an unlinked temporary file as it is decided, and only a summary
stays, in the columns of `Summaries`: the call's times, statuses, frames, outcome, Call-ID and users, its
streams reduced to what capture-wide detection reads (packets, first and last arrival, sequence gaps). That
is about 0.6 KB a call with its Call-ID and its place in the order (docs/benchmarks.md), and no Python objects
of its own. Capture-wide figures (KPIs, capacity windows, patterns across calls, capture loss) are computed
over the summaries, through views; a report reads the whole calls back one at a time, in order of start, each
time it goes through them.
"""

from __future__ import annotations

import pickle
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence

from sipwatch.core.calls import Call
from sipwatch.core.findings import MediaThresholds, requalify

KEEP = 1000  # calls kept whole in memory; later ones go to disk


_NONE_INT = -(2**63)  # an int column's None
_NAN = float("nan")  # a float column's None


class Summaries:
    """What capture-wide figures read of the calls on disk, in columns: times in float arrays (NaN for
    None), statuses and frames in int arrays, the few strings and enums in lists, and each call's streams
    (packets, first and last arrival, capture-lost packets, sequence gaps) in flat arrays. About 0.4 KB a
    call (its Call-ID aside) and no Python objects of its own: the capture-wide passes get `CallSummary`
    views, made as they go through them."""

    FLOATS = ("first_ts", "invite_ts", "trying_ts", "ringing_ts", "answer_ts", "ack_ts", "cancel_ts", "bye_ts",
              "final_ts", "last_ts")
    INTS = ("number", "first_frame", "invite_frame", "answer_frame", "cancel_frame", "bye_frame", "final_status",
            "final_frame", "retry_after", "messages", "retransmissions", "attempts")
    FLAGS = ("started_before_capture", "open_at_end")
    OBJECTS = ("call_id", "from_user", "to_user", "final_phrase", "bye_by", "outcome", "state", "timeout_kind",
               "transport")

    def __init__(self) -> None:
        self._floats = {name: array("d") for name in self.FLOATS}
        self._ints = {name: array("q") for name in self.INTS}
        self._flags = {name: array("b") for name in self.FLAGS}
        self._objects: dict[str, list] = {name: [] for name in self.OBJECTS}
        self._shared: dict[str, str] = {}  # one copy of each repeated string (users, phrases)
        self._first_stream = array("q")  # index of each call's first stream in the stream columns
        self.packets, self.first, self.last, self.capture_lost = array("q"), array("d"), array("d"), array("q")
        self.gap_arrivals: dict[int, tuple] = {}  # stream index -> gaps (most streams have none)

    def __len__(self) -> int:
        return len(self._first_stream)

    def add(self, call: Call) -> int:
        """Keep what the summary of `call` holds; its index."""
        for name, column in self._floats.items():
            value = getattr(call, name)
            column.append(_NAN if value is None else value)
        for name, column in self._ints.items():
            value = getattr(call, name)
            column.append(_NONE_INT if value is None else value)
        for name, column in self._flags.items():
            column.append(getattr(call, name))
        shared = self._shared
        for name, column in self._objects.items():
            value = getattr(call, name)
            if isinstance(value, str) and name != "call_id":
                if len(shared) > 100_000:
                    shared.clear()
                value = shared.setdefault(value, value)
            column.append(value)
        self._first_stream.append(len(self.packets))
        for stream in call.streams:
            stats = stream.stats
            if stats.gap_arrivals:
                self.gap_arrivals[len(self.packets)] = tuple(stats.gap_arrivals)
            self.packets.append(stats.packets)
            self.first.append(stats.first)
            self.last.append(stats.last)
            self.capture_lost.append(stream.capture_lost)
        return len(self._first_stream) - 1

    def value(self, name: str, i: int):
        column = self._floats.get(name)
        if column is not None:
            value = column[i]
            return None if value != value else value  # NaN: None
        column = self._ints.get(name)
        if column is not None:
            value = column[i]
            return None if value == _NONE_INT else value
        column = self._flags.get(name)
        if column is not None:
            return bool(column[i])
        column = self._objects.get(name)
        if column is not None:
            return column[i]
        raise AttributeError(f"a call summary has no {name!r} (sipwatch.spill.Summaries keeps what "
                             "capture-wide figures read)")

    def streams(self, i: int) -> range:
        """The indices of call `i`'s streams in the stream columns."""
        end = self._first_stream[i + 1] if i + 1 < len(self._first_stream) else len(self.packets)
        return range(self._first_stream[i], end)


class CallSummary:
    """A call on disk as capture-wide figures see it: its times, statuses, frames, outcome, Call-ID, users
    and streams, read from `Summaries`; anything else (messages, SDP, findings) is not there."""

    __slots__ = ("_store", "_i")

    def __init__(self, store: Summaries, i: int) -> None:
        self._store = store
        self._i = i

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._store.value(name, self._i)

    @property
    def streams(self) -> tuple[StreamSummary, ...]:
        store = self._store
        return tuple(StreamSummary(store, k) for k in store.streams(self._i))

    # derived the same way as a whole call's
    partial = Call.partial
    start = Call.start
    end = Call.end
    pdd_ms = Call.pdd_ms
    setup_ms = Call.setup_ms
    duration_s = Call.duration_s


class StreamSummary:
    """A stream of a call on disk as capture-wide loss detection reads it (`core.findings.capture_loss_streams`),
    which may set its `capture_lost`."""

    __slots__ = ("_store", "_k")

    def __init__(self, store: Summaries, k: int) -> None:
        self._store = store
        self._k = k

    @property
    def stats(self) -> StreamSummary:
        return self

    @property
    def packets(self) -> int:
        return self._store.packets[self._k]

    @property
    def first(self) -> float:
        return self._store.first[self._k]

    @property
    def last(self) -> float:
        return self._store.last[self._k]

    @property
    def gap_arrivals(self) -> tuple:
        return self._store.gap_arrivals.get(self._k, ())

    @property
    def capture_lost(self) -> int:
        return self._store.capture_lost[self._k]

    @capture_lost.setter
    def capture_lost(self, value: int) -> None:
        self._store.capture_lost[self._k] = value


class DecidedCalls(Sequence[Call]):
    """Calls in order of (start, Call-ID) once `finish()`ed; indexing and iteration give whole calls. The
    temporary file lives as long as the object (or until `close()`): the analysis reads from it."""

    def __init__(self, keep: int | None = None) -> None:
        self._keep = KEEP if keep is None else keep
        self._kept = 0
        self._file = None
        # (start, Call-ID, the call, or for a call on disk its index in the summaries and pickle positions)
        self._entries: list[tuple[float, str, Call | int]] = []
        self._summaries = Summaries()
        self._at = array("q")  # where each call on disk was pickled: offset in the file
        self._size = array("q")  # and length
        self._limits: MediaThresholds | None = None
        self._no_room = False

    def extend(self, calls: Iterable[Call]) -> None:
        for call in calls:
            self.add(call)

    def add(self, call: Call) -> None:
        if self._kept < self._keep or self._no_room:
            self._kept += 1
            self._entries.append((call.start, call.call_id, call))
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
        self._at.append(offset)
        self._size.append(len(blob))
        self._entries.append((call.start, call.call_id, self._summaries.add(call)))

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
    def summaries(self) -> list[Call | CallSummary]:
        """Every call in order, whole when kept in memory, else its summary."""
        store = self._summaries
        return [held if isinstance(held := entry[2], Call) else CallSummary(store, held) for entry in self._entries]

    def kept(self) -> list[Call]:
        return [entry[2] for entry in self._entries if isinstance(entry[2], Call)]

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
        held = entry[2]
        if isinstance(held, Call):
            return held
        self._file.seek(self._at[held])
        call = pickle.loads(self._file.read(self._size[held]))
        store = self._summaries
        lost = [store.capture_lost[k] for k in store.streams(held)]
        if any(lost):  # capture loss found over the summaries: the whole call's streams learn their share
            for stream, n in zip(call.streams, lost, strict=True):
                stream.capture_lost = n
            requalify(call, self._limits)
        return call

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
