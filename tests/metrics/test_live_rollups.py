"""Live rollups (`stream.store.rollup_fold`, `stream.metrics.live`): the dashboards read folded
hours from the rollups and must show exactly what the ledger's rows alone give, on randomized
generated ledgers, with hours folded in part, after writes that move folded pairs to other hours
(read before and after the next fold), and after retention drops rows of folded hours."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stream.messages import VERIFIED_IN_MARKETO
from stream.metrics import live, parse_window, prometheus, queries
from stream.metrics.definitions import Mode, Window
from stream.store import Store, rollup_fold
from stream.store.retention import DROP_ATTEMPTS, DROP_OUTCOMES, DROP_RESOLVED_RETRIES
from stream.store.rows import OutcomeRow, OutcomeStatus, RetryItem, RetryStatus
from stream.store.schema import MIGRATIONS, migrate
from tests.metrics.conftest import _record
from tests.metrics.metrics_stream_gen import NOW, Stream, generate
from tests.support.examples import cases
from tests.support.seeds import run_seed

SEEDS = cases([3, 11, run_seed()])
"""Two fixed ledgers and one new each run (its seed is in the test's name when it fails;
`SIGNAL_TEST_SEED` replays it); `just test-fast` takes the new one only."""

LATER = NOW + timedelta(days=3)
"""After every generated attempt: every hour with rows is complete."""


@pytest.fixture(autouse=True)
def no_slack() -> Iterator[None]:
    """The fold's slack guards against a clock stepped back; here rows are written a moment
    before the fold, and with the slack every hour they touched would count as changed."""
    saved = rollup_fold.SLACK
    rollup_fold.SLACK = timedelta(0)
    yield
    rollup_fold.SLACK = saved


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def stream(request: pytest.FixtureRequest) -> Stream:
    """One ledger per seed for the module: the tests read the stream and never change it."""
    return generate(seed=int(request.param), changes=150)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, stream: Stream) -> Path:
    """The seed's ledger recorded once (a fresh file's migrations and ~20 batches of writes,
    a third of a CPU-second); each test writes to a copy of the closed file."""
    path = tmp_path_factory.mktemp("live-rollups") / "signal.duckdb"
    asyncio.run(_record(path, stream))
    assert not Path(f"{path}.wal").exists(), "closed without a checkpoint: the copy would miss rows"
    return path


@pytest.fixture
async def store(tmp_path: Path, recorded: Path) -> AsyncIterator[Store]:
    path = tmp_path / "signal.duckdb"
    shutil.copyfile(recorded, path)
    # One DuckDB thread: these ledgers are a few thousand rows, where a second thread only
    # hands work over (about a tenth of the module's CPU time, user and system).
    opened = await Store.open(path, reader_threads=2, threads=1)
    try:
        yield opened
    finally:
        await opened.close()


def _windows() -> list[Window]:
    odd = NOW - timedelta(days=4, minutes=17, seconds=3)
    return [
        parse_window("24h", now=NOW),
        parse_window("7d", now=NOW),
        parse_window("30d", now=LATER),
        parse_window("3d", now=NOW - timedelta(minutes=29)),
        parse_window(start=odd, end=odd + timedelta(days=2, hours=5, minutes=41)),
    ]


async def _both(store: Store, mode: Mode, window: Window) -> tuple[Any, Any]:
    """The Summary and Troubleshooting from the rollups (and the retry items' modes the fold
    filled) and from the ledger's rows alone."""
    live.ENABLED = True
    try:
        folded = (
            await queries.summary(store, mode, window, active_flows=0),
            await queries.troubleshooting(store, mode, window),
        )
        live.ENABLED = False
        raw = (
            await queries.summary(store, mode, window, active_flows=0),
            await queries.troubleshooting(store, mode, window),
        )
    finally:
        live.ENABLED = True
    return _ageless(folded), _ageless(raw)


def _ageless(tabs: tuple[dict[str, Any], dict[str, Any]]) -> tuple[Any, Any]:
    """Both tabs without the oldest queued pair's age, which is taken from the wall clock at
    each read (its time is compared)."""
    summary, troubleshooting = tabs
    summary["processing_status"]["in_flight"].pop("oldest_queued_age_s")
    troubleshooting["in_flight"].pop("oldest_queued_age_s")
    return summary, troubleshooting


