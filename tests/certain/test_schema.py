"""The change-event JSON Schema is a valid Draft 2020-12 document that agrees with the models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream.certain.events import ChangeEvent
from stream.certain.schema import change_event_json_schema
from tests.certain.samples import DESIGN_EXAMPLE, event_change, example, session_change


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = change_event_json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_schema_declares_dialect_and_title() -> None:
    schema = change_event_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"]
    assert schema["type"] == "object"
    assert set(schema["required"]) >= {"changeId", "type", "accountCode", "eventCode", "occurredAt"}
    json.dumps(schema)


def test_schema_uses_camel_case_names() -> None:
    text = json.dumps(change_event_json_schema())
    for name in ("registrationStatusLabel", "postalCode", "regSessionStatus", "eventQuestions"):
        assert f'"{name}"' in text
    assert "registration_status_label" not in text


@pytest.mark.parametrize(
    "item",
    [DESIGN_EXAMPLE, session_change(), event_change(), example(vendorField={"x": 1})],
    ids=["design-example", "session", "event", "extra-fields"],
)
def test_valid_changes_validate(validator: Draft202012Validator, item: dict[str, Any]) -> None:
    validator.validate(item)
    ChangeEvent.model_validate(item)


@pytest.mark.parametrize(
    "item",
    [
        example(registration=None),
        session_change(session=None),
        session_change(session={"sessionCode": "S"}),
        event_change(event=None),
        example(type="registration.deleted"),
        example(changeId=""),
        example(registration={**DESIGN_EXAMPLE["registration"], "isTest": "no"}),
    ],
    ids=[
        "no-registration",
        "no-session",
        "session-without-status",
        "no-event",
        "unknown-type",
        "empty-change-id",
        "string-boolean",
    ],
)
def test_schema_and_models_reject_the_same_bad_changes(
    validator: Draft202012Validator, item: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(item))
    with pytest.raises(ValueError):
        ChangeEvent.model_validate(item)
