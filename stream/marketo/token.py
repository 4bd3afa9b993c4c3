"""Access-token cache with single-flight refresh.

Marketo hands out the same token until it expires, with `expires_in` counting down, and only mints
a new one after expiry. So a refresh "shortly before expiry" may return the very token we hold with
a few seconds left; the cache then keeps using it to the end instead of asking again on every call,
and takes a fresh one once it has lapsed. Many callers finding the token stale at once share one
identity request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

from stream.marketo.limits import MonotonicClock, Sleep

# Seconds kept in hand at the very end of a token's life, for the call's own travel time.
END_OF_LIFE_S = 2.0
# A token reported with `expires_in` at or below this is useless; wait for Marketo to mint anew.
MIN_USEFUL_S = 1


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the identity endpoint answered."""

    value: SecretStr
    expires_in: int
    scope: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class AccessToken:
    value: SecretStr = field(repr=False)
    obtained_at: float
    expires_at: float
    usable_until: float
    scope: str | None = None

    def header(self) -> str:
        return f"Bearer {self.value.get_secret_value()}"


class TokenCache:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[IssuedToken]],
        *,
        margin_s: float = 60.0,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_lapsed_fetches: int = 5,
    ) -> None:
        self._fetch = fetch
        self._margin_s = margin_s
        self._clock = clock
        self._sleep = sleep
        self._max_lapsed_fetches = max_lapsed_fetches
        self._current: AccessToken | None = None
        self._last: AccessToken | None = None
        self._refresh: asyncio.Task[AccessToken] | None = None
        self.fetches = 0

    @property
    def current(self) -> AccessToken | None:
        return self._current

    def _fresh(self, token: AccessToken | None) -> bool:
        return token is not None and self._clock() < token.usable_until

    async def get(self) -> AccessToken:
        token = self._current
        if token is not None and self._fresh(token):
            return token
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._obtain(self._last))
        # Shielded: one caller giving up must not cancel the refresh the others are waiting on.
        return await asyncio.shield(self._refresh)

    def invalidate(self, token: AccessToken) -> None:
        """Marketo refused `token` (601/602): drop it, unless a newer one already replaced it."""
        if self._current is token:
            self._current = None

    async def _obtain(self, previous: AccessToken | None) -> AccessToken:
        for attempt in range(self._max_lapsed_fetches):
            issued = await self._fetch()
            self.fetches += 1
            now = self._clock()
            reissued = previous is not None and _same(previous, issued)
            if issued.expires_in >= MIN_USEFUL_S and not (
                reissued and issued.expires_in <= END_OF_LIFE_S
            ):
                token = self._build(issued, now, reissued)
                self._current = self._last = token
                return token
            if attempt + 1 < self._max_lapsed_fetches:
                # Marketo mints a new token only once the old one has run out: wait for that.
                await self._sleep(max(issued.expires_in, 0) + 1.0)
        raise TokenLapsedError("the identity endpoint keeps returning tokens that have expired")

    def _build(self, issued: IssuedToken, now: float, reissued: bool) -> AccessToken:
        expires_at = now + issued.expires_in
        if issued.expires_in > self._margin_s + END_OF_LIFE_S and not reissued:
            usable_until = expires_at - self._margin_s
        else:
            # Same token again, or too close to expiry to refresh early: use it to the end.
            usable_until = expires_at - END_OF_LIFE_S
        return AccessToken(
            value=issued.value,
            obtained_at=now,
            expires_at=expires_at,
            usable_until=max(usable_until, now),
            scope=issued.scope,
        )


class TokenLapsedError(Exception):
    pass


def _same(token: AccessToken, issued: IssuedToken) -> bool:
    return token.value.get_secret_value() == issued.value.get_secret_value()
