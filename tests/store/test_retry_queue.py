from __future__ import annotations

from datetime import timedelta
from typing import Any

from stream.store import Page, RetryFilter, RetryItem, Store
from tests.store.conftest import T0, outcome

MIN = timedelta(minutes=1)


def item(change_id: str, flow_id: str = "flow-1", **overrides: Any) -> RetryItem:
    fields: dict[str, Any] = {
        "change_id": change_id,
        "flow_id": flow_id,
        "flow_name": f"Flow {flow_id}",
        "integration": "marketo-prod",
        "status": "pending",
        "category": "technical",
        "reason": "HTTP 503",
        "attempts": 1,
        "next_attempt_at": T0 + 5 * MIN,
        "last_error": "503 Service Unavailable",
        "updated_at": T0,
        "created_at": T0,
    }
    fields.update(overrides)
    return RetryItem(**fields)


async def test_upsert_replaces_by_key_and_keeps_created_at(store: Store) -> None:
    await store.upsert_retry_items([item("c1")])
    later = item("c1", status="retrying", attempts=2, updated_at=T0 + MIN, created_at=T0 + MIN)
    await store.upsert_retry_items([later])
    stored = await store.get_retry_item("c1", "flow-1")
    assert stored is not None
    assert (stored.status, stored.attempts, stored.created_at) == ("retrying", 2, T0)
    assert await store.get_retry_item("c1", "other") is None


async def test_same_key_twice_in_one_batch_keeps_the_last(store: Store) -> None:
    await store.upsert_retry_items([item("c1", attempts=1), item("c1", attempts=2)])
    stored = await store.get_retry_item("c1", "flow-1")
    assert stored is not None and stored.attempts == 2


async def test_retry_queue_view_and_filters(store: Store) -> None:
    await store.upsert_retry_items(
        [
            item("c1", updated_at=T0 + 3 * MIN),
            item("c2", category="data", next_attempt_at=None, updated_at=T0 + 2 * MIN),
            item("c3", integration="marketo-test", status="abandoned", updated_at=T0 + MIN),
        ]
    )
    everything = await store.list_retry()
    assert everything.total == 3
    assert [i.change_id for i in everything.items] == ["c1", "c2", "c3"]
    data = await store.list_retry(RetryFilter(category="data"))
    assert [i.change_id for i in data.items] == ["c2"]
    prod = await store.list_retry(RetryFilter(integration="marketo-prod"), Page(offset=1, limit=1))
    assert prod.total == 2 and [i.change_id for i in prod.items] == ["c2"]
    abandoned = await store.list_retry(RetryFilter(status="abandoned"))
    assert [i.change_id for i in abandoned.items] == ["c3"]
    view = await store.query("SELECT change_id, status, category FROM retry_queue ORDER BY 1")
    assert view.rows == (
        ("c1", "pending", "technical"),
        ("c2", "pending", "data"),
        ("c3", "abandoned", "technical"),
    )


async def test_claim_due_leases_each_item_once(store: Store) -> None:
    await store.upsert_retry_items(
        [
            item("due-late", next_attempt_at=T0 + 2 * MIN),
            item("due-early", next_attempt_at=T0 + MIN),
            item("future", next_attempt_at=T0 + 60 * MIN),
            item("held", category="data", next_attempt_at=None),
            item("gone", status="abandoned", next_attempt_at=T0),
        ]
    )
    now = T0 + 5 * MIN
    first = await store.claim_due_retries(
        now=now, limit=10, owner="sched-a", lease_until=now + 5 * MIN
    )
    assert [i.change_id for i in first] == ["due-early", "due-late"]
    assert all(i.lease_owner == "sched-a" for i in first)
    again = await store.claim_due_retries(
        now=now, limit=10, owner="sched-b", lease_until=now + 5 * MIN
    )
    assert again == []
    expired = now + 6 * MIN
    retaken = await store.claim_due_retries(
        now=expired, limit=1, owner="sched-b", lease_until=expired + MIN
    )
    assert [(i.change_id, i.lease_owner) for i in retaken] == [("due-early", "sched-b")]


async def test_compare_and_set_lets_exactly_one_writer_win(store: Store) -> None:
    await store.upsert_retry_items([item("c1", status="abandoned", attempts=4)])
    resubmit = item("c1", status="pending", attempts=4, resubmitted_by="ops@example.com",
                    resubmitted_at=T0 + MIN, updated_at=T0 + MIN)  # fmt: skip
    scheduler = item("c1", status="retrying", attempts=5, updated_at=T0 + MIN)
    assert await store.compare_and_set_retry(resubmit, expected=["abandoned"])
    assert not await store.compare_and_set_retry(scheduler, expected=["abandoned"])
    stored = await store.get_retry_item("c1", "flow-1")
    assert stored is not None
    assert (stored.status, stored.resubmitted_by) == ("pending", "ops@example.com")
    assert await store.compare_and_set_retry(item("new"), expected=[None])
    assert not await store.compare_and_set_retry(item("new"), expected=[None])


async def test_outcome_and_retry_item_commit_together(store: Store) -> None:
    failed = outcome("c1", status="failed", category="technical", lead_result=None)
    await store.record_outcomes([failed], retry_items=[item("c1")])
    stored = await store.get_retry_item("c1", "flow-1")
    assert stored is not None and stored.status == "pending"


async def test_later_success_resolves_the_retry_item(store: Store) -> None:
    await store.upsert_retry_items([item("c1"), item("c2")])
    await store.record_outcomes(
        [
            outcome("c1", processed_at=T0 + 10 * MIN, attempt=2),
            outcome("c2", status="failed", category="technical", lead_result=None,
                    processed_at=T0 + 10 * MIN, attempt=2),
        ]
    )  # fmt: skip
    resolved = await store.get_retry_item("c1", "flow-1")
    assert resolved is not None
    assert (resolved.status, resolved.next_attempt_at) == ("resolved", None)
    still = await store.get_retry_item("c2", "flow-1")
    assert still is not None and still.status == "pending"


async def test_an_older_success_does_not_resolve_a_newer_failure(store: Store) -> None:
    await store.upsert_retry_items([item("c1", created_at=T0 + 10 * MIN)])
    await store.record_outcomes([outcome("c1", processed_at=T0)])
    stored = await store.get_retry_item("c1", "flow-1")
    assert stored is not None and stored.status == "pending"
