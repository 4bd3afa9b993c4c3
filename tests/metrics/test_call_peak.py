"""The busiest 20 s of each connection (`queries._CALL_PEAK`) from ranks and an as-of join must
be the moving count of its definition (`queries._CALL_PEAK_WINDOW`), on random calls with
bursts, calls at the same microsecond, and calls exactly a window and a microsecond less apart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from stream.metrics import queries
from stream.metrics.definitions import RATE_WINDOW
from tests.support.seeds import run_seed

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def _calls(rnd: random.Random) -> list[tuple[str, datetime]]:
    calls: list[tuple[str, datetime]] = []
    for cid in rnd.sample(["c1", "c2", "c3", "c4"], rnd.randint(1, 4)):
        at = T0 + timedelta(seconds=rnd.uniform(-30, 30))
        for _ in range(rnd.randint(50, 300)):
            calls.append((cid, at))
            at += rnd.choice(
                (
                    timedelta(0),  # same microsecond
                    RATE_WINDOW,  # exactly a window later: outside the earlier call's window
                    RATE_WINDOW - US,  # the last instant inside it
                    timedelta(microseconds=rnd.randint(1, 400_000)),  # a burst
                    timedelta(seconds=rnd.uniform(0, 60)),
                )
            )
    return calls


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, run_seed()])
def test_the_peak_from_ranks_is_the_moving_count(seed: int) -> None:
    rnd = random.Random(seed)
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE api_calls (connection_id VARCHAR, started_at TIMESTAMPTZ)")
        con.executemany("INSERT INTO api_calls VALUES (?, ?)", _calls(rnd))
        for _ in range(8):
            start = T0 + timedelta(seconds=rnd.uniform(-60, 600))
            end = start + timedelta(seconds=rnd.choice((0, 1, 20, 300, 10_000)))
            window = [start, end]
            definition = sorted(con.execute(queries._CALL_PEAK_WINDOW, window).fetchall())
            assert sorted(con.execute(queries._CALL_PEAK, window).fetchall()) == definition
        everything = [T0 - timedelta(days=1), T0 + timedelta(days=30)]
        peaks = sorted(con.execute(queries._CALL_PEAK, everything).fetchall())
        assert peaks == sorted(con.execute(queries._CALL_PEAK_WINDOW, everything).fetchall())
        assert max(n for _, n in peaks) > 1  # bursts put several calls in one window
    finally:
        con.close()
