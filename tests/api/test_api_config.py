"""`GET/PUT /api/v1/config`: export and import of the whole account, validated, audited."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from stream.broker import EmbeddedBroker
from tests.api.api_harness import Api, prepare_data_dir, start_api, stop_api
from tests.api.api_helpers import ACCOUNT_YAML, LITERAL_SECRET, SECRET, snapshots
from tests.support.topics import read_topic


async def test_export_yaml_has_the_import_shape_without_secrets(api: Api) -> None:
    response = await api.get("/api/v1/config")
    assert response.status == 200
    assert response.content_type == "application/yaml"
    text = await response.text()
    assert SECRET not in text
    data = yaml.safe_load(text)
    assert data == yaml.safe_load(ACCOUNT_YAML)


async def test_export_json(api: Api) -> None:
    for response in (
        await api.get("/api/v1/config?format=json"),
        await api.get("/api/v1/config", headers={**api.auth, "Accept": "application/json"}),
    ):
        data = await response.json()
        assert data["account"] == "ACME"
        assert data["connections"][0]["client_secret"] == "${SIGNAL_SECRET_TEST_MARKETO}"


async def test_import_round_trip_changes_only_what_differs(api: Api) -> None:
    exported = await (await api.get("/api/v1/config")).text()
    same = await api.put("/api/v1/config", data=exported.encode(), headers=api.headers("ana"))
    assert same.status == 200
    body = await same.json()
    assert (body["created"], body["updated"], body["deleted"]) == ([], [], [])

    data = yaml.safe_load(exported)
    data["flows"][0]["name"] = "Renamed"
    data["flows"].pop(1)
    data["tags"].append({"name": "extra", "label": "Extra", "objects": ["event"]})
    changed = await api.put(
        "/api/v1/config",
        data=json.dumps(data),
        headers={**api.headers("ana"), "Content-Type": "application/json"},
    )
    assert changed.status == 200, await changed.text()
    body = await changed.json()
    assert body["created"] == ["tag extra"]
    assert "flow registered-to-nurture" in body["updated"]
    assert body["deleted"] == ["flow half-built"]
    audit = await api.store.config_audit(kind="flow")
    assert (audit[0].action, audit[0].object_id, audit[0].actor) == ("delete", "half-built", "ana")
    again = yaml.safe_load(await (await api.get("/api/v1/config")).text())
    assert again == data
    records = await read_topic(
        api.bootstrap,
        api.config_topic,
        until=lambda rs: (
            bool(rs)
            and [f["id"] for f in snapshots(rs)[-1]["account"]["flows"]]
            == ["registered-to-nurture"]
        ),
        within=3,
    )
    assert snapshots(records)[-1]["account"]["flows"][0]["name"] == "Renamed"


async def test_import_problems_by_path_change_nothing(api: Api) -> None:
    data = yaml.safe_load(ACCOUNT_YAML)
    data["flows"][0]["destination"]["mapping"] = "lead-x"
    data["flows"][1]["mode"] = "sometimes"
    response = await api.put("/api/v1/config", data=yaml.safe_dump(data))
    assert response.status == 422
    errors = (await response.json())["errors"]
    paths = [e["path"] for e in errors]
    assert "flows[0].destination.mapping" in paths
    assert "flows[1].mode" in paths
    assert any("lead-x" in e["message"] for e in errors)
    flow = await (await api.get("/api/v1/flows/registered-to-nurture")).json()
    assert flow["destination"]["mapping"] == "lead-basic"


async def test_import_yaml_syntax_error(api: Api) -> None:
    response = await api.put("/api/v1/config", data=b"account: [unclosed\n")
    assert response.status == 422
    error = (await response.json())["errors"][0]
    assert error["path"].startswith("line ")
    assert "YAML syntax error" in error["message"]
    bad_json = await api.put(
        "/api/v1/config", data=b"{", headers={**api.auth, "Content-Type": "application/json"}
    )
    assert bad_json.status == 422


async def test_literal_secret_is_kept_but_never_exported(api: Api) -> None:
    data = yaml.safe_load(ACCOUNT_YAML)
    data["connections"][0]["client_secret"] = LITERAL_SECRET
    response = await api.put("/api/v1/config", data=yaml.safe_dump(data))
    assert response.status == 200
    body = await response.json()
    assert any("literal secret" in w for w in body["warnings"])
    assert LITERAL_SECRET not in json.dumps(body)
    exported = await (await api.get("/api/v1/config")).text()
    assert LITERAL_SECRET not in exported
    assert "client_secret" not in exported
    connection = await (await api.get("/api/v1/connections/mkto-prod")).json()
    assert connection["secret_source"] == "stored"
    # Importing the export again (no secret in it) keeps the stored secret.
    again = await api.put("/api/v1/config", data=exported.encode())
    assert again.status == 200
    connection = await (await api.get("/api/v1/connections/mkto-prod")).json()
    assert connection["secret_set"] is True


async def test_configuration_survives_a_restart(tmp_path: Path, broker: EmbeddedBroker) -> None:
    data_dir = prepare_data_dir(tmp_path / "var")
    first, producer = await start_api(data_dir, broker)
    try:
        await first.post("/api/v1/flows/registered-to-nurture/mode", json={"mode": "test"})
    finally:
        await stop_api(first, producer)
    (data_dir / "account.yaml").write_text("account: IGNORED\n", encoding="utf-8")
    second, producer = await start_api(data_dir, broker)
    try:
        flow = await (await second.get("/api/v1/flows/registered-to-nurture")).json()
        assert flow["mode"] == "test"
        assert second.config.account.account == "ACME"
        assert [f.id for f in second.config.account.flows] == [
            "registered-to-nurture",
            "half-built",
        ]
    finally:
        await stop_api(second, producer)
