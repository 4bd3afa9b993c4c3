"""A real operator API for console tests: DuckDB `Store`, `ConfigService`, the API application
and a Marketo sandbox, served on loopback from a thread with its own event loop.

The console under test runs in pytest's loop (Pilot) or in the snapshot plugin's own loop, so the
service must not share either; a thread keeps it independent of both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from stream.api.app import create_app
from stream.api.deps import ApiDeps
from stream.certain.demo_account import SECRET_ENV, demo_account
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.certain.simulator import generate
from stream.control.config_service import ConfigService
from stream.control.secret_store import SecretStore
from stream.marketo.sandbox import Sandbox, SandboxConfig
from stream.store import Store
from stream.store.rows import OutcomeRow, RetryItem

T = TypeVar("T")
TOKEN = "console-test-token"
SANDBOX_SECRET = "sandbox-secret"


def incomplete_flow() -> dict[str, Any]:
    return {
        "id": "half-built",
        "name": "Half built",
        "mode": "test",
        "active": False,
        "source": "registration.status_change",
        "destination": {"connection": "demo-marketo"},
    }


class Control:
    """Start with `start()`, stop with `stop()`; `call(coro)` runs work on the service's loop."""

    def __init__(
        self,
        data_dir: Path,
        *,
        seed: bool = True,
        outcomes: bool = True,
        retry_standin: bool = True,
        base: datetime | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.outcomes = outcomes
        self.base = base
        self.retry_standin = retry_standin
        self.seed = seed
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.token = TOKEN
        self.store: Store | None = None
        self.config: ConfigService | None = None
        self.sandbox: Sandbox | None = None
        self._runner: web.AppRunner | None = None
        self.routes: Callable[[web.Application, Store], None] | None = None

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(timeout)

    async def acall(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def start(self) -> Control:
        self.thread.start()
        self.call(self._start())
        return self

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    async def _start(self) -> None:
        self.sandbox = Sandbox(SandboxConfig())
        await self.sandbox.start("127.0.0.1", 0)
        self.store = await Store.open(self.data_dir / "signal.duckdb", reader_threads=2)
        secrets = SecretStore(self.data_dir / "secrets.json")
        self.config = ConfigService(
            self.store, secrets, env={SECRET_ENV: SANDBOX_SECRET}, debounce_s=0.0
        )
        await self.config.start()
        account = demo_account(self.sandbox.url)
        account["flows"].append(incomplete_flow())
        await self.config.import_text(yaml.safe_dump(account), "test")
        if self.seed:
            await seed(self.store, self.base or datetime.now(UTC), outcomes=self.outcomes)
            self.config.apply_changes(event_changes())

        async def produce(records: Any) -> None:
            return None

        app = create_app(
            ApiDeps(store=self.store, config=self.config, produce_changes=produce, token=TOKEN)
        )
        paths = {r.resource.canonical for r in app.router.routes() if r.resource}
        if "/api/v1/metrics/summary" not in paths:
            from stream.api.metrics_routes import add_metrics_routes

            add_metrics_routes(app, self.store)
        if self.retry_standin and "/api/v1/retry-queue" not in paths:
            add_retry_standin(app, self.store)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.config is not None:
            await self.config.stop()
        if self.store is not None:
            await self.store.close()
        if self.sandbox is not None:
            await self.sandbox.stop()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def go() -> T:
            return await make()

        return self.call(go())


def event_changes() -> list[ChangeEvent]:
    """The simulator's event announcements: set-ups with tagged and untagged items."""
    start = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    out = []
    for item in generate(seed=7, rate=10, duration=1, start=start):
        if isinstance(item.body, dict) and item.body.get("type") == "event.create_update":
            parsed = parse_change(item.body)
            if isinstance(parsed, ChangeEvent):
                out.append(parsed)
    return out


FLOWS_WITH_TRAFFIC = ("registered-to-nurture", "attended-follow-up", "complete-form")


async def seed(store: Store, now: datetime, *, outcomes: bool = True) -> None:
    """A day of outcomes and a retry queue, at times relative to `now` so every window holds
    them; counts are fixed so snapshots are stable."""
    rows: list[OutcomeRow] = []
    retries: list[RetryItem] = []
    for f, flow_id in enumerate(FLOWS_WITH_TRAFFIC if outcomes else ()):
        for i in range(12 + 6 * f):
            at = now - timedelta(minutes=5 + (i * 37) % 600)
            failed = i % 5 == 0
            change = f"ch-{f}-{i:03d}"
            rows.append(
                OutcomeRow(
                    change_id=change,
                    flow_id=flow_id,
                    flow_name=flow_id.replace("-", " ").title(),
                    mode="live",
                    status="failed" if failed else "delivered",
                    category=("data" if i % 2 else "technical") if failed else None,
                    reason="required field email is empty" if failed else None,
                    occurred_at=at - timedelta(seconds=2),
                    processed_at=at,
                    registration_code=f"R{f}{i:05d}",
                    event_code="SUMMIT26",
                    action="create_update_lead",
                    lead_result=None if failed else ("created" if i % 3 else "updated"),
                    marketo_lead_id=None if failed else 1000 + i,
                    latency_ms=120.0,
                    connection_id="demo-marketo",
                )
            )
    fixed = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    for i in range(45):
        retries.append(
            RetryItem(
                change_id=f"rq-{i:03d}",
                flow_id=FLOWS_WITH_TRAFFIC[i % 3],
                flow_name=FLOWS_WITH_TRAFFIC[i % 3].replace("-", " ").title(),
                integration="demo-marketo",
                status=("pending", "abandoned", "retrying")[i % 3],
                category="data" if i % 2 else "technical",
                reason="status 'Waitlisted' has no tag" if i % 2 else "HTTP 503 from Marketo",
                attempts=i % 4,
                updated_at=fixed - timedelta(minutes=i),
                created_at=fixed - timedelta(hours=1, minutes=i),
                last_error="HTTP 503" if i % 2 == 0 else None,
            )
        )
    await store.record_outcomes(rows, retries)


def add_retry_standin(app: web.Application, store: Store) -> None:
    """Serve `/api/v1/retry-queue` from the real store when control does not yet.

    Shape: GET ?integration&status&category&q&offset&limit → {items, total, offset, limit};
    POST /submit {items: [{change_id, flow_id}]} or {filter: {...}} → {submitted}. A resubmitted
    item goes back to `pending`, due now, with the attempt count kept.
    """
    from stream.store.rows import Page, RetryFilter

    def item_json(item: RetryItem) -> dict[str, Any]:
        return {
            "change_id": item.change_id,
            "flow_id": item.flow_id,
            "flow_name": item.flow_name,
            "integration": item.integration,
            "status": item.status,
            "category": item.category,
            "reason": item.reason,
            "attempts": item.attempts,
            "updated_at": item.updated_at.isoformat(),
            "next_attempt_at": item.next_attempt_at.isoformat() if item.next_attempt_at else None,
            "last_error": item.last_error,
        }

    def filters(query: Any) -> RetryFilter:
        return RetryFilter(
            integration=query.get("integration") or None,
            status=query.get("status") or None,
            category=query.get("category") or None,
        )

    async def matching(query: Any) -> list[RetryItem]:
        page = await store.list_retry(filters(query), Page(offset=0, limit=10_000))
        needle = (query.get("q") or "").lower()
        items = list(page.items)
        if needle:
            items = [
                i for i in items if needle in f"{i.change_id} {i.flow_id} {i.reason or ''}".lower()
            ]
        return items

    async def list_queue(request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", "100"))
        items = await matching(request.query)
        body = {
            "items": [item_json(i) for i in items[offset : offset + limit]],
            "total": len(items),
            "offset": offset,
            "limit": limit,
        }
        return web.json_response(body)

    async def submit(request: web.Request) -> web.Response:
        body = await request.json()
        now = datetime.now(UTC)
        if "filter" in body:
            chosen = await matching(body["filter"])
        else:
            chosen = []
            for key in body.get("items", []):
                item = await store.get_retry_item(key["change_id"], key["flow_id"])
                if item is not None:
                    chosen.append(item)
        from dataclasses import replace

        again = [
            replace(
                i,
                status="pending",
                next_attempt_at=now,
                updated_at=now,
                resubmitted_by="console",
                resubmitted_at=now,
            )
            for i in chosen
        ]
        await store.upsert_retry_items(again)
        return web.json_response({"submitted": len(again)})

    app.router.add_get("/api/v1/retry-queue", list_queue)
    app.router.add_post("/api/v1/retry-queue/submit", submit)
