"""One Marketo client per connection, rebuilt when the connection's configuration changes.

A client holds the connection's token, rate window and in-flight limit, so it must live as long
as the connection is unchanged: building one per batch would fetch a token per batch and forget
how much of Marketo's 100 calls / 20 s were already used.

Each client reports its HTTP calls through `on_call`; the pipeline turns them into
`ApiCallRecord`s for `signal-api-calls` (never with a secret: `CallRecord` carries none).

The pool also holds each connection's circuit breaker (`stream.core.breaker`), which outlives
its client: a client rebuilt for the same connection keeps the breaker, unless the connection's
configuration changed (new credentials or URL deserve a fresh start, so it is reset). An
operator's passing test of the saved settings resets it too: control stamps the connection in the
next snapshot (`ConfigSnapshot.tested`), and the pool resets the breaker when that stamp differs
from the one it last saw (the cause was fixed outside Signal, in Marketo or the network, so no
setting moved). A stamp seen before the breaker exists only becomes the one to compare with.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from config.models import Connection
from stream.core.breaker import Breaker, BreakerPolicy, BreakerState, BreakerView
from stream.marketo.client import MarketoClient
from stream.marketo.results import CallRecord
from stream.marketo.settings import MarketoSettings
from stream.messages import ApiCallRecord

log = logging.getLogger("signal.pipeline.clients")

__all__ = ["ClientPool", "Unusable", "settings_for"]

CallSink = Callable[[ApiCallRecord], Awaitable[None] | None]


class Unusable(Exception):
    """The connection cannot be used as configured (missing, no client id or secret …)."""


def settings_for(
    connection: Connection, secret: str | None, overrides: Mapping[str, Any] | None = None
) -> MarketoSettings:
    if connection.client_id is None:
        raise Unusable(f"connection {connection.id!r} has no client id")
    if not secret:
        raise Unusable(f"connection {connection.id!r} has no client secret")
    try:
        return MarketoSettings(
            connection_id=connection.id,
            base_url=connection.base_url,
            client_id=connection.client_id,
            client_secret=SecretStr(secret),
            identity_url=str(connection.access_token_url) if connection.access_token_url else None,
            scope=connection.scope,
            rate_share=connection.rate_share,
            max_in_flight=connection.max_in_flight,
            **dict(overrides or {}),
        )
    except ValidationError as error:
        raise Unusable(f"connection {connection.id!r}: {error}") from None


def _fingerprint(connection: Connection, secret: str | None) -> str:
    """Identity of a connection's configuration; the secret enters only as a hash."""
    digest = hashlib.sha256((secret or "").encode()).hexdigest()
    return connection.model_dump_json() + digest


@dataclass
class _Entry:
    fingerprint: str
    client: MarketoClient


class ClientPool:
    def __init__(
        self,
        on_call: CallSink | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_call = on_call
        self._overrides = dict(overrides or {})
        self._entries: dict[str, _Entry] = {}
        self._policy = breaker or BreakerPolicy()
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._tested: dict[str, datetime] = {}
        """Connection id → the last passing-test stamp seen (`see_tests`)."""
        self.built = 0

    def breaker(self, connection_id: str) -> Breaker:
        """The connection's breaker (closed until its calls fail)."""
        made = self._breakers.get(connection_id)
        if made is None:
            made = self._breakers[connection_id] = Breaker(self._policy, clock=self._clock)
        return made

    def breakers(self) -> dict[str, BreakerView]:
        """Every breaker this worker has, by connection id."""
        return {cid: b.view() for cid, b in self._breakers.items()}

    def see_tests(self, tested: Mapping[str, datetime]) -> None:
        """The snapshot's passing-test stamps (`ConfigSnapshot.tested`): a connection whose
        stamp moved has its breaker reset."""
        for connection_id, at in tested.items():
            self._see_test(connection_id, at)

    def _see_test(self, connection_id: str, at: datetime | None) -> None:
        if at is None or self._tested.get(connection_id) == at:
            return
        self._tested[connection_id] = at
        breaker = self._breakers.get(connection_id)
        if breaker is None:
            return
        if breaker.state is not BreakerState.CLOSED:
            log.info("connection %s passed an operator's test; closing its breaker", connection_id)
        breaker.reset()

    async def get(
        self, connection: Connection, secret: str | None, tested: datetime | None = None
    ) -> MarketoClient:
        """The client for this connection as configured now; raises `Unusable`. `tested`: the
        connection's passing-test stamp in the snapshot (`see_tests`)."""
        self._see_test(connection.id, tested)
        fingerprint = _fingerprint(connection, secret)
        entry = self._entries.get(connection.id)
        if entry is not None and entry.fingerprint == fingerprint:
            return entry.client
        settings = settings_for(connection, secret, self._overrides)
        breaker = self.breaker(connection.id)
        if entry is not None:
            log.info("connection %s changed; rebuilding its Marketo client", connection.id)
            await entry.client.close()
            breaker.reset()
        client = MarketoClient(settings, on_call=self._hook, breaker=breaker)
        self._entries[connection.id] = _Entry(fingerprint, client)
        self.built += 1
        return client

    async def _hook(self, record: CallRecord) -> None:
        if self._on_call is None:
            return
        result = self._on_call(ApiCallRecord.from_call(record))
        if result is not None:
            await result

    async def close(self) -> None:
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            try:
                await entry.client.close()
            except Exception:
                log.debug("closing a Marketo client failed", exc_info=True)
