from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stream.store import ConfigConflictError, SecretLeakError, Store
from stream.store.secrets import find_secrets, is_sensitive_key
from tests.store.conftest import T0

CONNECTION: dict[str, Any] = {
    "name": "Marketo prod",
    "serviceUrl": "https://123-ABC-456.mktorest.com",
    "clientId": "abc",
    "clientSecret": None,
    "tokenUrl": "https://123-ABC-456.mktorest.com/identity/oauth/token",
    "forceUpdate": True,
}


async def test_save_load_and_audit(store: Store) -> None:
    first = await store.save_config_object("connection", "mkto", CONNECTION, "ana", at=T0)
    assert first.version == 1
    changed = {**CONNECTION, "forceUpdate": False}
    second = await store.save_config_object(
        "connection", "mkto", changed, "ben", expected_version=1, at=T0 + timedelta(minutes=1)
    )
    assert second.version == 2
    await store.save_config_object("flow", "f1", {"name": "Attended", "active": True}, "ana")

    loaded = await store.load_config()
    assert [(o.kind, o.object_id, o.version) for o in loaded] == [
        ("connection", "mkto", 2),
        ("flow", "f1", 1),
    ]
    assert loaded[0].body == changed
    assert [o.object_id for o in await store.load_config("flow")] == ["f1"]

    audit = await store.config_audit(kind="connection")
    assert [(a.actor, a.action) for a in audit] == [("ben", "update"), ("ana", "create")]
    assert audit[0].change["before"]["forceUpdate"] is True
    assert audit[0].change["after"]["forceUpdate"] is False
    assert audit[1].change["before"] is None
    view = await store.query(
        "SELECT \"at\", actor, object, object_id, change->>'$.after.name' FROM config_audit "
        "WHERE object = 'connection' ORDER BY seq"
    )
    assert view.rows[0] == (T0, "ana", "connection", "mkto", "Marketo prod")


async def test_identical_save_is_not_audited(store: Store) -> None:
    await store.save_config_object("flow", "f1", {"a": 1, "b": 2}, "ana")
    again = await store.save_config_object("flow", "f1", {"b": 2, "a": 1}, "ben")
    assert again.version == 1
    assert len(await store.config_audit()) == 1


async def test_stale_version_is_a_conflict(store: Store) -> None:
    await store.save_config_object("flow", "f1", {"a": 1}, "ana")
    await store.save_config_object("flow", "f1", {"a": 2}, "ben", expected_version=1)
    with pytest.raises(ConfigConflictError, match="version 2, not 1"):
        await store.save_config_object("flow", "f1", {"a": 3}, "ana", expected_version=1)
    with pytest.raises(ConfigConflictError):
        await store.save_config_object("flow", "new", {"a": 1}, "ana", expected_version=3)
    created = await store.save_config_object("flow", "new", {"a": 1}, "ana", expected_version=0)
    assert created.version == 1
    assert [o.body for o in await store.load_config("flow") if o.object_id == "f1"] == [{"a": 2}]


async def test_delete_is_audited(store: Store) -> None:
    await store.save_config_object("tag", "vip", {"label": "VIP"}, "ana")
    assert await store.delete_config_object("tag", "vip", "ben")
    assert not await store.delete_config_object("tag", "vip", "ben")
    assert await store.load_config("tag") == []
    latest = (await store.config_audit(limit=1))[0]
    assert (latest.action, latest.actor, latest.change["after"]) == ("delete", "ben", None)


@pytest.mark.parametrize(
    "body",
    [
        {"clientSecret": "s3cr3t"},
        {"client_secret": "s3cr3t"},
        {"auth": {"accessToken": "eyJhbGciOi"}},
        {"connections": [{"name": "x", "password": "hunter2"}]},
        {"refresh_token": 12345},
        {"apiKey": "k-123"},
    ],
)
async def test_unredacted_secrets_are_refused(store: Store, body: dict[str, Any]) -> None:
    with pytest.raises(SecretLeakError, match="redact") as info:
        await store.save_config_object("connection", "mkto", body, "ana")
    for value in ("s3cr3t", "eyJhbGciOi", "hunter2", "12345", "k-123"):
        assert value not in str(info.value)
    assert await store.load_config() == []
    assert await store.config_audit() == []


@pytest.mark.parametrize(
    "body",
    [
        {"clientSecret": None},
        {"clientSecret": ""},
        {"clientSecret": "********"},
        {"client_secret": "<redacted>"},
        {"secretSet": True},
        {"tokenUrl": "https://x/identity/oauth/token", "token_url": "https://y"},
        {"auth": {"clientId": "abc", "clientSecret": "***"}},
    ],
)
async def test_redacted_or_harmless_values_are_accepted(store: Store, body: dict[str, Any]) -> None:
    saved = await store.save_config_object("connection", "mkto", body, "ana")
    assert saved.body == body


def test_sensitive_key_names() -> None:
    assert is_sensitive_key("client_secret") and is_sensitive_key("clientSecret")
    assert is_sensitive_key("access-token") and is_sensitive_key("PASSWORD")
    assert not is_sensitive_key("tokenUrl") and not is_sensitive_key("secret_set")
    assert not is_sensitive_key("name")
    assert find_secrets({"a": [{"b": {"token": "x"}}]}) == ["$.a[0].b.token"]
