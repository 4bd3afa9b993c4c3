"""The delivered-keys log kept in the ledger (`delivery_marks`, migration 5): a delivery
overrides a "sending" mark and is never undone, a tombstone removes a "sending" mark only, the
records of a batch count in log order, and writing a batch again changes nothing."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import timedelta
from typing import Any

from stream.delivery_keys import delivery_key
from stream.store import Store
from stream.store.delivery_marks import (
    DeliveryMark,
    MarksWritten,
    fold_marks,
    prune_delivery_marks,
    record_delivery_marks,
    stored_marks,
)
from tests.store.conftest import T0

S = timedelta(seconds=1)


def mark(
    change_id: str, state: str, at: int | None = None, replay: str | None = None
) -> DeliveryMark:
    return DeliveryMark(
        key=delivery_key(change_id, "flow-1", replay),
        change_id=change_id,
        flow_id="flow-1",
        replay_id=replay,
        state=state,  # type: ignore[arg-type]
        at=None if at is None else T0 + at * S,
    )


async def marks(store: Store) -> dict[str, tuple[str, object]]:
    found = await store.query(
        "SELECT change_id, replay_id, state, marked_at FROM delivery_marks ORDER BY 1, 2"
    )
    return {f"{c}/{r}" if r else c: (s, at) for c, r, s, at in found.rows}


async def test_sending_then_delivered_then_tombstone(store: Store) -> None:
    written = await record_delivery_marks(store, [mark("a", "sending", 1)], T0)
    assert written == MarksWritten(sending=1)
    assert await marks(store) == {"a": ("sending", T0 + S)}
    await record_delivery_marks(store, [mark("a", "delivered", 2)], T0)
    assert await marks(store) == {"a": ("delivered", T0 + 2 * S)}
    # Neither a later "sending" mark nor a tombstone undoes a delivery.
    await record_delivery_marks(store, [mark("a", "sending", 5)], T0)
    await record_delivery_marks(store, [mark("a", "withdrawn")], T0)
    assert await marks(store) == {"a": ("delivered", T0 + 2 * S)}
    # A delivery keeps the newest time, as the pipeline's reader does.
    await record_delivery_marks(store, [mark("a", "delivered", 9), mark("a", "delivered", 4)], T0)
    assert await marks(store) == {"a": ("delivered", T0 + 9 * S)}


async def test_a_tombstone_removes_a_sending_mark(store: Store) -> None:
    await record_delivery_marks(store, [mark("b", "sending", 1), mark("c", "sending", 1)], T0)
    written = await record_delivery_marks(store, [mark("b", "withdrawn")], T0)
    assert written == MarksWritten(withdrawn=1)
    assert await marks(store) == {"c": ("sending", T0 + S)}
    # A tombstone for a key the ledger never saw is harmless.
    await record_delivery_marks(store, [mark("nobody", "withdrawn")], T0)
    assert await marks(store) == {"c": ("sending", T0 + S)}
    # Marked again (a retry of the refused call): back to sending.
    await record_delivery_marks(store, [mark("b", "sending", 7)], T0)
    assert (await marks(store))["b"] == ("sending", T0 + 7 * S)


async def test_records_of_one_batch_count_in_log_order(store: Store) -> None:
    await record_delivery_marks(store, [mark("d", "sending", 1)], T0)
    batch = [
        mark("d", "withdrawn"),  # refused ...
        mark("d", "sending", 3),  # ... and sent again
        mark("e", "sending", 1),
        mark("e", "withdrawn"),  # refused, not sent again
        mark("f", "sending", 2),
        mark("f", "delivered", 3),
        mark("f", "withdrawn"),  # never undoes the delivery
        mark("g", "delivered", 4, replay="r1"),
        mark("g", "sending", 1),
    ]
    written = await record_delivery_marks(store, batch, T0)
    assert written == MarksWritten(delivered=2, sending=2, withdrawn=1)
    assert await marks(store) == {
        "d": ("sending", T0 + 3 * S),
        "f": ("delivered", T0 + 3 * S),
        "g": ("sending", T0 + S),
        "g/r1": ("delivered", T0 + 4 * S),
    }


async def test_writing_a_batch_again_changes_nothing(store: Store) -> None:
    rng = random.Random(5)
    states = ["sending", "sending", "delivered", "withdrawn"]
    batch = []
    for _ in range(300):
        state = rng.choice(states)
        at = None if state == "withdrawn" else rng.randrange(1, 50)
        batch.append(mark(f"p{rng.randrange(25)}", state, at))
    for start in range(0, len(batch), 37):
        await record_delivery_marks(store, batch[start : start + 37], T0)
    once = await marks(store)
    for start in range(0, len(batch), 37):
        await record_delivery_marks(store, batch[start : start + 37], T0 + S)
    assert await marks(store) == once
    # Batch by batch, the ledger ends where folding the whole log at once ends.
    folded = fold_marks(batch)
    expected = {k: (m.state, m.at) for k, m in folded.items() if m.state != "withdrawn"}
    assert {delivery_key(c, "flow-1"): v for c, v in once.items()} == expected
    assert {m.state for m in folded.values()} == {"sending", "delivered", "withdrawn"}


async def test_marks_are_read_and_pruned_by_time(store: Store) -> None:
    await record_delivery_marks(
        store, [mark("old", "delivered", 1), mark("new", "sending", 100)], T0
    )
    found = await stored_marks(store, since=T0 + 50 * S)
    assert [(m.key, m.state, m.marked_at) for m in found] == [
        (delivery_key("new", "flow-1"), "sending", T0 + 100 * S)
    ]
    assert await prune_delivery_marks(store, before=T0 + 50 * S) == 1
    assert set(await marks(store)) == {"new"}


async def test_marks_never_wait_behind_the_writer(store: Store) -> None:
    """Marks go on the store's apart lane: written and readable while a long transaction holds
    the writer thread, which then commits its own work unharmed."""
    release = threading.Event()

    def long_batch(con: Any) -> None:
        con.execute("INSERT INTO rejected_records VALUES (now(), 't', 'a', ['r'], 'p', 0, 1)")
        if not release.wait(60):
            raise TimeoutError("never released")

    holding = asyncio.ensure_future(store.write(long_batch))
    try:
        await asyncio.wait_for(record_delivery_marks(store, [mark("h", "sending", 1)], T0), 30)
        assert await marks(store) == {"h": ("sending", T0 + S)}
        assert not holding.done()
    finally:
        release.set()
        await holding
    count = await store.query("SELECT count(*) FROM rejected_records")
    assert count.rows == ((1,),)
