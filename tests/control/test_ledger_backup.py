"""`csignal backup` / `csignal restore` against a real control: a backup taken while changes and
outcomes are being recorded, restored into a fresh data dir, holds everything recorded before
it; the refusals (busy directory, relative path, read-only token, running control, non-empty
ledger, newer schema, no control) are clear and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest

from stream import topics
from stream.broker import EmbeddedBroker
from stream.messages import OutcomeRecord
from stream.store.backup import BACKUP_FILE, MANIFEST_FILE
from tests.support.changes import registration_json
from tests.support.processes import (
    ControlProcess,
    clean_env,
    run_csignal,
    start_control,
    until_running,
)
from tests.support.topics import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def cli_env(control: ControlProcess, **extra: str) -> dict[str, str]:
    return clean_env(SIGNAL_API=control.api, SIGNAL_DATA_DIR=str(control.data_dir), **extra)


class Burst:
    """Changes through the ingest API and their outcomes on `signal-outcomes` (standing in for
    the pipeline), in small batches, until stopped."""

    def __init__(self, control: ControlProcess, bootstrap: str) -> None:
        self.control = control
        self.bootstrap = bootstrap
        self.sent = 0
        self._stop = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> None:
        batch_no = 0
        while not self._stop.is_set():
            batch_no += 1
            ids = [f"burst-{batch_no}-{i}" for i in range(20)]
            changes = [
                registration_json(cid, code=f"R{batch_no:05d}{i:03d}", email=f"p{cid}@example.com")
                for i, cid in enumerate(ids)
            ]
            async with session.post(
                f"{self.control.url}/api/v1/changes", json=changes, headers=self.control.auth()
            ) as response:
                assert response.status in (200, 202), await response.text()
            now = datetime.now(UTC)
            outcomes = [
                OutcomeRecord(
                    change_id=cid,
                    flow_id="flow-a",
                    flow_name="Flow A",
                    mode="test",
                    status="delivered",
                    occurred_at=now,
                    processed_at=now,
                    marketo_lead_id=1000 + i,
                )
                for i, cid in enumerate(ids)
            ]
            await produce(
                self.bootstrap,
                [(topics.OUTCOMES.name, o.change_id.encode(), o.dumps()) for o in outcomes],
            )
            self.sent += len(ids)

    def stop(self) -> None:
        self._stop.set()


@contextlib.asynccontextmanager
async def bursting(
    control: ControlProcess, bootstrap: str, session: aiohttp.ClientSession
) -> AsyncIterator[Burst]:
    burst = Burst(control, bootstrap)
    task = asyncio.create_task(burst.run(session))
    try:
        yield burst
    finally:
        burst.stop()
        await task


async def recorded(control: ControlProcess, session: aiohttp.ClientSession) -> dict[str, set[Any]]:
    """Every change id and (change, flow, status) of the outcomes, each in one row (the API
    caps answers at 1,000 rows)."""
    changes = await control.sql(session, "SELECT string_agg(change_id, ',') FROM changes")
    outcomes = await control.sql(
        session, "SELECT string_agg(concat_ws('/', change_id, flow_id, status), ',') FROM outcomes"
    )
    return {
        "changes": set((changes[0][0] or "").split(",")) - {""},
        "outcomes": set((outcomes[0][0] or "").split(",")) - {""},
    }


def pairs(outcomes: set[str]) -> set[str]:
    """The (change, flow) pairs of `recorded`'s outcomes, without their status."""
    return {outcome.rsplit("/", 1)[0] for outcome in outcomes}


