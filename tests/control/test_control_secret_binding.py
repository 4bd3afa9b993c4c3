"""Secrets bound to their destination and sealed on the topic (issue 11, items 1 to 3), at the
config service: a change of identity URL or client id without a new secret clears it (stored or
`${VAR}`), says why and is audited; an import does the same; references resolve only for names on
the allow-list; snapshots carry secrets only sealed for their connection's destination."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from config.models import Connection
from config.secret_refs import EnvAllowList, SecretBinding, secret_binding
from stream.control.config_secrets import account_from_snapshot
from stream.control.config_service import ConfigService, InvalidConfigError
from stream.control.secret_store import SecretStore
from stream.messages import ConfigSnapshot
from stream.pipeline.snapshot import build_snapshot
from stream.sealing import KeyFile, SealError, SecretBox
from stream.store import Store

URL = "https://1-2-3.mktorest.com"
EVIL = "http://127.0.0.1:9"
ACCOUNT = f"""\
account: ACME
connections:
  - {{id: mkto, name: Marketo, service_url: "{URL}/", client_id: cid,
     client_secret: literal-secret-1}}
  - {{id: by-env, name: By env, service_url: "{URL}", client_id: cid,
     client_secret: "${{SIGNAL_SECRET_BINDING_TEST}}"}}
