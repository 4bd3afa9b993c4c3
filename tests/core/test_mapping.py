"""Field mapping: concatenation, transforms in order, required fields, tokens (DESIGN 5)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from config.models import FieldMapping, Mapping, Transform
from stream.core.context import build_context
from stream.core.mapping import (
    apply_transforms,
    field_value,
    map_fields,
    map_tokens,
    proper_case,
)
from stream.core.results import DataFailure
from tests.support.accounts import EXAMPLE_LEAD_PAYLOAD, example_account
from tests.support.changes import catalog, registration_change

ACCOUNT = example_account()


def ctx(**registration: Any) -> Any:
    return build_context(registration_change(**registration), ACCOUNT, catalog())


@pytest.mark.parametrize(
    ("value", "transforms", "expected"),
    [
        ("  ana MARIA ", ["trim", "proper"], "Ana Maria"),
        ("  ana MARIA ", ["proper", "trim"], "Ana Maria"),
        ("  ana MARIA ", ["proper"], "  Ana Maria "),
        ("  ana MARIA ", ["upper", "trim"], "ANA MARIA"),
        ("  ana MARIA ", ["lower"], "  ana maria "),
        ("Ana", ["upper", "lower"], "ana"),  # order matters: the last one wins
        ("Ana", ["lower", "upper"], "ANA"),
        ("ana", [], "ana"),
    ],
)
def test_transforms_apply_in_order(value: str, transforms: list[str], expected: str) -> None:
    assert apply_transforms(value, [Transform(t) for t in transforms]) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ana MARIA", "Ana Maria"),
        ("o'neil-smith", "O'Neil-Smith"),
        ("don't stop", "Don't Stop"),
        ("3rd AVENUE", "3rd Avenue"),
        ("élan vital", "Élan Vital"),
        ("", ""),
    ],
)
def test_proper_case(text: str, expected: str) -> None:
    assert proper_case(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("o'neil", "O'Neil"),
        ("d'arcy o'brien", "D'Arcy O'Brien"),
        ("l’oréal", "L’Oréal"),
        ("rock'n'roll", "Rock'n'Roll"),  # n stands alone between two apostrophes
        ("x'y'z", "X'Y'Z"),  # each apostrophe follows one lone letter
        ("3'a", "3'a"),  # a digit before it is no letter
        ("_'a", "_'a"),
        ("ab'c", "Ab'c"),
    ],
)
def test_proper_case_after_an_apostrophe(text: str, expected: str) -> None:
    assert proper_case(text) == expected


def test_proper_case_of_a_hostile_name_is_linear() -> None:
    """A megabyte of `a'` (under ingest's 1 MB a change): every word follows a lone letter and an
    apostrophe. Looking back over the whole prefix for each word made this quadratic (160,000
    characters took 2.9 s, a megabyte minutes on the worker's loop); a linear pass is a fraction
    of a second, so even a slow machine is far inside the deadline."""
    text = "a'" * 500_000
    started = time.process_time()
    cased = proper_case(text)
    assert cased == "A'" * 500_000
    assert time.process_time() - started < 20


def test_sources_are_joined_with_the_separator_skipping_empty_ones() -> None:
    field = FieldMapping(
        target="city",
        sources=[
            "registration.profile.address.city",
            "registration.profile.address.line2",
            "registration.profile.address.state",
        ],
        separator=", ",
    )
    assert field_value(field, ctx()) == "Seattle, WA"
    blank_city = ctx(profile={"address": {"city": "   ", "state": "WA"}})
    assert field_value(field, blank_city) == "WA"


def test_join_then_transform() -> None:
    field = FieldMapping(
        target="fullName",
        sources=["registration.profile.firstName", "registration.profile.lastName"],
        transforms=[Transform.TRIM, Transform.PROPER],
    )
    # "  ana MARIA " + " " + "ruiz" → trim → proper
    assert field_value(field, ctx()) == "Ana Maria Ruiz"


def test_example_mapping_produces_the_marketo_payload() -> None:
    mapping = ACCOUNT.mapping("lead-basic")
    assert mapping is not None
    assert map_fields(mapping, ctx()) == EXAMPLE_LEAD_PAYLOAD


def test_empty_optional_fields_are_left_out() -> None:
    mapping = ACCOUNT.mapping("lead-basic")
    assert mapping is not None
    payload = map_fields(mapping, ctx(profile={"organization": None, "position": ""}, questions=[]))
    assert isinstance(payload, dict)
    assert "company" not in payload and "title" not in payload and "dietaryNeeds" not in payload


@pytest.mark.parametrize("field", ["email", "firstName", "lastName"])
def test_empty_required_field_is_a_data_failure_naming_it(field: str) -> None:
    mapping = ACCOUNT.mapping("lead-basic")
    assert mapping is not None
    result = map_fields(mapping, ctx(profile={field: "   "}))
    assert isinstance(result, DataFailure)
    assert result.field == field
    assert field in result.reason and "registration.profile." + field in result.reason


def test_default_required_targets_apply_when_required_is_unset() -> None:
    mapping = Mapping(
        id="m",
        name="m",
        fields=[
            FieldMapping(target="company", sources=["registration.profile.nickname"]),
            FieldMapping(target="email", sources=["registration.profile.nickname"]),
        ],
    )
    result = map_fields(mapping, ctx())
    assert result == DataFailure(
        field="email", reason="required field 'email' is empty (from registration.profile.nickname)"
    )


def test_optional_flag_overrides_the_default_and_required_flag_adds_one() -> None:
    optional_email = Mapping(
        id="m",
        name="m",
        fields=[FieldMapping(target="email", sources=["x.y"], required=False)],
    )
    assert map_fields(optional_email, ctx()) == {}
    required_phone = Mapping(
        id="m",
        name="m",
        fields=[FieldMapping(target="phone", sources=["registration.profile.fax"], required=True)],
    )
    result = map_fields(required_phone, ctx())
    assert isinstance(result, DataFailure) and result.field == "phone"


def test_field_without_sources_that_is_required_fails() -> None:
    mapping = Mapping(id="m", name="m", fields=[FieldMapping(target="email", sources=[])])
    result = map_fields(mapping, ctx())
    assert isinstance(result, DataFailure) and "no source fields" in result.reason


def test_tokens_read_paths_and_skip_empty_values() -> None:
    change = registration_change(change_type="session_registration.status_change")
    context = build_context(change, ACCOUNT, catalog())
    tokens = {
        "{{my.session}}": "session.sessionName",
        "{{my.event}}": "event.eventName",
        "{{my.campaign}}": "eventQuestions.marketoCampaignId",
        "{{my.none}}": "registration.profile.fax",
    }
    assert map_tokens(tokens, context) == {
        "{{my.session}}": "Opening keynote",
        "{{my.event}}": "Acme Summit 2026",
        "{{my.campaign}}": "2001",
    }
