"""Bad input is rejected per item, with index, field path and reason; never an exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.certain.events import ChangeEvent
from stream.certain.parsing import (
    MAX_DEPTH,
    MAX_PROBLEMS,
    MAX_VALUES,
    Problem,
    Rejection,
    parse_change,
    parse_changes,
    parse_items,
)
from tests.certain.samples import DESIGN_EXAMPLE, event_change, example, session_change
from tests.support.examples import examples


def without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


def with_registration(**fields: Any) -> dict[str, Any]:
    data = example()
    data["registration"].update(fields)
    return data


def with_profile(**fields: Any) -> dict[str, Any]:
    data = example()
    data["registration"]["profile"].update(fields)
    return data


BAD: list[tuple[str, Any, str, str]] = [
    # (case, item, path, words the reason must contain)
    ("missing changeId", without(example(), "changeId"), "changeId", "missing"),
    ("empty changeId", example(changeId=""), "changeId", "non-empty"),
    ("blank changeId", example(changeId="   "), "changeId", "non-empty"),
    ("changeId not a string", example(changeId=42), "changeId", "string"),
    ("missing type", without(example(), "type"), "type", "missing"),
    ("unknown type", example(type="registration.deleted"), "type", "registration.deleted"),
    ("type not a string", example(type=["x"]), "type", "expected one of"),
    ("missing accountCode", without(example(), "accountCode"), "accountCode", "missing"),
    ("naive timestamp", example(occurredAt="2026-11-28T12:00:00"), "occurredAt", "timezone"),
    ("not a timestamp", example(occurredAt="yesterday"), "occurredAt", "ISO 8601 timestamp"),
    ("numeric timestamp", example(occurredAt=1764331200), "occurredAt", "ISO 8601"),
    ("registration missing", example(registration=None), "registration", "required for"),
    (
        "registration absent for create_update",
        without(example(type="registration.create_update"), "registration"),
        "registration",
        "registration.create_update",
    ),
    (
        "status change without its new status",
        with_registration(registrationStatusLabel=None),
        "registration.registrationStatusLabel",
        "required",
    ),
    ("session missing", session_change(session=None), "session", "session_registration"),
    (
        "session without status",
        session_change(session={"sessionCode": "S"}),
        "session.regSessionStatus",
        "required",
    ),
    ("event missing", event_change(event=None), "event", "event.create_update"),
    (
        "event code mismatch",
        event_change(eventCode="OTHER"),
        "event.eventCode",
        "differs",
    ),
    (
        "isTest not a boolean",
        with_registration(isTest="false"),
        "registration.isTest",
        "true or false",
    ),
    ("isActive a number", with_registration(isActive=1), "registration.isActive", "true or false"),
    ("email a number", with_profile(email=42), "registration.profile.email", "string"),
    ("profile a string", with_registration(profile="Ana"), "registration.profile", "JSON object"),
    (
        "answer not a string",
        with_registration(registrationQuestions=[{"questionCode": "DIET", "answers": [1]}]),
        "registration.registrationQuestions[0].answers[0]",
        "string",
    ),
    (
        "questions not a list",
        with_registration(registrationQuestions={"DIET": "x"}),
        "registration.registrationQuestions",
        "JSON array",
    ),
    (
        "custom property not a boolean",
        with_registration(properties={"custom": {"Speaker": "yes"}}),
        "registration.properties.custom.Speaker",
        "true or false",
    ),
    (
        "registration without code",
        with_registration(registrationCode=None),
        "registration.registrationCode",
        "string",
    ),
    ("item is a number", 5, "", "JSON object"),
    ("item is a list", [DESIGN_EXAMPLE], "", "JSON object"),
    ("item is a string", "hello", "", "JSON object"),
    ("item is null", None, "", "JSON object"),
]


@pytest.mark.parametrize(("item", "path", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_item_is_rejected_with_path_and_reason(item: Any, path: str, words: str) -> None:
    result = parse_change(item, index=7)
    assert isinstance(result, Rejection)
    assert result.index == 7
    assert result.path == path
    assert words in result.reason
    assert "Traceback" not in result.reason
    assert result.raw is item
    assert result.problems[0].path == path
    json.dumps(result.to_dict(), default=str)


def test_every_problem_of_an_item_is_listed() -> None:
    data = example(changeId="", occurredAt="2026-11-28T12:00:00")
    data["registration"]["isTest"] = "no"
    result = parse_change(data)
    assert isinstance(result, Rejection)
    assert {p.path for p in result.problems} == {"changeId", "occurredAt", "registration.isTest"}


def test_a_rejection_keeps_its_first_problems_and_counts_the_rest() -> None:
    """An item with a problem per element of a long list: the rejection (an API answer, a
    `rejected_changes` row) holds the first MAX_PROBLEMS and one problem counting the rest."""
    data = example(changeId="many")
    data["registration"]["registrationQuestions"] = [{"code": None}] * 12_000
    result = parse_change(data)
    assert isinstance(result, Rejection)
    assert len(result.problems) == MAX_PROBLEMS + 1
    assert result.problems[0].path == "registration.registrationQuestions[0].questionCode"
    assert result.problems[-1] == Problem(
        "", f"and {12_000 - MAX_PROBLEMS:,} more problems (the first {MAX_PROBLEMS} shown)"
    )
    few = example(changeId="few")
    few["registration"]["registrationQuestions"] = [{"code": None}] * MAX_PROBLEMS
    result = parse_change(few)
    assert isinstance(result, Rejection) and len(result.problems) == MAX_PROBLEMS
    assert all(p.path for p in result.problems)


@pytest.mark.parametrize("count", [MAX_VALUES, 1_000_000])
def test_an_item_of_too_many_values_is_rejected_before_validation(count: int) -> None:
    """A megabyte list is refused by its size, without an error per element (a million of
    them took 25 s and 1.8 GB in an ingest answer); an item of ordinary size is read."""
    data = example(changeId="huge")
    data["extra"] = [1] * count
    result = parse_change(data)
    assert isinstance(result, Rejection)
    assert result.problems == (
        Problem("", f"more than {MAX_VALUES:,} values in one item; expected one change event"),
    )
    data["extra"] = [1] * (MAX_VALUES // 2)
    assert isinstance(parse_change(data), ChangeEvent)


def test_valid_item_is_accepted() -> None:
    assert isinstance(parse_change(DESIGN_EXAMPLE), ChangeEvent)


def test_batch_list_keeps_good_items_and_rejects_bad_ones_with_their_index() -> None:
    items = [example(changeId="a"), example(changeId=""), 7, example(changeId="b")]
    accepted, rejected = parse_changes(items)
    assert [c.change_id for c in accepted] == ["a", "b"]
    assert [(r.index, r.path) for r in rejected] == [(1, "changeId"), (2, "")]


def test_ndjson_with_an_invalid_line() -> None:
    lines = [
        json.dumps(example(changeId="a")),
        "",
        '{"changeId": "b", "type": ',
        json.dumps(example(changeId="c", occurredAt="2026-11-28T12:00:00")),
        json.dumps(example(changeId="d")),
    ]
    accepted, rejected = parse_changes("\n".join(lines) + "\n")
    assert [c.change_id for c in accepted] == ["a", "d"]
    assert [(r.index, r.path) for r in rejected] == [(2, ""), (3, "occurredAt")]
    assert "invalid JSON" in rejected[0].reason
    assert rejected[0].raw == lines[2]


def test_json_array_text_and_bytes() -> None:
    text = json.dumps([example(changeId="a"), {"changeId": "b"}])
    for batch in (text, text.encode()):
        accepted, rejected = parse_changes(batch)
        assert [c.change_id for c in accepted] == ["a"]
        assert rejected[0].index == 1 and rejected[0].path == "type"


def test_broken_json_array_is_one_rejection_keeping_the_text() -> None:
    accepted, rejected = parse_changes('[{"changeId": "a"},')
    assert accepted == []
    assert len(rejected) == 1 and rejected[0].index is None
    assert "invalid JSON array" in rejected[0].reason
    assert rejected[0].raw == '[{"changeId": "a"},'


def test_invalid_utf8_is_a_rejection() -> None:
    accepted, rejected = parse_changes(b'{"changeId": "\xff"}')
    assert accepted == [] and "UTF-8" in rejected[0].reason


def test_empty_batches() -> None:
    assert parse_changes([]) == ([], [])
    assert parse_changes("") == ([], [])
    assert parse_changes("\n \n") == ([], [])
    assert parse_changes("[]") == ([], [])


def test_deeply_nested_item_is_rejected_not_raised() -> None:
    nested: Any = "x"
    for _ in range(5000):
        nested = {"a": nested}
    result = parse_change(example(extra=nested))
    assert isinstance(result, ChangeEvent | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "changeId": json_values,
        "type": st.sampled_from(
            [
                "registration.status_change",
                "event.create_update",
                "session_registration.status_change",
                "x",
            ]
        )
        | json_values,
        "accountCode": st.text(max_size=5) | json_values,
        "eventCode": st.text(max_size=5) | json_values,
        "occurredAt": st.sampled_from(["2026-11-28T12:00:00Z", "2026-11-28T12:00:00"])
        | json_values,
        "registration": st.dictionaries(
            st.sampled_from(
                [
                    "registrationCode",
                    "isTest",
                    "profile",
                    "properties",
                    "registrationQuestions",
                    "registrationStatusLabel",
                ]
            ),
            json_values,
        )
        | json_values,
        "session": json_values,
        "event": json_values,
    },
)


@settings(max_examples=examples(200), deadline=None)
@given(item=json_values | envelope_like)
def test_parse_change_never_raises(item: Any) -> None:
    result = parse_change(item)
    assert isinstance(result, ChangeEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.reason and result.raw is item


@settings(max_examples=examples(100), deadline=None)
@given(text=st.text(max_size=200))
def test_parse_changes_never_raises_on_text(text: str) -> None:
    accepted, rejected = parse_changes(text)
    assert all(isinstance(r, Rejection) for r in rejected)
    assert all(isinstance(c, ChangeEvent) for c in accepted)


# -- poisoned items: each one a rejection of its own, the rest of the batch kept --------------


def test_lone_surrogate_names_its_path_and_reason() -> None:
    item = example(changeId="s")
    item["registration"]["profile"] = {"firstName": "An\udc80a"}
    result = parse_change(item, index=3)
    assert isinstance(result, Rejection)
    assert (result.index, result.path) == (3, "registration.profile.firstName")
    assert "surrogate" in result.reason and "\\udc80" in result.reason
    keyed = parse_change(example(changeId="k", **{"x\ud800": 1}))
    assert isinstance(keyed, Rejection) and keyed.path == "x\\ud800"
    paired = parse_change(json.loads(json.dumps(example(changeId="p", note="😀"))))
    assert isinstance(paired, ChangeEvent)


def test_nesting_past_the_limit_is_a_rejection_at_its_path() -> None:
    within: Any = "x"
    for _ in range(MAX_DEPTH - 1):  # with the change's own object: MAX_DEPTH levels
        within = [within]
    assert isinstance(parse_change(example(changeId="ok", extra=within)), ChangeEvent)
    result = parse_change(example(changeId="deep", extra=[within]))
    assert isinstance(result, Rejection)
    assert result.path.startswith("extra[0]") and "nested deeper than" in result.reason


def test_an_array_with_an_unreadable_item_is_split_into_its_items() -> None:
    good = [json.dumps(example(changeId=c)) for c in "abc"]
    deep = "[" * 3000 + "]" * 3000
    text = f"[{good[0]}, {{oops}}, {good[1]}, {deep},, {good[2]}] trailing"
    results = parse_items(text)
    accepted = [r.change_id for _, r in results if isinstance(r, ChangeEvent)]
    assert accepted == ["a", "b", "c"]
    rejected = [(i, r.reason.split(":")[0]) for i, r in results if isinstance(r, Rejection)]
    assert rejected == [
        (1, "invalid JSON"),
        (3, f"nested deeper than {MAX_DEPTH} levels"),
        (4, "invalid JSON"),
        (None, "unexpected text after the JSON array"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[{"a": "b}', "a string that never ends at line 1 column 8"),
        ('[{"a": 1]]', "an unexpected ']' at line 1 column 9"),
        ('[\n {"a": 1},\n {"b": [2}', "an unexpected '}' at line 3 column 10"),
        ('[{"a": 1}', "it never ends at line 1 column 10"),
    ],
)
def test_an_array_that_cannot_be_split_names_the_position(text: str, where: str) -> None:
    [(index, result)] = parse_items(text)
    assert index is None and isinstance(result, Rejection)
    assert "invalid JSON array" in result.reason and where in result.reason


def test_ndjson_lines_end_only_at_newlines() -> None:
    body = json.dumps(example(changeId="u", note="a\u2028b\x85c"), ensure_ascii=False)
    accepted, rejected = parse_changes(body + "\n" + body.replace('"u"', '"v"'))
    assert [c.change_id for c in accepted] == ["u", "v"] and rejected == []


def test_a_deep_single_object_is_one_rejection() -> None:
    text = '{\n "changeId": "d",\n "x": ' + "[" * 3000 + "]" * 3000 + "\n}"
    [(index, result)] = parse_items(text)
    assert index == 0 and isinstance(result, Rejection)
    assert "nested deeper than" in result.reason


def test_ndjson_whose_first_line_is_an_array() -> None:
    lines = ["[1]", json.dumps(example(changeId="after")), "[" * 3000 + "]" * 3000]
    results = parse_items("\n".join(lines))
    assert [(i, isinstance(r, Rejection)) for i, r in results] == [(0, True), (1, False), (2, True)]
    pretty = parse_items("[\n" + json.dumps(example(changeId="p")) + ",\n oops\n]\n")
    assert [(i, isinstance(r, Rejection)) for i, r in pretty] == [(0, False), (1, True)]
