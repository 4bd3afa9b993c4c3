"""The control worker as a real process on a real (embedded) broker with a DuckDB file.

Changes, outcomes and Marketo call records are produced to the topics the way the ingest API
and pipeline workers produce them; the test then reads the analytics views through the
operator API's `/sql`, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stream.broker import EmbeddedBroker
from stream.control.config_secrets import account_from_snapshot
from stream.messages import ConfigSnapshot
from stream.sealing import SecretBox
from stream.store import Store
from tests.support.changes import encoded, event_json, registration_json
from tests.support.clock import recent
from tests.support.processes import ControlProcess, start_control, until_running
from tests.support.topics import produce, read_topic

SECRET = "integration-s3cret"
ACCOUNT = """\
account: ACME
tags:
  - {name: registered, label: Registered, objects: [registration_status]}
assignments:
  registration_statuses: {New: [registered]}
connections:
  - id: mkto
    name: Marketo
    service_url: https://123-abc-456.mktorest.com/
    client_id: demo
    client_secret: ${SIGNAL_SECRET_CONTROL_TEST}
mappings:
  - id: m
    name: M
    fields:
      - {target: email, sources: [registration.profile.email]}
flows:
  - id: f1
    name: Flow one
    mode: live
    active: true
    source: registration.status_change
    activate_for: {registration_statuses: [registered]}
    destination:
      {connection: mkto, action: create_update_lead, mapping: m, campaign: {campaign_id: 7}}
