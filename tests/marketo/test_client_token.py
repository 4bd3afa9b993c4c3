"""The token cache on its own: single flight, Marketo's reissue-until-expiry, lapsed tokens."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from simulators.marketo.sandbox import ManualClock
from stream.marketo.token import IssuedToken, TokenCache, TokenLapsedError


class FakeIdentity:
    def __init__(self, *answers: tuple[str, int] | Exception, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.calls = 0

    async def __call__(self) -> IssuedToken:
        self.calls += 1
        await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        value, expires_in = answer
        return IssuedToken(SecretStr(value), expires_in, "api@x")


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def test_many_callers_share_one_fetch() -> None:
    identity = FakeIdentity(("t1", 3600), delay=0.05)
    cache = TokenCache(identity)
    tokens = await asyncio.gather(*(cache.get() for _ in range(50)))
    assert identity.calls == 1
    assert {t.value.get_secret_value() for t in tokens} == {"t1"}
    assert all(t is tokens[0] for t in tokens)


async def test_token_reused_until_the_margin_then_refreshed() -> None:
    clock = ManualClock(1000.0)
    identity = FakeIdentity(("t1", 3600), ("t2", 3600))
    cache = TokenCache(identity, margin_s=60, clock=clock)
    first = await cache.get()
    clock.advance(3539)
    assert await cache.get() is first
    clock.advance(2)
    second = await cache.get()
    assert second.value.get_secret_value() == "t2"
    assert identity.calls == 2


async def test_reissued_token_is_used_to_its_end_without_asking_again() -> None:
    # Marketo returns the same token with a falling expires_in until it has run out.
    clock = ManualClock(1000.0)
    identity = FakeIdentity(("t1", 3600), ("t1", 59), ("t2", 3600))
    cache = TokenCache(identity, margin_s=60, clock=clock, sleep=no_sleep)
    await cache.get()
    clock.advance(3541)
    again = await cache.get()
    assert again.value.get_secret_value() == "t1"
    assert identity.calls == 2
    clock.advance(50)  # still 9 s left: no identity call per API call
    assert (await cache.get()).value.get_secret_value() == "t1"
    assert identity.calls == 2
    clock.advance(8)
    assert (await cache.get()).value.get_secret_value() == "t2"


async def test_lapsed_token_waits_for_a_new_one() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    identity = FakeIdentity(("t1", 0), ("t2", 3600))
    cache = TokenCache(identity, sleep=sleep)
    token = await cache.get()
    assert token.value.get_secret_value() == "t2"
    assert slept == [1.0]


async def test_token_that_never_becomes_useful_is_an_error() -> None:
    cache = TokenCache(FakeIdentity(("t1", 0)), sleep=no_sleep, max_lapsed_fetches=3)
    with pytest.raises(TokenLapsedError):
        await cache.get()


async def test_invalidate_drops_only_the_current_token() -> None:
    identity = FakeIdentity(("t1", 3600), ("t2", 3600), ("t3", 3600))
    cache = TokenCache(identity)
    t1 = await cache.get()
    cache.invalidate(t1)
    t2 = await cache.get()
    assert t2.value.get_secret_value() == "t2"
    cache.invalidate(t1)  # a late 602 for the old token must not throw away the new one
    assert await cache.get() is t2
    assert identity.calls == 2


async def test_fetch_failure_reaches_every_waiter_and_the_next_get_tries_again() -> None:
    identity = FakeIdentity(RuntimeError("identity down"), ("t1", 3600), delay=0.02)
    cache = TokenCache(identity)
    results = await asyncio.gather(*(cache.get() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert identity.calls == 1
    assert (await cache.get()).value.get_secret_value() == "t1"


async def test_a_cancelled_waiter_does_not_cancel_the_refresh() -> None:
    identity = FakeIdentity(("t1", 3600), delay=0.05)
    cache = TokenCache(identity)
    impatient = asyncio.create_task(cache.get())
    patient = asyncio.create_task(cache.get())
    await asyncio.sleep(0.01)
    impatient.cancel()
    token = await patient
    assert token.value.get_secret_value() == "t1"
    assert identity.calls == 1


def test_token_repr_hides_the_value() -> None:
    async def run() -> str:
        cache = TokenCache(FakeIdentity(("secret-token-value", 3600)))
        return repr(await cache.get())

    assert "secret-token-value" not in asyncio.run(run())
