"""The JSON Schema document and the source-path catalog."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from config.models import Account, Source
from config.schema import account_json_schema
from config.source_paths import (
    SOURCE_PATHS,
    path_problem,
    paths_for,
    source_problem,
    sources_of,
)
from stream.cli import main
from tests.config.config_helpers import LOCAL_EXAMPLE, mutated


def _validator() -> jsonschema.Draft202012Validator:
    schema = account_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_a_document() -> None:
    schema = account_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Signal account configuration"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_validates_the_example_as_written() -> None:
    raw = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    assert list(_validator().iter_errors(raw)) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("flows.0.mode", "prod"),
        ("mapings", []),
        ("flows.0.filters.0.op", "like"),
        ("flows.1.filters.0.attendee_type_tags", []),
        ("tags.0.objects.0", "status"),
        ("flows.0.id", "has space"),
        ("connections.0.max_in_flight", 11),
    ],
)
def test_schema_rejects_shape_mistakes(path: str, value: Any) -> None:
    raw = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    assert list(_validator().iter_errors(mutated(raw, path, value)))


def test_cli_schema_prints_the_same_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(account_json_schema()))
    jsonschema.Draft202012Validator.check_schema(printed)
    raw = yaml.safe_load(LOCAL_EXAMPLE.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(printed).iter_errors(raw)) == []


def test_cli_change_schema_or_not_yet(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "schema", "--change"])
    captured = capsys.readouterr()
    if code == 3:
        assert "not yet available" in captured.err
    else:
        assert code == 0
        jsonschema.Draft202012Validator.check_schema(json.loads(captured.out))


def test_cli_change_schema_missing_module_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.commands import config as command

    monkeypatch.setattr(command, "CHANGE_SCHEMA_MODULE", "stream.certain.no_such_module")
    assert main(["config", "schema", "--change"]) == 3
    assert "not yet available" in capsys.readouterr().err


# --- source paths ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "sources"),
    [
        ("registration.profile.email", 3),
        ("registration.profile.address.city", 3),
        ("registration.registrationCode", 3),
        ("registration.attendeeTypeCode", 3),
        ("registration.registrationStatusLabel", 3),
        ("session.sessionName", 1),
        ("event.eventType", 4),
        ("event.eventName", 4),
        ("event.tags", 4),
        ("eventCode", 4),
        ("accountCode", 4),
        ("occurredAt", 4),
        ("answers.diet", 3),
        ("eventQuestions.anything", 4),
        ("registration.properties.custom.Paid", 3),
    ],
)
def test_known_paths(path: str, sources: int) -> None:
    found = sources_of(path)
    assert found is not None and len(found) == sources


@pytest.mark.parametrize(
    "path", ["registration", "registration.profile", "profile.email", "answers.", "x", ""]
)
def test_unknown_paths(path: str) -> None:
    assert sources_of(path) is None


def test_source_restrictions() -> None:
    assert source_problem("session.sessionName", Source.REGISTRATION_STATUS_CHANGE)
    assert source_problem("session.sessionName", Source.SESSION_REGISTRATION_STATUS_CHANGE) is None
    assert source_problem("registration.profile.email", Source.EVENT_CREATE_UPDATE)
    assert source_problem("answers.diet", Source.EVENT_CREATE_UPDATE)
    assert source_problem("event.eventName", Source.REGISTRATION_CREATE_UPDATE) is None
    assert source_problem("nonsense", Source.EVENT_CREATE_UPDATE) is None


def test_paths_for_each_source() -> None:
    assert "session.sessionName" not in paths_for(Source.REGISTRATION_STATUS_CHANGE)
    assert "session.sessionName" in paths_for(Source.SESSION_REGISTRATION_STATUS_CHANGE)
    event_paths = paths_for(Source.EVENT_CREATE_UPDATE)
    assert "event.eventType" in event_paths
    assert not [p for p in event_paths if p.startswith(("registration.", "session."))]
    assert all(p.split(".")[-1][0].islower() for p in SOURCE_PATHS)


def test_answers_need_a_question_tag(example: Account) -> None:
    assert path_problem("answers.diet", example) is None
    assert "unknown question tag 'nope'" in (path_problem("answers.nope", example) or "")
    assert "does not apply to registration questions" in (
        path_problem("answers.vip", example) or ""
    )
    bare = Account(account="A")
    assert "(known: none)" in (path_problem("answers.diet", bare) or "")
