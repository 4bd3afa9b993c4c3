"""Filters to rows and back (console.widgets.filter_rows): an untouched rule saves exactly as
it was loaded, edits give the shapes the configuration expects, problems are named by path,
and a rule rows cannot hold is named instead of being changed."""

from __future__ import annotations

from typing import Any

import pytest

from config.models import Flow
from console.widgets.filter_rows import (
    ATTENDEE_TYPE,
    RuleRow,
    filters_of,
    rows_of,
    rules_of,
)

FILTERS: list[dict[str, Any]] = [
    {"field": "event.tags", "op": "contains", "value": "signal_marketo"},
    {"field": "registration.profile.address.country", "op": "in", "value": ["US", "CA"]},
    {"field": "registration.isTest", "op": "equals", "value": False},
    {"field": "event.eventType", "op": "not_equals", "value": 42},
    {"field": "registration.profile.phone", "op": "is_not_empty"},
    {"field": "registration.profile.email", "op": "ends_with", "value": " @x.org "},
    {"attendee_type_tags": ["vip", "press"]},
]
TAGS = ["vip", "press"]


def test_untouched_rows_give_back_the_same_rules() -> None:
    rows, problem = rows_of(FILTERS)
    assert problem is None and len(rows) == len(FILTERS)
    assert rows[1].text == "US, CA" and rows[2].text == "false" and rows[3].text == "42"
    assert rows[6].field == ATTENDEE_TYPE and rows[6].text == "vip, press"
    rules, found = rules_of(rows, TAGS)
    assert found is None and rules == FILTERS
    # the same configuration as before: the flow model reads both alike
    before = Flow.model_validate({"id": "f", "name": "F", "filters": FILTERS})
    after = Flow.model_validate({"id": "f", "name": "F", "filters": rules})
    assert before == after


def test_edited_rows_take_the_operators_shape() -> None:
    rows, _ = rows_of(FILTERS)
    rows[1].text = "US,  GB ,"
    rows[2].text = "true"
    rows[3].op = "in"  # same text, other operator: the value follows the operator
    rows[4].op = "is_empty"
    rows[6].text = "VIP"
    rules, found = rules_of(rows, TAGS)
    assert found is None
    assert rules[1]["value"] == ["US", "GB"]
    assert rules[2]["value"] == "true"
    assert rules[3] == {"field": "event.eventType", "op": "in", "value": ["42"]}
    assert rules[4] == {"field": "registration.profile.phone", "op": "is_empty"}
    assert rules[6] == {"attendee_type_tags": ["VIP"]}
    rows[0].op = "is_empty"  # a value left in the row is dropped for a no-value operator
    assert rules_of(rows, TAGS)[0][0] == {"field": "event.tags", "op": "is_empty"}


@pytest.mark.parametrize(
    ("row", "path", "words"),
    [
        (RuleRow(None, "equals", "x"), "filters[1].field", "choose a field"),
        (RuleRow("event.eventType", None, "x"), "filters[1].op", "choose an operator"),
        (RuleRow("event.eventType", "equals", ""), "filters[1].value", "expects a value"),
        (RuleRow("event.eventType", "in", " , "), "filters[1].value", "empty list"),
        (RuleRow(ATTENDEE_TYPE, None, ""), "filters[1].attendee_type_tags", "at least one"),
        (
            RuleRow(ATTENDEE_TYPE, None, "vip, gold"),
            "filters[1].attendee_type_tags[1]",
            "unknown attendee-type tag 'gold' (known: vip, press)",
        ),
    ],
)
def test_a_bad_row_is_named_by_its_path(row: RuleRow, path: str, words: str) -> None:
    good = RuleRow("event.tags", "contains", "signal_marketo")
    rules, found = rules_of([good, row, good], TAGS)
    assert rules == []
    assert found is not None
    index, where, message = found
    assert (index, where) == (1, path) and words in message


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"field": "x.y", "op": "in", "value": ["Acme, Inc", "B"]}, "comma"),
        ({"field": "x.y", "op": "in", "value": "a,b"}, "wrong shape for in"),
        ({"field": "x.y", "op": "equals", "value": ["a"]}, "wrong shape for equals"),
        ({"field": "x.y", "op": "is_empty", "value": "a"}, "wrong shape for is_empty"),
        ({"field": "x.y", "op": "near", "value": "a"}, "unknown operator 'near'"),
        ({"attendee_type_tags": ["vip, gold"]}, "comma"),
        ({"field": "x.y", "op": "equals", "value": "a", "extra": 1}, "field, op and value"),
        (["not", "an", "object"], "not an object"),
    ],
)
def test_a_rule_rows_cannot_hold_is_named(rule: Any, words: str) -> None:
    rows, problem = rows_of([FILTERS[0], rule])
    assert rows == []
    assert problem is not None and problem.startswith("filters[1]: ") and words in problem


def test_json_text_errors_say_where() -> None:
    assert filters_of("[]") == ([], None)
    assert "line 1, column" in str(filters_of('[{"a":')[1])
    assert filters_of('{"a": 1}')[1] == "expected a JSON list of rules ([...]), got an object"