def _scrape(con: Any) -> list[Any]:
    """The scrape's families but the ledger file's (its sizes change with every write)."""
    families = prometheus.collect_on(con, now=LATER)
    return [
        (f.name, f.kind, f.samples) for f in families if not f.name.startswith("signal_ledger_")
    ]


async def _assert_same_scrape(store: Store) -> None:
    live.ENABLED = True
    try:
        folded = await store.read(_scrape)
        live.ENABLED = False
        raw = await store.read(_scrape)
    finally:
        live.ENABLED = True
    assert folded == raw


async def _assert_same(store: Store) -> int:
    """Every window and mode the same both ways, and the scrape; returns how many clean hours
    were read."""
    await _assert_same_scrape(store)
    used = 0
    for window in _windows():
        for mode in ("live", "test"):
            folded, raw = await _both(store, mode, window)
            assert folded == raw, (mode, window)
        parts = await store.read(functools.partial(live.split, window=window))
        used += sum((b - a) // rollup_fold.HOUR for a, b in parts.clean)
    return used


async def _fold(store: Store, budget: int = 10_000) -> rollup_fold.FoldReport:
    return await store.write(lambda con: rollup_fold.fold_step(con, now=LATER, budget=budget))


async def test_folded_figures_equal_the_rows(store: Store) -> None:
    assert await _assert_same(store) == 0  # nothing folded yet: all from the rows
    report = await _fold(store)
    assert report.folded > 200 and report.left == 0
    assert await _assert_same(store) > 0


async def test_partly_folded(store: Store) -> None:
    report = await _fold(store, budget=40)
    assert report.folded == 40 and report.left > 0
    assert await _assert_same(store) > 0
    # The newest hours go first: the last 24 h are read from the rollups.
    day = parse_window("24h", now=LATER)
    parts = await store.read(lambda con: live.split(con, day))
    assert parts.clean


def _moved(stream: Stream, rnd: random.Random) -> list[OutcomeRow]:
    """Later attempts for some pairs (a retry resolving hours or days later, a late answer for
    a pair in a folded hour, a mode's pair failing again), recorded after the fold."""
    rows: list[OutcomeRow] = []
    for pair in rnd.sample(stream.pairs, 40):
        state = pair.state
        later = state.processed_at + timedelta(minutes=rnd.choice((3, 70, 600, 2900)))
        status: OutcomeStatus = rnd.choice(("delivered", "failed", "not_activated"))
        extra: dict[str, Any] = {}
        if status == "delivered":
            extra = {"lead_result": rnd.choice(("created", "updated")), "reason": None}
        elif status == "failed":
            extra = {"category": "technical", "reason": "HTTP 503"}
        else:
            extra = {"reason": "registration R0001 is inactive (deleted)"}
        rows.append(
            dataclasses.replace(
                state,
                status=status,
                processed_at=later,
                attempt=len(pair.attempts) + 1,
                replayed=False,
                outcome_id="",
                **extra,
            )
        )
    return rows


async def test_changes_after_the_fold(store: Store, stream: Stream) -> None:
    await _fold(store)
    rnd = random.Random(len(stream.pairs))
    await store.record_outcomes(_moved(stream, rnd), [])
    # Read before any fold: the hours the writes touched come from the rows.
    await _assert_same(store)
    report = await _fold(store)
    assert report.unfolded > 0 and report.folded >= report.unfolded
    assert await _assert_same(store) > 0
    # A quiet step changes nothing.
    again = await _fold(store)
    assert (again.unfolded, again.folded) == (0, 0)
    assert await _assert_same(store) > 0


async def test_retention_takes_its_hours_out(store: Store) -> None:
    await _fold(store)
    cutoff = NOW - timedelta(days=5, minutes=23)

    def prune(con: Any) -> int:
        done = 0
        for step in (DROP_RESOLVED_RETRIES, DROP_OUTCOMES, DROP_ATTEMPTS):
            con.execute(f"CREATE OR REPLACE TEMP TABLE prune_batch AS {step.due}", [cutoff, 10**6])
            for sql in step.rollups:
                con.execute(sql)
            row = con.execute("SELECT count(*) FROM prune_batch").fetchone()
            done += int(row[0]) if row else 0
            con.execute(f"DELETE FROM {step.table} t USING prune_batch p WHERE {step.key}")
            con.execute("DROP TABLE prune_batch")
        return done

    assert await store.write(prune) > 0
    await _assert_same(store)
    await _fold(store)
    assert await _assert_same(store) > 0


async def test_erasure_unfolds_everything(store: Store) -> None:
    await _fold(store)

    def erase_audit(con: Any) -> None:
        con.execute(
            'INSERT INTO config_audit_log ("at", actor, object, object_id, action, change) '
            "VALUES (?, 'test', 'ledger', 'a1', 'erase', '{}'::JSON)",
            [datetime.now(NOW.tzinfo)],
        )
        con.execute(
            "UPDATE delivery_state SET registration_code = NULL WHERE change_id < 'chg-0005'"
        )

    await store.write(erase_audit)
    assert await _assert_same(store) == 0  # an erasure after the fold: nothing is clean
    report = await _fold(store)
    assert report.reset
    assert await _assert_same(store) > 0


async def test_retry_items_after_the_fold(store: Store, stream: Stream) -> None:
    """The Troubleshooting tab counts a mode's retry items by the mode the fold filled in: items
    that change status after the fold (resolved in or out of the window, abandoned, reopened),
    new items written with and without their pair's state, an item whose pair's state is
    written again in the other mode, and deleted items read the same as from the rows."""
    await _fold(store)
    rnd = random.Random(len(stream.pairs) * 7)
    held = [p for p in stream.pairs if p.retry is not None]
    assert held
    changed: list[RetryItem] = []
    for pair in rnd.sample(held, min(30, len(held))):
        assert pair.retry is not None
        status: RetryStatus = rnd.choice(("pending", "retrying", "abandoned", "resolved"))
        at = NOW - timedelta(hours=rnd.choice((1, 5, 30, 200)), minutes=rnd.randrange(60))
        changed.append(dataclasses.replace(pair.retry, status=status, updated_at=at))
    bare = [p for p in stream.pairs if p.retry is None]
    alone = rnd.sample(bare, min(12, len(bare)))
    for pair in alone:  # written without any state write: the fold has no mode for them yet
        changed.append(
            RetryItem(
                change_id=pair.change_id,
                flow_id=pair.flow.flow_id,
                status=rnd.choice(("pending", "abandoned", "resolved")),
                category="technical",
                attempts=1,
                updated_at=NOW - timedelta(hours=rnd.randrange(1, 48)),
            )
        )
    changed.append(  # an item of a pair that has no state at all
        RetryItem(
            change_id="chg-none",
            flow_id=stream.pairs[0].flow.flow_id,
            status="pending",
            category="data",
            attempts=1,
            updated_at=NOW - timedelta(hours=3),
        )
    )
    await store.upsert_retry_items(changed)
    # A held pair's state written again in the other mode, and a few items deleted.
    flipped = rnd.sample(held, min(6, len(held)))
    rows = [
        dataclasses.replace(
            p.state,
            mode="test" if p.state.mode == "live" else "live",
            status="failed",
            category="technical",
            reason="HTTP 503",
            processed_at=p.state.processed_at + timedelta(minutes=90),
            attempt=len(p.attempts) + 1,
            replayed=False,
            outcome_id="",
        )
        for p in flipped
    ]
    await store.record_outcomes(rows, [])
    gone = [(p.change_id, p.flow.flow_id) for p in rnd.sample(held, min(5, len(held)))]
    await store.write(
        lambda con: con.executemany(
            "DELETE FROM retry_items WHERE change_id = ? AND flow_id = ?", gone
        )
    )
    unread = await store.read(
        lambda con: con.execute("SELECT count(*) FROM retry_items WHERE mode IS NULL").fetchall()
    )
    assert unread[0][0] > 0  # read before the next fold: the unread path is taken
    await _assert_same(store)
    await _fold(store)
    modes = await store.read(
        lambda con: con.execute(
            "SELECT count(*) FILTER (WHERE mode IS NULL), count(*) FILTER (WHERE mode = '') "
            "FROM retry_items"
        ).fetchall()
    )
    assert modes[0] == (0, 1)  # every item read; the one without state has none
    assert await _assert_same(store) > 0


async def test_scrape_with_pairs_in_flight(store: Store, stream: Stream) -> None:
    """The scrape's counters and gauges from the rollups equal the rows' with pairs in flight
    in folded hours (folded, then answered, verified or repeated, and queued anew in a folded
    hour after the fold), read before and after the next fold."""
    rnd = random.Random(len(stream.pairs) * 13)
    picked = rnd.sample(stream.pairs, min(40, len(stream.pairs)))

    def queued(pair: Any, suffix: str, at: datetime) -> OutcomeRow:
        state: OutcomeRow = pair.state
        return dataclasses.replace(
            state,
            change_id=f"{pair.change_id}-{suffix}",
            status="queued",
            category=None,
            reason=None,
            lead_result=None,
            processed_at=at,
            attempt=1,
            replayed=False,
            outcome_id="",
        )

    first = [queued(p, "q", p.state.processed_at) for p in picked]
    await store.record_outcomes(first, [])
    await _fold(store)
    in_flight = await store.read(
        lambda con: con.execute("SELECT sum(pairs) FROM live_in_flight").fetchall()
    )
    assert in_flight[0][0] == len(first)
    await _assert_same(store)
    answered = [
        dataclasses.replace(
            row,
            status="delivered",
            lead_result=rnd.choice(("created", VERIFIED_IN_MARKETO)),
            possible_repeat=rnd.random() < 0.5,
            processed_at=row.processed_at + timedelta(minutes=rnd.choice((2, 90, 1500))),
            outcome_id="",
        )
        for row in first[: len(first) // 2]
    ]
    later = [queued(p, "r", p.state.processed_at + timedelta(minutes=7)) for p in picked[:10]]
    await store.record_outcomes([*answered, *later], [])
    await _assert_same(store)
    report = await _fold(store)
    assert report.unfolded > 0
    assert await _assert_same(store) > 0


def test_hours_folded_before_in_flight_was_kept_are_folded_again(tmp_path: Path) -> None:
    """Hours folded before `live_in_flight` existed have no pairs in flight there: the migration
    that adds it takes every folded hour out, for the fold to fold again."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        migrate(con, [m for m in MIGRATIONS if m.version <= 12])
        con.execute("INSERT INTO live_hours VALUES (?, ?)", [NOW, NOW])
        con.execute(
            "INSERT INTO live_outcomes VALUES (?, 'live', 'delivered', NULL, NULL, '', NULL, 3)",
            [NOW],
        )
        con.execute("INSERT INTO live_keys VALUES (1, false, 0, 7, NULL)")
        migrate(con)
        for table in ("live_hours", "live_outcomes", "live_keys", "live_in_flight"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
    finally:
        con.close()


async def test_a_ledger_without_outcomes_folds_again_after_its_first_fold(tmp_path: Path) -> None:
    """A fold after the first on a ledger with no outcomes (a control restarted before any
    change) read the changed pairs while the oldest-outcome query's one-row result was still
    open on the writer's connection, which DuckDB refuses: every round failed with a warning."""
    store = await Store.open(tmp_path / "empty.duckdb")
    try:
        first = await _fold(store)
        second = await _fold(store)
        assert (first.folded, second.folded, second.left) == (0, 0, 0)
        marks = await store.read(
            lambda con: con.execute("SELECT count(mark) FROM live_fold_state").fetchall()
        )
        assert marks == [(1,)]
    finally:
        await store.close()


async def test_a_dashboard_reads_one_moment(store: Store, stream: Stream) -> None:
    """The dashboards' statements run in one read transaction (`live.one_snapshot`): a write
    committed between two of them (a fold refolding an hour the split found clean, say) is not
    seen by the later ones, so the split and what it reads agree."""
    loop = asyncio.get_running_loop()
    later = [
        dataclasses.replace(
            p.state, change_id=f"{p.change_id}-x", processed_at=NOW, attempt=1, outcome_id=""
        )
        for p in stream.pairs[:5]
    ]
    count = "SELECT count(*) FROM outcome_log"

    def work(con: Any) -> tuple[int, int]:
        before = con.execute(count).fetchall()[0][0]
        asyncio.run_coroutine_threadsafe(store.record_outcomes(later, []), loop).result(60)
        return before, con.execute(count).fetchall()[0][0]

    before, after = await store.read(lambda con: live.one_snapshot(con, work))
    assert before == after
    now = await store.read(lambda con: con.execute(count).fetchall()[0][0])
    assert now == before + len(later)
