"""The agents' work apart from Faust: batches into a real DuckDB store, catalog updates, and
store failures that block instead of losing the batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stream.certain.parsing import MAX_PROBLEMS
from stream.control.config_service import ConfigService
from stream.control.recorder import RawRecord, Recorder
from stream.control.secret_store import SecretStore
from stream.messages import ConfigSnapshot
from stream.store import Store, StoreWriteError
from tests.support.changes import encoded, event_json, registration_json
from tests.support.clock import FIXED
from tests.support.waiting import until

# No date here meets the real clock: the outcomes are a delivery and a data failure, which the
# retry queue never schedules.


def change(change_id: str, **extra: Any) -> bytes:
    """A registration change of the EXPO event as it arrives on `certain-changes`; `extra`
    overrides top-level fields."""
    data = registration_json(change_id, event_code="EXPO", code=f"R-{change_id}", extra=extra)
    return encoded(data)


def event(change_id: str, *, is_test: bool = False) -> bytes:
    return encoded(event_json("EXPO", change_id=change_id, name="Expo", is_test=is_test))


class Published:
    def __init__(self) -> None:
        self.snapshots: list[ConfigSnapshot] = []

    async def __call__(self, snapshot: ConfigSnapshot) -> None:
        self.snapshots.append(snapshot)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Store, ConfigService, Published]]:
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=2, threads=2)
    published = Published()
    config = ConfigService(
        store, SecretStore(tmp_path / "secrets.json"), publish=published, debounce_s=0.01
    )
    await config.start()
    try:
        yield store, config, published
    finally:
        await config.stop()
        await store.close()


async def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    return list((await store.query(sql)).rows)


async def test_archive_keeps_valid_rejects_invalid_and_updates_the_catalog(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, published = parts
    recorder = Recorder(store, config)
    batch = [
        RawRecord(event("ev-1", is_test=True), 0, 10),
        RawRecord(change("c-1"), 1, 11),
        RawRecord(change("c-1"), 1, 12),
        RawRecord(b"\xff\xfe", 2, 13),
        RawRecord(None, 2, 14),
        RawRecord(change("c-2", occurredAt="yesterday"), 3, 15),
    ]
    assert await recorder.archive(batch) == (2, 3)
    archived = await rows(
        store,
        "SELECT change_id, is_test, kafka_partition, kafka_offset FROM changes ORDER BY change_id",
    )
    assert archived == [("c-1", True, 1, 11), ("ev-1", True, 0, 10)]
    rejected = await rows(
        store, "SELECT change_id, reasons, kafka_offset FROM rejected_changes ORDER BY kafka_offset"
    )
    assert rejected[0][1] == ["expected UTF-8 text, found an invalid byte at offset 0"]
    assert rejected[1][2] == 14 and "invalid JSON" in rejected[1][1][0]
    assert rejected[2][0] == "c-2" and rejected[2][1][0].startswith("occurredAt:")
    assert config.catalog.get("EXPO") is not None

    async def expo_published() -> bool:
        return bool(published.snapshots) and "EXPO" in published.snapshots[-1].catalog["events"]

    await until(expo_published, "a snapshot with the EXPO event")
    assert published.snapshots[-1].catalog["events"]["EXPO"]["event"]["eventName"] == "Expo"
    assert recorder.last_change_seen is not None
    # Redelivery of the same records adds nothing.
    assert (await recorder.archive(batch[:3]))[0] == 0


async def test_catalog_is_rebuilt_from_archived_event_changes(
    parts: tuple[Store, ConfigService, Published], tmp_path: Path
) -> None:
    store, config, _ = parts
    await Recorder(store, config).archive([RawRecord(event("ev-1"))])
    again = ConfigService(store, SecretStore(tmp_path / "other.json"))
    await again.start()
    assert again.catalog == config.catalog


OUTCOME_BASE = {
    "flow_id": "f",
    "flow_name": "F",
    "mode": "live",
    "occurred_at": FIXED.isoformat(),
    "processed_at": (FIXED + timedelta(seconds=1)).isoformat(),
}
"""An outcome record's fields but its change and status."""


