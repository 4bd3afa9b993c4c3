"""Dotted paths into a change: the language of mappings, tokens and filters."""

from __future__ import annotations

from typing import Any

import pytest

from stream.core.catalog import EventCatalog
from stream.core.context import build_context, to_text
from tests.support.accounts import example_account
from tests.support.changes import catalog, event_change, registration_change

ACCOUNT = example_account()


def ctx_for(change: Any = None, cat: EventCatalog | None = None) -> Any:
    return build_context(change or registration_change(), ACCOUNT, cat or catalog())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("registration.profile.email", " Ana.Ruiz@Example.com "),
        ("registration.profile.address.city", "Seattle"),
        ("registration.profile.address.postalCode", "98101"),
        ("registration.registrationCode", "R7QX2M9K1"),
        ("registration.isTest", False),
        ("registration.registrationQuestions.0.questionCode", "DIET"),
        ("registration.registrationQuestions.5.questionCode", None),
        ("changeId", "chg-1"),
        ("eventCode", "SUMMIT26"),
        ("occurredAt", "2026-11-28T12:00:00Z"),
        # event.* comes from the catalog for registration changes
        ("event.eventType", "Conference"),
        ("event.eventName", "Acme Summit 2026"),
        ("event.eventCode", "SUMMIT26"),
        ("event.tags", ["signal_marketo"]),
        ("eventQuestions.marketoCampaignId", "2001"),
        ("eventQuestions.MARKETOCAMPAIGNID", "2001"),
        ("eventQuestions.missing", None),
        ("answers.diet", "Vegetarian"),
        ("answers.DIET", "Vegetarian"),
        ("answers.vip", None),
        ("session.sessionName", None),
        ("registration.profile.nope", None),
        ("registration.profile.email.deeper", None),
        ("nope", None),
        ("", None),
    ],
)
def test_lookup(path: str, expected: Any) -> None:
    assert ctx_for().lookup(path) == expected


def test_answers_join_every_answer_of_questions_carrying_the_tag() -> None:
    setup_event = event_change()
    assert setup_event.event is not None
    setup = setup_event.event.setup.model_dump(by_alias=True)
    setup["registrationQuestions"].append({"code": "ALLERGY", "tags": ["diet"]})
    cat = catalog(event_change(setup=setup))
    change = registration_change(
        questions=[
            {"questionCode": "DIET", "answers": ["Vegetarian", "Halal"]},
            {"questionCode": "TSHIRT", "answers": ["L"]},
            {"questionCode": "ALLERGY", "answers": ["", "Peanuts"]},
        ]
    )
    assert ctx_for(change, cat).lookup("answers.diet") == "Vegetarian; Halal; Peanuts"


def test_untagged_question_has_no_answer_path() -> None:
    change = registration_change(questions=[{"questionCode": "TSHIRT", "answers": ["L"]}])
    assert ctx_for(change).lookup("answers.diet") is None


def test_event_change_reads_its_own_event_not_the_catalog() -> None:
    old = catalog(event_change(event_type="Conference"))
    change = event_change(event_type="Webinar", questions={"marketoCampaignId": 3001})
    ctx = ctx_for(change, old)
    assert ctx.lookup("event.eventType") == "Webinar"
    assert ctx.lookup("eventQuestions.marketoCampaignId") == 3001
    assert ctx.lookup("event.tags") == ["signal_marketo"]


def test_registration_in_unknown_event_reads_event_paths_as_empty() -> None:
    ctx = ctx_for(registration_change(event_code="OTHER"))
    assert ctx.event is None
    assert ctx.lookup("event.eventType") is None
    assert ctx.lookup("eventQuestions.marketoCampaignId") is None
    assert ctx.lookup("answers.diet") is None


def test_session_paths() -> None:
    ctx = ctx_for(registration_change(change_type="session_registration.status_change"))
    assert ctx.lookup("session.sessionName") == "Opening keynote"
    assert ctx.lookup("session.regSessionStatus") == "Attended"


def test_unknown_fields_sent_by_certain_are_readable() -> None:
    change = registration_change(extra={"source": {"system": "certain", "version": 2}})
    assert ctx_for(change).lookup("source.version") == 2


def test_attendee_type_tags_are_resolved_once() -> None:
    assert ctx_for().attendee_type_tags == {"vip"}
    assert ctx_for(registration_change(attendee_type="Attendee")).attendee_type_tags == set()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (5, "5"),
        (1.5, "1.5"),
        (["a", "", "b"], "a; b"),
        ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text
