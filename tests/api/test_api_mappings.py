"""Mappings through the API: list, read, create, replace with If-Match; validated with the whole
account, audited per mapping and republished to the workers."""

from __future__ import annotations

from typing import Any

from tests.api.api_harness import Api
from tests.api.api_helpers import snapshots
from tests.support.topics import read_topic

FIELDS: list[dict[str, Any]] = [
    {"target": "email", "sources": ["registration.profile.email"], "transforms": ["trim"]},
    {"target": "company", "sources": ["registration.profile.organization"]},
]


async def test_list_and_read_carry_versions_and_users(api: Api) -> None:
    body = await (await api.get("/api/v1/mappings")).json()
    [mapping] = body["mappings"]
    assert mapping["id"] == "lead-basic" and isinstance(mapping["version"], int)
    assert mapping["used_by"] == ["registered-to-nurture"]
    one = await api.get("/api/v1/mappings/lead-basic")
    assert one.status == 200 and (await one.json())["fields"] == mapping["fields"]
    missing = await api.get("/api/v1/mappings/nope")
    assert missing.status == 404 and "nope" in (await missing.json())["errors"][0]["message"]
    assert (await api.client.get("/api/v1/mappings")).status == 401


async def test_replace_with_if_match_then_a_stale_edit_is_refused(api: Api) -> None:
    read = await (await api.get("/api/v1/mappings/lead-basic")).json()
    version = read["version"]
    edited = {**read, "fields": FIELDS}
    saved = await api.put(
        "/api/v1/mappings/lead-basic",
        json=edited,
        headers={**api.headers("ana"), "If-Match": str(version)},
    )
    assert saved.status == 200
    body = await saved.json()
    assert body["version"] > version and body["fields"][1]["target"] == "company"
    assert api.mapping("lead-basic").fields[1].target == "company"

    stale = await api.put(
        "/api/v1/mappings/lead-basic",
        json={**read, "name": "Someone else's"},
        headers={**api.headers("bo"), "If-Match": str(version)},
    )
    assert stale.status == 409
    assert (await stale.json())["errors"][0]["path"] == "version"
    assert api.mapping("lead-basic").name == "Lead basics"

    audit = await api.store.config_audit(kind="mapping", object_id="lead-basic")
    assert [a.actor for a in audit if a.action == "update"] == ["ana"]
    records = await read_topic(
        api.bootstrap,
        api.config_topic,
        until=lambda rs: any(
            len(m["fields"]) == 2 and m["fields"][1]["target"] == "company"
            for s in snapshots(rs)
            for m in s["account"]["mappings"]
        ),
        within=3.0,
    )
    assert any(
        m["fields"][-1]["target"] == "company"
        for s in snapshots(records)
        for m in s["account"]["mappings"]
    )


async def test_create_at_the_path_and_in_the_collection(api: Api) -> None:
    made = await api.post(
        "/api/v1/mappings/lead-short", json={"name": "Short", "fields": FIELDS[:1]}
    )
    assert made.status == 201
    body = await made.json()
    assert body["id"] == "lead-short" and body["used_by"] == [] and body["version"]
    again = await api.post("/api/v1/mappings", json={"id": "lead-short", "name": "Again"})
    assert again.status == 409 and (await again.json())["errors"][0]["path"] == "id"
    other = await api.post("/api/v1/mappings", json={"id": "lead-other", "name": "Other"})
    assert other.status == 201
    ids = [m["id"] for m in (await (await api.get("/api/v1/mappings")).json())["mappings"]]
    assert ids == ["lead-basic", "lead-short", "lead-other"]


async def test_invalid_mappings_are_refused_by_path_and_nothing_changes(api: Api) -> None:
    before = await (await api.get("/api/v1/mappings/lead-basic")).json()
    bad_bodies: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", "/api/v1/mappings/lead-basic", {"name": "", "fields": []}),
        ("PUT", "/api/v1/mappings/lead-basic", {"name": "X", "fields": [{"target": "email"}]}),
        ("PUT", "/api/v1/mappings/lead-basic", {"name": "X", "colour": "red"}),
        ("PUT", "/api/v1/mappings/lead-basic", {"id": "other", "name": "X"}),
        (
            "PUT",
            "/api/v1/mappings/lead-basic",
            {"name": "X", "fields": [{"target": "email", "sources": ["a.b"], "transforms": ["x"]}]},
        ),
        ("POST", "/api/v1/mappings", {"name": "no id"}),
    ]
    for method, path, body in bad_bodies:
        response = await api.client.request(method, path, json=body, headers=api.auth)
        assert response.status in (400, 422), (body, response.status)
        errors = (await response.json())["errors"]
        assert errors and all(e["message"] for e in errors), body
    bad_header = await api.put(
        "/api/v1/mappings/lead-basic",
        json={"name": "X"},
        headers={**api.auth, "If-Match": "yesterday"},
    )
    assert bad_header.status == 400
    assert (await api.put("/api/v1/mappings/nope", json={"name": "X"})).status == 404
    after = await (await api.get("/api/v1/mappings/lead-basic")).json()
    assert after == before


async def test_delete_a_mapping_in_use_is_refused_naming_its_flows(api: Api) -> None:
    before = await api.settled_version()
    refused = await api.delete("/api/v1/mappings/lead-basic", headers=api.headers("ana"))
    assert refused.status == 409
    body = await refused.json()
    assert body["used_by"] == ["registered-to-nurture"]
    [error] = body["errors"]
    assert error["path"] == "used_by"
    assert "'Registered to nurture' (registered-to-nurture)" in error["message"]
    assert api.mapping("lead-basic").name == "Lead basics"
    audit = await api.store.config_audit(kind="mapping", object_id="lead-basic")
    assert "delete" not in [a.action for a in audit]
    assert api.published_version == before


async def test_delete_an_unused_mapping_audits_and_publishes_it(api: Api) -> None:
    made = await api.post("/api/v1/mappings", json={"id": "lead-spare", "name": "Spare"})
    assert made.status == 201
    version = (await made.json())["version"]

    stale = await api.delete(
        "/api/v1/mappings/lead-spare", headers={**api.auth, "If-Match": str(version + 1)}
    )
    assert stale.status == 409 and (await stale.json())["errors"][0]["path"] == "version"
    assert api.config.account.mapping("lead-spare") is not None

    gone = await api.delete(
        "/api/v1/mappings/lead-spare", headers={**api.headers("bo"), "If-Match": str(version)}
    )
    assert gone.status == 204
    assert api.config.account.mapping("lead-spare") is None
    assert (await api.get("/api/v1/mappings/lead-spare")).status == 404
    again = await api.delete("/api/v1/mappings/lead-spare")
    assert again.status == 404 and "lead-spare" in (await again.json())["errors"][0]["message"]

    audit = await api.store.config_audit(kind="mapping", object_id="lead-spare")
    assert (audit[0].action, audit[0].actor) == ("delete", "bo")
    records = await read_topic(
        api.bootstrap,
        api.config_topic,
        until=lambda rs: any(
            all(m["id"] != "lead-spare" for m in s["account"]["mappings"])
            and any(m["id"] == "lead-basic" for m in s["account"]["mappings"])
            for s in snapshots(rs)[-1:]
        ),
        within=3.0,
    )
    assert [m["id"] for m in snapshots(records)[-1]["account"]["mappings"]] == ["lead-basic"]
