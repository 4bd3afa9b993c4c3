"""Control's own costs: archive and outcome batches into DuckDB, the ingest API with broker acks,
and how fast a flow toggle reaches a worker reading `signal-config`.

    python -m bench.control_ledger [--changes 20000] [--outcomes 20000] [--ingest 10000]
                                   [--batch 500] [--toggles 10] [--long 1000000]
                                   [--realistic 100000] [--queued-share 0.8]
                                   [--states 2000000]

Runs the real `Recorder`, `ConfigService` and operator API over a DuckDB file in a temporary
directory and an embedded broker; nothing is mocked. `--states` then compares recording over a
ledger of that many delivery states with recording over an empty one. Smoke mode
(`bench/__init__.py`): 500 changes, outcomes and ingested changes in batches of 100, 2 toggles,
and 20,000 states.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

from bench import arguments, sized
from bench.pipeline_throughput import memory_mb
from bench.soak import DUCKDB_MEMORY, MIB
from bench.tailing import tail
from stream.api import ApiDeps, create_app
from stream.broker import EmbeddedBroker
from stream.control.config_service import ConfigService
from stream.control.recorder import RawRecord, Recorder
from stream.control.runtime import ControlSettings
from stream.control.secret_store import SecretStore
from stream.messages import ConfigSnapshot, FailureCategory, OutcomeRecord, OutcomeStatus
from stream.store import Store
from stream.store.writer import Con

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RECORD_BATCH_MAX = ControlSettings.record_batch_max
GOAL = 50_000
"""Outcome rows recorded per second, sustained (issue 13, item 4)."""
LONG_SEGMENT = sized(100_000, 5_000)
ACCOUNT = """\
account: BENCH
tags: [{name: registered, label: Registered, objects: [registration_status]}]
assignments: {registration_statuses: {New: [registered]}}
connections: [{id: mkto, name: M, service_url: "https://1-2-3.mktorest.com/", client_id: c,
               client_secret: s}]
mappings: [{id: m, name: M, fields: [{target: email, sources: [registration.profile.email]}]}]
flows:
  - {id: f1, name: F1, mode: live, active: true, source: registration.status_change,
     activate_for: {registration_statuses: [registered]},
     destination: {connection: mkto, action: create_update_lead, mapping: m,
                   campaign: {campaign_id: 1}}}
