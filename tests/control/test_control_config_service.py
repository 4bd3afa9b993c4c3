"""The configuration owner: where the account comes from at start, what is stored and what is
published."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.models import Connection
from stream.control.config_secrets import account_from_snapshot
from stream.control.config_service import ConfigService, InvalidConfigError
from stream.control.secret_store import SecretStore
from stream.messages import ConfigSnapshot
from stream.store import Store

ACCOUNT = """\
account: ACME
connections:
  - {id: mkto, name: Marketo, service_url: "https://1-2-3.mktorest.com/", client_id: cid,
     client_secret: literal-secret-1}
"""


class Collect:
    def __init__(self, fail_first: int = 0) -> None:
        self.snapshots: list[ConfigSnapshot] = []
        self.fail_first = fail_first

    async def __call__(self, snapshot: ConfigSnapshot) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("broker not there yet")
        self.snapshots.append(snapshot)


async def open_service(
    tmp_path: Path, publish: Collect | None = None, account: str | None = ACCOUNT
) -> tuple[Store, ConfigService]:
    path = tmp_path / "account.yaml"
    if account is not None:
        path.write_text(account, encoding="utf-8")
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    service = ConfigService(store, SecretStore(tmp_path / "secrets.json"), publish=publish)
    await service.start(path)
    return store, service


async def close(store: Store, service: ConfigService) -> None:
    await service.stop()
    await store.close()


async def test_without_any_account_starts_empty_and_publishes(tmp_path: Path) -> None:
    published = Collect()
    store, service = await open_service(tmp_path, published, account=None)
    try:
        assert service.account.account == "default"
        assert service.account.flows == []
        assert len(published.snapshots) == 1
        assert await store.load_config() == []
    finally:
        await close(store, service)


async def test_account_yaml_is_imported_once_with_its_literal_secret_outside_duckdb(
    tmp_path: Path,
) -> None:
    published = Collect()
    store, service = await open_service(tmp_path, published)
    try:
        snapshot = published.snapshots[0]
        assert list(snapshot.secrets) == ["mkto"]
        assert "literal-secret-1" not in snapshot.dumps().decode()
        account = account_from_snapshot(snapshot, service.box)
        connection = account.connection("mkto")
        assert connection is not None and connection.client_secret is not None
        assert connection.client_secret.get_secret_value() == "literal-secret-1"
        secrets_file = tmp_path / "secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        stored = (await store.query("SELECT body::VARCHAR FROM config_objects")).rows
        assert all("literal-secret-1" not in row[0] for row in stored)
        assert "literal-secret-1" not in repr(snapshot)
    finally:
        await close(store, service)
    (tmp_path / "account.yaml").write_text("account: OTHER\n", encoding="utf-8")
    store, service = await open_service(tmp_path, Collect(), account=None)
    try:
        assert service.account.account == "ACME"
        connection = service.account.connection("mkto")
        assert connection is not None and connection.client_secret is not None
    finally:
        await close(store, service)


async def test_first_snapshot_is_retried_until_the_broker_takes_it(tmp_path: Path) -> None:
    published = Collect(fail_first=2)
    store, service = await open_service(tmp_path, published)
    try:
        assert len(published.snapshots) == 1
        assert service.published is published.snapshots[0]
    finally:
        await close(store, service)


async def test_snapshot_versions_increase(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path, Collect())
    try:
        versions = [service.snapshot().version for _ in range(5)]
        assert versions == sorted(set(versions))
    finally:
        await close(store, service)


async def test_an_invalid_change_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path, Collect())
    try:
        before = await store.config_audit(limit=1000)
        second = Connection.model_validate(
            {
                "id": "mkto2",
                "name": "Second",
                "service_url": "https://x.mktorest.com",
                "primary": True,
            }
        )
        first = service.account.connection("mkto")
        assert first is not None
        primary = first.model_copy(update={"primary": True})
        await service.save_connection(primary, "ana", create=False)
        with pytest.raises(InvalidConfigError) as refused:
            await service.save_connection(second, "ana", create=True)
        assert refused.value.problems[0].path == "connections[1].primary"
        assert len(await store.config_audit(limit=1000)) == len(before) + 1
        assert service.account.connection("mkto2") is None
    finally:
        await close(store, service)
