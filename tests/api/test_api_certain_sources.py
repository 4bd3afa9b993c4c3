"""Certain sources through the operator API, over real HTTP against the Certain sandbox:
`POST /api/v1/sources/test` signs in with candidate settings and stores nothing, says in words
what failed (wrong password, unknown account, unreachable host, TLS, timeout), reuses a stored
password only for the host, username and account code it was saved with; `POST`/`PUT
/api/v1/sources` save a source (versioned, audited, the password write-only and cleared when the
host moves); a read-only token may only read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from config.models import CertainSource
from simulators.certain.sandbox import CertainSandbox
from simulators.certain.sandbox_seed import DEFAULT_PASSWORD, DEFAULT_USER
from stream.api.deps import DEPS
from stream.broker import free_port
from stream.certain.source_check import check_source
from tests.api.api_harness import Api

WRONG = "not-the-password-5c1e"


@pytest.fixture
async def certain() -> AsyncIterator[CertainSandbox]:
    async with CertainSandbox(per_event=0) as sandbox:
        yield sandbox


def _source(url: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "acme-certain",
        "name": "ACME on Certain",
        "host": url,
        "account_code": "ACME",
        "username": DEFAULT_USER,
        "password": DEFAULT_PASSWORD,
        "events": "all",
        "poll_interval_s": 30,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def _test(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/api/v1/sources/test", json=body)
    answer: dict[str, Any] = await response.json()
    assert response.status == 200, answer
    return answer


async def _audit(api: Api) -> int:
    return len(await api.store.config_audit(limit=1000))


async def test_good_credentials_pass_and_nothing_is_stored(
    api: Api, certain: CertainSandbox
) -> None:
    before = await _audit(api)
    answer = await _test(api, _source(certain.url))
    assert answer["ok"] is True, answer
    assert [c["name"] for c in answer["checks"]] == ["credentials", "events"]
    assert f"signed in as '{DEFAULT_USER}' to account 'ACME'" in answer["message"]
    assert answer["events"] and answer["events"] > 0
    assert answer["watched"] is not None and 0 < answer["watched"] <= answer["events"]
    assert DEFAULT_PASSWORD not in json.dumps(answer)
    assert await _audit(api) == before
    listed = await (await api.get("/api/v1/sources")).json()
    assert listed == {"sources": []}
    calls = [c for c in certain.calls if c["path"].endswith("/Event/ACME")]
    assert len(calls) == 1 and calls[0]["status"] == 200


async def test_the_watched_events_are_counted_and_unknown_codes_fail(
    api: Api, certain: CertainSandbox
) -> None:
    tagged = await _test(api, _source(certain.url, events={"tag": "signal_marketo"}))
    assert tagged["ok"] is True and "carry the event tag 'signal_marketo'" in tagged["message"]
    assert tagged["watched"] < tagged["events"]
    untagged = await _test(api, _source(certain.url, events={"tag": "no_such_tag"}))
    assert untagged["ok"] is False and untagged["failure"] == "events"
    assert "no active event carries the event tag 'no_such_tag'" in untagged["message"]
    listed = await _test(api, _source(certain.url, events=["SUMMIT26", "NOPE99"]))
    assert listed["ok"] is False
    assert "no such event in the account: NOPE99" in listed["message"]


async def test_a_wrong_password_is_named_and_never_echoed(
    api: Api, certain: CertainSandbox
) -> None:
    answer = await _test(api, _source(certain.url, password=WRONG))
    assert answer["ok"] is False and answer["failure"] == "unauthorized"
    assert answer["status"] == 401
    assert answer["message"].startswith("wrong username or password")
    assert WRONG not in json.dumps(answer)


async def test_an_unknown_account_is_named(api: Api, certain: CertainSandbox) -> None:
    answer = await _test(api, _source(certain.url, account_code="NOSUCH"))
    assert answer["ok"] is False and answer["failure"] == "unknown_account"
    assert "unknown account code 'NOSUCH'" in answer["message"] and answer["status"] == 403


async def test_an_unreachable_host_and_a_tls_failure_are_named(api: Api) -> None:
    port = free_port()
    closed = await _test(api, _source(f"http://127.0.0.1:{port}"))
    assert closed["ok"] is False and closed["failure"] == "unreachable"
    assert f"cannot reach 127.0.0.1:{port}" in closed["message"]
    assert DEFAULT_PASSWORD not in json.dumps(closed)


async def test_tls_to_a_plain_http_port_is_named(api: Api, certain: CertainSandbox) -> None:
    answer = await _test(api, _source(certain.url.replace("http://", "https://")))
    assert answer["ok"] is False and answer["failure"] == "tls", answer
    assert answer["message"].startswith("TLS: ")


async def test_a_slow_certain_is_reported_as_a_timeout(certain: CertainSandbox) -> None:
    """The route's bound is 15 s; the check itself is given a short one here."""
    certain.faults.latency_ms = 3000
    source = CertainSource.model_validate(_source(certain.url))
    result = await check_source(source, timeout_s=0.3)
    assert result.ok is False and result.failure == "timeout"
    assert "no answer from 127.0.0.1" in result.message and "within 0.3 s" in result.message