async def test_an_outcome_record_of_many_problems_keeps_the_first_and_counts_the_rest(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config)
    record = {
        **OUTCOME_BASE,
        "change_id": "x",
        "status": "not_activated",
        "also": [{"mode": 1}] * 3_000,
    }
    assert await recorder.record_outcomes([json.dumps(record).encode()]) == 0
    [(reasons,)] = await rows(store, "SELECT reasons FROM rejected_records")
    assert len(reasons) == MAX_PROBLEMS + 1
    assert reasons[-1].startswith("and ") and reasons[-1].endswith(
        f"more problems (the first {MAX_PROBLEMS} shown)"
    )


async def test_outcomes_and_api_calls(parts: tuple[Store, ConfigService, Published]) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config)
    base = OUTCOME_BASE
    values: list[bytes | None] = [
        json.dumps({**base, "change_id": "a", "status": "delivered"}).encode(),
        json.dumps({**base, "change_id": "b", "status": "failed", "category": "data"}).encode(),
        json.dumps({**base, "change_id": "c", "status": "failed", "mode": "sometimes"}).encode(),
        b"not json",
        None,
    ]
    assert await recorder.record_outcomes(values) == 2
    assert recorder.counts["invalid_outcomes"] == 3
    assert await rows(store, "SELECT change_id, status FROM retry_queue") == [("b", "pending")]
    assert await recorder.record_outcomes(values) == 0  # redelivered: stored once
    call = {
        "connection_id": "mkto",
        "endpoint": "/rest/v1/leads.json",
        "started_at": FIXED.isoformat(),
        "duration_ms": 12.0,
    }
    assert await recorder.record_api_calls([json.dumps(call).encode(), b"{}"]) == 1
    assert await rows(store, "SELECT connection_id, batch_size FROM api_calls") == [("mkto", 0)]


async def test_a_failing_store_write_blocks_until_it_succeeds(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config, max_backoff_s=0.05)
    attempts = 0

    async def disk_full_twice() -> int:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise StoreWriteError("disk full")
        return await store.archive_changes([])

    assert await recorder.durably("a batch", disk_full_twice) == 0
    assert attempts == 3
    assert recorder.counts["write_failures"] == 2