"""


def change(i: int) -> dict[str, Any]:
    return {
        "changeId": f"chg-{i:08d}",
        "type": "registration.status_change",
        "accountCode": "BENCH",
        "eventCode": f"EV{i % 20}",
        "occurredAt": (T0 + timedelta(milliseconds=i)).isoformat(),
        "registration": {
            "registrationCode": f"R{i:08d}",
            "registrationStatusLabel": "New",
            "profile": {
                "firstName": "Ana",
                "lastName": "Ruiz",
                "email": f"ana{i}@example.com",
                "organization": "Acme",
                "address": {"city": "Seattle", "country": "US"},
            },
            "registrationQuestions": [{"questionCode": "DIET", "answers": ["Vegetarian"]}],
        },
    }


def outcome(i: int) -> dict[str, Any]:
    failed = i % 6 == 5
    return {
        "change_id": f"chg-{i:08d}",
        "flow_id": "f1",
        "flow_name": "F1",
        "mode": "live",
        "status": "failed" if failed else "delivered",
        "category": "technical" if failed else None,
        "retryable": failed,
        "reason": "HTTP 503" if failed else None,
        "marketo_lead_id": None if failed else i,
        "lead_result": None if failed else "created",
        # Changes occur and are processed in order, as at work: each lookup of stored rows
        # reads the row groups of its batch's times (`_unrecorded`, `_split_by_stored`).
        "occurred_at": (T0 + timedelta(milliseconds=i)).isoformat(),
        "processed_at": (T0 + timedelta(seconds=1, milliseconds=i)).isoformat(),
        "latency_ms": 120.0,
    }


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count:,} in {seconds:.2f} s)"


async def bench_recorder(recorder: Recorder, changes: int, outcomes: int, batch: int) -> None:
    values = [json.dumps(change(i)).encode() for i in range(changes)]
    started = time.perf_counter()
    for start in range(0, changes, batch):
        await recorder.archive(
            [RawRecord(v, 0, start + n) for n, v in enumerate(values[start : start + batch])]
        )
    elapsed = time.perf_counter() - started
    print(f"archive agent work (parse + one transaction per {batch}): {rate(changes, elapsed)}")
    records = [json.dumps(outcome(i)).encode() for i in range(outcomes)]
    rates = []
    for size, offset in ((batch, 0), (RECORD_BATCH_MAX, 1)):
        # Each size records outcomes of changes of its own, as the ledger sees new pairs.
        sized_records = [r.replace(b'"chg-', f'"chg-{offset}'.encode()) for r in records]
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, outcomes, size):
            await recorder.record_outcomes(sized_records[start : start + size])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        rates.append(outcomes / elapsed)
        # CPU seconds of the whole process (Python and DuckDB's threads): on a shared machine
        # the wall-clock rate also counts time other processes held the cores.
        print(
            f"record agent work (1 in 6 failed → retry item, one read + one transaction per "
            f"{size}): {rate(outcomes, elapsed)}, {outcomes / cpu:,.0f} rows per CPU-second"
        )
    print(
        f"  outcomes recorded: {rates[1]:,.0f} rows/s in batches of {RECORD_BATCH_MAX} (the record "
        f"agent's maximum under load), {rates[1] / rates[0]:.1f}x batches of {batch}; goal {GOAL:,}"
    )


def pipeline_outcome(i: int, status: OutcomeStatus, at: datetime) -> bytes:
    """An outcome record as the pipeline writes it (`deliver.outcome_for`, `model_dump_json`):
    every field the deliver step fills, about 550 bytes, where `outcome` is about 320."""
    failed = status is OutcomeStatus.FAILED
    final = status is not OutcomeStatus.QUEUED
    return (
        OutcomeRecord(
            change_id=f"real-{i:08d}",
            flow_id="f1",
            flow_name="F1",
            mode="live",
            registration_code=f"R{i:08d}",
            event_code=f"EV{i % 20}",
            action="create_update_lead",
            connection_id="mkto",
            status=status,
            category=FailureCategory.TECHNICAL if failed else None,
            reason="HTTP 503 from Marketo: service unavailable" if failed else None,
            marketo_lead_id=None if failed or not final else 1_000_000 + i,
            lead_result="created" if final and not failed else None,
            occurred_at=T0 + timedelta(milliseconds=i),
            processed_at=at,
            latency_ms=412.7 if final else None,
            campaign_id=1,
            retryable=failed,
            resume_at=at + timedelta(seconds=30) if failed else None,
            request_id=f"e42b#{i:012x}" if final else None,
        )
        .model_dump_json()
        .encode()
    )


def realistic_batches(total: int, size: int, queued_share: float) -> list[list[bytes]]:
    """`total` final outcomes (1 in 6 failed) in batches of `size`; `queued_share` of their
    pairs were queued one batch earlier, as the pipeline's route step records a delivery in
    flight before the deliver step's outcome: those finals find their pair stored. The queued
    rows count among the batch's rows, so a batch holds `size` rows of either kind."""
    tenths = round(queued_share * 10)
    records: list[tuple[int, bytes]] = []  # (place in the stream, in finals, record)
    for i in range(total):
        at = T0 + timedelta(seconds=10, milliseconds=i)
        status = OutcomeStatus.FAILED if i % 6 == 5 else OutcomeStatus.DELIVERED
        if i % 10 < tenths:
            # Its queued row one batch earlier (routing time a second before the final).
            records.append(
                (i - size, pipeline_outcome(i, OutcomeStatus.QUEUED, at - timedelta(seconds=1)))
            )
        records.append((i, pipeline_outcome(i, status, at)))
    records.sort(key=lambda r: r[0])
    values = [r for _, r in records]
    return [values[start : start + size] for start in range(0, len(values), size)]


