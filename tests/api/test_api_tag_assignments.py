"""Writing account-level tag assignments through the operator API: validated with the whole
account, audited with the actor, versioned, and published to workers."""

from __future__ import annotations

from typing import Any

from stream.messages import ConfigSnapshot
from tests.api.api_harness import Api
from tests.support.topics import read_topic
from tests.support.waiting import until


async def _tags(api: Api) -> dict[str, Any]:
    return dict(await (await api.get("/api/v1/tags")).json())


async def test_tagging_one_status_is_audited_versioned_and_published(api: Api) -> None:
    before = await _tags(api)
    assert isinstance(before["version"], int)
    response = await api.client.patch(
        "/api/v1/tags/assignments",
        json={"kind": "registration_statuses", "label": "Need photo", "tags": ["registered"]},
        headers=api.headers("ana"),
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["assignments"]["registration_statuses"]["Need photo"] == ["registered"]
    assert body["assignments"]["registration_statuses"]["New"] == ["registered"]
    assert body["version"] == before["version"] + 1
    [registered] = [t for t in body["tags"] if t["name"] == "registered"]
    assert "Need photo" in registered["assigned_to"]["registration_statuses"]
    [entry, *_] = await api.store.config_audit(kind="assignments")
    assert entry.actor == "ana" and entry.action == "update"

    async def published() -> bool:
        records = await read_topic(api.bootstrap, api.config_topic)
        last = ConfigSnapshot.loads(records[-1].value) if records else None
        statuses = (last.account.get("assignments") or {}) if last else {}
        return "Need photo" in statuses.get("registration_statuses", {})

    await until(published, "the snapshot on the config topic carries the new assignment")
    removed = await api.client.patch(
        "/api/v1/tags/assignments",
        json={"kind": "registration_statuses", "label": "Need photo", "tags": []},
        headers=api.headers("ana"),
    )
    assert "Need photo" not in (await removed.json())["assignments"]["registration_statuses"]


async def test_unknown_tags_and_bad_items_are_refused_by_name(api: Api) -> None:
    before = await _tags(api)
    audited = len(await api.store.config_audit(limit=1000))
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"kind": "registration_statuses", "label": "X", "tags": ["registered", "nope"]},
            "tags[1]",
            "unknown tag 'nope'",
        ),
        (
            {"kind": "registration_statuses", "label": "X", "tags": ["vip"]},
            "assignments",
            "tag 'vip' does not apply to",
        ),
        ({"kind": "statuses", "label": "X", "tags": []}, "kind", "'statuses'"),
        ({"kind": "event_statuses", "label": " ", "tags": []}, "label", "label"),
        ({"kind": "event_statuses", "label": "X", "tags": "vip"}, "tags", "list of tag names"),
    ]
    for body, path, words in cases:
        response = await api.client.patch(
            "/api/v1/tags/assignments", json=body, headers=api.headers("ana")
        )
        assert response.status == 422, body
        errors = (await response.json())["errors"]
        assert any(e["path"].startswith(path) and words in e["message"] for e in errors), errors
    assert await _tags(api) == before
    assert len(await api.store.config_audit(limit=1000)) == audited


async def test_replacing_all_assignments_honours_if_match(api: Api) -> None:
    before = await _tags(api)
    wanted = dict(before["assignments"])
    wanted["event_statuses"] = {"Active": ["event_live"], "Live": ["event_live"]}
    stale = await api.put(
        "/api/v1/tags/assignments",
        json=wanted,
        headers={**api.auth, "If-Match": str(before["version"] - 1)},
    )
    assert stale.status == 409
    replaced = await api.put(
        "/api/v1/tags/assignments",
        json={"assignments": wanted},
        headers={**api.auth, "If-Match": str(before["version"])},
    )
    assert replaced.status == 200
    assert (await replaced.json())["assignments"]["event_statuses"]["Live"] == ["event_live"]
    unknown_key = await api.put("/api/v1/tags/assignments", json={"statuses": {}})
    assert unknown_key.status == 422
    assert (await unknown_key.json())["errors"][0]["path"].startswith("assignments.statuses")
