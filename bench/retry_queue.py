"""Retry queue and replay figures over a real DuckDB store and the embedded broker.

    python -m bench.retry_queue [--items 10000] [--changes 20000]

- scheduler: `--items` due technical items claimed with a lease, marked `retrying` and
  re-driven to `signal-redrive` (acks=all), in batches of the default 200: items/s;
- bulk resubmit (E-07): `--items` held data items resubmitted by filter: items/s;
- replay dry run: `--changes` archived changes evaluated in-process for one flow: changes/s;
- replay: the same changes re-driven for one flow: changes/s published.

Smoke mode (`bench/__init__.py`): 200 items, 300 changes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import arguments, sized
from config.models import Account
from stream.broker import EmbeddedBroker
from stream.certain.events import ChangeEvent
from stream.control.replay import ReplayManager
from stream.control.replay_dry_run import dry_run
from stream.control.replay_scope import ReplayScope
from stream.control.resubmit import Resubmitter
from stream.control.retry_scheduler import DEFAULT_SCHEDULE, RetryScheduler
from stream.core.catalog import EventCatalog
from stream.store import ChangeRow, RetryFilter, RetryItem, Store

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ACCOUNT = {
    "account": "ACME",
    "tags": [{"name": "registered", "label": "Registered", "objects": ["registration_status"]}],
    "assignments": {"registration_statuses": {"New": ["registered"]}},
    "connections": [
        {
            "id": "mkto",
            "name": "Marketo",
            "target": "marketo",
            "service_url": "https://123-ABC-456.mktorest.com",
            "client_id": "bench",
            "client_secret": "bench-secret",
        }
    ],
    "mappings": [
        {
            "id": "lead-basic",
            "name": "Lead basics",
            "fields": [
                {"target": "email", "sources": ["registration.profile.email"]},
                {"target": "firstName", "sources": ["registration.profile.firstName"]},
                {"target": "lastName", "sources": ["registration.profile.lastName"]},
            ],
        }
    ],
    "flows": [
        {
            "id": "nurture",
            "name": "Nurture",
            "mode": "live",
            "active": True,
            "source": "registration.status_change",
            "activate_for": {"registration_statuses": ["registered"]},
            "destination": {
                "name": "Leads",
                "connection": "mkto",
                "action": "create_update_lead",
                "mapping": "lead-basic",
                "campaign": {"campaign_id": 1001},
            },
        }
    ],
}


@dataclass
class Config:
    account: Account
    catalog: EventCatalog


def event() -> dict[str, Any]:
    return {
        "changeId": "evt-1",
        "type": "event.create_update",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": (T0 - timedelta(hours=1)).isoformat(),
        "event": {"eventCode": "SUMMIT26", "eventStatus": "Active", "isTest": False},
    }


def registration(n: int) -> dict[str, Any]:
    return {
        "changeId": f"c{n:07d}",
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": (T0 + timedelta(seconds=n)).isoformat(),
        "registration": {
            "registrationCode": f"R{n:07d}",
            "registrationStatusLabel": "New",
            "isTest": False,
            "isActive": True,
            "profile": {"firstName": "Ana", "lastName": "Ruiz", "email": f"u{n}@example.com"},
        },
    }


def row(data: dict[str, Any]) -> ChangeRow:
    change = ChangeEvent.model_validate(data)
    return ChangeRow(
        change_id=change.change_id,
        type=change.type.value,
        account_code=change.account_code,
        event_code=change.event_code,
        registration_code=change.registration_code,
        is_test=False,
        occurred_at=change.occurred_at,
        received_at=change.occurred_at,
        payload=json.dumps(change.to_json_dict()),
    )


def items(n: int, category: str, due: datetime | None) -> list[RetryItem]:
    return [
        RetryItem(
            change_id=f"c{i:07d}",
            flow_id="nurture",
            flow_name="Nurture",
            integration="mkto",
            status="pending",
            category=category,  # type: ignore[arg-type]
            attempts=1,
            next_attempt_at=due,
            updated_at=T0,
            created_at=T0,
            reason="HTTP 503",
        )
        for i in range(n)
    ]


async def run(n_items: int, n_changes: int) -> None:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        topic = f"signal-redrive-bench-{uuid.uuid4().hex[:6]}"

        async def publish(records: Sequence[tuple[bytes, bytes]]) -> None:
            futures = [await producer.send(topic, v, key=k) for k, v in records]
            await asyncio.gather(*futures)

        store = await Store.open(Path(tmp) / "bench.duckdb")
        try:
            rows = [row(event())]
            rows += [row(registration(i)) for i in range(max(n_items, n_changes))]
            await store.archive_changes(rows)

            await store.upsert_retry_items(items(n_items, "technical", T0))
            scheduler = RetryScheduler(store, publish, schedule=DEFAULT_SCHEDULE)
            start = time.perf_counter()
            total = 0
            now = datetime.now(UTC)
            while (done := await scheduler.run_once(now)) > 0:
                total += done
            elapsed = time.perf_counter() - start
            if total != n_items:  # e.g. a clock before T0: nothing due, a meaningless figure
                raise RuntimeError(f"the scheduler re-drove {total} of {n_items} due items")
            print(
                f"scheduler: {total} due items re-driven in {elapsed:.2f} s "
                f"= {total / elapsed:,.0f} items/s (batch {DEFAULT_SCHEDULE.batch_size})"
            )

            held = [
                replace(i, category="data", next_attempt_at=None, status="pending", updated_at=now)
                for i in items(n_items, "data", None)
            ]
            await store.upsert_retry_items(held)
            resubmitter = Resubmitter(store, publish)
            start = time.perf_counter()
            result = await resubmitter.resubmit_matching(RetryFilter(category="data"), "bench")
            elapsed = time.perf_counter() - start
            print(
                f"bulk resubmit: {result.submitted} of {result.selected} items in "
                f"{elapsed:.2f} s = {result.submitted / elapsed:,.0f} items/s"
            )

            catalog = EventCatalog().apply(ChangeEvent.model_validate(event()))
            config = Config(Account.model_validate(ACCOUNT), catalog)
            scope = ReplayScope("nurture", event_code="SUMMIT26")
            start = time.perf_counter()
            report = await dry_run(store, config, scope)
            elapsed = time.perf_counter() - start
            print(
                f"replay dry run: {report.in_scope} changes evaluated in {elapsed:.2f} s "
                f"= {report.in_scope / elapsed:,.0f} changes/s ({report.would_send} would send)"
            )

            manager = ReplayManager(store, publish, config)
            start = time.perf_counter()
            replay = await manager.start(scope, "bench")
            assert replay.task is not None
            await replay.task
            elapsed = time.perf_counter() - start
            print(
                f"replay: {replay.published} changes re-driven in {elapsed:.2f} s "
                f"= {replay.published / elapsed:,.0f} changes/s"
            )
        finally:
            await store.close()
            await producer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--items", type=int, default=sized(10_000, 200))
    parser.add_argument("--changes", type=int, default=sized(20_000, 300))
    args = parser.parse_args(argv if argv is not None else [])
    asyncio.run(run(args.items, args.changes))


if __name__ == "__main__":
    main(sys.argv[1:])
