"""How a poll pages through Certain records modified after a moment: by `dateModified` (keyset),
with an offset only inside one stamp, and every offset checked against the record before it.

Plain offsets (`start_index` 0, 500, 1000 … over one `dateModified_after` query) skip records
when Certain changes records during the poll: a changed record leaves its place for the end of
the order (its new `dateModified` is the newest), every record after its old place moves one
place up, and the one that crosses the page boundary is never served. When it is older than the
poll's final watermark minus the overlap, the next poll does not read it either.

So each page after the first asks for what was modified after the newest stamp read so far,
less one second (Certain's filters are strict and to the second, reference §3): a record that
moved has a newer stamp and is served later in the same poll, and one that stayed is at or
after that stamp. Records of that last stamp already read are skipped by an offset, which is
the one place a shift can still bite (a mass change puts thousands of records on one stamp).
Hence the anchor: each such page starts one record early, at the last record read, and when
that record is not there the records of that stamp moved, and they are read again from the
first (the last-seen state makes what was read already emit nothing). After `MAX_SHIFTS` such
re-reads the poll stops where it is: the watermark is no later than that stamp, so the next
poll's overlap reads the rest.

Pure: the poller makes the calls, `KeysetPager` says which page to ask for and which of its
records are new.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from stream.certain.poll_diff import parse_timestamp

MAX_SHIFTS = 3
"""Re-reads of one stamp's records per poll before the poll leaves the rest to the next."""
MAX_READ_PAGES = 2_000
"""Pages one read takes (a million records): a host that serves full pages for ever (the same
records again, each page starting with the one before's last) ends the read there; the next
poll goes on from the watermark."""
STEP = timedelta(seconds=1)
AHEAD = timedelta(hours=1)
"""A record stamped further past Signal's clock than this is named in a warning: more than
Certain's clock running ahead, a glitch of its data or a misbehaving host."""

_log = logging.getLogger("signal.certain")


@dataclass(frozen=True, slots=True)
class PageRequest:
    after: datetime
    start_index: int
    max_results: int


def _stamp(record: Any) -> datetime | None:
    return parse_timestamp(record.get("dateModified")) if isinstance(record, dict) else None


class KeysetPager:
    """The pages of one `dateModified_after` read, oldest first: `request` the next page, give
    what Certain served to `take`, until `done`."""

    def __init__(
        self,
        after: datetime,
        page_size: int,
        stamp: Callable[[Any], datetime | None] = _stamp,
    ) -> None:
        self.after = after
        self.page_size = page_size
        self.shifts = 0
        self.done = False
        self._stamp = stamp
        self._skip = 0
        """Records modified after `after` read already (all of the newest stamp read)."""
        self._anchor: Any = None

    def request(self) -> PageRequest:
        if self._skip == 0:
            return PageRequest(self.after, 0, self.page_size)
        return PageRequest(self.after, self._skip - 1, self.page_size + 1)

    def take(self, records: list[Any]) -> list[Any]:
        """The served page's records not read before in this read (in Certain's order)."""
        asked = self.request()
        if self._skip:
            if not records or records[0] != self._anchor:
                self._shifted()
                return []
            fresh = records[1:]
        else:
            fresh = records
        if len(records) < asked.max_results or not fresh:
            self.done = True
        if fresh:
            self._advance(fresh)
        return fresh

    def _shifted(self) -> None:
        """The last record read is not where it was: read this stamp's records again."""
        self.shifts += 1
        self._skip = 0
        self._anchor = None
        if self.shifts > MAX_SHIFTS:
            self.done = True

    def _advance(self, fresh: list[Any]) -> None:
        self._anchor = fresh[-1]
        stamps = [self._stamp(r) for r in fresh]
        newest = max((s for s in stamps if s is not None), default=None)
        after = newest - STEP if newest is not None else self.after
        if after <= self.after:
            # Still on the same stamp (a mass change, or unreadable stamps): by offset.
            self._skip += len(fresh)
            return
        # Records from the last one stamped at or before the new bound are behind it.
        behind = max((i for i, s in enumerate(stamps) if s is not None and s <= after), default=-1)
        self.after = after
        self._skip = len(fresh) - behind - 1


def moved_watermark(newest: datetime | None, watermark: datetime, now: datetime) -> datetime | None:
    """Where a page moves its stream's watermark: to its newest stamp, but never past `now`
    (Signal's clock); None when it does not move. A record stamped ten years ahead moved the
    watermark there, and every later poll asked only for changes after it: none, for good.
    Capped, a change made after this poll is after the next read's start (the watermark less
    the overlap), and a record stamped ahead is read again by each poll and found unchanged
    (Certain's clock running a minute ahead costs no more than that)."""
    if newest is None:
        return None
    if newest > now + AHEAD and _first_sight(newest):
        _log.warning(
            "a Certain record is stamped %s, past this clock's %s by more than %s: the "
            "watermark stays at this clock (said once per stamp; each poll reads the record "
            "again)",
            newest.isoformat(),
            now.isoformat(),
            AHEAD,
        )
    newest = min(newest, now)
    return newest if newest > watermark else None


_WARNED_STAMPS: dict[datetime, None] = {}
"""Stamps ahead of the clock already named in a warning, the latest `_WARNED_KEPT`: a record
ahead is read again by every poll (a minute apart, for good), and its warning said nothing new."""
_WARNED_KEPT = 256


def _first_sight(stamp: datetime) -> bool:
    if stamp in _WARNED_STAMPS:
        return False
    _WARNED_STAMPS[stamp] = None
    while len(_WARNED_STAMPS) > _WARNED_KEPT:
        del _WARNED_STAMPS[next(iter(_WARNED_STAMPS))]
    return True


async def fresh_pages(
    pager: KeysetPager, fetch: Callable[[datetime, int, int], Awaitable[list[Any]]]
) -> AsyncIterator[list[Any]]:
    """Each page `pager` asks for, fetched with `fetch(after, start_index, max_results)`, as the
    records it had not read before; a page that brought none (a re-read after a shift) is
    skipped. One loop for every stream a poll pages through."""
    for _ in range(MAX_READ_PAGES):
        if pager.done:
            return
        asked = pager.request()
        fresh = pager.take(await fetch(asked.after, asked.start_index, asked.max_results))
        if fresh:
            yield fresh
    if not pager.done:
        pager.done = True
        _log.warning(
            "a Certain read stopped after %d pages at %s (offset %d): the host kept serving full "
            "pages; the next poll goes on from there",
            MAX_READ_PAGES,
            asked.after.isoformat(),
            asked.start_index,
        )


def log_shifts(
    log: logging.Logger, source_id: str, event_code: str, what: str, pager: KeysetPager
) -> None:
    """Say when Certain's records moved under a read (and whether the read stopped early)."""
    if not pager.shifts:
        return
    ended = " (the next poll reads the rest)" if pager.shifts > MAX_SHIFTS else ""
    log.info(
        "Certain source %s, event %s: %s changed while paged; re-read %d time(s) from %s%s",
        source_id,
        event_code,
        what,
        min(pager.shifts, MAX_SHIFTS),
        pager.after.isoformat(),
        ended,
    )
