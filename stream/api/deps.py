"""What the operator API needs from its host process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import Any

from aiohttp import web

from stream.control.config_service import ConfigService
from stream.metrics.certain_sources import CertainSourceStatus
from stream.metrics.queries import RuntimeStatus
from stream.store import Store

ProduceChanges = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]
"""Send (key, value) records to `certain-changes`; returns once the broker acknowledged all."""

RuntimeStatusProvider = Callable[[], RuntimeStatus | Awaitable[RuntimeStatus]]
"""What only the running services know (last change seen, consumer lag, workers alive)."""


def package_version() -> str:
    try:
        return metadata.version("signal-integration")
    except metadata.PackageNotFoundError:
        return "0+unknown"


CONNECTION_TEST_SETTINGS: dict[str, Any] = {
    "max_attempts": 1,
    "identity_timeout_s": 15.0,
    "request_timeout_s": 30.0,
    "max_throttle_wait_s": 5.0,
    "max_call_s": 45.0,
}
"""An administrator waiting on Save & Test wants one honest try, not the pipeline's retries."""


@dataclass
class ApiDeps:
    store: Store
    config: ConfigService
    produce_changes: ProduceChanges
    token: str
    """The operator's token: every route."""
    read_only_token: str | None = None
    """The viewers' token: reads only (stream.control.token); None: no such token is accepted."""
    version: str = field(default_factory=package_version)
    broker_ok: Callable[[], Awaitable[bool]] | None = None
    produce_timeout_s: float = 30.0
    """How long an ingest waits for the broker's acknowledgement before answering 503."""
    last_change_seen: Callable[[], datetime | None] | None = None
    connection_test_settings: dict[str, Any] = field(
        default_factory=lambda: dict(CONNECTION_TEST_SETTINGS)
    )
    runtime_status: RuntimeStatusProvider | None = None
    """For the metrics routes; left out, they report the last change seen (when known) and
    null for the figures only a running pipeline knows."""
    certain_sources: Callable[[], Sequence[CertainSourceStatus]] | None = None
    """The Certain sources' pollers (`GET /api/v1/sources`); left out, none are running."""
    tombstones: Callable[[Sequence[str]], Awaitable[dict[str, int]]] | None = None
    """Writes a null-value record per key on the compacted topics that hold a person's keys
    (`signal-delivered`), for an erasure; answers the records written per topic."""
    retention: Callable[[], Awaitable[dict[str, Any]]] | None = None
    """The pruner's settings, disk use and oldest rows (`GET /api/v1/ledger/retention`)."""
    connection_breakers: Callable[[], Mapping[str, Mapping[str, Any]] | None] | None = None
    """The pipeline workers' connection circuit breakers as their heartbeats carry them
    (`stream.heartbeats`), for `/healthz`; None from the callable while they are not read."""

    def runtime_provider(self) -> RuntimeStatusProvider:
        if self.runtime_status is not None:
            return self.runtime_status
        seen = self.last_change_seen
        return lambda: RuntimeStatus(last_change_seen_at=seen() if seen is not None else None)


DEPS: web.AppKey[ApiDeps] = web.AppKey("signal_api_deps", ApiDeps)


def deps_of(request: web.Request) -> ApiDeps:
    return request.app[DEPS]
