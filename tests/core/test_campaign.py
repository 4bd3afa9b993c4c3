"""Campaign id: the event question wins, then the flow's id, else a data failure (DESIGN 5)."""

from __future__ import annotations

from typing import Any

import pytest

from config.models import CampaignRule
from stream.core.campaign import parse_campaign_id, resolve_campaign_id
from stream.core.results import DataFailure

BOTH = CampaignRule(event_question="marketoCampaignId", campaign_id=1001)


@pytest.mark.parametrize(
    ("rule", "questions", "expected"),
    [
        (BOTH, {"marketoCampaignId": "2001"}, 2001),  # event question beats the flow's id
        (BOTH, {"marketoCampaignId": 2001}, 2001),
        (BOTH, {"marketoCampaignId": " 2001 "}, 2001),
        (BOTH, {"marketocampaignid": "2001"}, 2001),
        (BOTH, {}, 1001),  # no value → the flow's id
        (BOTH, {"marketoCampaignId": ""}, 1001),
        (BOTH, {"marketoCampaignId": None}, 1001),
        (CampaignRule(campaign_id=1002), {"marketoCampaignId": "2001"}, 1002),
        (CampaignRule(event_question="marketoCampaignId"), {"marketoCampaignId": "7"}, 7),
    ],
)
def test_campaign_id_resolution(
    rule: CampaignRule, questions: dict[str, Any], expected: int
) -> None:
    assert resolve_campaign_id(rule, questions) == expected


@pytest.mark.parametrize("value", ["abc", "12a", "-5", "0", "1.5", True, 0, -3, 2.5])
def test_non_numeric_event_question_is_a_data_failure_naming_question_and_value(
    value: Any,
) -> None:
    result = resolve_campaign_id(BOTH, {"marketoCampaignId": value})
    assert isinstance(result, DataFailure)
    assert result.field == "eventQuestions.marketoCampaignId"
    assert "marketoCampaignId" in result.reason and repr(value) in result.reason


@pytest.mark.parametrize(
    ("rule", "questions"),
    [
        (None, {"marketoCampaignId": "2001"}),
        (CampaignRule(), {}),
        (CampaignRule(event_question="marketoCampaignId"), {}),
        (CampaignRule(event_question="marketoCampaignId"), {"other": "5"}),
    ],
)
def test_no_campaign_id_is_a_data_failure(rule: CampaignRule | None, questions: Any) -> None:
    result = resolve_campaign_id(rule, questions)
    assert isinstance(result, DataFailure)
    assert result.field == "campaign_id"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("42", 42), (42, 42), (42.0, 42), ("0042", 42), ("4 2", None), (None, None), (False, None)],
)
def test_parse_campaign_id(value: Any, parsed: int | None) -> None:
    assert parse_campaign_id(value) == parsed