async def bench_realistic(
    store: Store, config: ConfigService, total: int, queued_share: float
) -> None:
    """Real-sized outcome records in batches of the record agent's maximum, a share of them
    taking the stored-pair path; the store's write timed apart from the agent's Python work."""
    batches = realistic_batches(total, RECORD_BATCH_MAX, queued_share)
    rows = sum(len(b) for b in batches)
    size = statistics.mean(len(r) for r in batches[len(batches) // 2])
    recorder = Recorder(store, config)
    write = store.record_outcome_batch
    written = [0.0]

    async def timed(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return await write(*args, **kwargs)
        finally:
            written[0] += time.perf_counter() - started

    recorder.store = _Timed(store, timed)  # type: ignore[assignment]
    db = store._db
    checkpoints, checkpointing = db.checkpoint_count, db.checkpoint_seconds
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        await recorder.record_outcomes(batch)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    per_batch = written[0] * 1000 / len(batches)
    print(
        f"record agent, pipeline-sized records ({size:.0f} bytes; {queued_share:.0%} of finals "
        f"follow a queued row of the batch before): {rate(rows, elapsed)}, "
        f"{rows / cpu:,.0f} rows per CPU-second; store write {per_batch:.0f} ms per batch of "
        f"{RECORD_BATCH_MAX}"
    )
    print(
        f"  outcome rows recorded: {rows / elapsed:,.0f}/s, {rows / cpu:,.0f} per CPU-second "
        f"({rows / cpu / GOAL:.0%} of the goal, {GOAL:,}/s); "
        f"{db.checkpoint_count - checkpoints} checkpoints between batches, "
        f"{db.checkpoint_seconds - checkpointing:.2f} s on the writer"
    )


class _Timed:
    """The store with `record_outcome_batch` timed: every other attribute is the store's."""

    def __init__(self, store: Store, timed: Any) -> None:
        self._store = store
        self.record_outcome_batch = timed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def ledger_memory(store: Store) -> str:
    """What DuckDB holds in memory for the ledger by `duckdb_memory()`'s tag (MiB): indexes
    (ART_INDEX) stay resident, table blocks (BASE_TABLE) are a cache within the memory limit;
    and this process's RSS (the store and the recorder live in it), since the indexes a session
    builds are not all in DuckDB's figures."""
    rows = await store.read(lambda con: con.execute(DUCKDB_MEMORY).fetchall())
    tags = {str(tag): int(size) / MIB for tag, size in sorted(rows, key=lambda r: -r[1])}
    index = tags.pop("ART_INDEX", 0.0)
    rest = ", ".join(f"{tag} {size:.0f}" for tag, size in tags.items())
    rss, _ = memory_mb(os.getpid())
    return (
        f"indexes {index:.0f} MiB (other DuckDB memory: {rest or 'none'}); "
        f"this process's RSS {rss:.0f} MiB"
    )


async def bench_restart_memory(path: Path) -> None:
    """The ledger opened again and one batch of new outcomes recorded: the indexes that first
    write loads (a key is checked against the whole index it belongs to)."""
    store = await Store.open(path)
    try:
        before = await ledger_memory(store)
        batch = [
            json.dumps(outcome(i)).encode().replace(b'"chg-', b'"restart-')
            for i in range(RECORD_BATCH_MAX)
        ]
        await Recorder(store, None).record_outcomes(batch)  # type: ignore[arg-type]
        rows = await store.read(
            lambda con: con.execute("SELECT count(*) FROM outcome_log").fetchall()
        )
        print(
            f"  after a restart, {rows[0][0]:,} outcomes in the ledger: opened, {before}; "
            f"after one batch, {await ledger_memory(store)}"
        )
    finally:
        await store.close()


def long_run_outcome(i: int) -> dict[str, Any]:
    """`outcome(i)` of a change whose id is a hash, as Certain's changes' are
    (`stream.certain.poll_diff.change_id`): ids in order would let DuckDB skip most of a table
    by the batch's lowest and highest id, which no ledger at work allows."""
    digest = hashlib.blake2b(f"long-{i}".encode(), digest_size=16).hexdigest()
    return {**outcome(i), "change_id": f"certain-{digest}"}


def long_run_batch(start: int, size: int) -> list[bytes]:
    """The records of `long_run_outcome` `start` to `start + size`, as the topic holds them."""
    return [json.dumps(long_run_outcome(i)).encode() for i in range(start, start + size)]


async def bench_long_run(recorder: Recorder, total: int, segment: int) -> None:
    """Outcomes of new changes in batches of `RECORD_BATCH_MAX`, the rate per `segment` rows
    (the record agent's time only): whether recording holds its rate as the ledger's tables and
    their keys grow. The writer's checkpoints run between batches, so the next batch's write
    waits for one: each segment counts the time of those it ran."""
    db = recorder.store._db
    spent = cpu_spent = 0.0
    checkpoints, checkpointing = db.checkpoint_count, db.checkpoint_seconds
    for start in range(0, total, RECORD_BATCH_MAX):
        size = min(RECORD_BATCH_MAX, total - start)
        batch = long_run_batch(start, size)
        started, cpu = time.perf_counter(), time.process_time()
        await recorder.record_outcomes(batch)
        spent += time.perf_counter() - started
        cpu_spent += time.process_time() - cpu
        done = start + size
        if done % segment == 0 or done == total:
            per_cpu = ((done - 1) % segment + 1) / cpu_spent
            print(
                f"  long run, outcomes to {done:,}: {(done - 1) % segment + 1:,} at "
                f"{((done - 1) % segment + 1) / spent:,.0f} rows/s, "
                f"{per_cpu:,.0f} per CPU-second ({per_cpu / GOAL:.0%} of {GOAL:,}); "
                f"{db.checkpoint_count - checkpoints} checkpoints, "
                f"{db.checkpoint_seconds - checkpointing:.2f} s; "
                f"{await ledger_memory(recorder.store)}"
            )
            spent = cpu_spent = 0.0
            checkpoints, checkpointing = db.checkpoint_count, db.checkpoint_seconds


STATE_FILL = {
    "change_id": "'certain-' || md5(i::VARCHAR)",
    "flow_id": "'f1'",
    "flow_name": "'F1'",
    "mode": "'live'",
    "status": "'delivered'",
    "attempt": "1",
    "replayed": "false",
    "occurred_at": "TIMESTAMPTZ '{t0}' - to_milliseconds({n} - i)",
    "processed_at": "TIMESTAMPTZ '{t0}' - to_milliseconds({n} - i)",
    "first_processed_at": "TIMESTAMPTZ '{t0}' - to_milliseconds({n} - i)",
    "outcome_id": "md5('o' || i::VARCHAR)",
    "attempts": "1",
    "possible_repeat": "false",
    "updated_at": "now()",
}
"""delivery_state rows of `states` older changes with hashed ids, one a millisecond up to T0;
every other column NULL."""


def fill_states(select: str, start: int, end: int, con: Con) -> None:
    con.execute(f"INSERT INTO delivery_state SELECT {select} FROM range({start}, {end}) t(i)")


async def batch_times(recorder: Recorder, first: int, batches: int) -> float:
    """The median time of recording `batches` batches of `RECORD_BATCH_MAX` new outcomes
    (`long_run_outcome`, from number `first`), the first two left out as warm-up."""
    times = []
    for n in range(batches):
        start = first + n * RECORD_BATCH_MAX
        batch = long_run_batch(start, RECORD_BATCH_MAX)
        started = time.perf_counter()
        await recorder.record_outcomes(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:])


async def bench_large_ledger(path: Path, states: int) -> None:
    """Recording over an empty ledger, then over one holding `states` delivery states (made
    in SQL, a million a transaction): whether a batch's lookups of stored pairs read the
    whole table (`stream.store.store._split_by_stored`). The ratio is the figure; 1.0 is a
    batch costing what it cost on an empty ledger."""
    store = await Store.open(path)
    try:
        recorder = Recorder(store, None)  # type: ignore[arg-type]  # outcomes need no config
        batches = sized(8, 3)
        empty = await batch_times(recorder, 0, batches)
        columns = await store.read(
            lambda con: con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'delivery_state' "
                "AND database_name = current_database() ORDER BY column_index"
            ).fetchall()
        )
        select = ", ".join(
            STATE_FILL.get(c, "NULL").format(t0=T0.isoformat(), n=states) for (c,) in columns
        )
        started = time.perf_counter()
        for start in range(0, states, 1_000_000):
            end = min(states, start + 1_000_000)
            await store.write(partial(fill_states, select, start, end))
        await store.checkpoint()
        filled = time.perf_counter() - started
        full = await batch_times(recorder, 1_000_000_000, batches)
        print(
            f"recording over {states:,} delivery states (hashed change ids; made in "
            f"{filled:.0f} s): {full * 1000:.0f} ms a batch of {RECORD_BATCH_MAX:,} against "
            f"{empty * 1000:.0f} ms over an empty ledger ({full / empty:.2f}x; goal about 1)"
        )
    finally:
        await store.close()


async def bench_ingest(client: TestClient[Any, Any], token: str, total: int, batch: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    bodies = [
        "\n".join(json.dumps(change(10_000_000 + i)) for i in range(start, start + batch)).encode()
        for start in range(0, total, batch)
    ]
    started = time.perf_counter()
    for body in bodies:
        response = await client.post("/api/v1/changes", data=body, headers=headers)
        assert response.status == 202, await response.text()
    elapsed = time.perf_counter() - started
    print(f"POST /api/v1/changes, NDJSON batches of {batch}, acks awaited: {rate(total, elapsed)}")


async def bench_toggle(
    client: TestClient[Any, Any], token: str, bootstrap: str, topic: str, rounds: int
) -> None:
    consumer = await tail(bootstrap, topic, fetch_max_wait_ms=50)
    headers = {"Authorization": f"Bearer {token}"}
    latencies = []
    for n in range(rounds):
        active = n % 2 == 1
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/flows/f1/active", json={"active": active}, headers=headers
        )
        assert response.status == 200
        seen = False
        while not seen:
            if time.perf_counter() - started > 30:
                raise TimeoutError(f"toggle {n}: no snapshot with active={active} within 30 s")
            for messages in (await consumer.getmany(timeout_ms=50)).values():
                for message in messages:
                    flows = json.loads(message.value)["account"]["flows"]
                    seen = seen or flows[0]["active"] is active
        latencies.append((time.perf_counter() - started) * 1000)
    await consumer.stop()
    print(
        f"flow toggle → snapshot read by a worker: median {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms over {rounds} toggles (debounce 50 ms)"
    )


async def run(
    changes: int,
    outcomes: int,
    batch: int,
    ingest: int,
    toggles: int,
    long_run: int,
    realistic: int,
    queued_share: float,
    states: int,
) -> None:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        data = Path(tmp)
        (data / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
        topic = f"signal-config-{uuid.uuid4().hex[:6]}"
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        await producer.start()

        async def publish(snapshot: ConfigSnapshot) -> None:
            await (await producer.send(topic, snapshot.dumps(), key=b"snapshot"))

        async def produce(records: Sequence[tuple[bytes, bytes]]) -> None:
            futures = [await producer.send("bench-changes", v, key=k) for k, v in records]
            await asyncio.gather(*futures)

        store = await Store.open(data / "signal.duckdb")
        config = ConfigService(store, SecretStore(data / "secrets.json"), publish=publish)
        await config.start(data / "account.yaml")
        try:
            await bench_recorder(Recorder(store, config), changes, outcomes, batch)
            if realistic:
                await bench_realistic(store, config, realistic, queued_share)
            if long_run:
                await bench_long_run(Recorder(store, config), long_run, LONG_SEGMENT)
            deps = ApiDeps(store=store, config=config, produce_changes=produce, token="t")
            client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
            await client.start_server()
            try:
                await bench_ingest(client, "t", ingest, batch)
                await bench_toggle(client, "t", broker.bootstrap_servers, topic, toggles)
            finally:
                await client.close()
        finally:
            await config.stop()
            await store.close()
            await producer.stop()
        if long_run:
            await bench_restart_memory(data / "signal.duckdb")
        if states:
            await bench_large_ledger(data / "large.duckdb", states)


def main() -> None:
    parser = arguments(__file__, __doc__)
    parser.add_argument("--changes", type=int, default=sized(20_000, 500))
    parser.add_argument("--outcomes", type=int, default=sized(20_000, 500))
    parser.add_argument("--ingest", type=int, default=sized(10_000, 500))
    parser.add_argument("--batch", type=int, default=sized(500, 100))
    parser.add_argument("--toggles", type=int, default=sized(10, 2))
    parser.add_argument(
        "--long",
        type=int,
        default=sized(0, 10_000),
        help="then this many outcomes more, rate and memory per 100,000, and the memory after a "
        "restart (0 skips; smoke mode runs a small one)",
    )
    parser.add_argument(
        "--realistic",
        type=int,
        default=sized(50_000, 500),
        help="final outcomes of pipeline size (with their queued rows); 0 skips",
    )
    parser.add_argument(
        "--queued-share",
        type=float,
        default=0.8,
        help="share of the realistic finals whose pair was queued a batch earlier",
    )
    parser.add_argument(
        "--states",
        type=int,
        default=sized(2_000_000, 20_000),
        help="then recording over a ledger of this many delivery states, against an empty one "
        "(0 skips)",
    )
    args = parser.parse_args()
    asyncio.run(
        run(
            args.changes,
            args.outcomes,
            args.batch,
            args.ingest,
            args.toggles,
            args.long,
            args.realistic,
            args.queued_share,
            args.states,
        )
    )


if __name__ == "__main__":
    main()