async def test_cancelled_during_a_write_finishes_it_first(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    unrecorded: list[str] = []
    recorder = Recorder(store, config, on_unrecorded=unrecorded.append)
    started = asyncio.Event()
    finished = asyncio.Event()

    async def slow_write() -> None:
        started.set()
        await asyncio.sleep(0.2)  # the write itself, long enough to be cancelled in the middle
        finished.set()

    task = asyncio.create_task(recorder.durably("slow", slow_write))
    await asyncio.wait_for(started.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()
    assert unrecorded == []


async def test_cancelled_while_the_store_keeps_failing_reports_unrecorded_work(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    unrecorded: list[str] = []
    recorder = Recorder(store, config, max_backoff_s=0.05, on_unrecorded=unrecorded.append)

    async def always_fails() -> None:
        raise StoreWriteError("read-only file system")

    task = asyncio.create_task(recorder.durably("3 outcomes", always_fails))

    async def failing() -> bool:
        return recorder.counts["write_failures"] >= 2

    await until(failing, "the write failing and being retried")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert unrecorded == ["3 outcomes"]


# --- nothing dropped with only a log line ----------------------------------------------------


def outcome_json(change_id: str, **extra: Any) -> bytes:
    data = {
        "change_id": change_id,
        "flow_id": "f",
        "flow_name": "F",
        "mode": "live",
        "status": "delivered",
        "occurred_at": FIXED.isoformat(),
        "processed_at": (FIXED + timedelta(seconds=1)).isoformat(),
        **extra,
    }
    return json.dumps(data).encode()


async def test_unreadable_internal_records_are_kept_with_their_reasons(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config)
    batch = [
        RawRecord(outcome_json("a"), 0, 5),
        RawRecord(outcome_json("b", mode="sometimes"), 0, 6),
        RawRecord(b"not json", 1, 7),
        RawRecord(None, 1, 8),
    ]
    assert await recorder.record_outcomes(batch) == 1
    assert await recorder.record_api_calls([RawRecord(b'{"endpoint": 1}', 2, 9)]) == 0
    kept = await rows(
        store,
        "SELECT topic, agent, kafka_partition, kafka_offset, payload, reasons "
        "FROM rejected_records ORDER BY kafka_offset",
    )
    assert [k[:4] for k in kept] == [
        ("signal-outcomes", "record", 0, 6),
        ("signal-outcomes", "record", 1, 7),
        ("signal-outcomes", "record", 1, 8),
        ("signal-api-calls", "api_calls", 2, 9),
    ]
    assert kept[0][4] == outcome_json("b", mode="sometimes").decode()
    assert kept[0][5] == ["mode must be one of ['live', 'test'], got 'sometimes'"]
    assert kept[1][4] == "not json" and kept[2][4] == ""
    assert any(r.startswith("connection_id:") for r in kept[3][5])
    assert (recorder.counts["invalid_outcomes"], recorder.counts["invalid_api_calls"]) == (3, 1)
    # A redelivered batch (same positions, same text) is kept once.
    assert await recorder.record_outcomes(batch) == 0
    assert len(await rows(store, "SELECT 1 FROM rejected_records")) == 4


async def test_a_batch_failing_once_runs_again_and_is_recorded(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config, max_backoff_s=0.01)
    calls = 0

    async def flaky(batch: Any) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient")
        return await recorder.archive(batch)

    await recorder.guarded("archive", "certain-changes", [RawRecord(change("c-1"), 0, 1)], flaky)
    assert calls == 2
    assert await rows(store, "SELECT change_id FROM changes") == [("c-1",)]
    assert await rows(store, "SELECT count(*) FROM rejected_changes") == [(0,)]
    assert recorder.counts["batch_failures"] == 1


async def test_a_change_batch_that_keeps_failing_is_kept_with_the_error(
    parts: tuple[Store, ConfigService, Published], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config, max_backoff_s=0.01)

    def broken(_: Any) -> bool:
        raise RuntimeError("catalog bug")

    monkeypatch.setattr(config, "apply_changes", broken)
    batch = [RawRecord(event("ev-1"), 0, 1), RawRecord(change("c-1"), 0, 2), RawRecord(b"{", 0, 3)]
    await recorder.guarded("archive", "certain-changes", batch, recorder.archive)
    assert recorder.counts["batch_failures"] == 3
    kept = await rows(
        store,
        "SELECT change_id, source, kafka_offset, reasons FROM rejected_changes "
        "WHERE reasons[1] LIKE 'not processed%' ORDER BY kafka_offset",
    )
    assert [k[:3] for k in kept] == [("ev-1", "topic", 1), ("c-1", "topic", 2), (None, "topic", 3)]
    assert "agent archive" in kept[0][3][0] and "RuntimeError: catalog bug" in kept[0][3][0]
    assert recorder.counts["unprocessed"] == 3


async def test_an_outcome_batch_that_keeps_failing_is_kept_with_the_error(
    parts: tuple[Store, ConfigService, Published],
) -> None:
    store, config, _ = parts
    recorder = Recorder(store, config, max_backoff_s=0.01, batch_tries=2)

    async def broken(_: Any) -> object:
        raise KeyError("retry plan")

    batch = [RawRecord(outcome_json("a"), 4, 40), RawRecord(outcome_json("b"), 4, 41)]
    await recorder.guarded("record", "signal-outcomes", batch, broken)
    kept = await rows(
        store,
        "SELECT topic, agent, kafka_offset, payload, reasons FROM rejected_records "
        "ORDER BY kafka_offset",
    )
    assert [k[:3] for k in kept] == [
        ("signal-outcomes", "record", 40),
        ("signal-outcomes", "record", 41),
    ]
    assert json.loads(kept[0][3])["change_id"] == "a"
    assert "KeyError" in kept[0][4][0] and "after 2 tries" in kept[0][4][0]
