"""Apps' output on disk, with the time each piece arrived, and read back in time order.

Each app has two files in its directory:

    log        the bytes the app wrote to stdout and stderr, exactly as written
    log.times  one line per chunk the stage1 read: "<unix time> <offset of the chunk in log>"

Why a side index and not a timestamp on every line of `log`: `log` stays the app's own bytes
(binary output, partial lines and all; other tools and tests read it as it is), and the index
costs one short line per read(2) of up to 64 KiB instead of one per output line. A line's time
is the time of the chunk in which it *started*; `pyrkt logs` merges the apps of a pod by it.
"""

from __future__ import annotations

import os
import time

from registry.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from _typeshed import StrPath

INDEX_SUFFIX = ".times"


class LogWriter:
    """Appends chunks to an app's log and records when each arrived."""

    def __init__(self, log_path: StrPath) -> None:
        self.log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self.index = open(_index_path(log_path), "ab", buffering=0)  # noqa: SIM115
        self.offset = self.log.tell()

    def write(self, data: bytes, when: float | None = None) -> None:
        if not data:
            return
        stamp = time.time() if when is None else when
        self.index.write(f"{stamp:.6f} {self.offset}\n".encode())
        self.log.write(data)
        self.offset += len(data)

    def close(self) -> None:
        self.log.close()
        self.index.close()


@record(frozen=True)
class LogLine:
    when: float
    app: str
    data: bytes  # the line with its newline (the last line of a log may lack it)


def _index_path(log_path: StrPath) -> str:
    return os.fspath(log_path) + INDEX_SUFFIX  # (a str or os.PathLike: no pathlib on a start)


def _index(log_path: StrPath) -> tuple[list[int], list[float]]:
    offsets: list[int] = []
    stamps: list[float] = []
    try:
        with open(_index_path(log_path)) as handle:
            text = handle.read()
    except OSError:
        return offsets, stamps
    for row in text.splitlines():
        stamp, _, offset = row.partition(" ")
        try:
            stamps.append(float(stamp))
            offsets.append(int(offset))
        except ValueError:
            continue  # a line cut short by a crash: the chunks before it still count
    return offsets, stamps


class AppLog:
    """One app's log, read line by line from a byte offset on (again and again with --follow)."""

    def __init__(self, app: str, path: StrPath, fallback_time: float) -> None:
        self.app, self.path, self.fallback_time = app, path, fallback_time
        self.offset = 0
        self.pending = b""  # a line whose end has not been written yet

    def _time_of(self, offsets: list[int], stamps: list[float], position: int) -> float:
        import bisect  # here: the readers' (the holder writing logs at every run needs neither)

        at = bisect.bisect_right(offsets, position) - 1
        return stamps[at] if at >= 0 else self.fallback_time

    def read(self, *, final: bool) -> list[LogLine]:
        """The lines added since the last call; `final` also returns an unfinished last line."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            data = b""
        start = self.offset - len(self.pending)
        self.offset += len(data)
        data = self.pending + data
        if not data:
            return []
        offsets, stamps = _index(self.path)
        lines: list[LogLine] = []
        position = 0
        while True:
            end = data.find(b"\n", position)
            if end < 0:
                break
            lines.append(LogLine(self._time_of(offsets, stamps, start + position), self.app,
                                 data[position:end + 1]))
            position = end + 1
        self.pending = data[position:]
        if final and self.pending:
            lines.append(LogLine(self._time_of(offsets, stamps, start + position), self.app,
                                 self.pending))
            self.pending = b""
        return lines


def merge(batches: list[list[LogLine]]) -> list[LogLine]:
    """Lines of several apps in time order; an app's own lines keep their order."""
    import heapq  # here: see bisect above

    keyed = [[(line.when, index, number, line) for number, line in enumerate(batch)]
             for index, batch in enumerate(batches)]
    return [entry[3] for entry in heapq.merge(*keyed)]


def format_line(line: LogLine, *, prefix_width: int | None, timestamps: bool) -> bytes:
    """`[TIME ]APP | text`, or the bare bytes when prefix_width is None and no timestamps."""
    head = ""
    if timestamps:
        moment = time.gmtime(line.when)
        head = time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(line.when % 1 * 1e6):06d}Z "
    if prefix_width is not None:
        head += f"{line.app.ljust(prefix_width)} | "
    data = line.data if line.data.endswith(b"\n") else line.data + b"\n"
    return head.encode() + data if head else line.data


def select(lines: list[LogLine], *, since: float | None, tail: int | None) -> list[LogLine]:
    if since is not None:
        lines = [line for line in lines if line.when >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines


def follow(logs: list[AppLog], is_running: object, *, since: float | None, tail: int | None,
           interval: float = 0.1) -> Iterator[LogLine]:
    """What is there (after `since`, the last `tail`), then new lines as they come, until the
    pod ends (`is_running()` false: one last read picks up what its end wrote)."""
    first = select(merge([log.read(final=False) for log in logs]), since=since, tail=tail)
    yield from first
    while True:
        running = bool(is_running())  # type: ignore[operator]
        batch = merge([log.read(final=not running) for log in logs])
        yield from select(batch, since=since, tail=None)
        if not running:
            return
        time.sleep(interval)


def unlink_index(log_path: StrPath) -> None:
    try:
        os.unlink(_index_path(log_path))
    except FileNotFoundError:
        pass
