"""The worker's own copy of the delivered-keys records it writes, on local disk.

Around each Marketo call that completes a (change, flow), the worker writes a "sending" mark and
then the pair's delivered key to `signal-delivered` (`delivered_log.py`); control keeps that
topic in its ledger within tens of milliseconds. When everything dies at once (the embedded
broker keeps its topics in memory), the records control had not read yet are gone with the
broker: a pair delivered in that window is sent again after recovery re-drives it, and nothing
counts it as a repeat.

So the worker also appends every record to a journal in its data directory, before the record
goes to the broker (so before the call it announces), and a worker that starts again writes the
journal's records back to `signal-delivered` before it delivers anything. Pairs it delivered
are then skipped as duplicates, and the pair whose call was in flight is delivered again as a
possible repeat, counted. Each append is flushed and fdatasync'ed: a SIGKILL keeps what the page
cache holds anyway, a power cut keeps what reached the disk.

The journal is JSON lines (`[key, value]`, value null for a tombstone) in two segments: when the
current one outgrows `segment_bytes` it replaces the previous one, so the journal holds at least
the last `segment_bytes` of records (tens of thousands of calls), far more than control can be
behind. A torn last line (a kill mid-write) is skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from stream.delivery_keys import SENDING

log = logging.getLogger("signal.pipeline.marks_journal")

__all__ = ["MarksJournal", "net"]

Record = tuple[str, bytes | None]
CURRENT = "current.jsonl"
PREVIOUS = "previous.jsonl"


class MarksJournal:
    def __init__(self, directory: Path, *, segment_bytes: int = 8 << 20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fd: int | None = None

    def append(self, records: Iterable[Record]) -> None:
        """Append `records` and wait until they are on disk."""
        data = b"".join(
            json.dumps([key, None if value is None else value.decode("ascii")]).encode() + b"\n"
            for key, value in records
        )
        if not data:
            return
        fd = self._open()
        os.write(fd, data)
        os.fdatasync(fd)
        if os.fstat(fd).st_size >= self.segment_bytes:
            self._rotate()

    def records(self) -> list[Record]:
        """Every record of both segments, oldest first."""
        found: list[Record] = []
        for name in (PREVIOUS, CURRENT):
            try:
                text = (self.directory / name).read_bytes().decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                try:
                    key, value = json.loads(line)
                except (ValueError, TypeError):
                    log.warning("skipping an unreadable line of %s", self.directory / name)
                    continue
                if isinstance(key, str) and (value is None or isinstance(value, str)):
                    found.append((key, None if value is None else value.encode("ascii")))
        return found

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.directory / CURRENT
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                os.write(self._fd, b"\n")  # end a line torn by a kill, so the next one reads
        return self._fd

    def _rotate(self) -> None:
        self.close()
        os.replace(self.directory / CURRENT, self.directory / PREVIOUS)


def net(records: Iterable[Record]) -> list[Record]:
    """What `records` (in log order) leave per key: its delivery (the newest), else its last
    "sending" mark; a tombstone clears a "sending" mark only, like the delivered-keys log."""
    delivered: dict[str, bytes] = {}
    sending: dict[str, bytes] = {}
    for key, value in records:
        if value is None:
            sending.pop(key, None)
        elif value.startswith(SENDING):
            if key not in delivered:
                sending[key] = value
        else:
            delivered[key] = value
            sending.pop(key, None)
    return [*delivered.items(), *sending.items()]
