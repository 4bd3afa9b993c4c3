"""A Certain host that misbehaves on purpose: more records on a page than were asked for, a list
of events that never ends, a registrations read whose pages never end. Each is refused or cut
off at a bound, so one source cannot hold control's memory or its event loop for ever."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simulators.certain.sandbox_changes import change_registration
from stream.certain import client as certain_client
from stream.certain import paging
from stream.certain.client import PAGE_SIZE, CertainRefused
from stream.certain.paging import KeysetPager, fresh_pages
from stream.certain.poll_diff import format_timestamp
from tests.certain.poller_world import poller_world
from tests.certain.test_poller_at_scale import EVENT, register, watching_one_event
from tests.support.clock import FIXED
from tests.support.fixtures import Serve


def events_page(start: int, count: int, total: int | None) -> dict[str, Any]:
    events = [
        {"eventCode": f"EV{start + i}", "isActive": True, "dateModified": format_timestamp(FIXED)}
        for i in range(count)
    ]
    page: dict[str, Any] = {"size": count, "maxResults": PAGE_SIZE, "events": events}
    if total is not None:
        page["completeCollectionSize"] = total
    return page


async def host(web_server: Serve, answer: Any) -> tuple[str, list[str]]:
    """A host answering every GET with `answer(request)`; the paths it served, in order."""
    served: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        served.append(f"{request.path}?{request.query_string}")
        return web.json_response(answer(request))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return await web_server(app), served


async def test_a_page_with_more_records_than_asked_is_refused(
    web_server: Serve, tmp_path: Path
) -> None:
    url, _ = await host(web_server, lambda r: events_page(0, PAGE_SIZE + 1, None))
    async with poller_world(tmp_path, host=url) as world:
        with pytest.raises(CertainRefused, match=f"501 records on a page of at most {PAGE_SIZE}"):
            await world.poll()
        assert await world.ledger("SELECT count(*) FROM changes") == [[0]]


async def test_a_list_of_events_that_never_ends_is_refused_at_its_bound(
    web_server: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Always a full page of new events: the poll stops at MAX_LIST_PAGES (it ran for ever,
    154 MB → 2.1 GB in 15 s) and says why."""
    monkeypatch.setattr(certain_client, "MAX_LIST_PAGES", 4)

    def endless(request: web.Request) -> dict[str, Any]:
        return events_page(int(request.query.get("start_index", "0")), PAGE_SIZE, None)

    url, served = await host(web_server, endless)
    async with poller_world(tmp_path, host=url) as world:
        with pytest.raises(CertainRefused, match="more than 2,000 events listed"):
            await world.poll()
    assert len(served) == 4


async def test_the_events_list_ends_where_its_size_says(web_server: Serve, tmp_path: Path) -> None:
    """A full page that completes the collection is the last one asked for."""
    url, served = await host(web_server, lambda r: events_page(0, PAGE_SIZE, PAGE_SIZE))
    async with poller_world(tmp_path, host=url) as world:
        with pytest.raises(CertainRefused):  # the event details are not served by this host
            await world.poll()
    assert [path for path in served if "/Event/" in path and "start_index" in path] == [served[0]]


async def test_a_read_whose_pages_never_end_stops_at_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same full page again and again (each starting with the last record read): the read
    ends after MAX_READ_PAGES fetches instead of paging for ever."""
    monkeypatch.setattr(paging, "MAX_READ_PAGES", 6)
    same = {"registrationCode": "R1", "dateModified": format_timestamp(FIXED)}
    fetched: list[int] = []

    async def fetch(after: datetime, start: int, size: int) -> list[Any]:
        fetched.append(start)
        return [same] * size

    pager = KeysetPager(FIXED - timedelta(days=1), page_size=3)
    pages = [page async for page in fresh_pages(pager, fetch)]
    assert len(fetched) == 6 and pager.done
    assert len(pages) == 6


async def test_a_record_stamped_years_ahead_does_not_hide_the_changes_after_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Certain serves one registration stamped ten years ahead (a glitch of its clock or data):
    its change is read, but the watermark stops at Signal's clock, so a change made after it is
    still found (the watermark at the record's stamp asked for nothing after it). The record is
    named in one warning, not in one per poll that reads it again."""
    caplog.set_level(logging.WARNING, logger="signal.certain")
    async with poller_world(tmp_path, watching_one_event) as world:
        ahead, later = await register(world, 2)
        await world.poll()
        event = world.sandbox.state.event("ACME", EVENT)
        assert event is not None
        world.sandbox.clock.skew_s = 10 * 365 * 86_400
        change_registration(
            world.sandbox.state, event, ahead, {"registrationStatusLabel": "Cancelled"}
        )
        world.sandbox.clock.skew_s = 0
        published = len(world.published)
        await world.poll()
        assert [c.registration_code for c in world.changes()[published:]] == [ahead]
        [[mark]] = await world.ledger("SELECT max(watermark) FROM certain_watermarks")
        assert mark <= datetime.now(UTC)
        change_registration(
            world.sandbox.state, event, later, {"registrationStatusLabel": "Cancelled"}
        )
        published = len(world.published)
        await world.poll()
        assert [c.registration_code for c in world.changes()[published:]] == [later]
        again = len(world.published)
        await world.poll()
        assert len(world.published) == again  # the record ahead is read again, found unchanged
    ahead_warnings = [r for r in caplog.records if "past this clock" in r.getMessage()]
    assert len(ahead_warnings) == 1, [r.getMessage() for r in ahead_warnings]
