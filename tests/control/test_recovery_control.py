"""Recovery inside `csignal control` (a real process, the module's embedded broker, a DuckDB
file): with no pipeline running, a change control archived is re-driven to `signal-redrive`
with kind recovery once the grace has passed; the operator API shows recovery in the
troubleshooting JSON and `/metrics`; a restarted control writes the ledger's delivered keys to
`signal-delivered`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stream.broker import EmbeddedBroker
from stream.messages import RedriveRequest
from tests.control.test_control_integration import ACCOUNT, EVENT_CHANGE, SECRET, registration
from tests.support.changes import encoded
from tests.support.clock import recent
from tests.support.processes import ControlProcess, start_control, until_running
from tests.support.topics import produce, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RECOVERY_ENV = {
    "SIGNAL_RECOVERY_GRACE_S": "2",
    "SIGNAL_RECOVERY_EVERY_S": "0.5",
    "SIGNAL_SECRET_CONTROL_TEST": SECRET,
}


async def start(broker: EmbeddedBroker, data_dir: Path, name: str) -> ControlProcess:
    return await asyncio.to_thread(start_control, broker, data_dir, name=name, env=RECOVERY_ENV)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    (path / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    return path


async def get_json(
    control: ControlProcess, session: aiohttp.ClientSession, path: str
) -> dict[str, Any]:
    async with session.get(f"{control.url}{path}", headers=control.auth()) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def test_control_redrives_a_change_nobody_routed_and_reseeds_on_restart(
    module_broker: EmbeddedBroker, data_dir: Path, session: aiohttp.ClientSession
) -> None:
    bootstrap = module_broker.bootstrap_servers
    control = await start(module_broker, data_dir, "control-1")
    try:
        await produce(bootstrap, [("certain-changes", b"SUMMIT26", encoded(EVENT_CHANGE))])
        # the registration is matched only once the event is in control's catalog
        await until_running(
            lambda: control.sql(session, "SELECT 1 FROM changes WHERE change_id = 'ev-1'"),
            "the event archived",
            control,
        )
        await produce(bootstrap, [registration("lost-1", "R-LOST")])

        def recovered(records: list[Any]) -> bool:
            return any(
                RedriveRequest.loads(r.value).change.get("changeId") == "lost-1" for r in records
            )

        redrives = await read_topic(bootstrap, "signal-redrive", until=recovered)
        mine = [RedriveRequest.loads(r.value) for r in redrives]
        mine = [m for m in mine if m.change.get("changeId") == "lost-1"]
        assert mine, "no recovery redrive of the change nobody routed"
        assert (mine[0].redrive.kind, mine[0].redrive.flow_id) == ("recovery", "f1")

        async def shown() -> dict[str, Any] | None:
            body = await get_json(control, session, "/api/v1/metrics/troubleshooting")
            recovery = body.get("recovery")
            return recovery if recovery and recovery.get("redriven_total") else None

        recovery = await until_running(shown, "recovery in troubleshooting", control)
        assert recovery is not None
        assert recovery["grace_s"] == 2.0 and recovery["max_redrives"] == 5
        assert recovery["unrouted"] >= 1 and recovery["reseeded_keys"] == 0
        async with session.get(f"{control.url}/metrics", headers=control.auth()) as response:
            text = await response.text()
        assert "signal_recovery_grace_seconds 2" in text.splitlines()
        assert "signal_recovery_unrouted_changes" in text

        # the pipeline's answer arrives (delivered); a restarted control re-seeds its key
        delivered_at = recent(seconds=5)
        outcome = {
            "change_id": "lost-1",
            "flow_id": "f1",
            "flow_name": "Flow one",
            "mode": "live",
            "status": "delivered",
            "occurred_at": delivered_at.isoformat(),
            "processed_at": delivered_at.isoformat(),
        }
        await produce(bootstrap, [("signal-outcomes", b"lost-1", json.dumps(outcome).encode())])
        await until_running(
            lambda: control.sql(
                session,
                "SELECT 1 FROM outcomes WHERE change_id = 'lost-1' AND delivered_at NOTNULL",
            ),
            "the delivery recorded",
            control,
        )
    finally:
        control.stop()

    control = await start(module_broker, data_dir, "control-2")
    try:
        key = b"lost-1\x1ff1"

        def reseeded(records: list[Any]) -> bool:
            return any(r.key == key for r in records)

        keys = await read_topic(bootstrap, "signal-delivered", until=reseeded)
        values = [r.value for r in keys if r.key == key]
        assert values == [repr(delivered_at.timestamp()).encode()]
    finally:
        control.stop()
