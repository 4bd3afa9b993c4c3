"""The update_program_status action in the account configuration: YAML round trip, JSON Schema,
validation by path and the completeness reasons of a half-built program flow."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from config.completeness import completeness
from config.load_problems import check_raw
from config.models import Account, Action
from config.schema import account_json_schema
from config.validation import validate_account
from config.yamlio import dump_account, load_account
from tests.config.config_helpers import mutated

PROGRAM = {
    "program_id": 1044,
    "event_question": "marketoProgram",
    "statuses": {"registered": "Registered", "attended": "Attended"},
}


def program_flow(raw: dict[str, Any], **destination: Any) -> dict[str, Any]:
    """The example's first flow (registration status change, activated by `registered`)
    turned into a program-status flow."""
    raw = mutated(raw, "flows.0.destination.action", "update_program_status")
    raw = mutated(raw, "flows.0.destination.campaign", None)
    del raw["flows"][0]["destination"]["campaign"]
    raw = mutated(raw, "flows.0.destination.program", destination.get("program", PROGRAM))
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    _, found = check_raw(raw)
    return [str(p) for p in found]


def test_a_program_flow_is_valid_complete_and_round_trips(example_raw: dict[str, Any]) -> None:
    raw = program_flow(example_raw)
    assert problems(raw) == []
    account = Account.model_validate(raw)
    flow = account.flows[0]
    assert flow.destination.action is Action.UPDATE_PROGRAM_STATUS
    assert flow.destination.program is not None
    assert flow.destination.program.statuses == {"registered": "Registered", "attended": "Attended"}
    assert completeness(flow, account) == []
    assert load_account(dump_account(account)) == account


def test_json_schema_knows_the_action_and_the_rule(example_raw: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(account_json_schema())
    assert list(validator.iter_errors(program_flow(example_raw))) == []
    bad = program_flow(example_raw, program={"program_id": 0, "statuses": {"registered": ""}})
    assert list(validator.iter_errors(bad))
    extra = program_flow(example_raw, program={"program_id": 1, "colour": "red"})
    assert list(validator.iter_errors(extra))


@pytest.mark.parametrize(
    ("program", "path", "fragment"),
    [
        ({"program_id": 0}, "flows[0].destination.program.program_id", "greater than 0"),
        ({"program_id": "abc"}, "flows[0].destination.program.program_id", "integer"),
        (
            {"program_id": 1, "statuses": {"registered": " "}},
            "flows[0].destination.program.statuses.registered",
            "expected a non-empty value",
        ),
    ],
)
def test_shape_problems_are_named_by_path(
    example_raw: dict[str, Any], program: dict[str, Any], path: str, fragment: str
) -> None:
    found = problems(program_flow(example_raw, program=program))
    assert any(path in p and fragment in p for p in found), found


def test_status_map_keys_are_status_tags_of_the_flows_kind(example_raw: dict[str, Any]) -> None:
    program = {"program_id": 1044, "statuses": {"registered": "Registered", "vip": "Attended"}}
    raw = program_flow(example_raw, program=program)
    found = problems(raw)
    assert found == [
        "flows[0].destination.program.statuses['vip']: tag 'vip' does not apply to "
        + found[0].split("does not apply to ", 1)[1]
    ]
    unknown = program_flow(example_raw, program={"program_id": 1, "statuses": {"nope": "X"}})
    assert any(
        p.startswith("flows[0].destination.program.statuses['nope']: unknown tag 'nope'")
        for p in problems(unknown)
    )


def test_session_flows_key_the_map_by_session_status_tags(example_raw: dict[str, Any]) -> None:
    raw = mutated(example_raw, "flows.1.destination.action", "update_program_status")
    del raw["flows"][1]["destination"]["campaign"]
    raw["flows"][1]["destination"].pop("tokens", None)
    raw = mutated(
        raw,
        "flows.1.destination.program",
        {"program_id": 1044, "statuses": {"attended": "Attended", "registered": "Registered"}},
    )
    found = problems(raw)
    assert len(found) == 1 and found[0].startswith(
        "flows[1].destination.program.statuses['registered']: tag 'registered' does not apply"
    )


def test_rule_on_another_action_and_tokens_on_this_one_are_refused(
    example_raw: dict[str, Any],
) -> None:
    raw = mutated(example_raw, "flows.0.destination.program", PROGRAM)
    assert any(
        p.startswith("flows[0].destination.program: a program rule does not apply to action")
        for p in problems(raw)
    )
    with_tokens = program_flow(example_raw)
    with_tokens["flows"][0]["destination"]["tokens"] = {"{{my.x}}": "registration.email"}
    assert any(
        "flows[0].destination.tokens: tokens do not apply" in p for p in problems(with_tokens)
    )


def test_an_event_source_cannot_set_a_program_status(example_raw: dict[str, Any]) -> None:
    raw = program_flow(example_raw)
    raw = mutated(raw, "flows.0.source", "event.create_update")
    raw = mutated(raw, "flows.0.activate_for", {"event_statuses": ["event_live"]})
    raw["flows"][0]["filters"] = []
    raw["flows"][0]["destination"]["program"]["statuses"] = {}
    assert any(
        p.startswith("flows[0].destination.action: action update_program_status needs a")
        for p in problems(raw)
    )


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        (None, "no program id rule (event question or program id) for update_program_status"),
        ({"statuses": {"registered": "Registered"}}, "no program id rule"),
        ({"program_id": 1044}, "no status map (status tag → program status)"),
        (
            {"program_id": 1044, "statuses": {"attended": "Attended"}},
            "activate-for tag 'registered' has no program status in the status map",
        ),
    ],
)
def test_completeness_reasons(
    example_raw: dict[str, Any], program: dict[str, Any] | None, reason: str
) -> None:
    raw = program_flow(example_raw)
    if program is None:
        del raw["flows"][0]["destination"]["program"]
    else:
        raw["flows"][0]["destination"]["program"] = program
    account = Account.model_validate(raw)
    assert validate_account(account) == []
    assert any(r.startswith(reason) for r in completeness(account.flows[0], account))


def test_event_question_alone_is_enough(example_raw: dict[str, Any]) -> None:
    program = {"event_question": "marketoProgram", "statuses": {"registered": "Registered"}}
    account = Account.model_validate(program_flow(example_raw, program=program))
    assert completeness(account.flows[0], account) == []
