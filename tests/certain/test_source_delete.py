"""`DELETE /api/v1/sources/{id}`: the source goes with its stored password and its poll state
(watermarks, last seen), another source's state stays, a stale If-Match or an unknown id is
refused with nothing removed; and on a running control the source's poller stops and leaves no
state behind, even when it was mid-poll at the delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from apiclient.client import ApiClient
from stream.store.certain_state import PollCommit, SourceKey, commit_poll
from tests.api.api_harness import Api
from tests.api.conftest import api
from tests.certain.source_world import World, world
from tests.certain.test_source_replace_route import answer, source
from tests.support.waiting import until

__all__ = ["api", "world"]

STATE_ROWS = (
    "SELECT (SELECT count(*) FROM certain_watermarks WHERE source_id = '{id}') "
    "+ (SELECT count(*) FROM certain_last_seen WHERE source_id = '{id}')"
)


async def state_rows(api: Api, source_id: str) -> int:
    result = await api.store.query(STATE_ROWS.format(id=source_id))
    return int(result.rows[0][0])


async def test_a_deleted_source_loses_its_password_and_poll_state(api: Api) -> None:
    for source_id in ("acme-certain", "other-certain"):
        status, created = await answer(await api.post("/api/v1/sources", json=source(id=source_id)))
        assert status == 201, created
        mark = {"SUMMIT26": datetime(2026, 3, 1, 9, 0, tzinfo=UTC)}
        await commit_poll(api.store, PollCommit(SourceKey(source_id, "ACME"), watermarks=mark))
    [version] = [
        s["version"]
        for s in (await (await api.get("/api/v1/sources")).json())["sources"]
        if s["id"] == "acme-certain"
    ]

    stale = {**api.auth, "If-Match": str(version + 7)}
    response = await api.delete("/api/v1/sources/acme-certain", headers=stale)
    assert response.status == 409, await response.text()
    assert (await api.delete("/api/v1/sources/no-such-source")).status == 404
    assert await state_rows(api, "acme-certain") == 1

    current = {**api.auth, "If-Match": str(version)}
    response = await api.delete("/api/v1/sources/acme-certain", headers=current)
    assert response.status == 204, await response.text()
    listed = (await (await api.get("/api/v1/sources")).json())["sources"]
    assert [s["id"] for s in listed] == ["other-certain"]
    assert await state_rows(api, "acme-certain") == 0
    assert await state_rows(api, "other-certain") == 1

    # Created again under its id: no password is left to reuse.
    body = {k: v for k, v in source().items() if k != "password"}
    status, again = await answer(await api.post("/api/v1/sources", json=body))
    assert status == 201, again
    assert again["password_set"] is False


@pytest.mark.slow
async def test_deleting_a_polling_source_stops_its_poller_and_leaves_no_state(
    world: World,
) -> None:
    [code] = await world.register()
    await world.wait_changes(code, 1)
    # Slow answers: a poll is most likely under way when the delete comes.
    await world.admin("POST", "latency", {"ms": 150})

    async def state() -> int:
        return int((await world.sql(STATE_ROWS.format(id="acme")))[0][0])

    assert await state() > 0
    async with ApiClient(world.control.url, world.control.token) as client:
        await client.delete_source("acme")
        assert await client.sources() == []

        # Created again without a password (the stored one went with the delete): its loop
        # starting proves control reconciled after the delete, so the old loop is gone.
        body: dict[str, Any] = {
            k: v for k, v in (await world_source_body(world)).items() if k != "password"
        }
        await client.save_source(body, create=True)

        async def stopped_without_password() -> bool:
            return [s.state for s in await client.sources()] == ["stopped: no password"]

        await until(stopped_without_password, "the source back, without a password")
    # The old loop has stopped (and a stopped-without-password loop writes nothing): no
    # state is left, not even from a page committed after the delete forgot the rest.
    assert await state() == 0


async def world_source_body(world: World) -> dict[str, Any]:
    return {
        "id": "acme",
        "name": "ACME on Certain",
        "host": world.sandbox.url,
        "account_code": "ACME",
        "username": "signal-api",
        "events": [world.event],
        "poll_interval_s": 1,
    }
