"""The worker's state: config snapshots and local catalog, delivered keys, Marketo clients."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import (
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

from config.completeness import completeness
from stream.marketo.sandbox import Sandbox
from stream.messages import ApiCallRecord, OutcomeStatus
from stream.pipeline.app import Pipeline, PipelineOptions
from stream.pipeline.clients import ClientPool, Unusable
from stream.pipeline.deliver import deliver_batch
from stream.pipeline.delivered import delivery_key, duplicate_outcome, split_duplicates
from stream.pipeline.snapshot import ConfigView, build_snapshot, merge_catalogs


def test_snapshot_puts_secrets_back_so_flows_are_complete() -> None:
    built = build_snapshot(snapshot("http://127.0.0.1:9"))
    connection = built.account.connection(CONNECTION)
    assert connection is not None and connection.client_secret is not None
    assert connection.client_secret.get_secret_value() == SECRET
    assert all(not completeness(f, built.account) for f in built.account.flows)
    assert SECRET not in repr(built.account)


def test_snapshot_without_secret_leaves_flows_incomplete() -> None:
    message = snapshot("http://127.0.0.1:9").model_copy(update={"secrets": {}})
    built = build_snapshot(message)
    assert all(completeness(f, built.account) for f in built.account.flows)


def test_invalid_snapshot_is_refused() -> None:
    message = snapshot("http://127.0.0.1:9").model_copy(update={"account": {"flows": "x"}})
    with pytest.raises(ValueError, match="not a valid account"):
        build_snapshot(message)


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
    await asyncio.sleep(0.05)
    assert not waiter.done()
    view.take(build_snapshot(snapshot("http://127.0.0.1:9")))
    await asyncio.wait_for(waiter, 1)
    assert view.version == 1
    assert view.apply_event(change(event_json("NEW26")))
    assert "NEW26" in view.catalog
    assert not view.apply_event(change(event_json("NEW26", occurred_at="2020-01-01T00:00:00Z")))
    view.take(build_snapshot(snapshot("http://127.0.0.1:9", version=2)))
    assert "NEW26" in view.catalog  # the snapshot lags; the local entry survives it


async def test_wait_next_wakes_on_a_snapshot() -> None:
    view = ConfigView()
    assert not await view.wait_next(0.05)
    waiting = asyncio.create_task(view.wait_next(2))
    await asyncio.sleep(0.01)
    view.take(build_snapshot(snapshot("http://127.0.0.1:9")))
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


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:
    """The part of a Faust event the delivered-keys bookkeeping reads (a Faust table cannot be
    written outside a running worker; the worker test covers the real table)."""

    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


def test_delivered_keys_are_remembered_with_their_partition_and_purged(tmp_path: Path) -> None:
    pipeline = Pipeline(
        PipelineOptions(
            broker_url="kafka://127.0.0.1:1",
            data_dir=tmp_path,
            delivered_retention_s=3600,
            delivered_purge_every_s=0,
        )
    )
    table: dict[str, Any] = {}
    pipeline.delivered = table  # type: ignore[assignment]
    requests = [request("create_update_lead", lead(n)) for n in range(3)]
    sources = [_Event(1), _Event(2), _Event(1)]
    pipeline._remember(sources, requests, [0, 1])
    assert set(table) == {delivery_key(requests[0]), delivery_key(requests[1])}
    assert [v[1] for v in table.values()] == [1, 2]
    old = time.time() - 7200
    table[delivery_key(requests[0])][0] = old
    table[delivery_key(requests[1])][0] = old
    pipeline._remember([_Event(2)], [requests[2]], [])
    assert set(table) == {delivery_key(requests[0])}  # partition 1 waits for a batch of its own
    pipeline._remember([_Event(1)], [requests[2]], [])
    assert table == {}
