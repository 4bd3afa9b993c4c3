"""Control's recovery over a real DuckDB store and the embedded broker.

    python -m bench.recovery_reseed [--keys 100000]

- re-seed: `--keys` delivered pairs recorded in the ledger written back to `signal-delivered`
  (compacted, declared as the contract says) with acks=all, as control does on start before its
  first redrive: read from DuckDB, sent and acknowledged, keys/s;
- read back: a pipeline worker's delivered-keys reader loads the topic from its start;
- scan: one recovery scan over that ledger (every change routed, so nothing to re-drive): what
  the periodic scan's queries cost on a ledger of that size.

Smoke mode (`bench/__init__.py`): 500 keys.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench import arguments, sized
from config.models import Account
from stream.broker import EmbeddedBroker
from stream.control.recovery import Recovery, RecoveryPolicy, publish_to
from stream.core.catalog import EventCatalog
from stream.pipeline.delivered_log import DeliveredLog
from stream.store import ChangeRow, OutcomeRow, Store
from stream.topics import DELIVERED, declare_topics

FLOW = "nurture"
CHUNK = 20_000


@dataclass
class _Config:
    account: Account = field(default_factory=lambda: Account.model_validate({"account": "ACME"}))
    catalog: EventCatalog = field(default_factory=EventCatalog)


async def _nowhere(records: Sequence[tuple[bytes, bytes]]) -> None:
    raise RuntimeError(f"nothing should be re-driven or published here ({len(records)} records)")


def _change(i: int, at: datetime) -> ChangeRow:
    code = f"R{i:07d}"
    payload = {
        "changeId": f"chg-{i}",
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": at.isoformat(),
        "registration": {"registrationCode": code},
    }
    return ChangeRow(
        change_id=f"chg-{i}",
        type="registration.status_change",
        account_code="ACME",
        event_code="SUMMIT26",
        registration_code=code,
        is_test=False,
        occurred_at=at,
        received_at=at,
        payload=json.dumps(payload),
    )


def _delivered(i: int, at: datetime) -> OutcomeRow:
    return OutcomeRow(
        change_id=f"chg-{i}",
        flow_id=FLOW,
        flow_name="Nurture",
        mode="live",
        status="delivered",
        occurred_at=at,
        processed_at=at + timedelta(seconds=1),
        action="create_update_lead",
        lead_result="updated",
    )


async def _fill(store: Store, n: int, now: datetime) -> float:
    start = time.perf_counter()
    for first in range(0, n, CHUNK):
        ids = range(first, min(n, first + CHUNK))
        at = [now - timedelta(hours=2) + timedelta(milliseconds=i) for i in ids]
        await store.archive_changes([_change(i, t) for i, t in zip(ids, at, strict=True)])
        await store.record_outcomes([_delivered(i, t) for i, t in zip(ids, at, strict=True)])
    return time.perf_counter() - start


async def run(n_keys: int) -> None:
    now = datetime.now(UTC)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        await declare_topics(broker.url, [DELIVERED])
        store = await Store.open(Path(tmp) / "bench.duckdb")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()
        try:
            filled = await _fill(store, n_keys, now)
            print(f"ledger: {n_keys:,} changes delivered, recorded in {filled:.1f} s")
            recovery = Recovery(
                store,
                _Config(),
                publish_changes=_nowhere,
                publish_redrives=_nowhere,
                publish_delivered=publish_to(producer, DELIVERED.name),
                policy=RecoveryPolicy(),
                clock=lambda: now,
            )
            start = time.perf_counter()
            keys = await recovery.reseed(now)
            elapsed = time.perf_counter() - start
            if keys != n_keys:
                raise RuntimeError(f"re-seeded {keys} keys, expected {n_keys}")
            print(
                f"re-seed: {keys:,} delivered keys read from DuckDB, sent and acknowledged in "
                f"{elapsed:.2f} s = {keys / elapsed:,.0f} keys/s"
            )

            reader = DeliveredLog(broker.url)
            task = asyncio.create_task(reader.run())
            start = time.perf_counter()
            try:
                await asyncio.wait_for(reader.wait_loaded(), 300)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            elapsed = time.perf_counter() - start
            if len(reader) != n_keys:
                raise RuntimeError(f"the reader loaded {len(reader)} keys, expected {n_keys}")
            print(f"read back: a worker's reader loaded {len(reader):,} keys in {elapsed:.2f} s")

            start = time.perf_counter()
            result = await recovery.scan(now)
            elapsed = time.perf_counter() - start
            status = recovery.status()
            if result.redriven or status.unrouted or status.queued_overdue:
                raise RuntimeError(f"a fully routed ledger needed recovery: {status}")
            print(f"scan: one recovery scan over {n_keys:,} changes in {elapsed:.2f} s")
        finally:
            await producer.stop()
            await store.close()


def main(argv: list[str] | None = None) -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--keys", type=int, default=sized(100_000, 500))
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    asyncio.run(run(args.keys))


if __name__ == "__main__":
    main()
