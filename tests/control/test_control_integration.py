"""The control worker as a real process on a real (embedded) broker with a DuckDB file.

Changes, outcomes and Marketo call records are produced to the topics the way the ingest API
and pipeline workers produce them; the test then reads the analytics views through the
operator API's `/sql`, as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stream.broker import EmbeddedBroker, die_with_parent, free_port
from stream.store import Store

REPO = Path(__file__).resolve().parents[2]
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
    client_secret: ${CONTROL_TEST_SECRET}
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
# Outcomes are stamped shortly before the run: the scheduler compares `resume_at` with the real
# clock, so a fixed date would turn the parked item into a past one as the calendar moves on.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
RETRY_DELAYS = (60.0, 600.0, 3600.0)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def control_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@dataclass
class ControlProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str
    token: str
    data_dir: Path

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    async def sql(self, session: aiohttp.ClientSession, sql: str) -> list[list[Any]]:
        async with session.post(
            f"{self.url}/api/v1/sql",
            json={"sql": sql},
            headers={"Authorization": f"Bearer {self.token}"},
        ) as response:
            body = await response.json()
            assert response.status == 200, body
            return list(body["rows"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                tail = self.log()[-3000:]
                raise AssertionError(f"control did not stop in {timeout}s:\n{tail}") from None
        return self.process.returncode


def start_control(broker: EmbeddedBroker, data_dir: Path, name: str) -> ControlProcess:
    port = free_port()
    env = {
        **os.environ,
        "SIGNAL_BROKER": broker.url,
        "SIGNAL_DATA_DIR": str(data_dir),
        "SIGNAL_API": f"127.0.0.1:{port}",
        "CONTROL_TEST_SECRET": SECRET,
    }
    log_path = data_dir.parent / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream",
                "control",
                "--retry-delays",
                ",".join(str(d) for d in RETRY_DELAYS),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_bytes().decode("utf-8", "replace")
        if "operator API listening on" in text:
            token = (data_dir / "api-token").read_text().strip()
            return ControlProcess(process, log_path, f"http://127.0.0.1:{port}", token, data_dir)
        if process.poll() is not None:
            raise AssertionError(f"control exited early:\n{text[-3000:]}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError("control did not start its API in 60 s")


def registration(change_id: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "changeId": change_id,
        "type": "registration.status_change",
        "accountCode": "ACME",
        "eventCode": "SUMMIT26",
        "occurredAt": "2026-11-28T12:00:00Z",
        "registration": {
            "registrationCode": code,
            "registrationStatusLabel": "New",
            "isTest": extra.pop("is_test", False),
            "profile": {"email": f"{code.lower()}@example.com"},
        },
        **extra,
    }


EVENT_CHANGE = {
    "changeId": "ev-1",
    "type": "event.create_update",
    "accountCode": "ACME",
    "eventCode": "SUMMIT26",
    "occurredAt": "2026-11-28T11:00:00Z",
    "event": {
        "eventCode": "SUMMIT26",
        "eventName": "Summit 2026",
        "eventStatus": "Active",
        "setup": {"statuses": [{"label": "VIP Confirmed", "tags": ["registered"]}]},
    },
}


def outcome(change_id: str, status: str, **extra: Any) -> dict[str, Any]:
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
        "occurred_at": T0.isoformat(),
        "processed_at": (T0 + timedelta(seconds=2)).isoformat(),
        **extra,
    }


async def produce(broker: EmbeddedBroker, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def newest_snapshot(broker: EmbeddedBroker) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        "signal-config",
        bootstrap_servers=broker.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch and values:
                break
            for messages in batch.values():
                values.extend(m.value for m in messages)
        assert values, "no snapshot on signal-config"
        return dict(json.loads(values[-1]))
    finally:
        await consumer.stop()


async def wait_rows(
    control: ControlProcess, session: aiohttp.ClientSession, sql: str, count: int
) -> list[list[Any]]:
    deadline = time.monotonic() + 45
    rows: list[list[Any]] = []
    while time.monotonic() < deadline:
        rows = await control.sql(session, sql)
        if len(rows) >= count:
            return rows
        if control.process.poll() is not None:
            raise AssertionError(f"control exited:\n{control.log()[-3000:]}")
        await asyncio.sleep(0.25)
    raise AssertionError(f"{sql!r}: {len(rows)} rows, expected {count}\n{control.log()[-2000:]}")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_control_records_changes_outcomes_and_calls(
    control_broker: EmbeddedBroker, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    control = start_control(control_broker, data_dir, "control-1")
    try:
        changes = [
            ("certain-changes", b"R1", json.dumps(registration("c-1", "R1")).encode()),
            (
                "certain-changes",
                b"R2",
                json.dumps(registration("c-2", "R2", is_test=True)).encode(),
            ),
            ("certain-changes", b"R1", json.dumps(registration("c-1", "R1")).encode()),
            ("certain-changes", b"SUMMIT26", json.dumps(EVENT_CHANGE).encode()),
            ("certain-changes", b"R9", b"{not json"),
            (
                "certain-changes",
                b"R8",
                json.dumps(registration("c-bad", "R8", type="x.y")).encode(),
            ),
        ]
        await produce(control_broker, changes)
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
            f"{control.url}/api/v1/catalog/events/SUMMIT26",
            headers={"Authorization": f"Bearer {control.token}"},
        ) as response:
            assert response.status == 200
            assert (await response.json())["event"]["eventName"] == "Summit 2026"
        snapshot = await newest_snapshot(control_broker)
        assert snapshot["catalog"]["events"]["SUMMIT26"]["event"]["eventName"] == "Summit 2026"
        assert snapshot["secrets"] == {"mkto": SECRET}
        assert [f["id"] for f in snapshot["account"]["flows"]] == ["f1"]

        resume = T0 + timedelta(hours=6)
        outcomes = [
            outcome("c-1", "delivered", marketo_lead_id=101, lead_result="created"),
            outcome("c-2", "failed", category="technical", reason="HTTP 503", retryable=True),
            outcome("c-3", "failed", category="data", reason="email is empty"),
            outcome("c-4", "parked", reason="daily quota", resume_at=resume.isoformat()),
            outcome(
                "c-5", "failed", category="technical", reason="timeout", attempt=4, retryable=True
            ),
            outcome("c-6", "failed", category="technical", reason="HTTP 500", retryable=True),
            outcome("c-7", "failed", category="technical", reason="Marketo 603: no permission"),
        ]
        records = [
            ("signal-outcomes", o["change_id"].encode(), json.dumps(o).encode()) for o in outcomes
        ]
        records.append(("signal-outcomes", b"junk", b"{}"))
        calls = [
            {
                "connection_id": "mkto",
                "endpoint": "/rest/v1/leads.json",
                "started_at": T0.isoformat(),
                "duration_ms": 42.5,
                "http_status": 200,
                "batch_size": 2,
                "request_id": f"req-{i}",
            }
            for i in range(3)
        ]
        records += [("signal-api-calls", b"mkto", json.dumps(c).encode()) for c in calls]
        sent_at = datetime.now(UTC)
        await produce(control_broker, records)

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
            attempt=2,
            processed_at=(T0 + timedelta(minutes=6)).isoformat(),
        )
        await produce(control_broker, [("signal-outcomes", b"c-2", json.dumps(later).encode())])
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
            json=[registration("c-api", "R7")],
            headers={"Authorization": f"Bearer {control.token}"},
        ) as response:
            assert response.status == 202
        await wait_rows(control, session, "SELECT 1 FROM changes WHERE change_id = 'c-api'", 1)

        # The retry queue, metrics and Prometheus routes are served by the same worker.
        auth = {"Authorization": f"Bearer {control.token}"}
        for path in ("/api/v1/retry-queue", "/api/v1/metrics/summary", "/metrics"):
            async with session.get(f"{control.url}{path}", headers=auth) as response:
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
    control_broker: EmbeddedBroker, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    (data_dir / "account.yaml").write_text(ACCOUNT, encoding="utf-8")
    first = start_control(control_broker, data_dir, "control-a")
    try:
        async with session.post(
            f"{first.url}/api/v1/flows/f1/mode",
            json={"mode": "test"},
            headers={"Authorization": f"Bearer {first.token}", "X-Signal-Actor": "ana"},
        ) as response:
            assert response.status == 200
        await produce(
            control_broker,
            [("signal-outcomes", b"r-1", json.dumps(outcome("r-1", "delivered")).encode())],
        )
        await wait_rows(first, session, "SELECT 1 FROM outcomes WHERE change_id = 'r-1'", 1)
    finally:
        assert first.stop() == 0
    (data_dir / "account.yaml").write_text(ACCOUNT.replace("Flow one", "Ignored"), "utf-8")
    second = start_control(control_broker, data_dir, "control-b")
    try:
        async with session.get(
            f"{second.url}/api/v1/flows/f1",
            headers={"Authorization": f"Bearer {second.token}"},
        ) as response:
            flow = await response.json()
        assert (flow["mode"], flow["name"]) == ("test", "Flow one")
        audit = await second.sql(
            session, "SELECT actor, action FROM config_audit WHERE object = 'flow' ORDER BY seq"
        )
        assert audit == [["system:account.yaml", "create"], ["ana", "update"]]
        await produce(
            control_broker,
            [("signal-outcomes", b"r-2", json.dumps(outcome("r-2", "delivered")).encode())],
        )
        await wait_rows(second, session, "SELECT 1 FROM outcomes WHERE change_id = 'r-2'", 1)
        rows = await second.sql(session, "SELECT count(*) FROM outcome_attempts")
        assert rows == [[2]]
    finally:
        assert second.stop(signal.SIGINT) == 0
    assert "store closed (checkpointed)" in second.log()
