"""The ingest outbox's semantics, whichever way the store runs a batch: `accept_changes` adds a
batch of new ids with a plain insert and falls back to the conflict-handling insert when an id
is stored or repeated, and looks a small batch up by key (`_INDEX_LOOKUP_IDS`) where a large
one is scanned. Each test runs with a small batch and with one padded past that bound."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from stream.store import ChangeRow, RejectedRow, Store, StoreWriteError
from stream.store.store import _INDEX_LOOKUP_IDS
from stream.store.writer import Con
from tests.store.conftest import T0, change

S = timedelta(seconds=1)
MARKED = T0 + 30 * S
SIZES = pytest.mark.parametrize("pad", [0, _INDEX_LOOKUP_IDS + 10], ids=["small", "large"])


def unpublished(change_id: str, *, minutes: int = 0, **overrides: object) -> ChangeRow:
    fields: dict[str, object] = {"source": "api", "received_at": T0 + minutes * 60 * S}
    fields.update(overrides)
    return change(change_id, minutes=minutes, **fields)


def padding(count: int) -> list[ChangeRow]:
    """New changes received an hour later, so they sort after the rest."""
    return [unpublished(f"pad-{i:03d}", minutes=60) for i in range(count)]


async def stored(store: Store) -> dict[str, tuple[object, ...]]:
    result = await store.query(
        "SELECT change_id, received_at, published_at, source, payload::VARCHAR FROM changes"
    )
    return {row[0]: row[1:] for row in result.rows}


async def ledger_with_published_and_pending(store: Store) -> None:
    """`kept` accepted and never published, `done` accepted and published at `MARKED`."""
    first = await store.accept_changes([unpublished("kept"), unpublished("done", minutes=1)])
    assert first.added == 2
    assert await store.mark_published(["done"], MARKED) == 1


@SIZES
async def test_a_mixed_batch_adds_new_ids_once_and_returns_every_unpublished_row(
    store: Store, pad: int
) -> None:
    await ledger_with_published_and_pending(store)
    before = await stored(store)
    resent_kept = unpublished("kept", minutes=5, payload='{"resent": true}')
    new_b = unpublished("new-b", minutes=3)
    batch = [
        new_b,
        unpublished("done", minutes=4),  # stored and published: neither added nor returned
        resent_kept,  # stored, unpublished: returned as stored, not as resent
        unpublished("new-a", minutes=3),  # same time as new-b: change_id breaks the tie
        unpublished("new-b", minutes=9, payload='{"second": true}'),  # repeated: first kept
        resent_kept,
        *padding(pad),
    ]

    accepted = await store.accept_changes(batch)

    assert accepted.added == 2 + pad
    ids = [r.change_id for r in accepted.unpublished]
    assert ids == ["kept", "new-a", "new-b", *(f"pad-{i:03d}" for i in range(pad))]
    assert all(r.published_at is None for r in accepted.unpublished)
    after = await stored(store)
    assert len(after) == 4 + pad
    assert after["kept"] == before["kept"]
    assert after["done"] == before["done"]
    assert after["done"][1] == MARKED
    assert after["new-b"][0] == T0 + 3 * 60 * S
    assert json.loads(str(after["new-b"][3])) == json.loads(new_b.payload)
    # Returned as stored: the resent row's time and payload are not what was kept.
    kept = accepted.unpublished[0]
    assert (kept.received_at, json.loads(kept.payload)) == (T0, json.loads(str(before["kept"][3])))


@SIZES
async def test_a_resent_batch_of_published_changes_adds_and_returns_nothing(
    store: Store, pad: int
) -> None:
    await ledger_with_published_and_pending(store)
    first = await store.accept_changes(padding(pad))
    assert await store.mark_published([r.change_id for r in first.unpublished], MARKED) == pad
    before = await stored(store)

    again = await store.accept_changes([unpublished("done", minutes=7), *padding(pad)])

    assert (again.added, again.unpublished) == (0, [])
    assert await stored(store) == before


@SIZES
async def test_a_batch_with_a_stored_id_commits_rejected_input_and_also_once(
    store: Store, pad: int
) -> None:
    await ledger_with_published_and_pending(store)
    bad = RejectedRow(received_at=T0, reasons=("type: unknown",), payload="{}", source="api")
    calls: list[int] = []

    def also(con: Con) -> None:
        calls.append(1)
        con.execute("SELECT 1").fetchall()

    accepted = await store.accept_changes(
        [unpublished("done"), unpublished("fresh", minutes=2), *padding(pad)], [bad], also=also
    )

    assert accepted.added == 1 + pad
    assert [r.change_id for r in accepted.unpublished][:1] == ["fresh"]
    assert calls == [1]
    rejected = await store.query("SELECT count(*) FROM rejected_changes")
    assert rejected.rows == ((1,),)


@SIZES
async def test_a_bad_payload_beside_a_stored_id_fails_the_whole_batch(
    store: Store, pad: int
) -> None:
    await ledger_with_published_and_pending(store)
    before = await stored(store)
    batch = [unpublished("kept"), unpublished("bad", payload="{no"), *padding(pad)]
    with pytest.raises(StoreWriteError, match=r"(?i)json"):
        await store.accept_changes(batch)
    assert await stored(store) == before


@SIZES
async def test_mark_published_marks_only_unmarked_stored_ids(store: Store, pad: int) -> None:
    await ledger_with_published_and_pending(store)
    extra = await store.accept_changes(padding(pad))
    extra_ids = [r.change_id for r in extra.unpublished]
    later = MARKED + 60 * S

    marked = await store.mark_published(
        ["done", "kept", "missing", "kept", *extra_ids, *extra_ids], later
    )

    assert marked == 1 + pad
    after = await stored(store)
    assert after["done"][1] == MARKED  # already marked: keeps its first time
    assert after["kept"][1] == later
    assert all(after[i][1] == later for i in extra_ids)
    assert "missing" not in after
    assert await store.mark_published(["kept", *extra_ids], later + S) == 0
    assert (await stored(store))["kept"][1] == later
    assert await store.unpublished_changes(T0 + timedelta(days=1)) == []


async def test_setting_aside_moves_only_unpublished_changes_to_rejected(store: Store) -> None:
    """Recovery sets aside a change no broker can take: it leaves the outbox for
    `rejected_changes` with its reason and payload; one the broker took meanwhile stays."""
    await ledger_with_published_and_pending(store)
    before = await stored(store)
    kept, done = str(before["kept"][3]), str(before["done"][3])
    aside = [
        RejectedRow(T0, ("too big",), kept, source="api", change_id="kept"),
        RejectedRow(T0, ("too big",), done, source="api", change_id="done"),
        RejectedRow(T0, ("too big",), "{}", source="api", change_id="never-stored"),
    ]
    assert await store.set_aside_unpublishable(aside) == 1
    assert await stored(store) == {"done": before["done"]}
    rejected = await store.query("SELECT change_id, reasons, payload FROM rejected_changes")
    assert rejected.rows == (("kept", ["too big"], kept),)
    assert await store.unpublished_changes(T0 + timedelta(days=1)) == []
    assert await store.set_aside_unpublishable(aside) == 0, "nothing left to move"
