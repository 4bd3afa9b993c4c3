"""A real `csignal control` under slow operator statements (issue 11, item 4): `/healthz` keeps
answering within a second and the retry queue keeps its readers, because `/sql` runs on a lane
of its own, two statements at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from stream.broker import EmbeddedBroker
from tests.support.hostile import SLOW_SQL, alias_bomb
from tests.support.processes import ControlProcess, start_control
from tests.support.waiting import until

# Control's services use fixed topic names and groups: the module's own broker.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def control(
    module_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlProcess]:
    running = start_control(module_broker, tmp_path_factory.mktemp("hostile") / "var")
    try:
        yield running
    finally:
        # Its statements run until their 30 s limit; the test is over, nothing to keep.
        running.kill()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:
        yield client


async def test_healthz_and_the_retry_queue_answer_beside_four_slow_statements(
    control: ControlProcess, session: aiohttp.ClientSession
) -> None:
    async def slow_statement() -> int:
        async with session.post(
            f"{control.url}/api/v1/sql", json={"sql": SLOW_SQL}, headers=control.auth()
        ) as response:
            await response.read()
            return response.status

    slow = [asyncio.create_task(slow_statement()) for _ in range(4)]

    async def two_refused() -> bool:
        return sum(1 for t in slow if t.done() and t.result() == 429) == 2

    # Two run (for up to 30 s); the other two are told to come back (429) at once.
    await until(two_refused, "two of the four slow statements answered 429", within=30.0)
    assert sum(1 for t in slow if not t.done()) == 2
    health_s: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        async with session.get(f"{control.url}/healthz") as response:
            body = await response.json()
            health_s.append(time.perf_counter() - started)
            assert response.status == 200, body
            assert body["store"] is True
    started = time.perf_counter()
    async with session.get(f"{control.url}/api/v1/retry-queue", headers=control.auth()) as response:
        queue = await response.json()
        retry_s = time.perf_counter() - started
        assert response.status == 200, queue
    print(
        f"/healthz beside 2 running slow statements: max {max(health_s) * 1000:.1f} ms "
        f"(of {len(health_s)}); /retry-queue {retry_s * 1000:.1f} ms"
    )
    assert sum(1 for t in slow if not t.done()) == 2, "the slow statements ended early"
    assert max(health_s) < 1.0
    assert retry_s < 5.0
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)


async def test_an_alias_bomb_leaves_control_responsive(
    control: ControlProcess, session: aiohttp.ClientSession
) -> None:
    started = time.perf_counter()
    async with session.put(
        f"{control.url}/api/v1/config",
        data=alias_bomb(),
        headers=control.auth(**{"Content-Type": "text/yaml"}),
    ) as response:
        body = await response.json()
    elapsed = time.perf_counter() - started
    print(f"alias bomb refused by control in {elapsed * 1000:.1f} ms")
    assert response.status == 422, body
    assert "anchors or aliases" in body["errors"][0]["message"]
    async with session.get(f"{control.url}/healthz") as health:
        assert health.status == 200, await health.text()