async def test_a_stored_password_is_reused_only_for_its_host_user_and_account(
    api: Api, certain: CertainSandbox
) -> None:
    created = await api.post("/api/v1/sources", json=_source(certain.url))
    assert created.status == 201, await created.text()
    saved = await created.json()
    assert saved["password_set"] is True and saved["password_source"] == "stored"
    assert "password" not in saved and DEFAULT_PASSWORD not in json.dumps(saved)
    same = await _test(api, _source(certain.url, password=None, name="Renamed"))
    assert same["ok"] is True, same
    requests = len(certain.calls)
    elsewhere = f"http://127.0.0.1:{free_port()}"
    for moved, why in (
        (_source(elsewhere, password=None), "the host changed"),
        (_source(certain.url, password=None, username="someone"), "the username changed"),
        (_source(certain.url, password=None, account_code="OTHER"), "the account code changed"),
    ):
        refused = await api.post("/api/v1/sources/test", json=moved)
        assert refused.status == 422, moved
        [error] = (await refused.json())["errors"]
        assert error["path"] == "password"
        assert why in error["message"] and "enter it again" in error["message"]
    assert len(certain.calls) == requests, "nothing may be sent for a moved source"
    new = await api.post("/api/v1/sources/test", json=_source(certain.url, id="x", password=None))
    assert new.status == 422
    assert "enter the password" in (await new.json())["errors"][0]["message"]


async def test_saving_is_versioned_audited_and_clears_a_moved_password(
    api: Api, certain: CertainSandbox
) -> None:
    assert (await api.post("/api/v1/sources", json=_source(certain.url))).status == 201
    [listed] = (await (await api.get("/api/v1/sources")).json())["sources"]
    assert listed["state"] == "starting" and listed["version"] == 1
    assert listed["password_updated_at"] is not None
    again = await api.post("/api/v1/sources", json=_source(certain.url))
    assert again.status == 409
    stale = await api.put(
        "/api/v1/sources/acme-certain",
        json=_source(certain.url, name="Stale"),
        headers={**api.auth, "If-Match": "7"},
    )
    assert stale.status == 409
    renamed = await api.put(
        "/api/v1/sources/acme-certain",
        json={**listed, "name": "Renamed"},
        headers={**api.auth, "If-Match": "1"},
    )
    body = await renamed.json()
    assert renamed.status == 200, body
    assert body["version"] == 2 and body["password_set"] is True
    assert body["password_cleared"] is None
    password_only = await api.put(
        "/api/v1/sources/acme-certain", json={**body, "password": "a-new-password"}
    )
    assert (await password_only.json())["version"] == 3, "a new password is a new version"
    moved = await api.put(
        "/api/v1/sources/acme-certain", json={**body, "host": "https://appeu.certain.com"}
    )
    answer = await moved.json()
    assert answer["password_set"] is False
    assert answer["password_cleared"] == (
        "the password was cleared because the host changed; enter it again"
    )
    audit = await api.store.config_audit(kind="certain_source", object_id="acme-certain")
    assert [e.action for e in audit] == ["update", "update", "update", "create"]
    text = json.dumps([e.change for e in audit]) + await (await api.get("/api/v1/config")).text()
    assert DEFAULT_PASSWORD not in text and "a-new-password" not in text
    assert api.config.certain_source("acme-certain").password is None


async def test_bad_settings_are_refused_by_field(api: Api, certain: CertainSandbox) -> None:
    for body, path, words in (
        (_source("not a url"), "host", "URL"),
        (_source(certain.url, poll_interval_s=0), "poll_interval_s", "greater"),
        (_source(certain.url, events="some"), "events", "expected 'all'"),
        (_source(certain.url, password="${HOME}"), "password", "allow-list"),
        (_source(certain.url, password=""), "password", "non-empty"),
        (_source("http://user:pw@127.0.0.1:1"), "host", "without user:password"),
    ):
        for route in ("/api/v1/sources/test", "/api/v1/sources"):
            refused = await api.post(route, json=body)
            assert refused.status == 422, (route, body)
            errors = (await refused.json())["errors"]
            assert errors[0]["path"] == path, errors
            assert words in errors[0]["message"], errors
    assert (await (await api.get("/api/v1/sources")).json()) == {"sources": []}


async def test_a_read_only_token_reads_and_may_not_test_or_save(
    api: Api, certain: CertainSandbox
) -> None:
    api.client.app[DEPS].read_only_token = "viewer-token-for-this-test"
    viewer = {"Authorization": "Bearer viewer-token-for-this-test"}
    assert (await api.get("/api/v1/sources", headers=viewer)).status == 200
    for method, path in (
        ("POST", "/api/v1/sources/test"),
        ("POST", "/api/v1/sources"),
        ("PUT", "/api/v1/sources/acme-certain"),
    ):
        refused = await api.client.request(method, path, json=_source(certain.url), headers=viewer)
        assert refused.status == 403, path
        message = (await refused.json())["errors"][0]["message"]
        assert message.startswith("this API token is read-only")
    assert certain.calls == [], "a refused test calls nobody"