"""
ENV = {"SIGNAL_SECRET_BINDING_TEST": "env-secret-2", "HOME_SECRET": "never-read-3"}
CLEARED_URL = "the client secret was cleared because the identity URL changed; enter it again"


class Collect:
    def __init__(self) -> None:
        self.snapshots: list[ConfigSnapshot] = []

    async def __call__(self, snapshot: ConfigSnapshot) -> None:
        self.snapshots.append(snapshot)


async def open_service(
    tmp_path: Path, publish: Collect | None = None, account: str | None = ACCOUNT
) -> tuple[Store, ConfigService]:
    path = tmp_path / "account.yaml"
    if account is not None:
        path.write_text(account, encoding="utf-8")
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    service = ConfigService(
        store,
        SecretStore(tmp_path / "secrets.json"),
        publish=publish,
        env=ENV,
        box=SecretBox.load_or_create(tmp_path / "config-key"),
        debounce_s=0.0,
    )
    await service.start(path)
    return store, service


def edited(service: ConfigService, connection_id: str = "mkto", **changes: Any) -> Connection:
    current = service.connection(connection_id).model_dump()
    current.pop("client_secret", None)
    current["client_secret_ref"] = None
    return Connection.model_validate({**current, **changes})


def secret_of(service: ConfigService, connection_id: str = "mkto") -> str | None:
    secret = service.connection(connection_id).client_secret
    return secret.get_secret_value() if secret is not None else None


async def test_changing_the_service_url_clears_the_stored_secret_and_says_why(
    tmp_path: Path,
) -> None:
    store, service = await open_service(tmp_path)
    try:
        assert secret_of(service) == "literal-secret-1"
        await service.save_connection(edited(service, service_url=EVIL), "ana", create=False)
        assert secret_of(service) is None
        assert service.secret_cleared("mkto") == CLEARED_URL
        assert "mkto" not in json.loads((tmp_path / "secrets.json").read_text())
        assert "mkto" not in service.snapshot().secrets
        with pytest.raises(InvalidConfigError) as refused:
            service.marketo_settings("mkto")
        assert CLEARED_URL in refused.value.message
        [audit, *_] = await store.config_audit(kind="connection", object_id="mkto")
        assert audit.change["after"]["secret_cleared"] == CLEARED_URL
        assert audit.change["after"]["secret_updated_at"] is None

        # A new secret entered for the new URL is kept, and the notice goes.
        await service.save_connection(
            edited(service, service_url=EVIL), "ana", create=False, secret="for-the-new-host"
        )
        assert secret_of(service) == "for-the-new-host"
        assert service.secret_cleared("mkto") is None
    finally:
        await service.stop()
        await store.close()
    # The notice and the binding survive a restart.
    store, service = await open_service(tmp_path, account=None)
    try:
        assert secret_of(service) == "for-the-new-host"
        entry = SecretStore(tmp_path / "secrets.json").entry("mkto")
        assert entry is not None and entry.binding == secret_binding(service.connection("mkto"))
    finally:
        await service.stop()
        await store.close()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"access_token_url": f"{EVIL}/identity/oauth/token"}, "the identity URL changed"),
        ({"client_id": "another"}, "the client id changed"),
        (
            {"service_url": EVIL, "client_id": "another"},
            "the identity URL and the client id changed",
        ),
    ],
)
async def test_token_url_and_client_id_changes_clear_it_too(
    tmp_path: Path, changes: dict[str, Any], why: str
) -> None:
    store, service = await open_service(tmp_path)
    try:
        await service.save_connection(edited(service, **changes), "ana", create=False)
        assert secret_of(service) is None
        assert service.secret_cleared("mkto") == (
            f"the client secret was cleared because {why}; enter it again"
        )
    finally:
        await service.stop()
        await store.close()


async def test_moving_only_the_service_url_clears_it_even_with_a_fixed_token_url(
    tmp_path: Path,
) -> None:
    """With an explicit access_token_url the secret itself would still go to the right place,
    but the access token it buys would go to the new service host: that clears it too."""
    store, service = await open_service(tmp_path)
    try:
        token_url = f"{URL}/identity/oauth/token"
        await service.save_connection(
            edited(service, access_token_url=token_url), "ana", create=False
        )
        assert secret_of(service) == "literal-secret-1"
        moved = edited(service, access_token_url=token_url, service_url=EVIL)
        await service.save_connection(moved, "ana", create=False)
        assert secret_of(service) is None
        assert service.secret_cleared("mkto") == (
            "the client secret was cleared because the service URL changed; enter it again"
        )
    finally:
        await service.stop()
        await store.close()


def test_a_binding_kept_before_the_service_url_counted_still_matches() -> None:
    legacy = SecretBinding(f"{URL}/identity/oauth/token", "cid")
    now = SecretBinding(f"{URL}/identity/oauth/token", "cid", URL)
    assert legacy.changes_to(now) is None
    assert now.changes_to(SecretBinding(now.identity_url, "cid", EVIL)) == (
        "the service URL changed"
    )


async def test_changes_that_keep_the_destination_keep_the_secret(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path)
    try:
        # The same identity URL written differently (trailing slash, /rest) is the same place.
        for changes in ({"name": "Renamed", "rate_share": 0.5}, {"service_url": f"{URL}/rest/"}):
            await service.save_connection(edited(service, **changes), "ana", create=False)
            assert secret_of(service) == "literal-secret-1"
            assert service.secret_cleared("mkto") is None
    finally:
        await service.stop()
        await store.close()


async def test_an_env_reference_is_cleared_too_unless_given_again(tmp_path: Path) -> None:
    store, service = await open_service(tmp_path)
    try:
        assert secret_of(service, "by-env") == "env-secret-2"
        moved = edited(service, "by-env", service_url=EVIL)
        await service.save_connection(moved, "ana", create=False)
        assert secret_of(service, "by-env") is None
        assert service.connection("by-env").client_secret_ref is None
        assert service.secret_cleared("by-env") == CLEARED_URL
        again = edited(service, "by-env", client_secret_ref="SIGNAL_SECRET_BINDING_TEST")
        await service.save_connection(again, "ana", create=False)
        assert secret_of(service, "by-env") == "env-secret-2"
        assert service.secret_cleared("by-env") is None
    finally:
        await service.stop()
        await store.close()


async def test_an_import_moving_a_connection_clears_its_secret_with_a_warning(
    tmp_path: Path,
) -> None:
    store, service = await open_service(tmp_path)
    try:
        data: dict[str, Any] = {
            "account": "ACME",
            "connections": [
                {"id": "mkto", "name": "Marketo", "service_url": EVIL, "client_id": "cid"},
                {
                    "id": "by-env",
                    "name": "By env",
                    "service_url": URL,
                    "client_id": "cid",
                    "client_secret": "${SIGNAL_SECRET_BINDING_TEST}",
                },
            ],
        }
        result = await service.import_text(json.dumps(data), "ana", json_body=True)
        assert f"connections[0]: {CLEARED_URL}" in result.warnings
        assert secret_of(service) is None
        assert service.secret_cleared("mkto") == CLEARED_URL
        assert secret_of(service, "by-env") == "env-secret-2"
        # An import that keeps the destination keeps the stored secret (none here any more).
        data["connections"][0]["service_url"] = URL
        data["connections"][0]["client_secret"] = "literal-again"
        await service.import_text(json.dumps(data), "ana", json_body=True)
        data["connections"][0].pop("client_secret")
        data["connections"][0]["name"] = "Renamed"
        result = await service.import_text(json.dumps(data), "ana", json_body=True)
        assert secret_of(service) == "literal-again"
        assert not [w for w in result.warnings if "cleared" in w]
    finally:
        await service.stop()
        await store.close()


async def test_references_outside_the_allow_list_are_refused_without_reading_them(
    tmp_path: Path,
) -> None:
    store, service = await open_service(tmp_path)
    try:
        for name in ("HOME_SECRET", "NOT_SET_ANYWHERE"):
            connection = edited(service, "by-env", client_secret_ref=name)
            with pytest.raises(InvalidConfigError) as refused:
                await service.save_connection(connection, "ana", create=False)
            assert refused.value.status == 422
            message = refused.value.message
            assert name in message and "MARKETO_*, SIGNAL_SECRET_*" in message
            assert "set" not in message.replace("SIGNAL_SECRET", "")
            data = {
                "account": "ACME",
                "connections": [
                    {
                        "id": "x",
                        "name": "X",
                        "service_url": URL,
                        "client_id": "cid",
                        "client_secret": f"${{{name}}}",
                    }
                ],
            }
            with pytest.raises(InvalidConfigError) as bad_import:
                await service.import_text(json.dumps(data), "ana", json_body=True)
            [problem] = bad_import.value.problems
            assert problem.path == "connections[0].client_secret"
            assert problem.message == service.env_allowlist.refusal(name)
        assert "never-read-3" not in repr(service.snapshot())
    finally:
        await service.stop()
        await store.close()


async def test_a_wider_allow_list_lets_a_reference_resolve(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "signal.duckdb", reader_threads=1, threads=1)
    service = ConfigService(
        store,
        SecretStore(tmp_path / "secrets.json"),
        env=ENV,
        env_allowlist=EnvAllowList.parse("HOME_*"),
    )
    try:
        text = ACCOUNT.replace("SIGNAL_SECRET_BINDING_TEST", "HOME_SECRET")
        (tmp_path / "account.yaml").write_text(text, encoding="utf-8")
        await service.start(tmp_path / "account.yaml")
        assert secret_of(service, "by-env") == "never-read-3"
        # The default list's names are outside this one.
        connection = edited(service, "by-env", client_secret_ref="SIGNAL_SECRET_BINDING_TEST")
        with pytest.raises(InvalidConfigError, match="HOME_\\*"):
            await service.save_connection(connection, "ana", create=False)
    finally:
        await service.stop()
        await store.close()


async def test_snapshots_carry_secrets_sealed_for_their_destination(tmp_path: Path) -> None:
    published = Collect()
    store, service = await open_service(tmp_path, published)
    try:
        message = service.snapshot()
        wire = message.dumps()
        for secret in ("literal-secret-1", "env-secret-2"):
            assert secret.encode() not in wire
        assert all(v.startswith("sealed:v1:") for v in message.secrets.values())
        # A worker with control's key file opens them.
        keys = KeyFile(tmp_path / "config-key")
        built = build_snapshot(ConfigSnapshot.loads(wire), keys)
        assert built.secret("mkto") == "literal-secret-1"
        assert built.secret("by-env") == "env-secret-2"
        # A snapshot pairing a sealed secret with another URL does not open it.
        forged = json.loads(wire)
        forged["account"]["connections"][0]["service_url"] = EVIL
        built = build_snapshot(ConfigSnapshot.model_validate(forged), keys)
        assert built.secret("mkto") is None
        connection = built.account.connection("mkto")
        assert connection is not None and connection.client_secret is None
        # Another key opens nothing.
        other = build_snapshot(ConfigSnapshot.loads(wire), SecretBox.generate())
        assert other.secrets == {}
        assert account_from_snapshot(message, service.box).connection("mkto") is not None
    finally:
        await service.stop()
        await store.close()


def test_the_key_file_is_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "data" / "config-key"
    box = SecretBox.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretBox.load_or_create(path).key_id == box.key_id
    with pytest.raises(FileExistsError):
        SecretBox.generate().save(path)
    binding = SecretBinding(f"{URL}/identity/oauth/token", "cid")
    sealed = box.seal("s3", "mkto", binding)
    assert SecretBox.load(path).open(sealed, "mkto", binding) == "s3"
    with pytest.raises(SealError, match="identity URL and client id"):
        box.open(sealed, "mkto", SecretBinding(binding.identity_url, "other"))
    with pytest.raises(SealError, match="identity URL and client id"):
        box.open(sealed, "other-connection", binding)
    with pytest.raises(SealError, match="another key"):
        SecretBox.generate().open(sealed, "mkto", binding)
    assert "s3" not in sealed and box.key_id in repr(box)


def test_a_worker_reads_the_key_again_when_control_made_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "config-key"
    binding = SecretBinding(f"{URL}/identity/oauth/token", "cid")
    keys = KeyFile(path)
    first = SecretBox.load_or_create(path)
    with pytest.raises(SealError, match="no key"):
        KeyFile.of(SecretBox.generate()).open(first.seal("a", "c", binding), "c", binding)
    assert keys.open(first.seal("a", "c", binding), "c", binding) == "a"
    path.unlink()
    with pytest.raises(SealError, match="does not exist"):
        keys.open(SecretBox.generate().seal("b", "c", binding), "c", binding)
    second = SecretBox.load_or_create(path)
    assert keys.open(second.seal("b", "c", binding), "c", binding) == "b"


def test_secrets_kept_before_binding_are_bound_on_start(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"mkto": "old-secret"}), encoding="utf-8")
    store = SecretStore(path)
    assert store.unbound() == ["mkto"]
    binding = SecretBinding(f"{URL}/identity/oauth/token", "cid")
    assert store.get_for("mkto", binding) == "old-secret"
    store.bind("mkto", binding)
    again = SecretStore(path)
    assert again.unbound() == []
    assert again.get_for("mkto", binding) == "old-secret"
    assert again.get_for("mkto", SecretBinding(EVIL, "cid")) is None
