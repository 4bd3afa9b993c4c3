"""The worker's state: config snapshots and local catalog, delivered keys, Marketo clients."""

from __future__ import annotations

import asyncio
import time

import pytest

from config.completeness import completeness
from simulators.marketo.sandbox import Sandbox
from stream.messages import ApiCallRecord, OutcomeStatus
from stream.pipeline.clients import ClientPool, Unusable
from stream.pipeline.deliver import deliver_batch
from stream.pipeline.delivered import delivery_key, duplicate_outcome, split_duplicates
from stream.pipeline.delivered_log import DeliveredLog
from stream.pipeline.snapshot import ConfigView, build_snapshot, merge_catalogs
from tests.pipeline.pipeline_support import (
    BOX,
    CONNECTION,
    SECRET,
    account,
    catalog_with,
    change,
    event_json,
    lead,
    request,
    snapshot,
)


def test_snapshot_puts_secrets_back_so_flows_are_complete() -> None:
    built = build_snapshot(snapshot("http://127.0.0.1:9"), BOX)
    connection = built.account.connection(CONNECTION)
    assert connection is not None and connection.client_secret is not None
    assert connection.client_secret.get_secret_value() == SECRET
    assert all(not completeness(f, built.account) for f in built.account.flows)
    assert SECRET not in repr(built.account)


def test_snapshot_without_secret_leaves_flows_incomplete() -> None:
    message = snapshot("http://127.0.0.1:9").model_copy(update={"secrets": {}})
    built = build_snapshot(message, BOX)
    assert all(completeness(f, built.account) for f in built.account.flows)


def test_invalid_snapshot_is_refused() -> None:
    message = snapshot("http://127.0.0.1:9").model_copy(update={"account": {"flows": "x"}})
    with pytest.raises(ValueError, match="not a valid account"):
        build_snapshot(message, BOX)


def test_merge_keeps_newer_local_events() -> None:
    old = catalog_with(event_json("A", occurred_at="2026-11-01T08:00:00Z"))
    local = catalog_with(
        event_json("A", occurred_at="2026-11-02T08:00:00Z", is_test=True),
        event_json("B"),
    )
    merged = merge_catalogs(old, local)
    assert set(merged) == {"A", "B"}
    event_a = merged.get("A")
    assert event_a is not None and event_a.is_test is True
    newer = catalog_with(event_json("A", occurred_at="2026-11-03T08:00:00Z"))
    event_a = merge_catalogs(newer, local).get("A")
    assert event_a is not None and event_a.is_test is False


async def test_view_waits_for_the_first_snapshot_and_applies_events_at_once() -> None:
    view = ConfigView()
    assert not view.ready
    waiter = asyncio.create_task(view.wait_ready())
    await asyncio.sleep(0.05)  # a lower bound: time for the waiter to (wrongly) finish early
    assert not waiter.done()
    view.take(build_snapshot(snapshot("http://127.0.0.1:9"), BOX))
    await asyncio.wait_for(waiter, 1)
    assert view.version == 1
    assert view.apply_event(change(event_json("NEW26")))
    assert "NEW26" in view.catalog
    assert not view.apply_event(change(event_json("NEW26", occurred_at="2020-01-01T00:00:00Z")))
    view.take(build_snapshot(snapshot("http://127.0.0.1:9", version=2), BOX))
    assert "NEW26" in view.catalog  # the snapshot lags; the local entry survives it


async def test_wait_next_wakes_on_a_snapshot() -> None:
    view = ConfigView()
    assert not await view.wait_next(0.05)
    waiting = asyncio.create_task(view.wait_next(2))
    await asyncio.sleep(0.01)  # the task starts waiting in the loop's next turn, before this ends
    view.take(build_snapshot(snapshot("http://127.0.0.1:9"), BOX))
    assert await waiting


def test_duplicates_are_split_from_fresh_requests() -> None:
    first = request("create_update_lead", lead(1), change_id="c1")
    again = request("create_update_lead", lead(1), change_id="c1")
    other_flow = request("create_update_lead", lead(1), change_id="c1", flow_id="flow-2")
    seen = request("create_update_lead", lead(2), change_id="c2")
    fresh, dupes = split_duplicates([first, again, other_flow, seen], {delivery_key(seen)})
    assert fresh == [0, 2] and dupes == [1, 3]
    replay = first.model_copy(update={"replay_id": "rp-1"})
    assert delivery_key(replay) != delivery_key(first)
    outcome = duplicate_outcome(again, first.routed_at)
    assert outcome.status is OutcomeStatus.SKIPPED_DUPLICATE and outcome.change_id == "c1"


async def test_client_pool_reuses_and_rebuilds_and_reports_calls(sandbox: Sandbox) -> None:
    records: list[ApiCallRecord] = []
    pool = ClientPool(records.append)
    try:
        conn = account(sandbox.url).connection(CONNECTION)
        assert conn is not None
        client = await pool.get(conn, SECRET)
        assert await pool.get(conn, SECRET) is client
        outcomes = await deliver_batch([request("create_update_lead", lead(1))], client)
        assert outcomes[0].status is OutcomeStatus.DELIVERED
        assert [r.endpoint for r in records] == [
            "/identity/oauth/token",
            "/rest/v1/leads.json",
            "/rest/v1/campaigns/1001/trigger.json",
        ]
        assert all(SECRET not in r.model_dump_json() for r in records)
        changed = conn.model_copy(update={"force_update": True})
        assert await pool.get(changed, SECRET) is not client
        assert await pool.get(changed, "rotated") is not client
        assert pool.built == 3
        with pytest.raises(Unusable, match="no client secret"):
            await pool.get(conn, None)
    finally:
        await pool.close()


def test_delivered_log_remembers_forgets_and_applies_the_topic() -> None:
    log = DeliveredLog(retention_s=3600)
    records = log.note(["a", "b"], stamp=time.time())
    assert [k for k, _ in records] == ["a", "b"] and "a" in log and "c" not in log
    log.apply("c", records[0][1])
    assert "c" in log
    log.apply("c", None)
    assert "c" not in log
    log.apply("old", repr(time.time() - 7200).encode())
    assert "old" not in log and len(log) == 3  # expired: not a duplicate any more
    assert log.purge(time.time() + 1, every_s=0) == 1 and len(log) == 2
    log.apply("bad", b"not a number")
    assert "bad" not in log