"""
RETRY_DELAYS = (60.0, 600.0, 3600.0)

# Control's services use fixed topic names and groups: each test takes the module's own broker.
pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def start(broker: EmbeddedBroker, data_dir: Path, name: str) -> ControlProcess:
    """`csignal control` with this module's retry delays and the account's secret."""
    return await asyncio.to_thread(
        start_control,
        broker,
        data_dir,
        name=name,
        args=["--retry-delays", ",".join(str(d) for d in RETRY_DELAYS)],
        env={"SIGNAL_SECRET_CONTROL_TEST": SECRET},
    )


def registration(change_id: str, code: str, **options: Any) -> tuple[str, bytes, bytes]:
    """A registration change as the ingest API puts it on `certain-changes`."""
    data = registration_json(change_id, code=code, status="New", **options)
    return ("certain-changes", code.encode(), encoded(data))


EVENT_CHANGE = event_json(
    change_id="ev-1",
    name="Summit 2026",
    setup={"statuses": [{"label": "VIP Confirmed", "tags": ["registered"]}]},
)


def outcome(change_id: str, status: str, at: datetime, **extra: Any) -> dict[str, Any]:
    """An outcome record as a pipeline worker sends it, occurred at `at` and processed 2 s
    later: the scheduler compares `resume_at` and retry times with the real clock, so `at` is
    recent, never a fixed day that the calendar leaves behind."""
    return {
        "change_id": change_id,
        "flow_id": "f1",
        "flow_name": "Flow one",
        "mode": "live",
        "registration_code": f"R-{change_id}",
        "event_code": "SUMMIT26",
        "action": "create_update_lead",
        "connection_id": "mkto",
        "status": status,
        "occurred_at": at.isoformat(),
        "processed_at": (at + timedelta(seconds=2)).isoformat(),
        **extra,
    }


def outcomes(*records: dict[str, Any]) -> list[tuple[str, bytes, bytes]]:
    return [("signal-outcomes", r["change_id"].encode(), json.dumps(r).encode()) for r in records]


async def newest_snapshot(broker: EmbeddedBroker, event_code: str) -> dict[str, Any]:
    """The newest snapshot on `signal-config` once it carries `event_code` in its catalog."""

    def carries(records: list[Any]) -> bool:
        return bool(records) and event_code in json.loads(records[-1].value)["catalog"]["events"]

    values = await read_topic(broker.bootstrap_servers, "signal-config", until=carries)
    assert values, "no snapshot on signal-config"
    return dict(json.loads(values[-1].value))


async def wait_rows(
    control: ControlProcess, session: aiohttp.ClientSession, sql: str, count: int
) -> list[list[Any]]:
    async def enough() -> list[list[Any]]:
        rows = await control.sql(session, sql)
        return rows if len(rows) >= count else []

    return await until_running(enough, f"{count} rows of {sql!r}", control, every=0.25)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Control's data dir, with the account to import at the first start."""
    path = tmp_path / "var"
    path.mkdir()
    (path / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    return path


async def test_control_records_changes_outcomes_and_calls(
    module_broker: EmbeddedBroker, data_dir: Path, session: aiohttp.ClientSession
) -> None:
    t0 = recent(minutes=30)
    control = await start(module_broker, data_dir, "control-1")
    try:
        changes: list[tuple[str, bytes | None, bytes]] = [
            registration("c-1", "R1"),
            registration("c-2", "R2", is_test=True),
            registration("c-1", "R1"),
            ("certain-changes", b"SUMMIT26", encoded(EVENT_CHANGE)),
            ("certain-changes", b"R9", b"{not json"),
            registration("c-bad", "R8", extra={"type": "x.y"}),
        ]
        await produce(module_broker.bootstrap_servers, changes)
        rows = await wait_rows(
            control,
            session,
            "SELECT change_id, type, registration_code, is_test, event_code FROM changes "
            "ORDER BY change_id",
            3,
        )
        assert rows == [
            ["c-1", "registration.status_change", "R1", False, "SUMMIT26"],
            ["c-2", "registration.status_change", "R2", True, "SUMMIT26"],
            ["ev-1", "event.create_update", None, False, "SUMMIT26"],
        ]
        rejected = await wait_rows(
            control,
            session,
            "SELECT change_id, source, reasons FROM rejected_changes "
            "ORDER BY change_id NULLS FIRST",
            2,
        )
        assert rejected[0][0] is None and "invalid JSON" in rejected[0][2][0]
        assert rejected[1][0] == "c-bad" and rejected[1][1] == "topic"
        assert rejected[1][2][0].startswith("type: expected one of")

        # The event change updated the catalog and the published snapshot.
        async with session.get(
            f"{control.url}/api/v1/catalog/events/SUMMIT26", headers=control.auth()
        ) as response:
            assert response.status == 200
            assert (await response.json())["event"]["eventName"] == "Summit 2026"
        snapshot = await newest_snapshot(module_broker, "SUMMIT26")
        assert snapshot["catalog"]["events"]["SUMMIT26"]["event"]["eventName"] == "Summit 2026"
        # The secret travels sealed with control's key file, for the connection's destination.
        message = ConfigSnapshot.model_validate(snapshot)
        box = SecretBox.load(data_dir / "config-key")
        connection = account_from_snapshot(message, box).connection("mkto")
        assert connection is not None and connection.client_secret is not None
        assert connection.client_secret.get_secret_value() == SECRET
        assert SECRET not in json.dumps(snapshot)
        assert [f["id"] for f in snapshot["account"]["flows"]] == ["f1"]

        resume = t0 + timedelta(hours=6)
        records = outcomes(
            outcome("c-1", "delivered", t0, marketo_lead_id=101, lead_result="created"),
            outcome("c-2", "failed", t0, category="technical", reason="HTTP 503", retryable=True),
            outcome("c-3", "failed", t0, category="data", reason="email is empty"),
            outcome("c-4", "parked", t0, reason="daily quota", resume_at=resume.isoformat()),
            outcome(
                "c-5",
                "failed",
                t0,
                category="technical",
                reason="timeout",
                attempt=4,
                retryable=True,
            ),
            outcome("c-6", "failed", t0, category="technical", reason="HTTP 500", retryable=True),
            outcome("c-7", "failed", t0, category="technical", reason="Marketo 603: no permission"),
        )
        records.append(("signal-outcomes", b"junk", b"{}"))
        calls = [
            {
                "connection_id": "mkto",
                "endpoint": "/rest/v1/leads.json",
                "started_at": t0.isoformat(),
                "duration_ms": 42.5,
                "http_status": 200,
                "batch_size": 2,
                "request_id": f"req-{i}",
            }
            for i in range(3)
        ]
        records += [("signal-api-calls", b"mkto", json.dumps(c).encode()) for c in calls]
        sent_at = datetime.now(UTC)
        await produce(module_broker.bootstrap_servers, records)

        rows = await wait_rows(
            control,
            session,
            "SELECT change_id, status, category, marketo_lead_id, lead_result, attempts "
            "FROM outcomes ORDER BY change_id",
            7,
        )
        assert rows[0] == ["c-1", "delivered", None, 101, "created", 1]
        assert rows[1][:3] == ["c-2", "failed", "technical"]
        assert [r[1] for r in rows] == ["delivered", "failed", "failed", "parked"] + ["failed"] * 3
        queue = {
            r[0]: r
            for r in await wait_rows(
                control,
                session,
                "SELECT change_id, status, category, attempts, next_attempt_at, reason, "
                "integration FROM retry_queue ORDER BY change_id",
                6,
            )
        }
        assert "c-1" not in queue
        assert queue["c-3"][1:5] == ["pending", "data", 1, None]
        assert queue["c-4"][1:3] == ["pending", "technical"]
        assert datetime.fromisoformat(queue["c-4"][4]) == resume
        assert queue["c-5"][1:5] == ["abandoned", "technical", 4, None]
        retry_at = datetime.fromisoformat(queue["c-6"][4])
        seen_at = datetime.now(UTC)
        first_retry = timedelta(seconds=RETRY_DELAYS[0])
        assert sent_at + first_retry * 0.8 <= retry_at <= seen_at + first_retry * 1.2
        assert queue["c-6"][1:4] == ["pending", "technical", 1]
        assert queue["c-6"][6] == "mkto"
        # A technical failure that retrying cannot fix (configuration) is held for the operator.
        assert queue["c-7"][1:5] == ["pending", "technical", 1, None]

        # A later success resolves the open retry item.
        later = outcome(
            "c-2",
            "delivered",
            t0,
            attempt=2,
            processed_at=(t0 + timedelta(minutes=6)).isoformat(),
        )
        await produce(module_broker.bootstrap_servers, outcomes(later))
        await wait_rows(
            control,
            session,
            "SELECT 1 FROM retry_queue WHERE change_id = 'c-2' AND status = 'resolved'",
            1,
        )
        calls_rows = await wait_rows(
            control,
            session,
            "SELECT connection_id, endpoint, duration_ms, http_status, batch_size, request_id "
            "FROM api_calls ORDER BY request_id",
            3,
        )
        assert calls_rows[0] == ["mkto", "/rest/v1/leads.json", 42.5, 200, 2, "req-0"]

        # Changes sent through the ingest API arrive through the topic like any other.
        async with session.post(
            f"{control.url}/api/v1/changes",
            json=[registration_json("c-api", code="R7", status="New")],
            headers=control.auth(),
        ) as response:
            assert response.status == 202
        await wait_rows(control, session, "SELECT 1 FROM changes WHERE change_id = 'c-api'", 1)

        # The retry queue, metrics and Prometheus routes are served by the same worker.
        for path in ("/api/v1/retry-queue", "/api/v1/metrics/summary", "/metrics"):
            async with session.get(f"{control.url}{path}", headers=control.auth()) as response:
                assert response.status == 200, (path, await response.text())

        async with session.get(f"{control.url}/healthz") as response:
            health = await response.json()
        assert health["ok"] is True
        assert health["last_change_seen"] is not None
    finally:
        code = control.stop()
    assert code == 0, control.log()[-3000:]
    log = control.log()
    assert "store closed (checkpointed)" in log
    assert SECRET not in log

    # Everything recorded is durable in the file once the process is gone.
    store = await Store.open(data_dir / "signal.duckdb")
    try:
        result = await store.query("SELECT count(*) FROM changes")
        assert result.rows[0][0] == 4
        result = await store.query("SELECT count(*) FROM outcome_attempts")
        assert result.rows[0][0] == 8
    finally:
        await store.close()


async def test_restart_keeps_configuration_and_does_not_record_twice(
    module_broker: EmbeddedBroker, data_dir: Path, session: aiohttp.ClientSession
) -> None:
    t0 = recent(minutes=30)
    first = await start(module_broker, data_dir, "control-a")
    try:
        async with session.post(
            f"{first.url}/api/v1/flows/f1/mode",
            json={"mode": "test"},
            headers=first.auth(**{"X-Signal-Actor": "ana"}),
        ) as response:
            assert response.status == 200
        await produce(module_broker.bootstrap_servers, outcomes(outcome("r-1", "delivered", t0)))
        await wait_rows(first, session, "SELECT 1 FROM outcomes WHERE change_id = 'r-1'", 1)
    finally:
        assert first.stop() == 0
    (data_dir / "account.yaml").write_text(ACCOUNT.replace("Flow one", "Ignored"), "utf-8")
    second = await start(module_broker, data_dir, "control-b")
    try:
        async with session.get(f"{second.url}/api/v1/flows/f1", headers=second.auth()) as response:
            flow = await response.json()
        assert (flow["mode"], flow["name"]) == ("test", "Flow one")
        audit = await second.sql(
            session, "SELECT actor, action FROM config_audit WHERE object = 'flow' ORDER BY seq"
        )
        assert audit == [["system:account.yaml", "create"], ["ana", "update"]]
        await produce(module_broker.bootstrap_servers, outcomes(outcome("r-2", "delivered", t0)))
        await wait_rows(second, session, "SELECT 1 FROM outcomes WHERE change_id = 'r-2'", 1)
        rows = await second.sql(session, "SELECT count(*) FROM outcome_attempts")
        assert rows == [[2]]
    finally:
        assert second.stop(signal.SIGINT) == 0
    assert "store closed (checkpointed)" in second.log()
