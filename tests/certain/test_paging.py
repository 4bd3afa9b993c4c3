"""KeysetPager against a list served as Certain serves it (strict `dateModified_after` to the
second, oldest first, ties in a stable order, `start_index` a 0-based offset), with records
changed between pages: every record present at the end is read at its final version, and a
quiet list costs what plain offsets cost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stream.certain.paging import MAX_SHIFTS, KeysetPager

BASE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Listing:
    """Registrations by code; `touch` gives one a new stamp, as a change in Certain does."""

    def __init__(self) -> None:
        self.records: dict[str, int] = {}
        self.calls = 0

    def add(self, count: int, second: int, prefix: str) -> None:
        for i in range(count):
            self.records[f"{prefix}{i:05d}"] = second

    def touch(self, code: str, second: int) -> None:
        del self.records[code]  # to the end of the ties, as a stable sort after an update
        self.records[code] = second

    def serve(self, after: datetime, start: int, size: int) -> list[dict[str, Any]]:
        self.calls += 1
        bound = int((after - BASE).total_seconds())
        matched = sorted(((s, c) for c, s in self.records.items() if s > bound), key=lambda p: p[0])
        return [
            {"registrationCode": c, "dateModified": _stamp(s)}
            for s, c in matched[start : start + size]
        ]


def _stamp(second: int) -> str:
    return (BASE + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S")


def read_all(
    listing: Listing,
    page_size: int,
    between: Callable[[int], None] = lambda _: None,
) -> tuple[KeysetPager, dict[str, str]]:
    """Page through the listing; `between(n)` runs after the n-th page was served."""
    pager = KeysetPager(BASE, page_size)
    seen: dict[str, str] = {}
    pages = 0
    while not pager.done:
        asked = pager.request()
        served = listing.serve(asked.after, asked.start_index, asked.max_results)
        pages += 1
        between(pages)
        for record in pager.take(served):
            seen[record["registrationCode"]] = record["dateModified"]
        assert pages < 100, "the read does not end"
    return pager, seen


def final(listing: Listing) -> dict[str, str]:
    return {code: _stamp(second) for code, second in listing.records.items()}


def test_a_quiet_listing_costs_what_offsets_cost() -> None:
    listing = Listing()
    for second in range(1, 13):
        listing.add(100, second, f"s{second:02d}-")
    pager, seen = read_all(listing, 250)
    assert seen == final(listing)
    assert listing.calls == 5  # 1,200 records by 250 (the last page short)
    assert pager.shifts == 0


def test_a_record_moved_between_pages_of_spread_stamps_skips_none() -> None:
    listing = Listing()
    for second in range(1, 13):
        listing.add(100, second, f"s{second:02d}-")

    def move(page: int) -> None:
        if page in (1, 2):
            listing.touch(f"s01-{page:05d}", 100 + page)

    pager, seen = read_all(listing, 250, move)
    assert seen == final(listing)
    assert pager.shifts == 0  # the move was before the keyset position: nothing to re-read


def test_a_record_moved_inside_a_mass_change_is_caught_by_the_anchor() -> None:
    listing = Listing()
    listing.add(1200, 5, "m")

    def move(page: int) -> None:
        if page == 1:
            listing.touch("m00003", 60)

    pager, seen = read_all(listing, 250, move)
    assert seen == final(listing)
    assert pager.shifts == 1


def test_a_stamp_that_keeps_moving_ends_the_read_no_later_than_that_stamp() -> None:
    listing = Listing()
    listing.add(1000, 5, "m")
    moved = iter(range(1000))

    def move(page: int) -> None:
        listing.touch(f"m{next(moved):05d}", 60 + page)

    pager, _ = read_all(listing, 250, move)
    assert pager.shifts == MAX_SHIFTS + 1
    assert pager.after < BASE + timedelta(seconds=5)  # the next poll's overlap covers it
