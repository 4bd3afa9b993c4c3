"""A Certain source's password at the config service follows a client secret's rules: a literal
one is kept in the secret store (never DuckDB, never exported), a `${VAR}` one is read from an
allow-listed variable, and a change of host or username without a new password clears it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.secret_refs import certain_secret_key
from config.yamlio import dump_account
from stream.control.config_service import ConfigService, InvalidConfigError
from stream.control.secret_store import SecretStore
from stream.sealing import SecretBox
from stream.store import Store

LITERAL = "literal-certain-pw-1"
ENV = {"SIGNAL_SECRET_CERTAIN_TEST": "env-certain-pw-2", "HOME_SECRET": "never-read-3"}


def account(host: str = "https://app.certain.com", password: str = LITERAL, **more: str) -> str:
    extra = "".join(f", {k}: {v}" for k, v in more.items())
    return (
        "account: ACME\n"
        "certain_sources:\n"
        f"  - {{id: acme, name: ACME, host: '{host}', account_code: ACME,\n"
        f"     username: signal-api, password: '{password}'{extra}}}\n"
    )


WITHOUT_PASSWORD = (
    "account: ACME\n"
    "certain_sources:\n"
    "  - {id: acme, name: ACME, host: '%s', account_code: ACME, username: %s}\n"
)


async def open_service(tmp_path: Path, text: str | None = None) -> tuple[Store, ConfigService]:
    path = tmp_path / "account.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    service = ConfigService(
        store,
        SecretStore(tmp_path / "secrets.json"),
        env=ENV,
        box=SecretBox.load_or_create(tmp_path / "config-key"),
        debounce_s=0.0,
    )
    await service.start(path)
    return store, service


def password_of(service: ConfigService) -> str | None:
    secret = service.certain_source("acme").password
    return secret.get_secret_value() if secret is not None else None


async def database_text(store: Store) -> str:
    result = await store.query(
        "SELECT string_agg(body::VARCHAR, ' ') FROM config_objects", max_rows=1
    )
    audit = await store.query("SELECT string_agg(change::VARCHAR, ' ') FROM config_audit")
    return f"{result.rows} {audit.rows}"


async def test_a_literal_password_is_kept_outside_the_database_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    store, service = await open_service(tmp_path, account())
    try:
        assert password_of(service) == LITERAL
        assert LITERAL not in await database_text(store)
        assert LITERAL not in dump_account(service.account)
        kept = json.loads((tmp_path / "secrets.json").read_text(encoding="utf-8"))
        assert kept[certain_secret_key("acme")]["secret"] == LITERAL
    finally:
        await store.close()
    store, service = await open_service(tmp_path)
    try:
        assert password_of(service) == LITERAL
    finally:
        await store.close()


async def test_a_reference_is_read_from_the_environment_and_never_stored(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path, account(password="${SIGNAL_SECRET_CERTAIN_TEST}"))
    try:
        assert password_of(service) == "env-certain-pw-2"
        assert not (tmp_path / "secrets.json").exists() or "env-certain-pw-2" not in (
            tmp_path / "secrets.json"
        ).read_text(encoding="utf-8")
        assert "password: ${SIGNAL_SECRET_CERTAIN_TEST}" in dump_account(service.account)
    finally:
        await store.close()


async def test_a_reference_off_the_allow_list_is_refused(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path, account())
    try:
        with pytest.raises(InvalidConfigError) as refused:
            await service.import_text(account(password="${HOME_SECRET}"), "test")
        assert [p.path for p in refused.value.problems] == ["certain_sources[0].password"]
        assert "never-read-3" not in str(refused.value.problems)
        assert password_of(service) == LITERAL
    finally:
        await store.close()


async def test_an_import_without_password_keeps_it_only_for_the_same_host_and_user(
    tmp_path: Path,
) -> None:
    store, service = await open_service(tmp_path, account())
    try:
        same = WITHOUT_PASSWORD % ("https://app.certain.com", "signal-api")
        result = await service.import_text(same, "test")
        assert password_of(service) == LITERAL
        assert not result.warnings
        moved = WITHOUT_PASSWORD % ("https://appeu.certain.com", "signal-api")
        result = await service.import_text(moved, "test")
        assert password_of(service) is None
        assert result.warnings == [
            "certain_sources[0]: the password was cleared because the host changed; enter it again"
        ]
        back = WITHOUT_PASSWORD % ("https://app.certain.com", "signal-api")
        await service.import_text(back, "test")
        assert password_of(service) is None, "a cleared password never comes back by itself"
    finally:
        await store.close()


async def test_removing_the_source_forgets_its_password(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path, account())
    try:
        await service.import_text("account: ACME\n", "test")
        kept = json.loads((tmp_path / "secrets.json").read_text(encoding="utf-8"))
        assert certain_secret_key("acme") not in kept
    finally:
        await store.close()
