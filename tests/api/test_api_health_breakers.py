"""`GET /healthz` shows the connections' circuit breakers as the pipeline workers' heartbeats
carry them: breakers (`stream.core.breaker`) → a beat (`stream.heartbeats.beat_bytes`) → what
control reads (`LiveWorkers`) → the API. Only the broker hop is left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream.api.deps import DEPS
from stream.core.breaker import Breaker, BreakerPolicy
from stream.heartbeats import LiveWorkers, beat_bytes, breaker_entries, parse_beat
from tests.api.api_harness import Api


class Clock:
    def __init__(self) -> None:
        self.t = 500.0

    def __call__(self) -> float:
        return self.t


def beat(worker: str, breakers: dict[str, Breaker], clock: Clock, at: datetime) -> bytes:
    views = {cid: b.view() for cid, b in breakers.items()}
    entries = breaker_entries(views, monotonic_now=clock.t, at=at)
    return beat_bytes(worker, at, breakers=entries)


async def test_healthz_lists_an_open_breaker_and_a_closed_one(api: Api) -> None:
    clock = Clock()
    policy = BreakerPolicy(threshold=2, open_s=30.0)
    down, up = Breaker(policy, clock=clock), Breaker(policy, clock=clock)
    down.failed("unreachable")
    down.failed("unreachable")
    up.succeeded()
    clock.t += 5
    at = datetime.now(UTC)
    live = LiveWorkers()
    parsed = parse_beat(beat("w1", {"mkto-down": down, "mkto-up": up}, clock, at))
    assert parsed is not None
    live.saw(parsed, seen_at=100.0)
    api.client.app[DEPS].connection_breakers = lambda: live.breakers(101.0)

    response = await api.client.get("/healthz")
    assert response.status == 200, "an open breaker leaves control healthy"
    body = await response.json()
    assert body["ok"] is True
    connections = body["connections"]
    assert set(connections) == {"mkto-down", "mkto-up"}
    opened = connections["mkto-down"]
    assert (opened["state"], opened["failures"]) == ("open", 2)
    assert datetime.fromisoformat(opened["since"]) == at - timedelta(seconds=5)
    assert datetime.fromisoformat(opened["retry_at"]) == at + timedelta(seconds=25)
    assert connections["mkto-up"] == {
        "state": "closed",
        "since": None,
        "retry_at": None,
        "failures": 0,
    }
    assert "unreachable" not in await response.text(), "no failure words on an open route"


async def test_healthz_connections_is_null_while_no_worker_beats_are_read(api: Api) -> None:
    api.client.app[DEPS].connection_breakers = lambda: None
    assert (await (await api.client.get("/healthz")).json())["connections"] is None


def test_the_newest_change_of_a_connection_wins_and_a_stopped_worker_drops_out() -> None:
    clock = Clock()
    at = datetime.now(UTC)
    old, new = Breaker(clock=clock), Breaker(BreakerPolicy(threshold=1), clock=clock)
    for _ in range(5):
        old.failed("down")  # opened at 500
    clock.t += 60
    new.failed("down")  # the partition moved: another worker's breaker opened later
    new.succeeded()
    live = LiveWorkers()
    for worker, breaker in (("w-old", old), ("w-new", new)):
        parsed = parse_beat(beat(worker, {"mkto": breaker}, clock, at))
        assert parsed is not None
        live.saw(parsed, seen_at=10.0)
    assert live.breakers(11.0)["mkto"]["state"] == "closed"
    stop = parse_beat(b'{"worker":"w-new","at":"x","every_s":2,"stopping":true}')
    assert stop is not None
    live.saw(stop, seen_at=12.0)
    assert live.breakers(12.0)["mkto"]["state"] == "open"
    assert live.breakers(100.0) == {}, "stale workers' breakers are not shown"


def test_a_beat_with_malformed_breakers_still_counts_its_worker() -> None:
    parsed = parse_beat(
        b'{"worker":"w","every_s":2,"breakers":{"a":{"state":"melted"},"b":7,'
        b'"c":{"state":"open","failures":"x","since":3}}}'
    )
    assert parsed is not None and parsed.worker == "w"
    assert parsed.breakers == {
        "c": {"state": "open", "since": None, "retry_at": None, "failures": 0}
    }
