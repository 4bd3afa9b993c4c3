"""A real operator API for console tests: DuckDB `Store`, `ConfigService`, the API application
and a Marketo sandbox, served on loopback from a thread with its own event loop.

The console under test runs in pytest's loop (Pilot) or in the snapshot plugin's own loop, so the
service must not share either; a thread keeps it independent of both.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import random
import shutil
import socket
import tempfile
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from simulators.certain.demo_account import SECRET_ENV, demo_account
from simulators.certain.sandbox import CertainSandbox
from simulators.certain.traffic import generate
from simulators.marketo.sandbox import Sandbox, SandboxConfig
from stream.api.app import create_app
from stream.api.deps import ApiDeps
from stream.certain.events import ChangeEvent
from stream.certain.parsing import parse_change
from stream.control.certain_poller import CertainSources
from stream.control.config_service import ConfigService
from stream.control.operations import Operations
from stream.control.retention import Retention
from stream.control.secret_store import SecretStore
from stream.store import Store
from stream.store.retention import RetentionPolicy
from stream.store.rows import ChangeRow, OutcomeRow, RetryItem
from tests.support.clock import FIXED

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
        base: datetime | None = None,
        certain: bool = False,
        retention: bool = False,
    ) -> None:
        """`certain`: also a Certain sandbox (`certain_url`) and control's real pollers of the
        account's Certain sources, whose states `GET /api/v1/sources` reports. `retention`:
        control's pruner (default policy, the clock at `base`), whose status the
        Troubleshooting tab shows."""
        self.retention = retention
        self.data_dir = data_dir
        self.certain = certain
        self.certain_sandbox: CertainSandbox | None = None
        self.pollers: CertainSources | None = None
        self.outcomes = outcomes
        self.base = base
        self.ops: Operations | None = None
        self.redriven: list[tuple[bytes, bytes]] = []
        self.seed = seed
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.token = TOKEN
        self.store: Store | None = None
        self.config: ConfigService | None = None
        self.sandbox: Sandbox | None = None
        self._runner: web.AppRunner | None = None
        self.breakers: dict[str, dict[str, Any]] | None = None
        """What `/healthz` lists under `connections` (as the workers' heartbeats would carry
        it); None, the default, is what control answers while it reads no heartbeats."""

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
        # The imported account (and, at a fixed base, the seeded ledger) comes from a data dir
        # built once per process and copied: the same rows as importing and seeding here, for a
        # fraction of the CPU. Its connection points at a sandbox port kept for this process;
        # when that port is busy (two controls at once), the account is imported here instead.
        template = await _template(self.seed, self.outcomes, self.base)
        try:
            await self.sandbox.start("127.0.0.1", _template_port())
        except OSError:
            template = None
            await self.sandbox.start("127.0.0.1", 0)
        if template is not None:
            for item in template.iterdir():
                shutil.copy2(item, self.data_dir / item.name)
        self.store = await Store.open(self.data_dir / "signal.duckdb", reader_threads=2)
        secrets = SecretStore(self.data_dir / "secrets.json")
        self.config = ConfigService(
            self.store, secrets, env={SECRET_ENV: SANDBOX_SECRET}, debounce_s=0.0
        )
        await self.config.start()
        if template is None:
            await _import_account(self.config, self.sandbox.url)
        if self.seed:
            if template is None or self.base is None:
                await seed(self.store, self.base or datetime.now(UTC), outcomes=self.outcomes)
            self.config.apply_changes(event_changes())

        async def produce(records: Any) -> None:
            return None

        async def redrive(records: Sequence[tuple[bytes, bytes]]) -> None:
            self.redriven.extend(records)

        self.ops = Operations.build(self.store, self.config, redrive)
        deps = ApiDeps(
            store=self.store,
            config=self.config,
            produce_changes=produce,
            token=TOKEN,
            connection_breakers=lambda: self.breakers,
        )
        if self.retention:
            base = self.base or datetime.now(UTC)
            pruner = Retention(self.store, RetentionPolicy(), clock=lambda: base)
            await pruner.prune()
            deps.retention = pruner.status
        if self.certain:
            self.certain_sandbox = CertainSandbox(per_event=2)
            await self.certain_sandbox.start()
            self.pollers = CertainSources(self.store, self.config, produce, reconcile_s=0.1)
            self.pollers.start()
            deps.certain_sources = self.pollers.statuses
        app = create_app(deps, self.ops)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    @property
    def certain_url(self) -> str:
        assert self.certain_sandbox is not None, "started without certain=True"
        return self.certain_sandbox.url

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.pollers is not None:
            await self.pollers.stop()
        if self.certain_sandbox is not None:
            await self.certain_sandbox.stop()
        if self.ops is not None:
            await self.ops.close()
            self.ops = None
        if self.config is not None:
            await self.config.stop()
        if self.store is not None:
            await self.store.close()
        if self.sandbox is not None:
            await self.sandbox.stop()


async def _import_account(config: ConfigService, sandbox_url: str) -> None:
    account = demo_account(sandbox_url)
    account["flows"].append(incomplete_flow())
    await config.import_text(yaml.safe_dump(account), "test")


_TEMPLATES: dict[tuple[bool, bool, datetime | None], Path] = {}
_TEMPLATE_ROOT: list[Path] = []
_PORT: list[int] = []


def _template_port() -> int:
    """This process's sandbox port: below the ephemeral range, so no port-0 bind of another
    test takes it between two controls; free when first picked."""
    if not _PORT:
        for _ in range(200):
            port = random.randrange(20000, 32000)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _PORT.append(port)
            break
        else:
            raise OSError("no free port for the console sandbox")
    return _PORT[0]


def _template_root() -> Path:
    if not _TEMPLATE_ROOT:
        root = Path(tempfile.mkdtemp(prefix="signal-control-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _TEMPLATE_ROOT.append(root)
    return _TEMPLATE_ROOT[0]


async def _template(seeded: bool, outcomes: bool, base: datetime | None) -> Path | None:
    """A closed data dir holding the imported account, plus the seeded ledger when its times
    are fixed (`base`); outcomes seeded relative to the real time are written per control."""
    fixed = seeded and base is not None
    key = (True, outcomes, base) if fixed else (False, False, None)
    if key in _TEMPLATES:
        return _TEMPLATES[key]
    try:
        port = _template_port()
    except OSError:
        return None
    directory = _template_root() / f"t{len(_TEMPLATES)}"
    directory.mkdir()
    store = await Store.open(directory / "signal.duckdb", reader_threads=1)
    try:
        config = ConfigService(
            store,
            SecretStore(directory / "secrets.json"),
            env={SECRET_ENV: SANDBOX_SECRET},
            debounce_s=0.0,
        )
        await config.start()
        await _import_account(config, f"http://127.0.0.1:{port}")
        if fixed and base is not None:
            await seed(store, base, outcomes=outcomes)
        await config.stop()
    finally:
        await store.close()
    _TEMPLATES[key] = directory
    return directory


def event_changes() -> list[ChangeEvent]:
    """The simulator's event announcements: set-ups with tagged and untagged items."""
    start = FIXED - timedelta(hours=4)
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
    # Retry items at fixed times: the queue's rows (ages, order) stay the same in snapshots.
    fixed = FIXED - timedelta(hours=3)
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
    template = registration_template()
    archived = []
    for item in retries:
        body = {**template, "changeId": item.change_id}
        archived.append(
            ChangeRow(
                change_id=item.change_id,
                type=body["type"],
                account_code=body["accountCode"],
                event_code=body.get("eventCode"),
                registration_code=body["registration"]["registrationCode"],
                is_test=False,
                occurred_at=fixed - timedelta(hours=2),
                received_at=fixed - timedelta(hours=2),
                payload=json.dumps(body),
                source="api",
            )
        )
    await store.archive_changes(archived)
    await store.record_outcomes(rows, retries)


def registration_template() -> dict[str, Any]:
    start = FIXED - timedelta(hours=4)
    for item in generate(seed=7, rate=10, duration=3, start=start):
        body = item.body
        if (
            item.valid
            and isinstance(body, dict)
            and body.get("type") == "registration.status_change"
        ):
            return dict(body)
    raise AssertionError("the simulator made no registration status change")