async def test_backup_mid_burst_restores_everything_recorded_before_it(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    control = start_control(broker, tmp_path / "var")
    backup_dir = tmp_path / "backup"
    try:
        async with aiohttp.ClientSession() as session:

            async def some_outcomes() -> bool:
                rows = await control.sql(session, "SELECT count(*) FROM outcomes")
                return int(rows[0][0]) >= 100

            async with bursting(control, broker.bootstrap_servers, session):
                await until_running(some_outcomes, "outcomes recorded", control)
                before = await recorded(control, session)
                code, out, err = await run_csignal("backup", str(backup_dir), env=cli_env(control))
                assert code == 0, err
            after = await recorded(control, session)
        assert "backup done:" in out and "written to" in out, out
        assert "  change_log: " in out, out
        assert len(after["changes"]) > len(before["changes"]), "the burst went on during the backup"
    finally:
        control.stop()
    manifest = json.loads((backup_dir / MANIFEST_FILE).read_text())
    assert manifest["bytes"] == (backup_dir / BACKUP_FILE).stat().st_size > 0
    assert not list(backup_dir.glob("*.wal")) and not list(backup_dir.glob("*.partial"))

    fresh = tmp_path / "fresh"
    code, out, err = await run_csignal(
        "restore", str(backup_dir), "--data-dir", str(fresh), env=clean_env()
    )
    assert code == 0, err
    assert "restored" in out

    restored_control = start_control(broker, fresh, name="restored")
    try:
        async with aiohttp.ClientSession() as session:
            restored = await recorded(restored_control, session)
            audit = await restored_control.sql(
                session, "SELECT action FROM config_audit WHERE object = 'ledger'"
            )
    finally:
        restored_control.stop()
    assert before["changes"] <= restored["changes"]
    # Every pair recorded before the backup is in it, with the same outcome, except that a pair
    # still queued then may have had its answer recorded by the time the backup's snapshot was
    # taken (the burst goes on during the backup).
    assert pairs(before["outcomes"]) <= pairs(restored["outcomes"])
    settled = {o for o in before["outcomes"] if not o.endswith("/queued")}
    assert settled <= restored["outcomes"]
    assert len(restored["changes"]) == manifest["tables"]["change_log"]
    assert len(restored["outcomes"]) == manifest["tables"]["delivery_state"]
    assert ["backup"] in audit


async def test_backup_refusals(broker: EmbeddedBroker, tmp_path: Path) -> None:
    control = start_control(broker, tmp_path / "var")
    try:
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "something").write_text("x")
        code, _out, err = await run_csignal("backup", str(busy), env=cli_env(control))
        assert code == 1
        assert "already exists and is not an empty directory" in err
        async with aiohttp.ClientSession() as session:
            url = f"{control.url}/api/v1/ledger/backups"
            async with session.post(url, json={"dir": "relative/dir"}, headers=control.auth()) as r:
                body = await r.json()
                assert r.status == 400
                assert body["errors"][0]["path"] == "dir"
                assert "absolute path" in body["errors"][0]["message"]
            async with session.post(url, json={}, headers=control.auth()) as r:
                assert r.status == 400
            read_only = (control.data_dir / "api-token-read-only").read_text().strip()
            headers = {"Authorization": f"Bearer {read_only}"}
            refused_dir = tmp_path / "ro-backup"
            target = str(refused_dir)
            async with session.post(url, json={"dir": target}, headers=headers) as r:
                assert r.status == 403
                assert "read-only" in (await r.json())["errors"][0]["message"]
            async with session.get(
                f"{control.url}/api/v1/ledger/jobs/nope", headers=control.auth()
            ) as r:
                assert r.status == 404
        assert not refused_dir.exists()

        taken = tmp_path / "taken"
        code, _out, err = await run_csignal("backup", str(taken), env=cli_env(control))
        assert code == 0, err
        code, _out, err = await run_csignal(
            "restore", str(taken), "--data-dir", str(control.data_dir), env=clean_env()
        )
        assert code == 1
        assert "in use: stop control" in err
    finally:
        control.stop()

    code, _out, err = await run_csignal("backup", str(tmp_path / "late"), env=cli_env(control))
    assert code == 1 and "csignal backup:" in err
    assert not (tmp_path / "late").exists()

    # control stopped: its ledger holds the account's audit rows, so it is not empty
    code, _out, err = await run_csignal(
        "restore", str(taken), "--data-dir", str(control.data_dir), env=clean_env()
    )
    assert code == 1
    assert "already holds rows" in err and "--force" in err
    code, out, err = await run_csignal(
        "restore", str(taken), "--data-dir", str(control.data_dir), "--force", env=clean_env()
    )
    assert code == 0, err
    assert "replaced a ledger" in out

    with duckdb.connect(str(taken / BACKUP_FILE)) as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'from the future', now())")
    code, _out, err = await run_csignal(
        "restore", str(taken), "--data-dir", str(tmp_path / "other"), env=clean_env()
    )
    assert code == 1
    assert "schema version 999 is newer than this build" in err
    assert not (tmp_path / "other" / BACKUP_FILE).exists()

    code, _out, err = await run_csignal(
        "restore", str(tmp_path / "busy"), "--data-dir", str(tmp_path / "other"), env=clean_env()
    )
    assert code == 1 and "is not a Signal backup" in err
    code, _out, err = await run_csignal(
        "restore", str(tmp_path / "absent"), "--data-dir", str(tmp_path / "other"), env=clean_env()
    )
    assert code == 1 and f"{tmp_path / 'absent'} does not exist" in err
