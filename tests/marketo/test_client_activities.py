"""The client's activity log reader against the sandbox over HTTP: the type found by name, every
page read, leads in groups of 30, and bounded work (stream/marketo/activities.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.marketo.sandbox import Sandbox
from simulators.marketo.state import FILL_OUT_FORM, REQUEST_CAMPAIGN
from stream.marketo.activities import REQUEST_CAMPAIGN as REQUEST_CAMPAIGN_NAME
from stream.marketo.activities import ActivityError
from stream.marketo.client import MarketoClient
from stream.marketo.errors import MarketoError
from tests.support.marketo import settings_for


def endpoints(sandbox: Sandbox) -> list[str]:
    return [c.endpoint for c in sandbox.state.calls if c.endpoint.startswith("activities.")]


async def test_every_page_and_every_group_of_leads_is_read(sandbox: Sandbox) -> None:
    now = sandbox.now()
    leads = list(range(1, 41))
    for lead_id in leads:
        for n in range(20):  # 800 request campaign activities: 3 pages for the first group
            sandbox.state.log_activity(REQUEST_CAMPAIGN, lead_id, now, primary_id=1000 + n)
        sandbox.state.log_activity(FILL_OUT_FORM, lead_id, now, primary_id=7)
    since = datetime.fromtimestamp(now, UTC) - timedelta(seconds=1)
    async with MarketoClient(settings_for(sandbox)) as client:
        found = await client.activity_log.activities(REQUEST_CAMPAIGN_NAME, leads, since)
        assert len(found) == 800
        assert {a.lead_id for a in found} == set(leads)
        assert {a.type_id for a in found} == {REQUEST_CAMPAIGN}
        # Types, one date token, then leads 1-30: 600 activities in pages of 300 and an empty
        # last page (moreResult stays true while the log goes on), leads 31-40: one page.
        calls = endpoints(sandbox)
        assert calls == ["activities.types", "activities.pagingToken"] + ["activities.list"] * 4
        again = await client.activity_log.activities(REQUEST_CAMPAIGN_NAME, leads[:1], since)
        assert len(again) == 20
        assert endpoints(sandbox).count("activities.types") == 1  # types are cached


async def test_work_is_bounded_by_pages(sandbox: Sandbox) -> None:
    now = sandbox.now()
    for n in range(700):
        sandbox.state.log_activity(REQUEST_CAMPAIGN, 5, now, primary_id=n)
    since = datetime.fromtimestamp(now, UTC)
    async with MarketoClient(settings_for(sandbox)) as client:
        with pytest.raises(ActivityError, match="more than 2 pages"):
            await client.activity_log.activities(REQUEST_CAMPAIGN_NAME, [5], since, max_pages=2)


async def test_an_unknown_type_and_a_failing_log_raise(sandbox: Sandbox) -> None:
    since = datetime.fromtimestamp(sandbox.now(), UTC)
    async with MarketoClient(settings_for(sandbox, max_attempts=1)) as client:
        with pytest.raises(ActivityError, match="'Change Score' not found"):
            await client.activity_log.activities("Change Score", [1], since)
        sandbox.inject_error("611", endpoint="activities.pagingToken")
        with pytest.raises(MarketoError):
            await client.activity_log.activities(REQUEST_CAMPAIGN_NAME, [1], since)
